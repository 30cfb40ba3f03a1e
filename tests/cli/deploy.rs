//! Deployments made only with the `pbn` binary (init, admin, nats-conf, creds) and a real
//! nats-server running the written files: what they admit and what they enforce.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use async_nats::{ConnectErrorKind, Subscriber};
use futures::{FutureExt, StreamExt};

use super::{read, Conn, Deployment, WAIT};
use crate::support::{free_port, wait_until_async, Cluster, NatsServer};

/// Receives one message within `timeout`, or `None`.
async fn next_within(sub: &mut Subscriber, timeout: Duration) -> Option<async_nats::Message> {
    tokio::time::timeout(timeout, sub.next()).await.ok().flatten()
}

/// Asserts `sub` holds no message once `conn` has round-tripped a PING: anything the server sent
/// before its PONG has been dispatched by then, so a denied message would already be there.
async fn assert_nothing_delivered(conn: &Conn, sub: &mut Subscriber, what: &str) {
    conn.client.flush().await.expect("flush");
    if let Some(Some(msg)) = sub.next().now_or_never() {
        panic!("{what}: unexpected message on {:?}", msg.subject);
    }
}

/// Asserts the server refused the connection (rather than it timing out or failing on I/O).
#[track_caller]
fn assert_refused(result: Result<Conn, async_nats::ConnectError>, what: &str) {
    let err = match result {
        Ok(_) => panic!("{what}: the server admitted the connection"),
        Err(err) => err,
    };
    let refused = err.kind() == ConnectErrorKind::AuthorizationViolation
        || err.to_string().contains("maximum account active connections exceeded");
    assert!(refused, "{what}: not a refusal by the server: {err}");
}

/// An account `app` and a role `all` (default permissions) with user `USER` holding creds.
fn app_with_user(d: &Deployment, user: &str) -> std::path::PathBuf {
    d.ok(&["account", "add", "app"]);
    d.ok(&["role", "add", "all"]);
    d.ok(&["user", "add", user, "--account", "app", "--role", "all", "--no-password"]);
    d.creds(user, &[])
}

#[tokio::test]
async fn creds_user_of_a_fresh_account_with_default_limits_connects() {
    let d = Deployment::init();
    let creds = app_with_user(&d, "alice");
    let server = d.start_server(free_port()).await;

    let conn = Conn::open(&server.client_url(), &creds).await;
    let mut sub = conn.client.subscribe("greet.>").await.expect("subscribe");
    conn.client.publish("greet.alice", "hi".into()).await.expect("publish");
    let msg = next_within(&mut sub, WAIT).await.expect("own message comes back");
    assert_eq!(msg.payload.as_ref(), b"hi");
    assert!(conn.errors().is_empty(), "server errors: {:?}", conn.errors());
}

/// A server for account `app` with roles `all` (defaults), `limited` (pub `a.>` but not
/// `a.secret`, sub `a.>` but not `a.hidden`) and `mute` (`--no-pub`), each with one creds user of
/// the same name, connected; `all` subscribed to everything.
struct RoleFixture {
    _d: Deployment,
    _server: NatsServer,
    all: Conn,
    everything: Subscriber,
    limited: Conn,
    mute: Conn,
}

impl RoleFixture {
    async fn start() -> Self {
        let d = Deployment::init();
        d.ok(&["account", "add", "app"]);
        d.ok(&["role", "add", "all"]);
        d.ok(&["role", "add", "limited", "--pub", "a.>", "--pub-deny", "a.secret"]);
        d.ok(&["role", "edit", "limited", "--sub", "a.>", "--sub-deny", "a.hidden"]);
        d.ok(&["role", "add", "mute", "--no-pub"]);
        for role in ["all", "limited", "mute"] {
            d.ok(&["user", "add", role, "--account", "app", "--role", role, "--no-password"]);
        }
        let creds = [d.creds("all", &[]), d.creds("limited", &[]), d.creds("mute", &[])];
        let server = d.start_server(free_port()).await;
        let url = server.client_url();
        let all = Conn::open(&url, &creds[0]).await;
        let everything = all.client.subscribe(">").await.expect("subscribe");
        all.client.flush().await.expect("flush");
        let limited = Conn::open(&url, &creds[1]).await;
        let mute = Conn::open(&url, &creds[2]).await;
        RoleFixture { _d: d, _server: server, all, everything, limited, mute }
    }
}

