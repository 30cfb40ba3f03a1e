//! The claims publisher against real nats-servers, with `pbn::run_with_store` in this
//! process: live creation and edits, rejected pushes, deletes with and without `allow_delete`,
//! coalescing, startup reconcile, bootstrap, a server restart mid-stream, failover and failback.

mod batch;
mod env;
mod fake;

use pbn::{AccountDelete, OutboxList};
use std::time::{Duration, Instant};

use pbn::claims::{self, AccountClaims, Claims};
use pbn::Request;
use pbn::StoreRead;
use pbn::AUTH_ACCOUNT;

use crate::support::{wait_until_async, Cluster, NatsServer, Refuser};
use env::{
    callout_subscribers, connect_creds, held, login, lookup, lookup_key, settings, start_server,
    sys_client, wait_callout, wait_held, Env, Events, Service, WAIT,
};

/// Debounce of most tests: short, so pushes follow changes quickly.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Probe interval and healthy probes before failback in the failover test (production: 5 s, 3).
const FAILBACK_CHECK: Duration = Duration::from_millis(200);
const FAILBACK_CHECKS: u32 = 3;

fn unchanged(text: &str) -> String {
    text.to_string()
}

/// A single server for the store as it is now, and the service on it.
async fn single(env: &Env, attempts: u32, edit: impl Fn(&str) -> String) -> (NatsServer, Service) {
    let config = env.render(None, None).remove(0);
    let server = start_server(&config, edit).await;
    let service = Service::start(env, settings(env, vec![server.client_url()], DEBOUNCE, attempts));
    (server, service)
}

#[tokio::test]
async fn an_account_created_while_running_admits_callout_logins_at_once() {
    let env = Env::new();
    let (server, service) = single(&env, 5, unchanged).await;
    let sys = sys_client(&env, &server.client_url()).await;
    env.add_account("orders", -1);
    env.add_user("alice", "orders");
    env.wait_outbox_empty().await;
    let orders = env.account("orders").public_key.to_string();
    let auth = held(&sys, &env, AUTH_ACCOUNT).await.expect("AUTH is held");
    assert!(auth.nats.authorization.allowed_accounts.contains(&orders), "AUTH allows orders");
    assert!(lookup(&sys, &env, "orders").await.is_some(), "the server holds orders");

    // The account is in the resolver already: no 1.9 s fetch on the first login.
    let started = Instant::now();
    let alice = login(&server.client_url(), "alice").await.expect("alice logs in");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "login took {took:?}");
    alice.flush().await.expect("alice's connection works");
    drop(alice);
    service.stop().await;
}

#[tokio::test]
async fn lowering_max_connections_closes_the_newest_connections() {
    let env = Env::new();
    let (server, service) = single(&env, 5, unchanged).await;
    env.add_account("limited", 4);
    let creds: Vec<String> = (0..4)
        .map(|i| {
            let user = format!("u{i}");
            env.add_user(&user, "limited");
            env.creds(&user)
        })
        .collect();
    env.wait_outbox_empty().await;
    let mut clients = Vec::new();
    for c in &creds {
        let events = Events::default();
        let client = connect_creds(&server.client_url(), c, &events).await.expect("connect");
        client.flush().await.expect("flush");
        // connect_creds returns after the handshake, so each connection starts after the one
        // before: the server closes the newest connections first.
        clients.push((client, events));
    }

    env.set_max_connections("limited", 2);
    let exceeded = "maximum account active connections exceeded";
    wait_until_async(WAIT, "the two newest connections to be closed", || async {
        clients[2].1.has_server_error(exceeded) && clients[3].1.has_server_error(exceeded)
    })
    .await;
    for (client, events) in &clients[..2] {
        assert!(!events.has_server_error(exceeded) && !events.disconnected());
        client.flush().await.expect("the oldest connections stay");
    }
    service.stop().await;
}

#[tokio::test]
async fn twenty_edits_within_the_debounce_make_one_push() {
    let env = Env::new();
    env.add_account("busy", -1);
    let config = env.render(None, None).remove(0);
    // Debug logging: the server logs `jwt updated - <account>` for every push it applies.
    let server = NatsServer::builder(&config.text).arg("-D").start().await;
    // The admin clock has second resolution: a 2 s debounce keeps a 20-edit burst together.
    let s = settings(&env, vec![server.client_url()], Duration::from_secs(2), 5);
    let service = Service::start(&env, s);
    env.wait_outbox_empty().await;
    let pushed = format!("jwt updated - {}", env.account("busy").public_key);
    let before = server.log_count(&pushed);
    for n in 1..=20 {
        env.set_max_connections("busy", n);
    }
    env.wait_outbox_empty().await;
    let sys = sys_client(&env, &server.client_url()).await;
    wait_held(&sys, &env, "busy", |c| c.nats.limits.conn == 20).await;
    assert_eq!(server.log_count(&pushed) - before, 1, "one push for the whole burst");
    service.stop().await;
}

