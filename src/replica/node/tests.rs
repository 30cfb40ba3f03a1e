//! `Replica::write` before the replica has started the log, against a real JetStream server
//! (a nats-server child started with `crate::natsd`, as the test harness starts them): the
//! write waits for the start and lands after it; a write whose start never comes fails as
//! unavailable and appends nothing, so the log's first position stays the start's.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Replica, APPLY_WAIT};
use crate::admin::{execute, AccountAdd, Context, Request};
use crate::config::ReplicaSettings;
use crate::natsd::{find_binary, Natsd, Options, Port};
use crate::replica::{Log, ReplicaError};
use crate::store::{start_entries, Store, StoreRead};

/// A nats-server with JetStream (its store in `dir`) and a client of it.
async fn jetstream(dir: &Path) -> (Natsd, async_nats::Client) {
    let conf = dir.join("nats.conf");
    let js = dir.join("js");
    std::fs::write(&conf, format!("jetstream {{\n  store_dir: \"{}\"\n}}\n", js.display()))
        .expect("write the config");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = find_binary(None, root).expect("nats-server is installed");
    let mut opts = Options::new(&binary, &conf, &dir.join("nats.log"));
    (opts.client, opts.http) = (Port::Pick, Port::Pick);
    let natsd = Natsd::start(opts).await.expect("nats-server starts");
    let port = natsd.ports().expect("ports").client;
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}")).await.expect("connect");
    (natsd, client)
}

fn natsd_port(natsd: &Natsd) -> u16 {
    natsd.ports().expect("ports").client
}

/// A replica of a store made by `pbn init` in `dir`, whose log is reached through `client`;
/// the log's stream exists and is empty.
async fn replica(dir: &Path, client: &async_nats::Client) -> (Replica, Log) {
    let (store, _) =
        crate::admin::init::init_store(&dir.join("s.redb"), "t", false, &Context::now())
            .expect("init");
    let settings = ReplicaSettings { log_replicas: 1, snapshot_entries: 10_000 };
    let (_, connection) = watch::channel(Some(client.clone()));
    let replica = Replica::new(store, &settings, connection).expect("replica");
    let log = Log::new(client.clone());
    log.ensure_stream(1).await.expect("the log's stream");
    (replica, log)
}

/// Adds account `name` through `replica`'s log: the admin command as the admin API runs it.
async fn add_account(replica: &Replica, name: &str) -> Result<(), ReplicaError> {
    let req = Request::AccountAdd(AccountAdd { name: name.into(), ..AccountAdd::default() });
    let done = replica.write(move |store: &Store| execute(store, &req, &Context::now())).await?;
    done.map(drop).map_err(|e| panic!("account add: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_before_the_log_is_started_waits_for_the_start_and_lands_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_natsd, client) = jetstream(dir.path()).await;
    let (replica, log) = replica(dir.path(), &client).await;
    // The publisher completing a push at start-up, before the follower has started the log.
    let write = tokio::spawn({
        let replica = replica.clone();
        async move { add_account(&replica, "EARLY").await }
    });
    // Nothing goes into the log meanwhile: the write waits for the start.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(500) {
        assert_eq!(log.last_seq().await.expect("last seq"), 0, "a write before the start");
        assert!(!write.is_finished(), "the write returned before the log was started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (stop, stopped) = watch::channel(false);
    let follower = tokio::spawn({
        let (replica, client) = (replica.clone(), client.clone());
        async move { replica.follow_on(client, stopped).await }
    });
    let done = tokio::time::timeout(APPLY_WAIT * 2, write).await.expect("the write ends");
    done.expect("no panic").expect("the write lands once the log is started");

    let first = log.get(1).await.expect("get").expect("position 1");
    let announced = start_entries(&first).expect("position 1 is the log's start");
    let last = log.last_seq().await.expect("last seq");
    assert_eq!(last, announced + 1, "the write is the entry right after the start");
    let store = replica.store();
    assert_eq!(store.applied_seq().expect("applied"), last);
    assert!(store.read(|tx| tx.get_account("EARLY")).expect("read").is_some());
    stop.send(true).expect("stop");
    follower.await.expect("no panic").expect("the follower stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_replica_whose_log_is_never_started_fails_unavailable_and_appends_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_natsd, client) = jetstream(dir.path()).await;
    let (replica, log) = replica(dir.path(), &client).await;
    let started = Instant::now();
    let err = add_account(&replica, "EARLY").await.expect_err("no start, no write");
    let took = started.elapsed();
    assert!(matches!(err, ReplicaError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("not applied"), "{err}");
    assert!(took >= APPLY_WAIT - Duration::from_millis(100), "waited for the start: {took:?}");
    assert!(took < APPLY_WAIT + Duration::from_secs(3), "bounded: {took:?}");
    assert_eq!(log.last_seq().await.expect("last seq"), 0, "position 1 is left to the start");
    let store = replica.store();
    assert!(store.read(|tx| tx.get_account("EARLY")).expect("read").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_without_an_answer_may_still_be_applied_and_one_nobody_serves_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (natsd, client) = jetstream(dir.path()).await;
    let (replica, _log) = replica(dir.path(), &client).await;
    let (stop, stopped) = watch::channel(false);
    let follower = tokio::spawn({
        let (replica, client) = (replica.clone(), client.clone());
        async move { replica.follow_on(client, stopped).await }
    });
    add_account(&replica, "ONE").await.expect("a write on the started log");
    stop.send(true).expect("stop");
    follower.await.expect("no panic").expect("the follower stops cleanly");
    // The log gone and nobody listening on its subject: JetStream says no responders at once.
    let deleted = client
        .request(format!("$JS.API.STREAM.DELETE.{}", crate::replica::LOG_STREAM), "".into())
        .await
        .expect("delete the log's stream");
    assert!(String::from_utf8_lossy(&deleted.payload).contains("\"success\":true"));
    let started = Instant::now();
    let err = add_account(&replica, "TWO").await.expect_err("no stream, no write");
    assert!(started.elapsed() < super::APPEND_TIMEOUT, "at once: {:?}", started.elapsed());
    assert!(matches!(err, ReplicaError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("no responders") && text.contains("is not applied"), "{text}");
    // A subscriber that never answers stands for a stream leader without quorum holding it.
    let _silent = client.subscribe(crate::replica::LOG_SUBJECT).await.expect("subscribe");
    client.flush().await.expect("flush");
    let started = Instant::now();
    let err = add_account(&replica, "THREE").await.expect_err("no answer, no write");
    assert!(started.elapsed() >= super::APPEND_TIMEOUT, "waited {:?}", started.elapsed());
    assert!(matches!(err, ReplicaError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("may still commit it"), "{err}");
    // The client's own request timeout shorter than the append's: the same answer.
    let impatient = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(300)))
        .connect(format!("nats://127.0.0.1:{}", natsd_port(&natsd)))
        .await
        .expect("connect");
    let settings = ReplicaSettings { log_replicas: 1, snapshot_entries: 10_000 };
    let (_, connection) = watch::channel(Some(impatient));
    let hasty = Replica::new(replica.store().clone(), &settings, connection).expect("replica");
    let started = Instant::now();
    let err = add_account(&hasty, "FOUR").await.expect_err("no answer, no write");
    assert!(started.elapsed() < super::APPEND_TIMEOUT, "the client's timeout first");
    assert!(matches!(err, ReplicaError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("may still commit it"), "{err}");
    let store = replica.store();
    for name in ["TWO", "THREE", "FOUR"] {
        assert!(store.read(|tx| tx.get_account(name)).expect("read").is_none(), "{name}");
    }
}
