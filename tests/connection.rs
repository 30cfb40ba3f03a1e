//! The managed connection against real nats-servers: bootstrap without a server, failover to a
//! backup, probed failback to the primary (new client published before the old one closes),
//! shutdown with drain, and JWT authentication with credentials minted per connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use pbn::claims::{AccountClaims, Claims, OperatorClaims, UserClaims};
use pbn::keys::{KeyKind, KeyPair};
use pbn::unix_now;
use pbn::{
    ConnState, Connection, ConnectionAuth, ConnectionSettings, Credentials, CredentialsError,
};
use tokio::sync::watch;

use crate::support::{
    free_port, wait_until, wait_until_async, Cluster, Deadline, NatsServer, Refuser,
};

/// Upper bound for anything that should happen within a few probe intervals.
const WAIT: Duration = Duration::from_secs(20);
/// The connection name; counted in `/connz` to find our connections.
const NAME: &str = "pbn-conn-test";
/// Probe interval and healthy checks used by the tests.
const PROBE: Duration = Duration::from_millis(200);
const CHECKS: u32 = 3;
/// How long a replaced client stays open after a failback (`failback_grace`): long enough to
/// publish through it once more on a busy machine.
const GRACE: Duration = Duration::from_secs(1);

fn fast_settings(servers: &[String]) -> ConnectionSettings {
    ConnectionSettings {
        servers: servers.to_vec(),
        name: NAME.to_owned(),
        connect_timeout: Duration::from_secs(2),
        retry_backoff_base: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(300),
        failback_check_interval: PROBE,
        failback_healthy_checks: CHECKS,
        request_timeout: Duration::from_secs(3),
        failback_grace: GRACE,
        ping_interval: Duration::from_secs(1),
        ..ConnectionSettings::default()
    }
}

fn connected(url: &str, primary: bool) -> ConnState {
    ConnState::Connected { url: url.to_owned(), primary }
}

async fn wait_state(state: &watch::Receiver<ConnState>, expected: ConnState) {
    let what = format!("connection state {expected}");
    wait_until(WAIT, &what, || *state.borrow() == expected).await;
}

fn current(connection: &Connection) -> async_nats::Client {
    connection.client().borrow().clone().expect("a client is published while connected")
}

/// Waits until the server has processed everything `client` sent before (e.g. a SUB): a
/// request nobody answers comes back as "no responders" only after the server read it.
/// (async-nats' `flush` only writes the buffer to the socket.)
async fn round_trip(client: &async_nats::Client) {
    let probe = client.new_inbox();
    match client.request(probe, "sync".into()).await {
        Err(err) if err.kind() == async_nats::RequestErrorKind::NoResponders => {}
        other => panic!("expected no responders on a fresh inbox, got {other:?}"),
    }
}

/// Receives one message within `timeout`, or `None`.
async fn next_within(
    sub: &mut async_nats::Subscriber,
    timeout: Duration,
) -> Option<async_nats::Message> {
    tokio::time::timeout(timeout, sub.next()).await.ok().flatten()
}

/// Publishes through `client` until `sub` receives it (interest may still be crossing a
/// route); panics after [`WAIT`].
async fn publish_until_received(
    client: &async_nats::Client,
    subject: &str,
    sub: &mut async_nats::Subscriber,
) {
    let deadline = Deadline::after(WAIT, format!("a message on {subject} to arrive"));
    loop {
        client.publish(subject.to_owned(), "ping".into()).await.expect("publish");
        client.flush().await.expect("flush");
        if next_within(sub, Duration::from_millis(200)).await.is_some() {
            return;
        }
        deadline.tick().await;
    }
}

/// How many connections named [`NAME`] the server lists at `/connz?<query>`.
async fn named_connections(server: &NatsServer, query: &str) -> usize {
    let connz = server.monitor(&format!("/connz?{query}")).await;
    connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|conn| conn["name"].as_str() == Some(NAME))
        .count()
}

