//! The follower's quick re-reads: an append reaches the log's subscribers when it is published,
//! before JetStream has stored it, so a follower woken by it may read too early. It then reads
//! again every few milliseconds for a while instead of waiting for its next poll.
//!
//! The early wake-up is made exact here: the follower's connection does not hear its own
//! publishes (`no_echo`), so an append made through it wakes nobody, and the wake-up is a
//! publish on the log's subject that the stream refuses (a wrong expected last sequence).
//! The test wakes the follower, sees its read find nothing (its copy of JetStream's answer),
//! and only then appends the entry.

use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, HeaderMap};
use futures::StreamExt;
use pbn::{
    catch_up, execute, AccountAdd, Context, Log, Request, Store, StoreRead, LOG_STREAM, LOG_SUBJECT,
};

use crate::support::{Deadline, NatsServer, JETSTREAM_BLOCK};

/// The follower's poll: far longer than the test lets the entry take.
const POLL: Duration = Duration::from_secs(10);
/// How soon the follower must apply the entry once it is stored.
const SOON: Duration = Duration::from_secs(1);

/// A store made by `pbn init` whose creation is the log's first entry, applied.
async fn first_entry(dir: &std::path::Path, log: &Log) -> Store {
    let ctx = Context::now();
    let path = dir.join("a.redb");
    let (made, journal) = Store::prepared(|| pbn::init_store(&path, "t", false, &ctx));
    let (store, _) = made.expect("init");
    log.append(&journal.expect("init writes"), 0).await.expect("the first entry");
    assert_eq!(catch_up(&store, log).await.expect("applied"), 1);
    store
}

/// Whether `msg` is JetStream's answer that the position asked for is not in the log yet.
fn not_found(msg: &async_nats::Message) -> bool {
    let answer: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
    answer.pointer("/error/err_code").and_then(serde_json::Value::as_u64) == Some(10037)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_woken_before_the_append_is_stored_applies_it_well_before_its_poll() {
    let server = NatsServer::start(JETSTREAM_BLOCK).await;
    let url = server.client_url();
    let quiet = ConnectOptions::new().no_echo().connect(&url).await.expect("connect");
    let watcher = async_nats::connect(&url).await.expect("connect");
    let log = Log::new(quiet.clone());
    log.ensure_stream(1).await.expect("the log's stream");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = first_entry(dir.path(), &log).await;
    // Copies of JetStream's answers to the follower's reads.
    let mut answers = watcher.subscribe("_INBOX.>").await.expect("subscribe");
    watcher.flush().await.expect("flush");

    let (stop, shutdown) = pbn::shutdown_channel();
    let follower = tokio::spawn(pbn::follow(store.clone(), log.clone(), POLL, shutdown));
    // Its first read (position 2, at start) finds nothing; then it waits for a wake-up.
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(msg) = answers.next().await {
            if not_found(&msg) {
                return;
            }
        }
    });
    first.await.expect("the follower reads the log at start");

    let mut headers = HeaderMap::new();
    headers.insert("Nats-Expected-Last-Sequence", "999");
    watcher.publish_with_headers(LOG_SUBJECT, headers, "wake".into()).await.expect("wake");
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(msg) = answers.next().await {
            if not_found(&msg) {
                return;
            }
        }
    });
    read.await.expect("the woken follower reads position 2 and finds nothing");

    let req = Request::AccountAdd(AccountAdd { name: "APP".into(), ..AccountAdd::default() });
    let (done, journal) = Store::prepared(|| execute(&store, &req, &Context::now()));
    done.expect("account add");
    // Appended through the follower's own connection: no wake-up reaches it.
    let seq = log.append(&journal.expect("a change"), 1).await.expect("append");
    assert_eq!(seq, 2);
    let stored = Instant::now();
    let deadline = Deadline::after(POLL, "the follower to apply position 2");
    while store.read(|tx| tx.get_account("APP")).expect("read").is_none() {
        assert!(!deadline.expired(), "{}", deadline.error());
        deadline.tick_fast().await;
    }
    let took = stored.elapsed();
    eprintln!("applied {took:?} after it was stored (poll {POLL:?})");
    assert!(took < SOON, "applied after {took:?}: the follower waited for its poll");
    assert_eq!(store.applied_seq().expect("applied"), 2);
    let info = format!("$JS.API.STREAM.INFO.{LOG_STREAM}");
    let state = watcher.request(info, "".into()).await.expect("stream info");
    assert!(
        String::from_utf8_lossy(&state.payload).contains("\"last_seq\":2"),
        "the wake-up was refused"
    );
    stop.send(true).expect("stop");
    follower.await.expect("no panic").expect("the follower stops cleanly");
}
