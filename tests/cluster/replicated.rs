//! Replicated mode: three `pbn serve` replicas (in this process, each on its own store file
//! and its own server of a 3-node JetStream cluster) on one log in pbn's AUTH account.
//! Changes made through one replica are seen, logged in and enforced through the others; two
//! replicas writing one user lose nothing; without quorum admin writes fail fast while logins
//! go on; a replica stopped and restarted on its old store catches up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pbn::{
    hash_password_with, AccountEdit, AdminClient, ErrorClass, LimitPatch, ListPatch, OperatorShow,
    PasswordParams, RawConfig, RemoteError, Request, RolePatch, Secret, Settings, Store, StoreRead,
    UserAdd, UserEdit, AUTH_ACCOUNT,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{
    admin_creds, assert_refused, copy_store, http_get, login, wait_callouts, Replica, WAIT,
};
use crate::support::deploy::{DeployOptions, Deployment};
use crate::support::pbn::Pbn;
use crate::support::{free_port, open_store, Deadline};

/// One replica: `pbn::run_with_store` in this process on its own store file, connected to
/// server `server` only (so admin requests and logins on that server reach it first).
pub(super) struct Node {
    pub(super) name: &'static str,
    pub(super) store: Store,
    pub(super) server: usize,
    pub(super) http: String,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), pbn::ServerError>>>,
}

impl Node {
    /// Copies the deployment's store to `NAME.redb` and serves it in replicated mode.
    pub(super) fn start(d: &Deployment, name: &'static str, server: usize) -> Node {
        Node::start_with(d, name, server, None)
    }

    /// [`Node::start`] with a snapshot every `snapshot_entries` log entries.
    pub(super) fn start_with(
        d: &Deployment,
        name: &'static str,
        server: usize,
        snapshot_entries: Option<u64>,
    ) -> Node {
        let path = dir(d).join(format!("{name}.redb"));
        copy_store(d.store().path(), &path);
        let store = open_store(&path, pbn::SERVICE_COMMAND);
        Node::serve(d, name, store, server, snapshot_entries)
    }

    /// Serves `store` (its service stopped before) again.
    pub(super) fn serve(
        d: &Deployment,
        name: &'static str,
        store: Store,
        server: usize,
        snapshot_entries: Option<u64>,
    ) -> Node {
        let http = format!("127.0.0.1:{}", free_port());
        let flags = RawConfig {
            store: Some(store.path().to_path_buf()),
            servers: Some(vec![d.url(server)]),
            http: Some(http.clone()),
            replicated: Some(true),
            log_replicas: Some(3),
            snapshot_entries,
            ..RawConfig::default()
        };
        let settings = Settings::resolve(None, RawConfig::default(), flags).expect("settings");
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(pbn::run_with_store(settings, store.clone(), shutdown));
        Node { name, store, server, http, stop, task: Some(task) }
    }