#[tokio::test]
async fn a_push_the_server_refuses_ends_as_a_failed_entry() {
    // The resolver holds at most 2 accounts (SYS and AUTH, preloaded): nats-server answers the
    // push of a third with `jwt store is full`, a real refusal reported in the reply's error.
    let env = Env::new();
    let limit =
        |text: &str| text.replace("  allow_delete: true\n", "  allow_delete: true\n  limit: 2\n");
    let (server, service) = single(&env, 2, limit).await;
    env.add_account("overflow", -1);
    let failed =
        || env.outbox().into_iter().find(|e| e.account_name == "overflow" && e.state == "failed");
    wait_until_async(WAIT, "the overflow entry to fail", || async { failed().is_some() }).await;
    let entry = failed().expect("a failed entry");
    assert_eq!(entry.attempts, 2);
    let error = entry.last_error.unwrap_or_default();
    assert!(error.contains("jwt store is full"), "last error: {error}");
    let sys = sys_client(&env, &server.client_url()).await;
    assert!(lookup(&sys, &env, "overflow").await.is_none(), "nothing was stored");
    let text = env.admin(Request::OutboxList(OutboxList {})).to_text();
    assert!(text.contains("failed") && text.contains("jwt store is full"), "{text}");
    service.stop().await;
}

/// Creates `doomed`, proves creds of it work, deletes it and checks that nobody can use it any
/// more. Returns the server and what it holds for the account afterwards.
async fn delete_locks_everyone_out(allow_delete: bool) -> (NatsServer, Option<String>) {
    let env = Env::new();
    let edit = move |text: &str| match allow_delete {
        true => text.to_string(),
        false => text.replace("allow_delete: true", "allow_delete: false"),
    };
    let (server, service) = single(&env, 5, edit).await;
    env.add_account("doomed", -1);
    env.wait_outbox_empty().await;
    let key = env.account("doomed").public_key;
    let creds = env.foreign_creds("doomed");
    let live_events = Events::default();
    let live = connect_creds(&server.client_url(), &creds, &live_events).await.expect("connect");
    live.flush().await.expect("the account works before the delete");

    env.admin(Request::AccountDelete(AccountDelete { name: "doomed".into() }));
    wait_until_async(WAIT, "the live connection to be closed", || async {
        live_events.disconnected()
    })
    .await;
    env.wait_outbox_empty().await;
    let refused = connect_creds(&server.client_url(), &creds, &Events::default()).await;
    assert!(refused.is_err(), "a user of the deleted account connected");
    let sys = sys_client(&env, &server.client_url()).await;
    let held = lookup_key(&sys, &key).await;
    service.stop().await;
    (server, held)
}

#[tokio::test]
async fn a_deleted_account_admits_nobody_with_allow_delete() {
    let (server, held) = delete_locks_everyone_out(true).await;
    assert!(held.is_none(), "the server deleted the account");
    assert_eq!(server.log_count("delete must be enabled"), 0);
}

#[tokio::test]
async fn a_deleted_account_admits_nobody_without_allow_delete() {
    let (server, held) = delete_locks_everyone_out(false).await;
    assert!(server.log_count("delete must be enabled in server config") > 0);
    let jwt = held.expect("the server holds the disabled JWT pushed instead");
    let c: Claims<AccountClaims> = claims::decode(&jwt).expect("a valid account JWT");
    assert_eq!((c.nats.limits.conn, c.nats.limits.leaf), (0, 0));
    assert_eq!(c.nats.revocations.get("*"), Some(&c.iat));
    assert!(c.nats.signing_keys.is_empty());
}

