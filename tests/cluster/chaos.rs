//! Chaos on a 3-server JetStream cluster with three `pbn serve` replicas (the real binary, each
//! on its own store file) on one log: a connect storm of token logins runs while one replica
//! and then one nats-server are killed with SIGKILL, and admin writes go on meanwhile. Every
//! storm client gets in (retrying on the next server), and every admin write reported
//! successful is in every replica's store afterwards, the killed replica's included once it is
//! restarted on its old store. The minority side of a partition is
//! `replicated::without_quorum_admin_writes_fail_fast_logins_go_on_and_replicas_converge_after`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use futures::StreamExt;
use pbn::{
    token_hash, AccountEdit, AdminClient, ApiToken, ApiTokenSecret, LimitPatch, Name, Request,
    RolePatch, StoreRead, User, UserAdd, AUTH_ACCOUNT,
};

use super::{admin_creds, http_get, wait_callouts, Replica, WAIT};
use crate::support::deploy::{DeployOptions, Deployment};
use crate::support::{open_store, Deadline};

/// Storm clients: a few hundred, so the test stays well under a minute on a busy machine.
const CLIENTS: usize = 400;
/// Connects in flight at once (each a socket here and a callout in a replica).
const IN_FLIGHT: usize = 20;
/// Concurrent admin writers (two on each server that stays up).
const WRITERS: usize = 4;
/// How long one client may keep retrying before it counts as not getting in.
const CLIENT_DEADLINE: Duration = Duration::from_secs(90);
/// One connect attempt: above nats-server's 5 s auth timeout, so a slow callout is not cut.
const ATTEMPT: Duration = Duration::from_secs(8);
/// Admin writes that must succeed after both kills (the log on the two servers left).
const WRITES_AFTER_KILLS: usize = 3;

