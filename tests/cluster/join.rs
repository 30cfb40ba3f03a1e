//! Joining the log as a new replica: a bundle from `pbn admin replica add`, then
//! `pbn serve --join BUNDLE --store NEW.redb` (or `pbn::join`) on an empty path, from the log
//! alone or from a snapshot and the log's tail; removing a replica revokes its creds.
//!
//! The log is seeded here as the first replica seeds it: the source store's rows appended as
//! the first entries (each at most one journal), applied by the source too, so both stores
//! end at the same log position.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use pbn::{
    catch_up, execute, AccountEdit, Bundle, BundleError, Context, JoinError, LimitPatch, Log, Op,
    ReplicaAdd, Request, Response, RolePatch, Snapshots, Store, UserAdd, AUTH_ACCOUNT,
};

use super::{admin, admin_creds, login, wait_callouts, PW, WAIT};
use crate::support::deploy::{DeployOptions, Deployment};
use crate::support::pbn::Pbn;
use crate::support::{Deadline, JETSTREAM_BLOCK};

/// The largest seed entry: well under a journal's 1 MiB.
const SEED_ENTRY_BYTES: usize = 768 * 1024;

/// A deployment with JetStream for AUTH (the log's account), APP, role `app`, user alice.
pub(super) fn deployment() -> Deployment {
    let opts =
        DeployOptions { runners: 0, extra_config: JETSTREAM_BLOCK.into(), ..Default::default() };
    let d = Deployment::new(opts);
    d.add_account("APP");
    d.add_role("app", RolePatch::default());
    d.add_user("alice", "APP", "app", PW);
    let limits =
        LimitPatch { js_disk: Some(1 << 30), js_memory: Some(64 << 20), ..LimitPatch::default() };
    d.admin(Request::AccountEdit(AccountEdit {
        name: AUTH_ACCOUNT.into(),
        limits,
        ..AccountEdit::default()
    }));
    d
}

/// Adds replica `name` on the store and returns its bundle (servers: server 0).
pub(super) fn add_replica(d: &Deployment, name: &str, url: &str) -> Bundle {
    let req = Request::ReplicaAdd(ReplicaAdd { name: name.into(), expires_secs: None });
    let Response::Replica { name, creds, store_key, passphrase, genesis, stream, .. } =
        d.admin(req)
    else {
        panic!("replica add answers a replica")
    };
    Bundle {
        version: pbn::BUNDLE_VERSION,
        name,
        creds,
        store_key,
        passphrase,
        genesis,
        servers: vec![url.to_string()],
        stream,
    }
}

/// Appends the store's rows as the log's first entries and applies them to the store.
pub(super) async fn seed_log(store: &Store, log: &Log) -> u64 {
    let mut entries: Vec<Vec<Op>> = vec![Vec::new()];
    let mut size = 0;
    for (table, rows) in store.raw_rows().expect("rows") {
        for (key, value) in rows {
            if table == "meta" && key == b"applied_seq" {
                continue;
            }
            let len = table.len() + key.len() + value.len() + 16;
            if size + len > SEED_ENTRY_BYTES {
                entries.push(Vec::new());
                size = 0;
            }
            size += len;
            let op = Op { table: table.to_string(), key, value: Some(value) };
            entries.last_mut().expect("an entry").push(op);
        }
    }
    for (i, ops) in entries.into_iter().enumerate() {
        let journal = pbn::Journal { schema: pbn::Journal::new().schema, ops };
        log.append(&journal, i as u64).await.expect("seed entry");
    }
    catch_up(store, log).await.expect("the source applies its seed")
}

/// Adds user `name` through the log (prepared, appended, applied) as a replica would.
async fn add_user_through_log(store: &Store, log: &Log, name: &str) {
    let req = Request::UserAdd(UserAdd {
        name: name.into(),
        account: "APP".into(),
        role: "app".into(),
        ..UserAdd::default()
    });
    let (result, journal) = Store::prepared(|| execute(store, &req, &Context::now()));
    result.expect("user add");
    let expected = store.applied_seq().expect("seq");
    log.append(&journal.expect("a change"), expected).await.expect("append");
    catch_up(store, log).await.expect("applied");
}

pub(super) async fn started(d: &mut Deployment) -> (Log, Snapshots) {
    d.start().await;
    let client = d.service_client(0).await;
    let log = Log::new(client.clone());
    log.ensure_stream(1).await.expect("log stream");
    let snapshots = Snapshots::new(client);
    snapshots.ensure_stream(1).await.expect("snapshot stream");
    (log, snapshots)
}