#[tokio::test]
async fn startup_reconcile_pushes_what_changed_while_stopped() {
    let env = Env::new();
    env.add_account("alpha", -1);
    env.add_account("beta", -1);
    let (server, service) = single(&env, 5, unchanged).await;
    env.wait_outbox_empty().await;
    service.stop().await;

    // alpha through admin (its outbox entry must survive the stop); beta behind the outbox's
    // back (only the reconcile can find it).
    env.set_max_connections("alpha", 5);
    env.store
        .write(|tx| {
            let mut beta = tx.require_account("beta")?;
            beta.limits.max_connections = pbn::Limit::try_from(7).expect("a limit");
            tx.update_account(&beta)
        })
        .expect("edit beta");
    let service = Service::start(&env, settings(&env, vec![server.client_url()], DEBOUNCE, 5));
    let sys = sys_client(&env, &server.client_url()).await;
    wait_held(&sys, &env, "alpha", |c| c.nats.limits.conn == 5).await;
    wait_held(&sys, &env, "beta", |c| c.nats.limits.conn == 7).await;
    env.wait_outbox_empty().await;
    service.stop().await;
}

#[tokio::test]
async fn bootstrap_waits_for_the_server_then_flushes() {
    let env = Env::new();
    let config = env.render(None, None).remove(0);
    let refuser = Refuser::bind(0).await;
    let port = refuser.port();
    let url = format!("nats://127.0.0.1:{port}");
    let service = Service::start(&env, settings(&env, vec![url.clone()], DEBOUNCE, 2));
    env.add_account("early", -1);
    env.add_user("bob", "early");
    // No server while the service tries to connect: nothing is lost and no attempt is spent.
    refuser.wait_attempts(3, WAIT).await;
    let waiting = env.outbox();
    assert!(waiting.iter().any(|e| e.account_name == "early"));
    assert!(waiting.iter().all(|e| e.state == "pending" && e.attempts == 0), "{waiting:?}");

    refuser.close().await;
    let server = NatsServer::builder(&config.text).port(port).start().await;
    env.wait_outbox_empty().await;
    let sys = sys_client(&env, &url).await;
    assert!(lookup(&sys, &env, "early").await.is_some());
    let bob = login(&server.client_url(), "bob").await.expect("bob logs in");
    bob.flush().await.expect("bob's connection works");
    drop(bob);
    service.stop().await;
}

#[tokio::test]
async fn a_server_restart_mid_stream_ends_with_the_store_state() {
    let env = Env::new();
    env.add_account("churn", -1);
    let (mut server, service) = single(&env, 20, unchanged).await;
    for n in 1..=30 {
        env.set_max_connections("churn", n);
        if n == 10 {
            server.kill();
        }
        if n == 20 {
            server.restart().await;
        }
        // Pacing: the edits are spread over the server's outage and restart.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    env.wait_outbox_empty().await;
    let sys = sys_client(&env, &server.client_url()).await;
    let churn = held(&sys, &env, "churn").await.expect("churn is held");
    assert_eq!(churn.nats.limits.conn, 30);
    assert_eq!(churn.iat, env.account("churn").last_jwt_iat, "the newest JWT issued is held");
    service.stop().await;
}

#[tokio::test]
async fn fails_over_to_the_backup_and_back() {
    let env = Env::new();
    env.add_account("ha", -1);
    env.add_user("carol", "ha");
    let configs = env.render(None, Some(2));
    let mut nodes = Vec::new();
    for c in &configs {
        nodes.push(start_server(c, unchanged).await);
    }
    for node in &nodes {
        wait_until_async(WAIT, "routes up", || async {
            Cluster::try_route_peers(node).await.is_ok_and(|n| n >= 1)
        })
        .await;
    }
    let urls: Vec<String> = nodes.iter().map(NatsServer::client_url).collect();
    let mut settings = settings(&env, urls.clone(), DEBOUNCE, 5);
    settings.connection.failback_check_interval = FAILBACK_CHECK;
    settings.connection.failback_healthy_checks = FAILBACK_CHECKS;
    let service = Service::start(&env, settings);
    wait_callout(&nodes[0], true, WAIT).await;
    assert_eq!(callout_subscribers(&nodes[1]).await, 0, "the primary first");
    login(&urls[1], "carol").await.expect("login through the backup node");

    nodes[0].stop().await;
    wait_callout(&nodes[1], true, WAIT).await;
    let carol = login(&urls[1], "carol").await.expect("login while the primary is down");
    carol.flush().await.expect("works");

    nodes[0].restart().await;
    // Failback waits for FAILBACK_CHECKS healthy probes FAILBACK_CHECK apart.
    wait_callout(&nodes[0], true, WAIT).await;
    wait_callout(&nodes[1], false, WAIT).await;
    login(&urls[0], "carol").await.expect("login through the primary again");
    service.stop().await;
}
