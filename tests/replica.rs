//! The replicated log against a real JetStream server: a change appended through one replica
//! is applied by the other, and two appends at the same expected position do not both win.

use pbn::seal::{KeySource, StoreKey};
use pbn::{catch_up, execute, AccountAdd, Context, Journal, Log, ReplicaError, Request, Store};

use crate::support::{Deadline, NatsServer};

/// Two replicas of one store: A made by `pbn init` (its write prepared, appended as position
/// 1), B created from A's genesis; both have caught up with the log.
async fn replicas(dir: &std::path::Path, log: &Log) -> (Store, Store) {
    let key = StoreKey::generate();
    let text = key.to_file_text();
    let source = || Some(KeySource::Key(StoreKey::from_file_text(&text).expect("key")));
    let ctx = Context::now();
    let (made, journal) =
        Store::prepared(|| pbn::init_store_with(&dir.join("a.redb"), "t", false, &ctx, source()));
    let (a, _) = made.expect("init");
    let journal = journal.expect("init writes");
    assert_eq!(log.append(&journal, 0).await.expect("append init"), 1);
    let b = Store::create_replica(dir.join("b.redb"), &a.genesis().expect("genesis"), source())
        .expect("replica b");
    assert_eq!(catch_up(&a, log).await.expect("a catches up"), 1);
    assert_eq!(catch_up(&b, log).await.expect("b catches up"), 1);
    (a, b)
}

fn account_add(store: &Store, name: &str) -> Journal {
    let req = Request::AccountAdd(AccountAdd { name: name.into(), ..AccountAdd::default() });
    let (result, journal) = Store::prepared(|| execute(store, &req, &Context::now()));
    result.expect("account add");
    journal.expect("a change")
}

async fn started() -> (NatsServer, Log) {
    let server = NatsServer::start("jetstream {\n  store_dir: \"{{DIR}}/js\"\n}\n").await;
    let client = async_nats::connect(server.client_url()).await.expect("connect");
    let log = Log::new(client);
    log.ensure_stream(1).await.expect("stream");
    log.ensure_stream(1).await.expect("an existing stream is kept");
    (server, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_appended_through_one_replica_is_applied_by_the_other() {
    let (_server, log) = started().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = replicas(dir.path(), &log).await;
    let journal = account_add(&a, "APP");
    let seq = log.append(&journal, a.applied_seq().expect("seq")).await.expect("append");
    assert_eq!(seq, 2);
    assert!(a.read(|tx| pbn::StoreRead::get_account(tx, "APP")).expect("read").is_none());
    assert_eq!(catch_up(&b, &log).await.expect("b"), 2);
    assert_eq!(catch_up(&a, &log).await.expect("a"), 2);
    for store in [&a, &b] {
        let app = store.read(|tx| pbn::StoreRead::get_account(tx, "APP")).expect("read");
        assert!(app.is_some(), "APP on {}", store.path().display());
    }
    assert_eq!(a.raw_rows().expect("a"), b.raw_rows().expect("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_at_the_same_position_one_wins_the_other_conflicts() {
    let (_server, log) = started().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = replicas(dir.path(), &log).await;
    let (from_a, from_b) = (account_add(&a, "ONE"), account_add(&b, "TWO"));
    let (ra, rb) = tokio::join!(log.append(&from_a, 1), log.append(&from_b, 1));
    let (won, lost) = match (ra, rb) {
        (Ok(seq), Err(e)) | (Err(e), Ok(seq)) => (seq, e),
        other => panic!("exactly one append must win: {other:?}"),
    };
    assert_eq!(won, 2);
    assert!(matches!(lost, ReplicaError::Conflict { expected: 1, last: Some(2), .. }), "{lost:?}");
    assert_eq!(catch_up(&a, &log).await.expect("a"), 2);
    assert_eq!(catch_up(&b, &log).await.expect("b"), 2);
    assert_eq!(a.raw_rows().expect("a"), b.raw_rows().expect("b"));
    // The loser re-runs its command on the caught-up view and appends after the winner.
    let again = account_add(&b, "TWO");
    assert_eq!(log.append(&again, b.applied_seq().expect("seq")).await.expect("retry"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_replica_applies_appends_as_they_come() {
    let (_server, log) = started().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = replicas(dir.path(), &log).await;
    let (stop, shutdown) = pbn::shutdown_channel();
    // A long poll: the append itself must wake the follower.
    let poll = std::time::Duration::from_secs(60);
    let follower = tokio::spawn(pbn::follow(b.clone(), log.clone(), poll, shutdown));
    log.append(&account_add(&a, "APP"), 1).await.expect("append");
    let deadline = Deadline::after(std::time::Duration::from_secs(10), "b to apply APP");
    while b.applied_seq().expect("seq") < 2 {
        if deadline.expired() {
            panic!("b did not apply the append");
        }
        deadline.tick().await;
    }
    assert!(b.read(|tx| pbn::StoreRead::get_account(tx, "APP")).expect("read").is_some());
    stop.send(true).expect("stop");
    follower.await.expect("join").expect("the follower ends cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_lives_in_pbns_auth_account_once_its_jwt_grants_jetstream() {
    use crate::support::deploy::{DeployOptions, Deployment};
    use pbn::{AccountEdit, LimitPatch, AUTH_ACCOUNT};
    let opts = DeployOptions {
        runners: 0,
        extra_config: crate::support::JETSTREAM_BLOCK.into(),
        ..DeployOptions::default()
    };
    let mut d = Deployment::new(opts);
    let limits =
        LimitPatch { js_disk: Some(1 << 30), js_memory: Some(64 << 20), ..LimitPatch::default() };
    d.admin(Request::AccountEdit(AccountEdit {
        name: AUTH_ACCOUNT.into(),
        limits,
        ..AccountEdit::default()
    }));
    d.start().await;
    let log = Log::new(d.service_client(0).await);
    log.ensure_stream(1).await.expect("the stream in AUTH");
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = replicas(dir.path(), &log).await;
    log.append(&account_add(&a, "APP"), 1).await.expect("append");
    assert_eq!(catch_up(&b, &log).await.expect("b"), 2);
    assert!(b.read(|tx| pbn::StoreRead::get_account(tx, "APP")).expect("read").is_some());
}