pub(super) fn write_bundle(bundle: &Bundle, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.bundle"));
    bundle.write(&path).expect("write the bundle");
    path
}

pub(super) fn dir_of(d: &Deployment) -> PathBuf {
    d.store().path().parent().expect("temp dir").to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joined_with_pbn_serve_has_the_sources_rows_and_answers_a_login() {
    let mut d = deployment();
    let url_placeholder = "nats://127.0.0.1:1";
    let mut bundle = add_replica(&d, "r1", url_placeholder);
    let (log, _) = started(&mut d).await;
    bundle.servers = vec![d.url(0)];
    seed_log(d.store(), &log).await;
    add_user_through_log(d.store(), &log, "bob").await;
    let dir = dir_of(&d);
    let path = write_bundle(&bundle, &dir, "r1");
    let store = dir.join("joined.redb");
    let child = Pbn::new(["serve", "--join"])
        .args([&path])
        .args([std::ffi::OsStr::new("--store"), store.as_os_str()])
        .args(["--server", &d.url(0)])
        .env("PBN_LOG", "pbn=debug")
        .spawn_logged(&dir.join("joined.log"));
    let deadline = Deadline::after(WAIT, "the joined replica to subscribe the callout");
    while !child.log().contains("callout subscribed") {
        assert!(!deadline.expired(), "{}; log:\n{}", deadline.error(), child.log());
        deadline.tick().await;
    }
    wait_callouts(&d, 1, 1).await;
    let alice = login(&d, 0, "alice").await;
    alice.client.flush().await.expect("alice is connected");
    let text = child.log();
    assert!(text.contains("joined as replica r1"), "{text}");
    let seed = bundle.creds.lines().find(|l| l.starts_with("SU")).expect("seed");
    let key = bundle.store_key.clone().expect("a key-file store");
    assert!(!text.contains(seed) && !text.contains(key.trim()), "a secret in the log");
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("file").permissions().mode() & 0o777
    };
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(Path::new(&format!("{}.key", store.display()))), 0o600);
    drop(child);
    let joined = crate::support::open_store(&store, "test");
    // The joined store is marked as a replica (a local `meta` row the source, served without
    // replicated mode here, does not have); every other row is the source's.
    let mut joined = joined.raw_rows().expect("joined");
    for (table, rows) in &mut joined {
        if *table == "meta" {
            rows.retain(|(k, _)| k.as_slice() != b"replica");
        }
    }
    assert_eq!(joined, d.store().raw_rows().expect("source"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joins_from_a_snapshot_and_the_tail_and_a_corrupt_snapshot_is_refused() {
    let mut d = deployment();
    let mut bundle = add_replica(&d, "r1", "nats://127.0.0.1:1");
    let (log, snapshots) = started(&mut d).await;
    bundle.servers = vec![d.url(0)];
    let seeded = seed_log(d.store(), &log).await;
    let manifest = snapshots.write(d.store()).await.expect("snapshot");
    assert_eq!(manifest.seq, seeded);
    add_user_through_log(d.store(), &log, "bob").await;
    let dir = dir_of(&d);
    let path = write_bundle(&bundle, &dir, "r1");

    // The log's whole: without the snapshot (corrupt) a join replays it from 1.
    let client = d.service_client(0).await;
    let chunk = manifest.chunks[0].seq;
    let deleted = client
        .request(
            "$JS.API.STREAM.MSG.DELETE.PBN_SNAPSHOTS".to_string(),
            serde_json::json!({ "seq": chunk }).to_string().into(),
        )
        .await
        .expect("delete a chunk");
    assert!(!String::from_utf8_lossy(&deleted.payload).contains("error"), "{deleted:?}");
    let err = snapshots.latest().await.expect_err("a chunk is gone");
    assert!(matches!(err, pbn::SnapshotError::Corrupt { .. }), "{err:?}");
    let from_log = pbn::join(&path, &dir.join("a.redb")).await.expect("join from the log");
    assert_eq!((from_log.snapshot, from_log.seq), (None, seeded + 1));

    // A good snapshot, then the log's head purged: only snapshot + tail can make the replica.
    let manifest = snapshots.write(d.store()).await.expect("snapshot");
    add_user_through_log(d.store(), &log, "carol").await;
    let purged = client
        .request(
            "$JS.API.STREAM.PURGE.PBN_LOG".to_string(),
            serde_json::json!({ "seq": manifest.seq + 1 }).to_string().into(),
        )
        .await
        .expect("purge");
    assert!(!String::from_utf8_lossy(&purged.payload).contains("error"), "{purged:?}");
    let started = Instant::now();
    let joined = pbn::join(&path, &dir.join("b.redb")).await.expect("join from the snapshot");
    assert_eq!((joined.snapshot, joined.seq), (Some(manifest.seq), manifest.seq + 1));
    eprintln!("joined from snapshot + tail in {:?}", started.elapsed());
    let b = crate::support::open_store(&dir.join("b.redb"), "test");
    assert_eq!(b.raw_rows().expect("b"), d.store().raw_rows().expect("source"));
    drop(b);

    // That snapshot corrupt too, and the log no longer whole: a clear error, no store left.
    let chunk = manifest.chunks[0].seq;
    client
        .request(
            "$JS.API.STREAM.MSG.DELETE.PBN_SNAPSHOTS".to_string(),
            serde_json::json!({ "seq": chunk }).to_string().into(),
        )
        .await
        .expect("delete a chunk");
    let c = dir.join("c.redb");
    let err = pbn::join(&path, &c).await.expect_err("nothing to join from");
    assert!(matches!(err, JoinError::LogTruncated { .. }), "{err:?}");
    assert!(!c.exists(), "a failed join leaves no store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_snapshot_follows_the_log_once_it_is_far_enough_ahead() {
    let mut d = deployment();
    let mut bundle = add_replica(&d, "r1", "nats://127.0.0.1:1");
    let (log, snapshots) = started(&mut d).await;
    bundle.servers = vec![d.url(0)];
    // Before the log is started there is nothing to join from.
    let dir = dir_of(&d);
    let path = write_bundle(&bundle, &dir, "r1");
    let err = pbn::join(&path, &dir.join("early.redb")).await.expect_err("an empty log");
    assert!(matches!(err, JoinError::EmptyLog), "{err:?}");
    assert!(!dir.join("early.redb").exists(), "a failed join leaves no store");
    let seeded = seed_log(d.store(), &log).await;
    let (stop, shutdown) = pbn::shutdown_channel();
    let every = Duration::from_millis(100);
    let task = tokio::spawn(snapshots.clone().run(d.store().clone(), every, 2, shutdown));
    let at = |seq: u64| {
        let snapshots = snapshots.clone();
        async move {
            let deadline = Deadline::after(WAIT, format!("a snapshot at {seq}"));
            loop {
                let found = snapshots.manifest().await.expect("manifest").map(|m| m.seq);
                if found == Some(seq) {
                    return;
                }
                assert!(!deadline.expired(), "{}; newest {found:?}", deadline.error());
                deadline.tick().await;
            }
        }
    };
    at(seeded).await;
    stop.send(true).expect("stop");
    task.await.expect("the task ends on shutdown");
    // One entry past the newest snapshot is not enough for a new one; two are.
    add_user_through_log(d.store(), &log, "bob").await;
    let written = snapshots.write_if_behind(d.store(), 2).await.expect("round");
    assert_eq!(written, None);
    add_user_through_log(d.store(), &log, "carol").await;
    let written = snapshots.write_if_behind(d.store(), 2).await.expect("round");
    assert_eq!(written.map(|m| m.seq), Some(seeded + 2));
    at(seeded + 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_bundle_and_an_existing_store_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let bundle = dir.path().join("b.bundle");
    std::fs::write(&bundle, b"{\"version\": 1, \"name\": \"r1\", \"cre").expect("write");
    let err = pbn::join(&bundle, &dir.path().join("s.redb")).await.expect_err("truncated");
    assert!(matches!(err, JoinError::Bundle(BundleError::Malformed { .. })), "{err:?}");
    std::fs::write(&bundle, b"{\"version\": 7}").expect("write");
    let err = pbn::join(&bundle, &dir.path().join("s.redb")).await.expect_err("version");
    assert!(matches!(err, JoinError::Bundle(BundleError::Version { found: 7, .. })), "{err:?}");
    let existing = dir.path().join("there.redb");
    std::fs::write(&existing, b"x").expect("write");
    let err = pbn::join(&bundle, &existing).await.expect_err("exists");
    assert!(matches!(err, JoinError::StoreExists(_)), "{err:?}");
    // The binary exits with the conflict code and keeps the file.
    let out = Pbn::new(["serve", "--join"])
        .args([&bundle])
        .args([std::ffi::OsStr::new("--store"), existing.as_os_str()])
        .run();
    out.code(4);
    assert_eq!(std::fs::read(&existing).expect("kept"), b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_added_and_removed_through_the_service_get_and_lose_their_creds() {
    let mut d = deployment();
    let creds = admin_creds(&d);
    let _service = d.start_service().await;
    let url = d.url(0);
    let dir = dir_of(&d);
    let path = dir.join("r1.bundle");
    let out =
        admin(&url, &creds, &["replica", "add", "r1", "--out", path.to_str().expect("utf-8")])
            .await;
    out.success();
    let again =
        admin(&url, &creds, &["replica", "add", "r2", "--out", path.to_str().expect("utf-8")])
            .await;
    again.code(4);
    let bundle = Bundle::read(&path).expect("bundle");
    assert_eq!(bundle.servers, vec![url.clone()]);
    let listed = admin(&url, &creds, &["--json", "replica", "list"]).await;
    assert!(listed.success().json().to_string().contains("\"r1\""), "{}", listed.streams());

    let seed = bundle.creds.lines().find(|l| l.starts_with("SU")).expect("seed");
    let seed = pbn::keys::Seed::new(seed).expect("seed");
    let key = pbn::keys::KeyPair::from_seed(&seed).expect("key").public_key().to_string();
    let options = || {
        ConnectOptions::with_credentials(&bundle.creds)
            .expect("creds")
            .custom_inbox_prefix(format!("_INBOX.{key}"))
    };
    let replica = options().connect(&url).await.expect("the replica's creds are accepted");
    replica.flush().await.expect("connected");
    admin(&url, &creds, &["replica", "remove", "r1"]).await.success();
    // A revoked JWT fails local auth, and nats-server 2.15.1 then calls out on no account:
    // the refusal (`-ERR 'Authorization Violation'`) comes after its auth timeout (5 s here).
    let deadline = Deadline::after(WAIT, "the removed replica's creds to be refused");
    let refused = |events: &crate::support::deploy::ClientEvents| {
        events.server_errors().iter().any(|e| e.to_lowercase().contains("authorization violation"))
    };
    loop {
        let events = crate::support::deploy::ClientEvents::new();
        let attempt = tokio::time::timeout(WAIT, d.connect(0, options(), &events)).await;
        let seen = match attempt {
            Ok(Err(e)) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => break,
            Ok(Err(e)) => format!("{:?}: {e}", e.kind()),
            Ok(Ok(client)) => {
                let settle = Deadline::after(Duration::from_secs(10), "a refusal");
                while !refused(&events) && !settle.expired() {
                    settle.tick().await;
                }
                if refused(&events) {
                    break;
                }
                let _ = client.flush().await;
                format!("admitted ({:?})", client.connection_state())
            }
            Err(_) => "no answer".to_string(),
        };
        assert!(!deadline.expired(), "{}; last attempt: {seen}", deadline.error());
        deadline.tick().await;
    }
    let deadline = Deadline::after(WAIT, "the removed replica's connection to close");
    while replica.connection_state() == async_nats::connection::State::Connected {
        assert!(!deadline.expired(), "{}", deadline.error());
        deadline.tick().await;
    }
}

/// A store of `n` users, seeded into the log and snapshotted: how long a join takes from the
/// log alone and from the snapshot.
async fn join_times(n: usize) -> (Duration, Duration) {
    let mut d = deployment();
    let hash = pbn::hash_password_with(&pbn::Secret::new(PW), &pbn::PasswordParams::for_tests())
        .expect("hash");
    d.store()
        .write(|tx| {
            for i in 0..n {
                let name = |s: &str| pbn::Name::parse(s).expect("name");
                let mut user =
                    pbn::User::new(name(&format!("u{i:06}")), name("APP"), name("app"), 1);
                user.password_hash = Some(hash.clone());
                tx.insert_user(&user)?;
            }
            Ok::<_, pbn::StoreError>(())
        })
        .expect("users");
    let mut bundle = add_replica(&d, "r1", "nats://127.0.0.1:1");
    let (log, snapshots) = started(&mut d).await;
    bundle.servers = vec![d.url(0)];
    let dir = dir_of(&d);
    let path = write_bundle(&bundle, &dir, "r1");
    let seeded = seed_log(d.store(), &log).await;
    let rows: usize = d.store().raw_rows().expect("rows").iter().map(|(_, r)| r.len()).sum();
    let started = Instant::now();
    let joined = pbn::join(&path, &dir.join("log.redb")).await.expect("join from the log");
    let from_log = started.elapsed();
    assert_eq!((joined.seq, joined.snapshot), (seeded, None));
    let manifest = snapshots.write(d.store()).await.expect("snapshot");
    eprintln!(
        "{n} users: {rows} rows, {seeded} seed entries, a snapshot of {} bytes in {} chunks",
        manifest.size,
        manifest.chunks.len()
    );
    let started = Instant::now();
    let joined = pbn::join(&path, &dir.join("snap.redb")).await.expect("join from the snapshot");
    let from_snapshot = started.elapsed();
    assert_eq!(joined.snapshot, Some(seeded));
    let b = crate::support::open_store(&dir.join("snap.redb"), "test");
    assert_eq!(b.raw_rows().expect("b"), d.store().raw_rows().expect("source"));
    (from_log, from_snapshot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_time_of_a_store_of_10000_users() {
    let (log, snapshot) = join_times(10_000).await;
    eprintln!("join of 10,000 users: from the log {log:?}, from a snapshot {snapshot:?}");
    assert!(log < Duration::from_secs(60) && snapshot < Duration::from_secs(60));
}

/// The same at 100,000 users (several minutes of setup in a debug build): run with
/// `cargo nextest run --run-ignored only -E 'test(join_time_of_a_store_of_100000)' --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: builds a store of 100,000 users"]
async fn join_time_of_a_store_of_100000_users() {
    let (log, snapshot) = join_times(100_000).await;
    eprintln!("join of 100,000 users: from the log {log:?}, from a snapshot {snapshot:?}");
    assert!(log < Duration::from_secs(600) && snapshot < Duration::from_secs(600));
}

#[test]
fn replica_commands_on_a_store_file_write_the_bundle_and_exit_with_their_class() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("s.redb");
    Pbn::new(["init", "--store"]).args([&store]).run().success();
    let admin = |args: &[&str]| Pbn::new(["admin", "--store"]).args([&store]).args(args).run();
    let out = dir.path().join("r1.bundle");
    let out_s = out.to_str().expect("utf-8");
    // No server URL on a store file: a usage error, and no replica is added.
    admin(&["replica", "add", "r1", "--out", out_s]).code(2);
    assert!(!out.exists());
    admin(&["replica", "add", "r1", "--out", out_s, "--url", "nats://n1:4222"]).success();
    let bundle = Bundle::read(&out).expect("bundle");
    assert_eq!(
        (bundle.name.as_str(), bundle.servers.clone()),
        ("r1", vec!["nats://n1:4222".into()])
    );
    let key = std::fs::read_to_string(format!("{}.key", store.display())).expect("key file");
    assert_eq!(bundle.store_key.as_deref(), Some(key.as_str()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The bundle is never overwritten, and the name is taken.
    admin(&["replica", "add", "r2", "--out", out_s, "--url", "nats://n1:4222"]).code(4);
    let other = dir.path().join("other.bundle");
    let other_s = other.to_str().expect("utf-8");
    admin(&["replica", "add", "r1", "--out", other_s, "--url", "nats://n1:4222"]).code(4);
    let listed = admin(&["--json", "replica", "list"]);
    let listed = listed.success().json();
    assert_eq!(listed["data"][0]["name"], "r1", "{listed}");
    admin(&["replica", "show", "r1"]).success();
    admin(&["replica", "remove", "r1"]).success();
    admin(&["replica", "show", "r1"]).code(3);
    admin(&["replica", "remove", "r1"]).code(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_during_a_log_start_in_several_entries_waits_for_the_whole_start() {
    let mut d = deployment();
    let mut bundle = add_replica(&d, "r1", "nats://127.0.0.1:1");
    let (log, _) = started(&mut d).await;
    bundle.servers = vec![d.url(0)];
    let entries = d.store().full_state_entries(2048).expect("the start's entries");
    assert!(entries.len() >= 3, "a start in several entries: {}", entries.len());
    // Only the first entry is in the log when the join begins, as when a big store's start is
    // still being written.
    log.append(&entries[0], 0).await.expect("the first entry");
    let dir = dir_of(&d);
    let path = write_bundle(&bundle, &dir, "r1");
    let target = dir.join("mid.redb");
    let join = tokio::spawn({
        let (path, target) = (path.clone(), target.clone());
        async move { pbn::join(&path, &target).await }
    });
    crate::support::wait_until(Duration::from_secs(30), "the joiner to make its store", || {
        target.exists()
    })
    .await;
    for (i, entry) in entries.iter().enumerate().skip(1) {
        log.append(entry, i as u64).await.expect("the rest of the start");
    }
    d.store().mark_log_started(entries.len() as u64).expect("the source's mark");
    let joined = join.await.expect("no panic").expect("the join");
    assert_eq!(joined.seq, entries.len() as u64, "the join applied the whole start");
    let r = crate::support::open_store(&target, "test");
    assert_eq!(r.raw_rows().expect("rows"), d.store().raw_rows().expect("source rows"));
}