#[tokio::test]
async fn bootstraps_without_a_server_and_connects_once_one_starts() {
    let refuser = Refuser::bind(0).await;
    let port = refuser.port();
    let url = format!("nats://127.0.0.1:{port}");
    let (_stop, shutdown) = watch::channel(false);
    let connection = Connection::start(
        fast_settings(std::slice::from_ref(&url)),
        ConnectionAuth::Plain,
        shutdown,
    )
    .expect("valid settings");
    let state = connection.state();
    assert_eq!(*state.borrow(), ConnState::Bootstrapping);
    assert!(connection.client().borrow().is_none());

    // Several rounds fail meanwhile (backoff 50..300 ms); it must keep bootstrapping.
    refuser.wait_attempts(3, WAIT).await;
    assert_eq!(*state.borrow(), ConnState::Bootstrapping);
    assert!(connection.client().borrow().is_none());

    refuser.close().await;
    let server = NatsServer::builder("").port(port).start().await;
    wait_state(&state, connected(&url, true)).await;
    let client = current(&connection);

    // Request/reply through the managed client, both as responder and as requester.
    let mut service = client.subscribe("conn.echo").await.expect("subscribe");
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = service.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder.publish(reply, msg.payload).await;
            }
        }
    });
    round_trip(&client).await;
    let other = async_nats::connect(server.client_url()).await.expect("connect");
    let reply = other.request("conn.echo", "hello".into()).await.expect("request to pbn");
    assert_eq!(reply.payload.as_ref(), b"hello");

    let mut upper = other.subscribe("conn.upper").await.expect("subscribe");
    let upper_client = other.clone();
    tokio::spawn(async move {
        while let Some(msg) = upper.next().await {
            if let Some(reply) = msg.reply {
                let text = String::from_utf8_lossy(&msg.payload).to_uppercase();
                let _ = upper_client.publish(reply, text.into()).await;
            }
        }
    });
    round_trip(&other).await;
    let reply = client.request("conn.upper", "abc".into()).await.expect("request from pbn");
    assert_eq!(reply.payload.as_ref(), b"ABC");
}

#[tokio::test]
async fn fails_over_to_the_backup_and_back_to_the_primary() {
    let mut cluster = Cluster::start(2, |_| String::new()).await;
    let urls = cluster.client_urls();
    let (_stop, shutdown) = watch::channel(false);
    let connection = Connection::start(fast_settings(&urls), ConnectionAuth::Plain, shutdown)
        .expect("valid settings");
    let state = connection.state();

    // The primary first, although the backup is up too.
    wait_state(&state, connected(&urls[0], true)).await;
    let primary_client = current(&connection);
    let watcher = async_nats::connect(&urls[1]).await.expect("connect to node 1");
    let mut sub = watcher.subscribe("failover.>").await.expect("subscribe");
    round_trip(&watcher).await;
    publish_until_received(&primary_client, "failover.primary", &mut sub).await;

    // Primary down: the client moves to the backup and keeps working.
    cluster.node_mut(0).stop().await;
    wait_state(&state, connected(&urls[1], false)).await;
    let backup_client = current(&connection);
    assert_eq!(backup_client.server_info().port, cluster.node(1).port());
    publish_until_received(&backup_client, "failover.backup", &mut sub).await;
    assert_eq!(named_connections(cluster.node(1), "").await, 1, "exactly one live connection");

    // Primary back: after CHECKS healthy probes the connection fails back.
    cluster.node_mut(0).restart().await;
    wait_state(&state, connected(&urls[0], true)).await;
    let failback_client = current(&connection);
    assert_eq!(failback_client.server_info().port, cluster.node(0).port());

    // The new client was published while the old one was still open: it still flushes and
    // delivers during the grace period, and only closes afterwards.
    backup_client.flush().await.expect("the replaced client is still open right after the swap");
    publish_until_received(&backup_client, "failover.old", &mut sub).await;
    wait_until_async(WAIT, "the replaced client to be drained and closed", || async {
        backup_client.flush().await.is_err()
    })
    .await;

    // Failback came after CHECKS probes: the first CHECKS - 1 probe connections were closed,
    // the last one became the client.
    let node0 = cluster.node(0);
    wait_until_async(WAIT, "closed probe connections on the primary", || async {
        named_connections(node0, "state=closed").await >= (CHECKS - 1) as usize
    })
    .await;
    assert_eq!(named_connections(node0, "").await, 1, "one live connection on the primary");
    publish_until_received(&failback_client, "failover.back", &mut sub).await;
}

#[tokio::test]
async fn shutdown_drains_the_client_and_ends_the_task() {
    let server = NatsServer::start("").await;
    let url = server.client_url();
    let (stop, shutdown) = watch::channel(false);
    let connection = Connection::start(
        fast_settings(std::slice::from_ref(&url)),
        ConnectionAuth::Plain,
        shutdown,
    )
    .expect("valid settings");
    let (state, client_rx) = (connection.state(), connection.client());
    wait_state(&state, connected(&url, true)).await;
    let client = current(&connection);

    let watcher = async_nats::connect(&url).await.expect("connect");
    let mut sub = watcher.subscribe("conn.bye").await.expect("subscribe");
    round_trip(&watcher).await;
    publish_until_received(&client, "conn.bye", &mut sub).await;
    // Not flushed: the drain at shutdown must deliver it.
    client.publish("conn.bye", "last words".into()).await.expect("publish");

    stop.send(true).expect("the supervisor holds a receiver");
    tokio::time::timeout(WAIT, connection.join())
        .await
        .expect("the supervisor ends after shutdown")
        .expect("the supervisor ends normally");
    assert_eq!(*state.borrow(), ConnState::Stopped);
    assert!(client_rx.borrow().is_none());

    // Earlier pings may still be queued before it.
    let deadline = Deadline::after(WAIT, "the drain to deliver the last message");
    while next_within(&mut sub, deadline.remaining()).await.expect("the drain flushed it").payload
        != "last words"
    {}
    assert!(client.flush().await.is_err(), "the drained client is closed");
    wait_until_async(WAIT, "the server to drop our connection", || async {
        named_connections(&server, "").await == 0
    })
    .await;
}

