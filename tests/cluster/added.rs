//! Replicas added to a running replicated deployment: the replica that makes the change writes
//! a snapshot for the joiner (so it restores it and applies a short tail, not the whole log),
//! and a replica added by an older build, whose creds lack the lease bucket, gets creds with
//! this build's permissions when it starts.

use std::path::{Path, PathBuf};

use pbn::{
    AdminClient, Bundle, OperatorShow, RawConfig, Request, Settings, Snapshots, Store, StoreRead,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::join::{add_replica, deployment, dir_of, seed_log, started, write_bundle};
use super::replicated::user_add;
use super::{admin, admin_creds, copy_store, http_get, WAIT};
use crate::support::pbn::Pbn;
use crate::support::{free_port, open_store, Deadline};

/// `pbn serve --replicated` in this process on a copy of the deployment's store (log in one
/// copy, no periodic snapshot in the test's time).
struct Serving {
    store: Store,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), pbn::ServerError>>,
}

fn serve(d: &crate::support::deploy::Deployment, name: &str) -> Serving {
    let path = dir_of(d).join(format!("{name}.redb"));
    copy_store(d.store().path(), &path);
    let store = open_store(&path, pbn::SERVICE_COMMAND);
    let flags = RawConfig {
        store: Some(path),
        servers: Some(vec![d.url(0)]),
        replicated: Some(true),
        log_replicas: Some(1),
        snapshot_entries: Some(1_000_000),
        ..RawConfig::default()
    };
    let settings = Settings::resolve(None, RawConfig::default(), flags).expect("settings");
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(pbn::run_with_store(settings, store.clone(), shutdown));
    Serving { store, stop, task }
}

