//! Replicated mode at run time: the log compacted behind snapshots the running replicas write
//! (one writer at a time), a replica joining from snapshot + tail, a replica stopped behind
//! the compaction point restoring the snapshot in place, and no chunk of an unfinished
//! snapshot left behind; a session kick audited on every replica; the push of a holder that
//! died made by another replica with the bytes stored with the change.

use std::path::Path;
use std::time::Duration;

use pbn::{Log, Request, SessionKick, Snapshots, Store, StoreRead};

use super::replicated::{admin_on, cluster, dir, user_add, wait_ready, Node};
use super::{admin, http_get, login, wait_callouts, WAIT};
use crate::support::deploy::Deployment;
use crate::support::pbn::Pbn;
use crate::support::{free_port, open_store, Deadline};

/// A snapshot every this many log entries: a handful of admin writes compact the log.
const SNAPSHOT_ENTRIES: u64 = 3;

/// Every replicated row but `meta`'s (which holds each store's own marks).
fn rows(store: &Store) -> Vec<(&'static str, pbn::Rows)> {
    let mut rows = store.raw_rows().expect("rows");
    rows.retain(|(table, _)| *table != "meta");
    rows
}

/// Waits until `node`'s outbox is empty (its pushes completed through the log).
async fn settle(node: &Node) {
    let deadline = Deadline::after(WAIT, format!("{}'s outbox to settle", node.name));
    while !node.store.read(|tx| tx.list_outbox()).expect("outbox").is_empty() {
        deadline.tick().await;
    }
}

/// Adds users `u{next}, u{next+1}, …` through `admin` until the log's first position is past
/// `seq` (a snapshot is written only once the log is [`SNAPSHOT_ENTRIES`] past the newest, and
/// the log is purged only below the one before it, so how many writes that takes depends on
/// when the replicas look); returns the next unused index and the log's bounds.
async fn add_until_compacted(
    admin: &pbn::AdminClient,
    log: &Log,
    mut next: usize,
    seq: u64,
) -> (usize, (u64, u64)) {
    let deadline = Deadline::after(WAIT, format!("the log compacted past {seq}"));
    loop {
        admin.call(&user_add(&format!("u{next}"))).await.expect("add");
        next += 1;
        let bounds = log.bounds().await.expect("log bounds");
        if bounds.0 > seq {
            return (next, bounds);
        }
        assert!(!deadline.expired(), "{}; bounds {bounds:?}", deadline.error());
        deadline.tick().await;
    }
}

/// Waits until `node` has applied `seq`.
async fn wait_applied(node: &Node, seq: u64) {
    let deadline = Deadline::after(WAIT, format!("{} at log position {seq}", node.name));
    while node.applied() < seq {
        assert!(!deadline.expired(), "{}; at {}", deadline.error(), node.applied());
        deadline.tick().await;
    }
}