#[tokio::test]
async fn dropping_the_shutdown_sender_also_stops_the_connection() {
    let port = free_port();
    let (stop, shutdown) = watch::channel(false);
    let settings = fast_settings(&[format!("nats://127.0.0.1:{port}")]);
    let connection =
        Connection::start(settings, ConnectionAuth::Plain, shutdown).expect("valid settings");
    let state = connection.state();
    drop(stop);
    tokio::time::timeout(WAIT, connection.join())
        .await
        .expect("the supervisor ends")
        .expect("the supervisor ends normally");
    assert_eq!(*state.borrow(), ConnState::Stopped);
}

/// An operator-mode server config trusting one account, and that account's key.
fn operator_mode() -> (String, KeyPair) {
    let operator = KeyPair::generate(KeyKind::Operator);
    let account = KeyPair::generate(KeyKind::Account);
    let operator_jwt = Claims::new(operator.public_key(), OperatorClaims::new())
        .encode(&operator)
        .expect("encode operator");
    let account_jwt = Claims::new(account.public_key(), AccountClaims::new())
        .encode(&operator)
        .expect("encode account");
    let config = format!(
        "operator: \"{operator_jwt}\"\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
        account.public_key()
    );
    (config, account)
}

/// A provider minting a fresh user key and JWT (valid `ttl` seconds) per call, recording the
/// user keys it handed out; the first `failures` calls fail.
fn minting_provider(
    account: KeyPair,
    ttl: i64,
    failures: usize,
) -> (ConnectionAuth, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let users = Arc::new(Mutex::new(Vec::new()));
    let (counter, issued) = (calls.clone(), users.clone());
    let auth = ConnectionAuth::jwt(move || -> Result<Credentials, CredentialsError> {
        if counter.fetch_add(1, Ordering::SeqCst) < failures {
            return Err("store not ready".into());
        }
        let user = KeyPair::generate(KeyKind::User);
        let jwt = Claims::new(user.public_key(), UserClaims::new())
            .with_expires(unix_now() + ttl)
            .encode(&account)?;
        issued.lock().expect("not poisoned").push(user.public_key().to_owned());
        Ok(Credentials { jwt, seed: user.seed() })
    });
    (auth, calls, users)
}

#[tokio::test]
async fn jwt_auth_mints_fresh_credentials_for_every_connection() {
    let (config, account) = operator_mode();
    let mut server = NatsServer::start(&config).await;
    let url = server.client_url();
    let (auth, calls, users) = minting_provider(account, 3600, 2);
    let (_stop, shutdown) = watch::channel(false);
    let connection = Connection::start(fast_settings(std::slice::from_ref(&url)), auth, shutdown)
        .expect("valid settings");
    let state = connection.state();

    // The provider fails twice: those rounds fail, and the connection keeps retrying.
    wait_state(&state, connected(&url, true)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two failed calls, then one per connection");
    let first_user = users.lock().expect("not poisoned")[0].clone();
    let connz = server.monitor("/connz?auth=1").await;
    let authorized: Vec<&str> = connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|conn| conn["authorized_user"].as_str())
        .collect();
    assert_eq!(authorized, vec![first_user.as_str()], "the server accepted the minted user");

    // A reconnect asks the provider again and presents a new user key.
    server.restart().await;
    wait_until(WAIT, "a second connection", || users.lock().expect("not poisoned").len() >= 2)
        .await;
    wait_state(&state, connected(&url, true)).await;
    let users = users.lock().expect("not poisoned").clone();
    assert_ne!(users[0], users[1]);
    round_trip(&current(&connection)).await;
}

#[tokio::test]
async fn an_expired_user_jwt_is_replaced_by_a_fresh_one() {
    let (config, account) = operator_mode();
    let server = NatsServer::start(&config).await;
    let url = server.client_url();
    let (auth, calls, _) = minting_provider(account, 2, 0);
    let (_stop, shutdown) = watch::channel(false);
    let connection = Connection::start(fast_settings(std::slice::from_ref(&url)), auth, shutdown)
        .expect("valid settings");
    let state = connection.state();
    wait_state(&state, connected(&url, true)).await;

    // The server closes the connection when its JWT expires; pbn reconnects with a new one.
    wait_until(WAIT, "a reconnect with fresh credentials", || calls.load(Ordering::SeqCst) >= 2)
        .await;
    wait_state(&state, connected(&url, true)).await;
}