#[tokio::test]
async fn role_publish_lists_are_enforced() {
    // Bound first: `..` on the temporary would drop the server at the end of the statement.
    let fixture = RoleFixture::start().await;
    let RoleFixture { all, mut everything, limited, mute, .. } = fixture;
    // Denied publishes go first: had the server passed one on, it would arrive before `a.ok`.
    for subject in ["a.secret", "b.other", "a.ok"] {
        limited.client.publish(subject, "x".into()).await.expect("publish");
    }
    limited.client.flush().await.expect("flush");
    let first = next_within(&mut everything, WAIT).await.expect("the allowed publish arrives");
    assert_eq!(first.subject.as_str(), "a.ok");
    limited.wait_error("Permissions Violation for Publish to \"a.secret\"").await;
    limited.wait_error("Permissions Violation for Publish to \"b.other\"").await;

    mute.client.publish("a.ok", "x".into()).await.expect("publish");
    mute.client.publish("anything", "x".into()).await.expect("publish");
    mute.client.flush().await.expect("flush");
    mute.wait_error("Permissions Violation for Publish to \"a.ok\"").await;
    mute.wait_error("Permissions Violation for Publish to \"anything\"").await;
    assert_nothing_delivered(&all, &mut everything, "publish of a --no-pub user").await;
}

#[tokio::test]
async fn role_subscribe_lists_are_enforced() {
    let fixture = RoleFixture::start().await;
    let RoleFixture { all, limited, .. } = fixture;
    let mut hidden = limited.client.subscribe("a.hidden").await.expect("subscribe");
    let mut other = limited.client.subscribe("b.x").await.expect("subscribe");
    let mut visible = limited.client.subscribe("a.visible").await.expect("subscribe");
    limited.client.flush().await.expect("flush");
    limited.wait_error("Permissions Violation for Subscription to \"a.hidden\"").await;
    limited.wait_error("Permissions Violation for Subscription to \"b.x\"").await;
    // Same connection, so the denied subjects would arrive before `a.visible`.
    for subject in ["a.hidden", "b.x", "a.visible"] {
        all.client.publish(subject, "x".into()).await.expect("publish");
    }
    all.client.flush().await.expect("flush");
    let got = next_within(&mut visible, WAIT).await.expect("the allowed subscription receives");
    assert_eq!(got.subject.as_str(), "a.visible");
    assert_nothing_delivered(&limited, &mut hidden, "denied subscription a.hidden").await;
    assert_nothing_delivered(&limited, &mut other, "subscription b.x outside the allow list").await;
}

#[tokio::test]
async fn role_max_payload_and_max_subscriptions_are_enforced() {
    let d = Deployment::init();
    d.ok(&["account", "add", "app"]);
    d.ok(&["role", "add", "small", "--max-payload", "100", "--max-subscriptions", "2"]);
    d.ok(&["user", "add", "bob", "--account", "app", "--role", "small", "--no-password"]);
    let creds = d.creds("bob", &[]);
    let server = d.start_server(free_port()).await;

    let subs_conn = Conn::open(&server.client_url(), &creds).await;
    let mut first = subs_conn.client.subscribe("s.1").await.expect("subscribe");
    let _second = subs_conn.client.subscribe("s.2").await.expect("subscribe");
    subs_conn.client.flush().await.expect("flush");
    assert!(
        subs_conn.errors().is_empty(),
        "two subscriptions are allowed: {:?}",
        subs_conn.errors()
    );
    let _third = subs_conn.client.subscribe("s.3").await.expect("subscribe");
    subs_conn.wait_error("maximum subscriptions exceeded").await;

    subs_conn.client.publish("s.1", vec![b'x'; 100].into()).await.expect("publish");
    let msg = next_within(&mut first, WAIT).await.expect("a 100-byte payload is allowed");
    assert_eq!(msg.payload.len(), 100);

    let payload_conn = Conn::open(&server.client_url(), &creds).await;
    payload_conn.client.publish("s.1", vec![b'x'; 101].into()).await.expect("publish");
    payload_conn.wait_error("Maximum Payload Violation").await;
}