    /// Stops the service (its store stays open in the test) and waits for it.
    pub(super) async fn stop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let done = tokio::time::timeout(WAIT, task).await;
            done.expect("the replica stops in time").expect("no panic").expect("a clean stop");
        }
    }

    pub(super) fn applied(&self) -> u64 {
        self.store.applied_seq().expect("applied seq")
    }

    pub(super) fn has_user(&self, name: &str) -> bool {
        self.store.read(|tx| tx.get_user(name)).expect("read").is_some()
    }

    /// The replica's `pbn_sessions` gauge.
    pub(super) async fn sessions(&self) -> Option<f64> {
        let body = http_get(&self.http, "/metrics").await?;
        body.lines().find_map(|l| l.strip_prefix("pbn_sessions ").and_then(|v| v.parse().ok()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub(super) fn dir(d: &Deployment) -> PathBuf {
    d.store().path().parent().expect("the store is in a temp dir").to_path_buf()
}

/// A 3-server JetStream cluster whose AUTH account may use JetStream, account APP, role
/// `app` and admin creds (made before any replica copies the store).
pub(super) async fn cluster() -> (Deployment, PathBuf) {
    let mut d =
        Deployment::new(DeployOptions { cluster: Some(3), runners: 0, ..DeployOptions::default() });
    d.add_account("APP");
    let role =
        RolePatch { pub_allow: ListPatch::Set(vec!["app.>".into()]), ..RolePatch::default() };
    d.add_role("app", role);
    let limits =
        LimitPatch { js_disk: Some(1 << 30), js_memory: Some(64 << 20), ..LimitPatch::default() };
    let auth = AccountEdit { name: AUTH_ACCOUNT.into(), limits, ..AccountEdit::default() };
    d.admin(Request::AccountEdit(auth));
    let creds = admin_creds(&d);
    d.start().await;
    wait_jetstream(&d, 3).await;
    (d, creds)
}

pub(super) async fn wait_jetstream(d: &Deployment, servers: usize) {
    for i in 0..servers {
        pbn::natsd::wait_for(
            d.server(i).http_port(),
            "jetstream",
            WAIT,
            pbn::natsd::jetstream_ready,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// An admin client on server `i` (answered by the replica connected there).
pub(super) async fn admin_on(d: &Deployment, creds: &Path, i: usize) -> AdminClient {
    AdminClient::connect(&d.url(i), creds, WAIT).await.unwrap_or_else(|e| panic!("admin: {e}"))
}

/// Waits until the replica on server `i` answers admin requests and has started or joined
/// the log.
pub(super) async fn wait_ready(d: &Deployment, creds: &Path, node: &Node) {
    let client = admin_on(d, creds, node.server).await;
    let deadline = Deadline::after(WAIT, format!("replica {} to answer", node.name));
    while node.applied() == 0 || client.call(&Request::OperatorShow(OperatorShow {})).await.is_err()
    {
        deadline.tick().await;
    }
    client.close().await;
}

pub(super) fn user_add(name: &str) -> Request {
    let hash =
        hash_password_with(&Secret::new(super::PW), &PasswordParams::for_tests()).expect("hash");
    Request::UserAdd(UserAdd {
        name: name.into(),
        account: "APP".into(),
        role: "app".into(),
        email: None,
        description: None,
        password_hash: Some(hash),
        tags: Default::default(),
    })
}

fn edit(name: &str) -> UserEdit {
    UserEdit { name: name.into(), ..UserEdit::default() }
}

/// Waits until every node has applied the same position and holds the same rows.
pub(super) async fn assert_converged(nodes: &[&Node]) {
    let deadline = Deadline::after(WAIT, "every replica at the same log position");
    loop {
        let seqs: Vec<u64> = nodes.iter().map(|n| n.applied()).collect();
        if seqs.iter().all(|s| *s == seqs[0]) {
            break;
        }
        if deadline.expired() {
            panic!("{}: {seqs:?}", deadline.error());
        }
        deadline.tick().await;
    }
    let first = nodes[0].store.raw_rows().expect("rows");
    for n in &nodes[1..] {
        assert!(
            n.store.raw_rows().expect("rows") == first,
            "{} differs from {}",
            n.name,
            nodes[0].name
        );
    }
}

/// The `q` quantile of sorted durations.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_added_through_one_replica_logs_in_through_another_with_the_apply_lag_measured() {
    let (d, creds) = cluster().await;
    let mut a = Node::start(&d, "a", 0);
    let mut b = Node::start(&d, "b", 1);
    let c = Node::start(&d, "c", 2);
    for n in [&a, &b, &c] {
        wait_ready(&d, &creds, n).await;
    }
    let admin = admin_on(&d, &creds, 0).await;
    let (mut lags, mut writes) = (Vec::new(), Vec::new());
    for i in 0..50 {
        let user = format!("u{i}");
        let sent = Instant::now();
        admin.call(&user_add(&user)).await.unwrap_or_else(|e| panic!("add {user}: {e}"));
        // a answers once the change is in the log and applied there.
        let committed = Instant::now();
        let deadline = Deadline::after(WAIT, format!("{user} in c's view"));
        while !c.has_user(&user) {
            deadline.tick_fast().await;
        }
        lags.push(committed.elapsed());
        writes.push(sent.elapsed());
    }
    lags.sort();
    writes.sort();
    let (p50, p99) = (quantile(&lags, 0.50), quantile(&lags, 0.99));
    let (w50, w99) = (quantile(&writes, 0.50), quantile(&writes, 0.99));
    eprintln!(
        "50 user adds through a: apply lag (a answered -> visible in c's view) p50 {p50:?} \
         p99 {p99:?}; request sent -> visible in c's view p50 {w50:?} p99 {w99:?}"
    );
    // The README's target is 100 ms on a quiet loopback; a loaded test machine gets slack.
    assert!(p99 <= Duration::from_secs(1), "apply lag p99 {p99:?}");
    admin.close().await;

    a.stop().await;
    b.stop().await;
    wait_callouts(&d, 3, 1).await;
    let conn = login(&d, 2, "u49").await;
    conn.client.flush().await.expect("u49 logged in through c");
    assert_refused(&d, 2, "nobody").await;
    assert_converged(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deactivated_through_one_replica_is_kicked_although_another_admitted_it() {
    let (d, creds) = cluster().await;
    let c = Node::start(&d, "c", 2);
    wait_ready(&d, &creds, &c).await;
    let through_c = admin_on(&d, &creds, 2).await;
    through_c.call(&user_add("alice")).await.expect("add alice through c");
    through_c.close().await;
    wait_callouts(&d, 3, 1).await;
    // c is the only callout: it admits alice.
    let alice = login(&d, 2, "alice").await;
    let b = Node::start(&d, "b", 1);
    wait_ready(&d, &creds, &b).await;
    let deadline = Deadline::after(WAIT, "b to count alice's session");
    while b.sessions().await != Some(1.0) {
        deadline.tick().await;
    }
    let through_b = admin_on(&d, &creds, 1).await;
    let since = Instant::now();
    let off = UserEdit { active: Some(false), ..edit("alice") };
    through_b.call(&Request::UserEdit(off)).await.expect("deactivate through b");
    alice.assert_closed_within(since).await;
    assert!(!c.store.read(|tx| tx.require_user("alice")).expect("alice").active, "c applied it");
    assert_refused(&d, 2, "alice").await;
    assert_converged(&[&b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_editing_one_user_at_once_lose_no_field() {
    let (d, creds) = cluster().await;
    let a = Node::start(&d, "a", 0);
    let b = Node::start(&d, "b", 1);
    for n in [&a, &b] {
        wait_ready(&d, &creds, n).await;
    }
    let (via_a, via_b) = (admin_on(&d, &creds, 0).await, admin_on(&d, &creds, 1).await);
    via_a.call(&user_add("bob")).await.expect("add bob");
    let mut conflicts = 0;
    for round in 0..10 {
        let email = format!("bob{round}@example.com");
        let description = format!("round {round}");
        let by_a = Request::UserEdit(UserEdit { email: Some(email.clone()), ..edit("bob") });
        let by_b =
            Request::UserEdit(UserEdit { description: Some(description.clone()), ..edit("bob") });
        let (ra, rb) = tokio::join!(via_a.call(&by_a), via_b.call(&by_b));
        for r in [&ra, &rb] {
            match r {
                Ok(_) => {}
                Err(RemoteError::Refused { class: ErrorClass::LogConflict, .. }) => conflicts += 1,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_converged(&[&a, &b]).await;
        let bob = a.store.read(|tx| tx.require_user("bob")).expect("bob");
        if ra.is_ok() {
            assert_eq!(bob.email.as_deref(), Some(email.as_str()), "round {round}: a's edit kept");
        }
        if rb.is_ok() {
            assert_eq!(bob.description, description, "round {round}: b's edit kept");
        }
    }
    eprintln!("10 rounds of two concurrent edits: {conflicts} reported as conflicts");
    assert!(conflicts < 20, "every edit cannot conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_admin_writes_fail_fast_logins_go_on_and_replicas_converge_after() {
    let (mut d, creds) = cluster().await;
    let a = Node::start(&d, "a", 0);
    let b = Node::start(&d, "b", 1);
    let c = Node::start(&d, "c", 2);
    for n in [&a, &b, &c] {
        wait_ready(&d, &creds, n).await;
    }
    let admin = admin_on(&d, &creds, 0).await;
    admin.call(&user_add("carol")).await.expect("add carol");
    // Every replica's start-up writes (reconcile, pushes) are in and applied.
    let deadline = Deadline::after(WAIT, "an empty outbox");
    while !a.store.read(|tx| tx.list_outbox()).expect("outbox").is_empty() {
        deadline.tick().await;
    }
    assert_converged(&[&a, &b, &c]).await;
    let before = a.store.raw_rows().expect("rows");

    d.server_mut(1).stop().await;
    d.server_mut(2).stop().await;
    let started = Instant::now();
    let refused = admin.call(&user_add("dave")).await;
    let took = started.elapsed();
    match refused {
        Err(RemoteError::Refused { class: ErrorClass::Unavailable, message }) => {
            eprintln!("admin write without quorum refused after {took:?}: {message}");
            assert!(message.contains("may still commit it"), "{message}");
        }
        other => panic!("expected the log to be unavailable, got {other:?}"),
    }
    assert!(took <= Duration::from_secs(6), "failed fast: {took:?}");
    // The binary exits with the class's code, 16, saying whether the change may still be
    // applied: without an answer it may; after dave's entry, which a stream leader may still
    // hold (the append then meets it as a conflict), it is not.
    let out = super::admin(&d.url(0), &creds, &["account", "add", "ZED"]).await;
    out.code(16);
    let said = ["may still commit it", "this change is not applied"];
    assert!(said.iter().any(|s| out.stderr.contains(s)), "{}", out.streams());
    assert!(!a.has_user("dave"), "nothing half-applied");
    assert!(a.store.raw_rows().expect("rows") == before, "the store did not change");
    let carol = login(&d, 0, "carol").await;
    carol.client.flush().await.expect("carol logs in from a's local view");

    d.server_mut(1).restart().await;
    d.server_mut(2).restart().await;
    wait_jetstream(&d, 3).await;
    let deadline = Deadline::after(Duration::from_secs(60), "an admin write once quorum is back");
    while let Err(e) = admin.call(&user_add("erin")).await {
        if deadline.expired() {
            panic!("{}: {e}", deadline.error());
        }
        deadline.tick().await;
    }
    assert!(a.has_user("erin"));
    let deadline = Deadline::after(WAIT, "erin on every replica");
    while !(b.has_user("erin") && c.has_user("erin")) {
        deadline.tick().await;
    }
    assert_converged(&[&a, &b, &c]).await;
    // The unanswered append of dave is all or nothing: on every replica or on none.
    let zed = |n: &&Node| n.store.read(|tx| tx.get_account("ZED")).expect("read").is_some();
    let zeds: Vec<bool> = [&a, &b, &c].iter().map(zed).collect();
    assert!(zeds.iter().all(|z| *z == zeds[0]), "ZED on some replicas only: {zeds:?}");
    let dave: Vec<bool> = [&a, &b, &c].iter().map(|n| n.has_user("dave")).collect();
    eprintln!("the unanswered append was committed after quorum came back: {}", dave[0]);
    assert!(dave.iter().all(|d| *d == dave[0]), "dave on some replicas only: {dave:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_and_restarted_on_its_old_store_catches_up() {
    let (d, creds) = cluster().await;
    let mut a = Node::start(&d, "a", 0);
    wait_ready(&d, &creds, &a).await;
    let store = dir(&d).join("c.redb");
    copy_store(d.store().path(), &store);
    let log = dir(&d).join("c.log");
    // c is the real binary, killed with SIGKILL.
    let c = Replica::serve_replicated(store.clone(), d.url(2), log.clone());
    c.wait_log("in sync with the log", 1).await;
    let admin = admin_on(&d, &creds, 0).await;
    admin.call(&user_add("erin")).await.expect("add erin");
    drop(c);
    let killed_at = open_store(&store, "test").applied_seq().expect("c's position");
    for user in ["frank", "grace"] {
        admin.call(&user_add(user)).await.expect("add while c is down");
    }
    let off = UserEdit { active: Some(false), ..edit("erin") };
    admin.call(&Request::UserEdit(off)).await.expect("deactivate erin");
    admin.close().await;
    let missed = a.applied() - killed_at;
    assert!(missed >= 3, "c missed {missed} entries");

    let c = Replica::serve_replicated(store.clone(), d.url(2), log);
    c.wait_log("in sync with the log", 2).await;
    // The deactivation re-pushes APP's JWT; a finishes that push (through the log) before it
    // stops, so nothing is left for c to append and the two must end equal.
    let deadline = Deadline::after(WAIT, "a's outbox to settle");
    while !a.store.read(|tx| tx.list_outbox()).expect("outbox").is_empty() {
        deadline.tick().await;
    }
    a.stop().await;
    wait_callouts(&d, 3, 1).await;
    // Only c's callout is left: grace, added while it was down, logs in through it.
    let grace = login(&d, 2, "grace").await;
    grace.client.flush().await.expect("grace logs in through c");
    assert_refused(&d, 2, "erin").await;
    drop(c);
    // A replica's store is changed through the log only: a local change is refused, a read is not.
    let local = |args: &[&str]| Pbn::new(["admin", "--store"]).args([&store]).args(args).run();
    let refused = local(&["account", "add", "LOCAL"]);
    refused.code(1);
    assert!(refused.stderr.contains("is a replica of the log"), "{}", refused.streams());
    local(&["account", "list"]).success();
    let rekey = Pbn::new(["admin", "--store"]).args([&store]).args(["store", "rekey"]).run();
    assert!(rekey.stderr.contains("is a replica of the log"), "{}", rekey.streams());
    let c = open_store(&store, "test");
    assert_eq!(c.applied_seq().expect("c's position"), a.applied(), "c caught up");
    assert!(c.raw_rows().expect("rows") == a.store.raw_rows().expect("rows"), "c equals a");
}

/// Successful account JWT pushes a replica counted (`pbn_pushes_total{result="ok"}`).
pub(super) async fn pushes_ok(node: &Node) -> f64 {
    let body = http_get(&node.http, "/metrics").await.unwrap_or_default();
    let ok = |l: &&str| l.starts_with("pbn_pushes_total") && l.contains("result=\"ok\"");
    body.lines().find(ok).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_change_is_pushed_by_exactly_one_replica() {
    let (d, creds) = cluster().await;
    let nodes = [Node::start(&d, "a", 0), Node::start(&d, "b", 1), Node::start(&d, "c", 2)];
    for n in &nodes {
        wait_ready(&d, &creds, n).await;
    }
    let settled = |n: &Node| n.store.read(|tx| tx.list_outbox()).expect("outbox").is_empty();
    let deadline = Deadline::after(WAIT, "the start-up pushes to settle");
    while !nodes.iter().all(settled) {
        deadline.tick().await;
    }
    assert_converged(&[&nodes[0], &nodes[1], &nodes[2]]).await;
    let mut before = 0.0;
    for n in &nodes {
        before += pushes_ok(n).await;
    }
    let admin = admin_on(&d, &creds, 0).await;
    for round in 1..=3 {
        let limits = LimitPatch { max_connections: Some(100 + round), ..LimitPatch::default() };
        let edit = AccountEdit { name: "APP".into(), limits, ..AccountEdit::default() };
        // The answer comes once the push is done, by whichever replica held the lease.
        let (_, warnings) =
            admin.call_with_warnings(&Request::AccountEdit(edit)).await.expect("edit");
        assert!(warnings.is_empty(), "round {round}: {warnings:?}");
    }
    assert_converged(&[&nodes[0], &nodes[1], &nodes[2]]).await;
    assert!(nodes.iter().all(settled), "every entry completed through the log");
    let mut after = 0.0;
    for n in &nodes {
        after += pushes_ok(n).await;
    }
    assert_eq!(after - before, 3.0, "each change pushed once, by one replica");
    let app = nodes[2].store.read(|tx| tx.require_account("APP")).expect("APP");
    assert_eq!(app.limits.max_connections.get(), 103);
}