/// Waits until only the newest snapshot has chunks stored; returns its manifest.
async fn wait_one_snapshot(snapshots: &Snapshots) -> pbn::Manifest {
    let deadline = Deadline::after(WAIT, "only the newest snapshot's chunks");
    loop {
        let head = snapshots.manifest().await.expect("manifest");
        let ids = snapshots.chunk_ids().await.expect("chunk ids");
        if let Some(head) = head.filter(|h| ids.len() == 1 && ids.contains_key(&h.id)) {
            return head;
        }
        assert!(!deadline.expired(), "{}; chunks of {:?}", deadline.error(), ids.keys());
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_replicas_compact_the_log_and_a_new_or_lagging_replica_uses_the_snapshot() {
    let (d, creds) = cluster().await;
    let a = Node::start_with(&d, "a", 0, Some(SNAPSHOT_ENTRIES));
    let mut b = Node::start_with(&d, "b", 1, Some(SNAPSHOT_ENTRIES));
    for n in [&a, &b] {
        wait_ready(&d, &creds, n).await;
    }
    let client = d.service_client(0).await;
    let (log, snapshots) = (Log::new(client.clone()), Snapshots::new(client.clone()));
    let through_a = admin_on(&d, &creds, 0).await;
    let (added, (first, last)) = add_until_compacted(&through_a, &log, 0, 1).await;
    eprintln!("after {added} user adds the log holds positions {first}..={last}");
    wait_one_snapshot(&snapshots).await;

    // A writer that died between its chunks and its manifest: its chunk goes with the next
    // snapshot.
    let ack = client
        .request("pbn.snapshot.s1xdead0000.0".to_string(), "partial".into())
        .await
        .expect("a stray chunk");
    assert!(!String::from_utf8_lossy(&ack.payload).contains("error"), "{ack:?}");
    assert!(snapshots.chunk_ids().await.expect("ids").contains_key("s1xdead0000"));

    // b stops; the log moves past its position and is compacted past it.
    wait_applied(&b, a.applied()).await;
    b.stop().await;
    let stopped_at = b.applied();
    let (added, (first, _)) = add_until_compacted(&through_a, &log, added, stopped_at + 1).await;
    let head = wait_one_snapshot(&snapshots).await;
    assert!(head.seq > stopped_at, "the newest snapshot {} covers b's gap", head.seq);
    eprintln!("b stopped at {stopped_at}; the log now starts at {first}");

    // b again on its old store: it restores the snapshot and follows on.
    let b = Node::serve(&d, "b", b.store.clone(), 1, Some(SNAPSHOT_ENTRIES));
    settle(&a).await;
    wait_applied(&b, a.applied()).await;
    assert!(b.has_user(&format!("u{}", added - 1)) && b.has_user("u0"));
    assert!(rows(&b.store) == rows(&a.store), "b equals a after restoring the snapshot");

    // A new replica joins with `pbn serve --join` from snapshot + tail.
    let bundle = dir(&d).join("r1.bundle");
    let url = d.url(0);
    admin(&url, &creds, &["replica", "add", "r1", "--out", bundle.to_str().expect("utf-8")])
        .await
        .success();
    settle(&a).await;
    let joined = join(&d, &bundle, "r1", &a).await;
    assert!(joined.contains("from the snapshot at"), "{joined}");
    wait_applied(&b, a.applied()).await;
    let r1 = open_store(&dir(&d).join("r1.redb"), "test");
    assert_eq!(r1.applied_seq().expect("seq"), a.applied());
    assert!(rows(&r1) == rows(&a.store), "the joined replica has a's rows");
    through_a.close().await;
}

/// Runs `pbn serve --join BUNDLE --store DIR/NAME.redb` on server 2 until it has applied
/// `a`'s position (its `/status`), then kills it; returns its log.
async fn join(d: &Deployment, bundle: &Path, name: &str, a: &Node) -> String {
    let dir = dir(d);
    let store = dir.join(format!("{name}.redb"));
    let http = format!("127.0.0.1:{}", free_port());
    let child = Pbn::new(["serve", "--join"])
        .args([bundle])
        .args([std::ffi::OsStr::new("--store"), store.as_os_str()])
        .args(["--server", &d.url(2), "--http", &http])
        .env("PBN_LOG", "pbn=debug")
        .env("PBN_LOG_REPLICAS", "3")
        .spawn_logged(&dir.join(format!("{name}.log")));
    let deadline = Deadline::after(WAIT, "the joined replica at a's position");
    loop {
        let status = http_get(&http, "/status").await;
        let at = status.and_then(|s| {
            let v: serde_json::Value = serde_json::from_str(&s).ok()?;
            v.pointer("/replica/applied_seq")?.as_u64()
        });
        if at.is_some() && at == Some(a.applied()) {
            break;
        }
        assert!(!deadline.expired(), "{}; at {at:?}; log:\n{}", deadline.error(), child.log());
        deadline.tick().await;
    }
    let text = child.log();
    drop(child);
    text
}

/// Waits until `node` has a `session_kick` audit entry; returns its result.
async fn kick_audited(node: &Node) -> String {
    let deadline = Deadline::after(WAIT, format!("the kick in {}'s audit trail", node.name));
    loop {
        let entries = node.store.read(|tx| tx.list_audit(0)).expect("audit");
        if let Some(e) = entries.iter().find(|e| e.verb == "session_kick") {
            return e.result.clone();
        }
        assert!(!deadline.expired(), "{}", deadline.error());
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_kick_through_one_replica_is_in_every_replicas_audit_trail() {
    let (d, creds) = cluster().await;
    let a = Node::start(&d, "a", 0);
    let b = Node::start(&d, "b", 1);
    for n in [&a, &b] {
        wait_ready(&d, &creds, n).await;
    }
    let through_a = admin_on(&d, &creds, 0).await;
    through_a.call(&user_add("alice")).await.expect("add alice");
    through_a.close().await;
    wait_callouts(&d, 3, 2).await;
    let alice = login(&d, 0, "alice").await;
    let deadline = Deadline::after(WAIT, "b to count alice's session");
    while b.sessions().await != Some(1.0) {
        deadline.tick().await;
    }
    let through_b = admin_on(&d, &creds, 1).await;
    let since = std::time::Instant::now();
    let kick = SessionKick { id: None, user: Some("alice".into()) };
    through_b.call(&Request::SessionKick(kick)).await.expect("kick through b");
    alice.assert_closed_within(since).await;
    through_b.close().await;
    let (on_a, on_b) = (kick_audited(&a).await, kick_audited(&b).await);
    assert_eq!(on_a, on_b, "one entry, through the log");
    assert!(on_a.contains("1 session(s) closed"), "{on_a}");
}

/// The lease bucket as the replicas make it (`replica::leases`): one key per outbox entry.
async fn hold_push_lease(client: &async_nats::Client, account: &str) {
    let config = serde_json::json!({
        "name": "KV_PBN_LEASES", "subjects": ["$KV.PBN_LEASES.>"],
        "max_msgs_per_subject": 1, "max_age": 30_000_000_000u64,
        "num_replicas": 3, "storage": "file", "retention": "limits",
        "discard": "new", "allow_direct": true,
    });
    let created = client
        .request("$JS.API.STREAM.CREATE.KV_PBN_LEASES".to_string(), config.to_string().into())
        .await
        .expect("the lease bucket");
    let text = String::from_utf8_lossy(&created.payload).to_string();
    assert!(!text.contains("error") || text.contains("10058"), "{text}");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
    let taken = client
        .request_with_headers(format!("$KV.PBN_LEASES.{account}"), headers, "crashed".into())
        .await
        .expect("the lease");
    let text = String::from_utf8_lossy(&taken.payload).to_string();
    assert!(!text.contains("error"), "the lease was free: {text}");
}

/// The account JWT the servers hold for `account` (`$SYS.REQ.ACCOUNT.<acc>.CLAIMS.LOOKUP`).
async fn server_jwt(d: &Deployment, i: usize, account: &str) -> String {
    let sys = d.account("SYS");
    let opts = crate::support::deploy::sys_user_options(&sys);
    let client = opts.connect(d.url(i)).await.expect("a system user");
    let reply = client
        .request(format!("$SYS.REQ.ACCOUNT.{account}.CLAIMS.LOOKUP"), "".into())
        .await
        .expect("claims lookup");
    String::from_utf8(reply.payload.to_vec()).expect("a JWT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_left_by_a_crashed_holder_is_made_by_another_replica_with_the_same_bytes() {
    let (d, creds) = cluster().await;
    let mut a = Node::start(&d, "a", 0);
    let b = Node::start(&d, "b", 1);
    for n in [&a, &b] {
        wait_ready(&d, &creds, n).await;
    }
    settle(&a).await;
    settle(&b).await;
    let key = d.account("APP").public_key;
    let app = key.to_string();
    // The holder of APP's lease dies before completing its push: its lease stays until the
    // bucket's max_age frees it.
    hold_push_lease(&d.service_client(0).await, &app).await;
    let held_at = std::time::Instant::now();
    let through_a = admin_on(&d, &creds, 0).await;
    let limits = pbn::LimitPatch { max_connections: Some(777), ..Default::default() };
    let edit = pbn::AccountEdit { name: "APP".into(), limits, ..Default::default() };
    let (_, warnings) =
        through_a.call_with_warnings(&Request::AccountEdit(edit)).await.expect("edit APP");
    assert!(!warnings.is_empty(), "the push cannot be made while the lease is held");
    through_a.close().await;
    let stored = pbn::pending_jwt(&a.store, &key).await.expect("read").expect("APP is due");
    a.stop().await;
    wait_applied(&b, a.applied()).await;
    let pushed_before = super::replicated::pushes_ok(&b).await;

    // b takes the lease once it expires, and pushes.
    let deadline = Deadline::after(Duration::from_secs(90), "b to push APP");
    while !b.store.read(|tx| tx.list_outbox()).expect("outbox").is_empty() {
        assert!(!deadline.expired(), "{}", deadline.error());
        deadline.tick().await;
    }
    eprintln!("b pushed APP {:?} after the crashed holder took its lease", held_at.elapsed());
    assert_eq!(super::replicated::pushes_ok(&b).await - pushed_before, 1.0, "b pushed it");
    for i in 0..3 {
        assert_eq!(server_jwt(&d, i, &app).await, stored, "server {i} holds the stored bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_replica_serves_with_its_own_creds_and_exits_once_removed() {
    let (d, creds) = cluster().await;
    let a = Node::start(&d, "a", 0);
    wait_ready(&d, &creds, &a).await;
    let bundle_path = dir(&d).join("r1.bundle");
    let url = d.url(0);
    admin(&url, &creds, &["replica", "add", "r1", "--out", bundle_path.to_str().expect("utf-8")])
        .await
        .success();
    let bundle = pbn::Bundle::read(&bundle_path).expect("bundle");
    settle(&a).await;
    let store = dir(&d).join("r1.redb");
    let mut r1 = Pbn::new(["serve", "--join"])
        .args([&bundle_path])
        .args([std::ffi::OsStr::new("--store"), store.as_os_str()])
        .args(["--server", &d.url(2)])
        .env("PBN_LOG", "pbn=debug")
        .spawn();
    // Its service connection on server 2 is the replica's own user, not the service user.
    let seed = bundle.creds.lines().find(|l| l.starts_with("SU")).expect("seed");
    let key = pbn::keys::KeyPair::from_seed(&pbn::keys::Seed::new(seed).expect("seed"))
        .expect("key")
        .public_key()
        .to_string();
    let deadline = Deadline::after(WAIT, "r1 connected with its own creds");
    loop {
        let connz = d.server(2).monitor("/connz?auth=1").await;
        let mine = connz["connections"].as_array().into_iter().flatten().any(|c| {
            c["name"] == "pbn-replica-r1" && c["authorized_user"].as_str() == Some(key.as_str())
        });
        if mine && r1.stderr().contains("in sync with the log") {
            break;
        }
        assert!(
            !deadline.expired(),
            "{}; connz {connz}; stderr:\n{}",
            deadline.error(),
            r1.stderr()
        );
        deadline.tick().await;
    }
    assert!(!r1.stderr().contains(seed), "a secret in the log");

    let since = std::time::Instant::now();
    let removed = admin(&url, &creds, &["replica", "remove", "r1"]).await;
    assert_eq!(removed.code, Some(0), "{}; r1:\n{}", removed.streams(), r1.stderr());
    let status = r1.wait_exit(WAIT).await;
    eprintln!("the removed replica exited {:?} after the remove returned", since.elapsed());
    assert_eq!(status.code(), Some(17), "stderr:\n{}", r1.stderr());
    assert!(r1.stderr().contains("replica r1 was removed"), "{}", r1.stderr());
    // Its creds no longer connect (refused once the servers applied AUTH's new JWT; 2.15.1
    // answers a revoked callout-account user only after its auth timeout).
    let options = || {
        async_nats::ConnectOptions::with_credentials(&bundle.creds)
            .expect("creds")
            .custom_inbox_prefix(format!("_INBOX.{key}"))
            .max_reconnects(Some(0))
    };
    let deadline = Deadline::after(WAIT, "r1's creds refused");
    loop {
        let events = crate::support::deploy::ClientEvents::new();
        let attempt = tokio::time::timeout(WAIT, d.connect(0, options(), &events)).await;
        let refused = match attempt {
            Ok(Err(e)) => e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation,
            Ok(Ok(client)) => {
                let settle = Deadline::after(Duration::from_secs(10), "a refusal");
                while client.connection_state() == async_nats::connection::State::Connected
                    && !settle.expired()
                {
                    settle.tick().await;
                }
                let errors = events.server_errors();
                errors.iter().any(|e| e.to_lowercase().contains("authorization violation"))
            }
            Err(_) => false,
        };
        if refused {
            break;
        }
        assert!(!deadline.expired(), "{}", deadline.error());
        deadline.tick().await;
    }
    // Started again on its store, it finds itself removed and exits at once.
    let mut again = Pbn::new(["serve", "--store"])
        .args([&store])
        .args(["--server", &d.url(2), "--replicated"])
        .spawn();
    let status = again.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(17), "stderr:\n{}", again.stderr());
}
