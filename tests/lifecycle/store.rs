//! The store across builds and restarts: a store file an older build wrote still serves its
//! users after migration, and remote admin requests are idempotent across a lost reply and a
//! service restart.

use pbn::AccountAdd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use async_nats::ConnectOptions;
use pbn::CONFIRM_TIMEOUT;
use pbn::{Context, LimitPatch, Request, RolePatch};
use serde_json::Value;

use super::Live;
use crate::support::deploy::{
    round_trip, ClientEvents, DeployOptions, Deployment, USER_INFO_SUBJECT, WAIT,
};
use crate::support::pbn::Pbn;
use crate::support::Deadline;

/// The nats.rs test user's public nkey, registered for `olga` in the v1 fixture (its seed is
/// `SUACH75…` in `tests/data/vectors.json`, a published test vector).
const V1_SEED: &str = "SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM";

fn v1_fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store_v1_before_nkey_index.redb")
}

#[tokio::test(flavor = "multi_thread")]
async fn nkey_user_of_a_store_written_before_the_nkey_index_logs_in() {
    let mut d = Deployment::from_store_file(DeployOptions::default(), &v1_fixture());
    d.start().await;
    let opts = ConnectOptions::with_nkey(V1_SEED.to_string());
    let client = d.connect(0, opts, &ClientEvents::new()).await.expect("nkey login of olga");
    let reply = tokio::time::timeout(WAIT, client.request(USER_INFO_SUBJECT, "".into()))
        .await
        .expect("user info within the deadline")
        .expect("user info request");
    let info: Value = serde_json::from_slice(&reply.payload).expect("user info is JSON");
    assert_eq!(info["data"]["account"].as_str(), Some(d.account("APP").public_key.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_retried_with_its_key_is_applied_once_even_across_a_restart() {
    let mut live = Live::start(DeployOptions::default(), |_| {}).await;
    let add = ["--idempotency-key", "retry-1", "account", "add", "NEWACC", "--json"];
    let first = live.admin(&add).await;
    first.code(0);
    let jwt_iat = |live: &Live| live.d.account("NEWACC").last_jwt_iat;
    let iat = jwt_iat(&live);
    // The retry answers with the first result instead of "already exists" (exit 4).
    let again = live.admin(&add).await;
    again.code(0);
    assert_eq!(again.stdout, first.stdout);
    // The key is in the store: a restarted service still knows it.
    live.restart_service().await;
    let after_restart = live.admin(&add).await;
    after_restart.code(0);
    assert_eq!(after_restart.stdout, first.stdout);
    assert_eq!(jwt_iat(&live), iat, "the account was not written again");
    // Without the key the same command is a new request, and a conflict.
    live.admin(&["account", "add", "NEWACC"]).await.code(4);
    // A malformed key is bad input.
    live.admin(&["--idempotency-key", "no spaces", "account", "add", "X"]).await.code(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_committed_before_its_answer_was_recorded_is_not_applied_again() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    // The service stopped between committing a change and recording its answer: the key went
    // into the change's own transaction, the answer never followed.
    let store = live.d.store().clone();
    let req = Request::AccountAdd(AccountAdd {
        name: "LOST".into(),
        description: None,
        limits: LimitPatch::default(),
        disallow_bearer: false,
    });
    let ctx = Context::now();
    store
        .with_idempotency_key("lost-1", ctx.now_ms, || pbn::execute(&store, &req, &ctx))
        .expect("the first attempt is applied");
    let retry = live.admin(&["--idempotency-key", "lost-1", "account", "add", "LOST"]).await;
    retry.code(0);
    assert!(retry.stdout.contains("already applied"), "{}", retry.streams());
}

/// A store made by `pbn init` in a temp dir, with one account.
fn cli_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("pbn.redb");
    Pbn::new(["init", "--store"]).args([&store]).run().code(0);
    Pbn::new(["admin", "--store"]).args([&store]).args(["account", "add", "APP"]).run().code(0);
    (dir, store)
}

#[test]
fn read_only_commands_write_nothing_and_read_a_0444_store() {
    let (_dir, store) = cli_store();
    let before = std::fs::read(&store).expect("store bytes");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o444)).unwrap();
    for args in [&["account", "list"][..], &["account", "show", "APP"], &["user", "list"]] {
        Pbn::new(["admin", "--store"]).args([&store]).args(args).run().code(0);
    }
    assert_eq!(std::fs::read(&store).unwrap(), before, "a read-only command changed the store");
}

#[test]
fn a_second_local_command_waits_for_the_lock_and_names_the_holder() {
    let (_dir, path) = cli_store();
    let add_b = || Pbn::new(["admin", "--store"]).args([&path]).args(["account", "add", "B"]);
    // Held by another admin command for longer than the wait: exit 5, naming the holder.
    let held = crate::support::open_store(&path, "pbn admin");
    let started = std::time::Instant::now();
    let out = add_b().run();
    out.code(5);
    assert!(started.elapsed() >= Duration::from_secs(10), "it waited for the lock");
    let pid = format!("pid {}", std::process::id());
    assert!(out.stderr.contains("`pbn admin`") && out.stderr.contains(&pid), "{}", out.streams());
    // Released while it waits: it succeeds.
    let releaser = std::thread::spawn(move || {
        // Holding the lock for a while is the situation under test, not a wait.
        std::thread::sleep(Duration::from_millis(800));
        drop(held);
    });
    add_b().run().code(0);
    releaser.join().unwrap();
    // A running service does not let go: no waiting, the service is named with the remote hint.
    let _serve = crate::support::open_store(&path, "pbn serve");
    let started = std::time::Instant::now();
    let out = Pbn::new(["admin", "--store"]).args([&path]).args(["account", "list"]).run();
    out.code(5);
    assert!(started.elapsed() < Duration::from_secs(5), "no pointless wait");
    assert!(out.stderr.contains("`pbn serve`"), "{}", out.streams());
    assert!(out.stderr.contains("--server URL --creds FILE"), "{}", out.streams());
}

/// Tries a password login of `user` on server 0; the connection on success.
async fn try_login(
    live: &Live,
    user: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let opts = ConnectOptions::with_user_and_password(user.into(), super::PW.into());
    live.d.connect(0, opts, &ClientEvents::new()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_the_server_refuses_after_the_callout_does_not_keep_the_user_slot() {
    // Account FULL takes one connection; role `one` one connection per user.
    let live = Live::start(DeployOptions::default(), |d| {
        d.admin(Request::AccountAdd(AccountAdd {
            name: "FULL".into(),
            description: None,
            limits: LimitPatch { max_connections: Some(1), ..LimitPatch::default() },
            disallow_bearer: false,
        }));
        d.add_role("one", RolePatch { max_connections: Some(1), ..super::role_on("full") });
        d.add_user("carl", "FULL", "one", super::PW);
        d.add_user("dora", "FULL", "one", super::PW);
        d.add_user("erin", "APP", "one", super::PW);
    })
    .await;
    let dora = try_login(&live, "dora").await.expect("dora takes the account's connection");
    // The callout admits carl (taking his slot), then the server refuses him: account full.
    try_login(&live, "carl").await.expect_err("the account is full");
    drop(dora);
    // Once dora is gone, carl logs in well before his refused JWT (one hour) expires.
    let deadline = Deadline::after(Duration::from_secs(30), "carl admitted again");
    let carl = loop {
        match try_login(&live, "carl").await {
            Ok(client) => break client,
            Err(_) => deadline.tick().await,
        }
    };
    round_trip(&carl).await;

    // A session the server did connect keeps its slot past the confirmation timeout: its
    // connect event was seen, so it is never taken for a refused login.
    let erin = try_login(&live, "erin").await.expect("erin's first connection");
    round_trip(&erin).await;
    // "Nothing happens for T": no signal outside the service shows the unconfirmed-session
    // sweep has passed her, so the test lets the confirmation timeout elapse.
    tokio::time::sleep(CONFIRM_TIMEOUT + Duration::from_secs(2)).await;
    try_login(&live, "erin").await.expect_err("erin's cap of one still holds");
    round_trip(&erin).await;
}
