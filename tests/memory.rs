//! Peak memory of the real `pbn serve` process (its `VmHWM` from `/proc`) on the password path:
//! a storm of cold password logins with production argon2id parameters, and rounds of garbage
//! credentials, while a good user on another host keeps logging in.

use pbn::{AccountAdd, RoleAdd};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pbn::Layout;
use pbn::Store;
use pbn::{hash_password, Secret};
use pbn::{Context, LimitPatch, ListPatch, Request, RolePatch};
use pbn::{Name, User};

use crate::callout::attack::raw_login;
use crate::support::deploy::WAIT;
use crate::support::{free_port, pbn::binary, Deadline, NatsServer};

/// The peak RSS allowed, in KiB (150 MiB).
const HWM_LIMIT_KIB: u64 = 150 * 1024;
/// Cold password users logging in at once.
const COLD_USERS: usize = 200;
/// Garbage connects per round, and how many at once.
const GARBAGE: usize = 1000;
const GARBAGE_IN_FLIGHT: usize = 100;
/// Password of every user (one production hash shared by all: the store is built in one step).
const PW: &str = "memory-test-password";
/// The hosts: cold storm, garbage, and the good user who must keep getting in.
const STORM_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const GARBAGE_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const GOOD_HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Generous: 200 cold argon2id logins take about 3 s on an idle 2-core machine, far longer on
/// a loaded one; this test is about memory, not latency.
const AUTH_TIMEOUT: Duration = Duration::from_secs(60);

/// `pbn serve` as a child process, killed on drop.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("a VmHWM line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM in kB")
}

/// A store with accounts, role `app` and `COLD_USERS` + 1 password users (`cold{i}`, `good`),
/// all with one argon2id hash of [`PW`] made with the production parameters.
fn build_store(path: &Path) -> Store {
    let ctx = Context::now();
    let store = crate::support::init_sealed_store(path, "test", false, &ctx).expect("init store");
    let account = Request::AccountAdd(AccountAdd {
        name: "APP".into(),
        description: None,
        limits: LimitPatch::default(),
        disallow_bearer: false,
    });
    pbn::execute(&store, &account, &ctx).expect("account");
    let role = RolePatch {
        pub_allow: ListPatch::Set(vec!["app.>".into()]),
        sub_allow: ListPatch::Set(vec!["app.>".into()]),
        ..RolePatch::default()
    };
    pbn::execute(&store, &Request::RoleAdd(RoleAdd { name: "app".into(), role }), &ctx)
        .expect("role");
    let phc = hash_password(&Secret::new(PW)).expect("hash");
    let (acc, role) = (Name::parse("APP").unwrap(), Name::parse("app").unwrap());
    let names = (0..COLD_USERS).map(|i| format!("cold{i}")).chain(["good".to_string()]);
    let users: Vec<User> = names
        .map(|n| {
            let mut u = User::new(Name::parse(&n).unwrap(), acc.clone(), role.clone(), ctx.now);
            u.password_hash = Some(phc.clone());
            u
        })
        .collect();
    store
        .write(|tx| -> Result<(), pbn::StoreError> {
            users.iter().try_for_each(|u| tx.insert_user(u))
        })
        .expect("insert the users");
    store
}

/// nats-server for the store at `path` (auth timeout [`AUTH_TIMEOUT`]) and `pbn serve` on it,
/// once it admits the good user; returns the server, the service and the client port.
async fn start(dir: &Path, path: &Path) -> (NatsServer, Serve, u16) {
    let store = build_store(path);
    let trust = pbn::trust(&store, &Context::now()).expect("trust");
    drop(store);
    let port = free_port();
    let layout = Layout { auth_timeout: AUTH_TIMEOUT, ..Layout::single(dir.join("nats"), port) };
    let configs = pbn::render(&trust, &layout).expect("render");
    pbn::write_configs(&configs).expect("write configs");
    let server = NatsServer::builder(&configs[0].text).port(port).start().await;
    let log = std::fs::File::create(dir.join("pbn.log")).expect("log file");
    let mut command = Command::new(binary());
    command.args(["serve", "--store"]).arg(path).args(["--server", &server.client_url()]);
    command.env_remove("PBN_STORE").env_remove("PBN_LOG").env_remove("PBN_CONFIG");
    command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    let serve = Serve(command.spawn().expect("spawn pbn serve"));
    let ready = Deadline::after(Duration::from_secs(60), "pbn serve to admit a login");
    while raw_login(port, GOOD_HOST, "good", PW, WAIT).await.is_err() {
        ready.tick().await;
    }
    (server, serve, port)
}

/// Logs the good user in from [`GOOD_HOST`] over and over until `stop`; counts the outcomes.
fn good_logins(port: u16, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let (mut good, mut bad) = (0, 0);
        while !stop.load(Ordering::SeqCst) {
            match raw_login(port, GOOD_HOST, "good", PW, WAIT).await {
                Ok(()) => good += 1,
                Err(e) => {
                    eprintln!("memory: good login refused: {e}");
                    bad += 1;
                }
            }
            // Pacing of the good user's load, not a wait.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (good, bad)
    })
}

/// One round of [`GARBAGE`] wrong credentials from [`GARBAGE_HOST`], [`GARBAGE_IN_FLIGHT`] at once.
async fn garbage_round(port: u16, round: usize) {
    let garbage = futures::stream::iter(0..GARBAGE)
        .map(|i| async move {
            let user = format!("nobody{round}x{i}");
            raw_login(port, GARBAGE_HOST, &user, "garbage", AUTH_TIMEOUT).await
        })
        .buffer_unordered(GARBAGE_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    assert!(garbage.iter().all(Result::is_err), "a garbage credential was admitted");
}

#[tokio::test(flavor = "multi_thread")]
async fn pbn_serve_memory_stays_bounded_through_cold_logins_and_garbage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, serve, port) = start(dir.path(), &dir.path().join("store.redb")).await;
    let pid = serve.0.id();
    eprintln!("memory: idle after the first login {} KiB", vm_hwm_kib(pid));

    // (a) Cold password logins at once: each needs a full argon2id verification.
    let started = Instant::now();
    let logins = (0..COLD_USERS).map(|i| async move {
        raw_login(port, STORM_HOST, &format!("cold{i}"), PW, AUTH_TIMEOUT).await
    });
    let results = futures::future::join_all(logins).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} cold logins failed: {:?}", failed.len(), &failed[..1]);
    let cold = vm_hwm_kib(pid);
    eprintln!("memory: {COLD_USERS} cold logins in {:?}, peak {cold} KiB", started.elapsed());
    assert!(cold <= HWM_LIMIT_KIB, "peak RSS {cold} KiB after the cold storm");

    // (b) Rounds of garbage credentials, while the good user keeps logging in from another
    // host: peak RSS must level off.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = good_logins(port, stop.clone());
    let mut peaks = Vec::new();
    for round in 0..3 {
        garbage_round(port, round).await;
        peaks.push(vm_hwm_kib(pid));
        eprintln!("memory: garbage round {} peak {} KiB", round + 1, peaks[round]);
    }
    stop.store(true, Ordering::SeqCst);
    let (good, bad) = watcher.await.expect("the good-login task");
    assert!(peaks[2] <= HWM_LIMIT_KIB, "peak RSS {} KiB after the garbage rounds", peaks[2]);
    assert!(peaks[2] * 10 <= peaks[0] * 11, "peak RSS grew from {} to {} KiB", peaks[0], peaks[2]);
    assert_eq!(bad, 0, "the good user was refused");
    assert!(good >= 3, "the good user logged in throughout");
}
