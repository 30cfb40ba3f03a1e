//! The session view every replica builds from the servers: kicks of sessions admitted before a
//! restart or by another replica, and per-user caps counted across replicas.

use std::time::Instant;

use pbn::{ListPatch, RolePatch};

use super::{admin, admin_creds, assert_refused, login, wait_callouts, Replica, UserConn};
use crate::support::deploy::{DeployOptions, Deployment};
use crate::support::Deadline;

/// A deployment of `servers` servers (a cluster from 2 on) with account APP, role `app` (at
/// most `cap` connections per user when given) and users `alice` and `bob`.
async fn deployment(servers: u16, cap: Option<i64>) -> Deployment {
    let cluster = (servers > 1).then_some(servers);
    let mut d = Deployment::new(DeployOptions { cluster, runners: 0, ..DeployOptions::default() });
    d.add_account("APP");
    let role = RolePatch {
        pub_allow: ListPatch::Set(vec!["app.>".into()]),
        max_connections: cap,
        ..RolePatch::default()
    };
    d.add_role("app", role);
    d.add_user("alice", "APP", "app", super::PW);
    d.add_user("bob", "APP", "app", super::PW);
    d.start().await;
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_admitted_before_a_restart_are_kicked_after_it() {
    let d = deployment(1, None).await;
    let creds = admin_creds(&d);
    let replica = Replica::start(&d, "a", 0);
    wait_callouts(&d, 1, 1).await;
    let alice = login(&d, 0, "alice").await;
    let bob = login(&d, 0, "bob").await;
    assert_eq!(replica.admitted("alice") + replica.admitted("bob"), 2);
    replica.wait_sessions(2).await;

    let replica = replica.restart();
    replica.wait_log("sessions synchronised with the servers", 1).await;
    replica.wait_sessions(2).await;
    replica.wait_log("admin API serving", 1).await;
    let since = Instant::now();
    admin(&d.url(0), &creds, &["user", "edit", "alice", "--active", "false"]).await.success();
    alice.assert_closed_within(since).await;
    assert!(replica.log().contains("kicked=1"), "{}", replica.log());
    bob.client.flush().await.expect("bob's connection stays");
    assert!(!bob.disconnected(), "only alice is kicked");
    replica.wait_sessions(1).await;
}

/// Logs `user` in on server `server` until replica `want` (of `replicas`) admitted the login;
/// logins another replica admitted are closed again (and gone from every view) first. The
/// callout's queue group picks a replica at random, so a few tries settle it.
async fn login_through(
    d: &Deployment,
    server: usize,
    user: &str,
    replicas: &[&Replica],
    want: usize,
) -> UserConn {
    let live = |r: &Replica| r.admitted(user);
    for _ in 0..20 {
        let before: Vec<usize> = replicas.iter().map(|r| live(r)).collect();
        let held = replicas[0].sessions().await.unwrap_or(0.0) as usize;
        let conn = login(d, server, user).await;
        if replicas[want].admitted(user) > before[want] {
            return conn;
        }
        conn.client.drain().await.expect("close the login");
        for r in replicas {
            r.wait_sessions(held).await;
        }
    }
    panic!("no login of {user} reached replica {want} in 20 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_user_cap_counts_logins_of_every_replica() {
    let d = deployment(3, Some(2)).await;
    let a = Replica::start(&d, "a", 0);
    let b = Replica::start(&d, "b", 1);
    wait_callouts(&d, 3, 2).await;
    for r in [&a, &b] {
        r.wait_log("sessions synchronised with the servers", 1).await;
    }
    let _first = login_through(&d, 0, "alice", &[&a, &b], 0).await;
    let _second = login_through(&d, 1, "alice", &[&a, &b], 1).await;
    // Each replica's view holds both, whichever replica admitted them.
    a.wait_sessions(2).await;
    b.wait_sessions(2).await;
    let admitted = a.admitted("alice") + b.admitted("alice");
    for server in [0, 1, 2, 0, 1, 2] {
        assert_refused(&d, server, "alice").await;
    }
    assert_eq!(a.admitted("alice") + b.admitted("alice"), admitted, "no third login admitted");
    // Another user is not affected.
    login(&d, 2, "bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deactivated_through_one_replica_is_kicked_from_the_other() {
    let d = deployment(3, None).await;
    let creds = admin_creds(&d);
    let a = Replica::start(&d, "a", 0);
    let b = Replica::start(&d, "b", 1);
    wait_callouts(&d, 3, 2).await;
    for r in [&a, &b] {
        r.wait_log("sessions synchronised with the servers", 1).await;
    }
    let alice = login_through(&d, 0, "alice", &[&a, &b], 0).await;
    // b learns of alice from the connect event (it was running, its snapshot already taken).
    // How long that takes is the window in which a cap can be exceeded (README).
    let connected = Instant::now();
    let deadline = Deadline::after(super::WAIT, "replica b to count alice");
    while b.sessions().await != Some(1.0) {
        deadline.tick().await;
    }
    eprintln!("replica b counted the session {:?} after the connect returned", connected.elapsed());
    assert_eq!(b.log().matches("sessions synchronised").count(), 1, "no second snapshot");

    // With a gone (its store copy never changes), b answers the admin request.
    drop(a);
    let since = Instant::now();
    admin(&d.url(1), &creds, &["user", "edit", "alice", "--active", "false"]).await.success();
    alice.assert_closed_within(since).await;
    assert!(b.log().contains("kicked=1"), "replica b kicked:\n{}", b.log());
    assert_refused(&d, 1, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connz_snapshot_pages_through_every_server_and_lists_callout_users_only() {
    let d = deployment(2, None).await;
    let replica = Replica::start(&d, "a", 0);
    wait_callouts(&d, 2, 1).await;
    let mut conns = Vec::new();
    for i in 0..5 {
        conns.push(login(&d, i % 2, if i < 3 { "alice" } else { "bob" }).await);
    }
    // A creds-free connection of pbn's own (the service user) is not a session.
    let _service = d.service_client(1).await;
    let sys = pbn::SYS_ACCOUNT;
    let client = crate::support::deploy::sys_user_options(&d.account(sys))
        .connect(d.url(1))
        .await
        .expect("system user connects");
    // Pages of 1: the first answer of each server, then one request per further page.
    let listed = pbn::connz_sessions(client, 1).await.expect("snapshot");
    let keys: std::collections::BTreeSet<(String, u64)> =
        listed.iter().map(|s| (s.server_id.to_string(), s.client_id)).collect();
    assert_eq!((listed.len(), keys.len()), (5, 5), "every login once: {listed:?}");
    assert_eq!(listed.iter().filter(|s| s.user.as_str() == "alice").count(), 3);
    let servers: std::collections::BTreeSet<String> =
        listed.iter().map(|s| s.server_id.to_string()).collect();
    assert_eq!(servers.len(), 2, "both servers listed");
    assert!(listed.iter().all(|s| s.issuer.is_some() && s.user_nkey.is_none()));
    drop(replica);
}