#[tokio::test]
async fn account_connection_limit_and_deactivation_are_enforced() {
    let d = Deployment::init();
    d.ok(&["account", "add", "capped", "--max-connections", "2"]);
    d.ok(&["role", "add", "all"]);
    d.ok(&["user", "add", "carol", "--account", "capped", "--role", "all", "--no-password"]);
    let creds = d.creds("carol", &[]);
    let mut server = d.start_server(free_port()).await;
    let url = server.client_url();

    let one = Conn::open(&url, &creds).await;
    let two = Conn::open(&url, &creds).await;
    let refused = Conn::connect(&url, &creds).await.err().expect("a third connection is refused");
    assert!(
        refused.to_string().contains("maximum account active connections exceeded"),
        "unexpected error: {refused}"
    );
    drop((one, two));

    d.ok(&["account", "edit", "capped", "--active", "false"]);
    d.regenerate_and_restart(&mut server).await;
    assert_refused(Conn::connect(&url, &creds).await, "creds of an inactive account");
    let fresh = d.creds("carol", &[]);
    d.regenerate_and_restart(&mut server).await;
    assert_refused(Conn::connect(&url, &fresh).await, "fresh creds of an inactive account");

    d.ok(&["account", "edit", "capped", "--active", "true"]);
    let again = d.creds("carol", &[]);
    d.regenerate_and_restart(&mut server).await;
    Conn::open(&url, &again).await;
}

#[tokio::test]
async fn new_creds_revoke_the_previous_ones_unless_kept() {
    let d = Deployment::init();
    let first = app_with_user(&d, "dave");
    let mut server = d.start_server(free_port()).await;
    let url = server.client_url();
    Conn::open(&url, &first).await;

    let second = d.creds("dave", &[]);
    d.regenerate_and_restart(&mut server).await;
    let err = Conn::connect(&url, &first).await.err().expect("the first creds are revoked");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{err}");
    Conn::open(&url, &second).await;

    let third = d.creds("dave", &["--keep-previous"]);
    d.regenerate_and_restart(&mut server).await;
    Conn::open(&url, &second).await;
    Conn::open(&url, &third).await;
    assert_refused(Conn::connect(&url, &first).await, "revoked creds after a --keep-previous");
}

#[tokio::test]
async fn narrowing_a_role_revokes_the_creds_it_was_in() {
    let d = Deployment::init();
    let wide = app_with_user(&d, "frank");
    let mut server = d.start_server(free_port()).await;
    let url = server.client_url();
    Conn::open(&url, &wide).await;

    d.ok(&["role", "edit", "all", "--pub", "narrow.>"]);
    d.regenerate_and_restart(&mut server).await;
    let err = Conn::connect(&url, &wide).await.err().expect("creds of the wider role are revoked");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{err}");
    let narrow = Conn::open(&url, &d.creds("frank", &[])).await;
    narrow.client.publish("wide.topic", "x".into()).await.expect("publish");
    narrow.client.flush().await.expect("flush");
    narrow.wait_error("Permissions Violation for Publish to \"wide.topic\"").await;
}

/// A client port `p` such that `p..p+n` and their route ports (`p+2000..`, as `pbn nats-conf`
/// lays them out) are all free now.
fn cluster_base_port(n: u16) -> u16 {
    let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
    loop {
        let base = free_port();
        if base.checked_add(2000 + n).is_none() {
            continue;
        }
        if (0..n).all(|i| free(base + i) && free(base + 2000 + i)) {
            return base;
        }
    }
}

#[tokio::test]
async fn cluster_files_form_a_routed_cluster() {
    let d = Deployment::init();
    let creds = app_with_user(&d, "erin");
    let base = cluster_base_port(3);
    let files = d.nats_conf(base, Some(3));
    assert_eq!(files.len(), 3);
    let mut nodes = Vec::new();
    for (i, file) in (0u16..).zip(&files) {
        nodes.push(NatsServer::builder(&read(file)).port(base + i).start().await);
    }
    for node in &nodes {
        wait_until_async(WAIT * 3, "2 route peers on every node", || async {
            Cluster::try_route_peers(node).await.is_ok_and(|peers| peers == 2)
        })
        .await;
    }

    let sub_conn = Conn::open(&nodes[2].client_url(), &creds).await;
    let mut sub = sub_conn.client.subscribe("across").await.expect("subscribe");
    sub_conn.client.flush().await.expect("flush");
    let pub_conn = Conn::open(&nodes[0].client_url(), &creds).await;
    // Interest propagates over the routes asynchronously: publish until one arrives.
    let deadline = crate::support::Deadline::after(WAIT, "a message across the cluster");
    loop {
        pub_conn.client.publish("across", "x".into()).await.expect("publish");
        if next_within(&mut sub, Duration::from_millis(200)).await.is_some() {
            break;
        }
        deadline.tick().await;
    }
}