/// Waits until `node` has started the log and its admin API answers a write.
async fn ready(
    d: &crate::support::deploy::Deployment,
    creds: &Path,
    node: &Serving,
) -> AdminClient {
    let client = AdminClient::connect(&d.url(0), creds, WAIT).await.expect("admin client");
    let deadline = Deadline::after(WAIT, "the replica to start the log and answer");
    while node.store.applied_seq().expect("applied") == 0
        || client.call(&Request::OperatorShow(OperatorShow {})).await.is_err()
    {
        deadline.tick().await;
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_joined_right_after_replica_add_restores_a_snapshot_written_for_it() {
    let mut d = deployment();
    let creds = admin_creds(&d);
    d.start().await;
    let a = serve(&d, "a");
    let admin_client = ready(&d, &creds, &a).await;
    for user in ["u1", "u2", "u3"] {
        admin_client.call(&user_add(user)).await.expect("user add");
    }
    let snapshots = Snapshots::new(d.service_client(0).await);
    let none = snapshots.manifest().await;
    assert!(matches!(none, Ok(None) | Err(_)), "no snapshot before: {none:?}");

    let dir = dir_of(&d);
    let bundle = dir.join("r1.bundle");
    let out = admin(&d.url(0), &creds, &["replica", "add", "r1", "--out", s(&bundle)]).await;
    out.success();
    let joined = pbn::join(&bundle, &dir.join("r1.redb")).await.expect("join");
    let manifest = snapshots.manifest().await.expect("manifest").expect("a snapshot for r1");
    assert_eq!(joined.snapshot, Some(manifest.seq), "the join restored the snapshot");
    let rows = snapshots.latest().await.expect("read").expect("the snapshot");
    let replicas = rows.tables.iter().find(|(t, _)| t == "replicas").map(|(_, r)| r.len());
    assert_eq!(replicas, Some(1), "the snapshot holds r1's record");
    let r1 = open_store(&dir.join("r1.redb"), "test");
    assert!(r1.read(|tx| tx.get_user("u3")).expect("read").is_some());
    drop(r1);

    // A snapshot that fresh is not written again for the next replica.
    let bundle = dir.join("r2.bundle");
    admin(&d.url(0), &creds, &["replica", "add", "r2", "--out", s(&bundle)]).await.success();
    let again = snapshots.manifest().await.expect("manifest").expect("a snapshot");
    assert_eq!(again.id, manifest.id, "no second snapshot {} entries behind", again.seq);
    let joined = pbn::join(&bundle, &dir.join("r2.redb")).await.expect("join r2");
    assert_eq!(joined.snapshot, Some(manifest.seq));
    admin_client.close().await;
    a.stop.send(true).expect("stop");
    a.task.await.expect("no panic").expect("a clean stop");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

/// What a replica's user could publish before the lease bucket existed.
const OLD_PUB_ALLOW: &[&str] =
    &["$JS.API.>", "$JS.ACK.>", "pbn.log", "pbn.snapshot.>", "$SYS._INBOX.>"];

/// `bundle` with creds as a build before the lease bucket minted them: same key and name.
fn with_old_creds(d: &crate::support::deploy::Deployment, bundle: &mut Bundle) {
    let creds = pbn::claims::parse_creds(&bundle.creds).expect("creds");
    let key = creds.key_pair().expect("key").public_key().to_string();
    let auth = d.store().read(|tx| tx.require_account(pbn::AUTH_ACCOUNT)).expect("AUTH");
    let subs =
        [pbn::CALLOUT_SUBJECT.to_string(), pbn::LOG_SUBJECT.to_string(), format!("_INBOX.{key}.>")];
    let subs: Vec<&str> = subs.iter().map(String::as_str).collect();
    let now = pbn::unix_now();
    let name = format!("pbn-replica-{}", bundle.name);
    let jwt = pbn::internal_user_jwt(&auth, &key, &name, OLD_PUB_ALLOW, &subs, now, None)
        .expect("an old JWT");
    bundle.creds = pbn::creds(&jwt, &creds.seed).to_string();
}

/// The `pbn_pushes_total{result="ok"}` of the replica serving `/metrics` on `http`.
async fn pushes_ok(http: &str) -> f64 {
    let body = http_get(http, "/metrics").await.unwrap_or_default();
    let ok = |l: &&str| l.starts_with("pbn_pushes_total") && l.contains("result=\"ok\"");
    body.lines().find(ok).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_by_an_older_build_gets_this_builds_permissions_and_pushes() {
    let mut d = deployment();
    let mut bundle = add_replica(&d, "r1", "nats://127.0.0.1:1");
    with_old_creds(&d, &mut bundle);
    let (log, _) = started(&mut d).await;
    bundle.servers = vec![d.url(0)];
    seed_log(d.store(), &log).await;
    let dir = dir_of(&d);
    let path = write_bundle(&bundle, &dir, "r1");
    let store: PathBuf = dir.join("joined.redb");
    let http = format!("127.0.0.1:{}", free_port());
    let child = Pbn::new(["serve", "--join"])
        .args([&path])
        .args([std::ffi::OsStr::new("--store"), store.as_os_str()])
        .args(["--server", &d.url(0), "--http", &http])
        .env("PBN_LOG", "pbn=debug")
        .env("PBN_LOG_REPLICAS", "1")
        .spawn_logged(&dir.join("joined.log"));
    // The seeded store's outbox holds AUTH's JWT (replica add changed it): pushing it takes a
    // lease in the bucket the old creds may not publish to.
    let deadline = Deadline::after(WAIT, "the joined replica to push AUTH's JWT");
    while pushes_ok(&http).await < 1.0 {
        assert!(!deadline.expired(), "{}; log:\n{}", deadline.error(), child.log());
        deadline.tick().await;
    }
    let log = child.log();
    assert!(log.contains("re-issued this replica's creds"), "{log}");
    assert!(!log.contains("Permissions Violation"), "{log}");
    drop(child);
    let joined = open_store(&store, "test");
    let id = joined.replica_identity().expect("read").expect("an identity");
    let payload = id.jwt.split('.').nth(1).expect("a JWT");
    let bytes = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).expect("base64");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let publish = claims.pointer("/nats/pub/allow").and_then(|a| a.as_array()).expect("allow");
    assert!(publish.iter().any(|s| s == "$KV.PBN_LEASES.>"), "{claims}");
}