/// A 3-server cluster whose AUTH account may use JetStream, account APP, role `app`, `n`
/// token users and admin creds, all in the store before any replica copies it.
async fn cluster(n: usize) -> (Deployment, std::path::PathBuf, Vec<String>) {
    let mut d =
        Deployment::new(DeployOptions { cluster: Some(3), runners: 0, ..DeployOptions::default() });
    d.add_account("APP");
    d.add_role("app", RolePatch::default());
    let limits =
        LimitPatch { js_disk: Some(1 << 30), js_memory: Some(64 << 20), ..LimitPatch::default() };
    let auth = AccountEdit { name: AUTH_ACCOUNT.into(), limits, ..AccountEdit::default() };
    d.admin(Request::AccountEdit(auth));
    let tokens = token_users(&d, n);
    let creds = admin_creds(&d);
    d.start().await;
    for i in 0..3 {
        let http = d.server(i).http_port();
        pbn::natsd::wait_for(http, "jetstream", WAIT, pbn::natsd::jetstream_ready)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    (d, creds, tokens)
}

/// Inserts users `t0..t{n}` in APP, each with one API token; returns the tokens in clear.
fn token_users(d: &Deployment, n: usize) -> Vec<String> {
    let name = |s: &str| Name::parse(s).expect("a valid name");
    let now = pbn::unix_now();
    let mut tokens = Vec::with_capacity(n);
    d.store()
        .write(|tx| -> Result<(), pbn::StoreError> {
            for i in 0..n {
                let mut user = User::new(name(&format!("t{i}")), name("APP"), name("app"), now);
                let secret = ApiTokenSecret::generate();
                user.tokens.push(ApiToken {
                    id: "storm".into(),
                    label: "storm".into(),
                    hash: token_hash(secret.expose()),
                    created: now,
                    expires: None,
                });
                tokens.push(secret.expose().to_string());
                tx.insert_user(&user)?;
            }
            Ok(())
        })
        .expect("token users");
    tokens
}

/// Replica `name` on its own copy of the store, in replicated mode, on server `own` first and
/// the other servers after it (so it reconnects elsewhere when its server dies).
fn replica(d: &Deployment, name: &str, own: usize) -> Replica {
    let dir = d.store().path().parent().expect("the store is in a temp dir");
    let store = dir.join(format!("{name}.redb"));
    super::copy_store(d.store().path(), &store);
    serve(d, store, own, &dir.join(format!("{name}.log")))
}

fn serve(d: &Deployment, store: std::path::PathBuf, own: usize, log: &Path) -> Replica {
    let others: Vec<String> = (1..3).map(|k| d.url((own + k) % 3)).collect();
    let extra = ["--replicated", "--server", &others[0], "--server", &others[1]];
    Replica::serve_with(store, d.url(own), log.to_path_buf(), &extra)
}

/// The replica's applied log position from its `/status`, `None` while it cannot answer.
async fn applied(r: &Replica) -> Option<u64> {
    let body = http_get(&r.http, "/status").await?;
    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
    status["replica"]["applied_seq"].as_u64()
}

/// One storm client: token login on server `i % 3`, then the next server on each failure,
/// until it gets in (returns its attempts) or [`CLIENT_DEADLINE`] passes (its last error).
async fn login_with_retries(
    urls: Arc<Vec<String>>,
    i: usize,
    token: String,
) -> Result<usize, String> {
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let mut attempt = 0;
    loop {
        let url = &urls[(i + attempt) % urls.len()];
        let opts = ConnectOptions::with_token(token.clone())
            .ignore_discovered_servers()
            .connection_timeout(ATTEMPT);
        attempt += 1;
        // The flush too is bounded: a client connected to the server killed just then would
        // wait for its reconnect forever.
        let login = async {
            let client = opts.connect(url.as_str()).await.map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())
        };
        let error = match tokio::time::timeout(ATTEMPT, login).await {
            Ok(Ok(())) => return Ok(attempt),
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {ATTEMPT:?}"),
        };
        if Instant::now() >= deadline {
            return Err(format!("client {i} after {attempt} attempts: {error}"));
        }
        // A client's retry backoff, not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Admin writes reported successful, with the chaos phase each was answered in.
#[derive(Default)]
struct Writes {
    ok: Mutex<Vec<(String, usize)>>,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl Writes {
    fn ok_in(&self, phase: usize) -> usize {
        self.ok.lock().expect("lock").iter().filter(|(_, p)| *p == phase).count()
    }
}

/// Adds users `w{k}-0, w{k}-1, …` through `admin` until `stop` is set and
/// [`WRITES_AFTER_KILLS`] succeeded in phase 2 (both kills done), or [`WAIT`] after `stop`.
async fn write_loop(
    k: usize,
    admin: &AdminClient,
    phase: &AtomicUsize,
    stop: &AtomicBool,
    w: &Writes,
) {
    let mut stopped_at: Option<Instant> = None;
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            let since = *stopped_at.get_or_insert_with(Instant::now);
            if w.ok_in(2) >= WRITES_AFTER_KILLS || since.elapsed() > WAIT {
                return;
            }
        }
        let name = format!("w{k}-{i}");
        let req = Request::UserAdd(UserAdd {
            name: name.clone(),
            account: "APP".into(),
            role: "app".into(),
            email: None,
            description: None,
            password_hash: None,
            tags: Default::default(),
        });
        let before = phase.load(Ordering::SeqCst);
        match admin.call(&req).await {
            // Counted in the phase it was sent in, so phase 2 means sent after both kills.
            Ok(_) => w.ok.lock().expect("lock").push((name, before)),
            Err(e) => {
                w.failed.fetch_add(1, Ordering::SeqCst);
                w.first_error.lock().expect("lock").get_or_insert(e.to_string());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_storm_survives_a_replica_and_a_server_killed_with_no_admin_write_lost() {
    let (mut d, creds, tokens) = cluster(CLIENTS).await;
    let a = replica(&d, "a", 0);
    let b = replica(&d, "b", 1);
    let c = replica(&d, "c", 2);
    for r in [&a, &b, &c] {
        r.wait_log("in sync with the log", 1).await;
    }
    wait_callouts(&d, 3, 3).await;
    // Servers 0 and 2 stay up: the admin clients' connections survive the chaos.
    let admin_wait = Duration::from_secs(10);
    let mut admins = Vec::new();
    for i in [0, 2].into_iter().cycle().take(WRITERS) {
        let client = AdminClient::connect(&d.url(i), &creds, admin_wait).await;
        admins.push(client.unwrap_or_else(|e| panic!("admin on server {i}: {e}")));
    }
    let urls = Arc::new((0..3).map(|i| d.url(i)).collect::<Vec<_>>());
    let (c_store, c_log) = (c.store.clone(), c.log.clone());

    let (admitted, phase, stop, writes) =
        (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false), Writes::default());
    let kills_at = Mutex::new(Vec::new());
    let started = Instant::now();
    let storm = async {
        let clients = futures::stream::iter(tokens.iter().cloned().enumerate())
            .map(|(i, token)| {
                let urls = urls.clone();
                let admitted = &admitted;
                async move {
                    let r = login_with_retries(urls, i, token).await;
                    admitted.fetch_add(usize::from(r.is_ok()), Ordering::SeqCst);
                    r
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        stop.store(true, Ordering::SeqCst);
        clients
    };
    let chaos = async {
        let mut c = Some(c);
        for (step, at) in [(1, CLIENTS / 3), (2, 2 * CLIENTS / 3)] {
            // Each step waits for a write answered in the step before it, so every phase has
            // writes (the storm may be over by then on a fast machine).
            let deadline = Deadline::after(CLIENT_DEADLINE, format!("{at} storm clients in"));
            while admitted.load(Ordering::SeqCst) < at || writes.ok_in(step - 1) == 0 {
                deadline.tick_fast().await;
            }
            match step {
                1 => drop(c.take()), // SIGKILL of replica c
                _ => d.server_mut(1).kill(),
            }
            phase.store(step, Ordering::SeqCst);
            kills_at.lock().expect("lock").push(admitted.load(Ordering::SeqCst));
        }
    };
    let writers = futures::future::join_all(
        admins.iter().enumerate().map(|(k, a)| write_loop(k, a, &phase, &stop, &writes)),
    );
    let (clients, (), _) = tokio::join!(storm, chaos, writers);
    let took = started.elapsed();

    let failed: Vec<&String> = clients.iter().filter_map(|r| r.as_ref().err()).collect();
    let retried = clients.iter().filter(|r| matches!(r, Ok(n) if *n > 1)).count();
    let ok: Vec<String> = writes.ok.lock().expect("lock").iter().map(|(n, _)| n.clone()).collect();
    eprintln!(
        "{} of {CLIENTS} storm clients in after {took:?} ({retried} needed a retry); admin \
         writes: {} ok ({} before the kills, {} after the replica's, {} after the server's), {} \
         failed (first: {:?})",
        CLIENTS - failed.len(),
        ok.len(),
        writes.ok_in(0),
        writes.ok_in(1),
        writes.ok_in(2),
        writes.failed.load(Ordering::SeqCst),
        writes.first_error.lock().expect("lock"),
    );
    let kills_at = kills_at.into_inner().expect("lock");
    eprintln!("replica killed with {} clients in, server with {}", kills_at[0], kills_at[1]);
    assert!(kills_at[1] < CLIENTS, "both kills came during the storm: {kills_at:?}");
    assert!(failed.is_empty(), "{} storm clients never got in: {failed:?}", failed.len());
    assert!(writes.ok_in(2) >= WRITES_AFTER_KILLS, "writes went on after both kills");
    assert!(writes.ok_in(1) > 0, "writes went on after the replica was killed");
    for admin in admins {
        admin.close().await;
    }

    // The killed replica comes back on its old store and catches up with the two others.
    let c = serve(&d, c_store, 2, &c_log);
    c.wait_log("in sync with the log", 2).await;
    let replicas = [a, b, c];
    let deadline = Deadline::after(WAIT, "every replica at the same log position");
    loop {
        let mut seqs = Vec::new();
        for r in &replicas {
            seqs.push(applied(r).await);
        }
        if seqs[0].is_some() && seqs.iter().all(|s| *s == seqs[0]) {
            break;
        }
        if deadline.expired() {
            panic!("{}: {seqs:?}", deadline.error());
        }
        deadline.tick().await;
    }
    let paths: Vec<_> = replicas.iter().map(|r| r.store.clone()).collect();
    drop(replicas);
    for (path, name) in paths.iter().zip(["a", "b", "c"]) {
        let store = open_store(path, "test");
        let lost: Vec<&String> = ok
            .iter()
            .filter(|u| store.read(|tx| tx.get_user(u)).expect("read").is_none())
            .collect();
        eprintln!(
            "replica {name}: {} of {} successful admin writes present",
            ok.len() - lost.len(),
            ok.len()
        );
        assert!(lost.is_empty(), "replica {name} lost {} admin writes: {lost:?}", lost.len());
    }
}
