//! `pbn up` supervises its nats-server: it refuses a taken port, an old server binary and a
//! leftover server of its directory before starting; its server dies with it (even on
//! `kill -9`); and it stops with the server's reason when the server exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::support::pbn::{Pbn, Running};
use crate::support::{
    free_port, nats_server_binary, old_nats_server_binary, wait_until, NatsServer,
    OLD_NATS_SERVER_VERSION,
};

/// How long `pbn up` may take to create its store and start its server (a busy machine).
const START: Duration = Duration::from_secs(60);
/// How long a refusal or a reaction to an exit may take.
const QUICK: Duration = Duration::from_secs(15);

/// A fresh `pbn up` directory.
fn up_dir() -> TempDir {
    tempfile::Builder::new().prefix("pbn-up-").tempdir().expect("create temp dir")
}

/// `pbn up --dir DIR --port PORT --nats-server BIN`.
fn up(dir: &Path, port: u16, bin: &Path) -> Running {
    Pbn::new(["up", "--dir"])
        .args([dir])
        .args(["--port", &port.to_string(), "--nats-server"])
        .args([bin])
        .spawn()
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("nats-server.pid")
}

/// The pid in `pbn up`'s pid file.
fn read_pid(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(pid_file(dir)).expect("read the pid file");
    text.trim().parse().expect("the pid file holds a pid")
}

/// Whether `pid` is a live process (not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// Waits for `up` to exit with a failure; returns its standard error.
async fn failure(up: &mut Running) -> String {
    let status = up.wait_exit(QUICK).await;
    let stderr = up.stderr();
    assert!(!status.success(), "pbn up succeeded:\n{stderr}");
    stderr
}

/// Waits for `up` to fail before starting its server; returns its standard error.
async fn refusal(up: &mut Running) -> String {
    let stderr = failure(up).await;
    assert!(!stderr.contains("nats-server started (pid"), "{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn up_refuses_a_taken_port_naming_it() {
    let dir = up_dir();
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a port");
    let port = taken.local_addr().expect("local addr").port();
    let mut up = up(dir.path(), port, &nats_server_binary());
    let stderr = refusal(&mut up).await;
    assert!(stderr.contains(&format!("port {port}")) && stderr.contains("not free"), "{stderr}");
    assert!(!pid_file(dir.path()).exists(), "no server was started, so no pid file");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_refuses_a_nats_server_older_than_2_11() {
    let dir = up_dir();
    let mut up = up(dir.path(), free_port(), &old_nats_server_binary());
    let stderr = refusal(&mut up).await;
    assert!(stderr.contains(OLD_NATS_SERVER_VERSION), "{stderr}");
    assert!(stderr.contains("too old") && stderr.contains("2.11.0"), "{stderr}");
    assert!(!pid_file(dir.path()).exists(), "no server was started, so no pid file");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_up_takes_its_nats_server_along() {
    let dir = up_dir();
    let port = free_port();
    let mut first = up(dir.path(), port, &nats_server_binary());
    first.wait_stderr("nats-server started", START).await;
    let pid = read_pid(dir.path());
    assert!(alive(pid), "the pid file names the running server");
    first.signal(libc::SIGKILL);
    first.wait_exit(QUICK).await;
    wait_until(QUICK, "nats-server to die with pbn up", || !alive(pid)).await;
    // The pid file is stale now: the next `pbn up` in the directory starts normally.
    let mut second = up(dir.path(), port, &nats_server_binary());
    second.wait_stderr("nats-server started", START).await;
    assert_ne!(read_pid(dir.path()), pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn up_names_a_leftover_server_of_its_directory() {
    let dir = up_dir();
    let leftover = NatsServer::start("").await;
    let pid = leftover.pid().expect("the server runs");
    std::fs::write(pid_file(dir.path()), format!("{pid}\n")).expect("write the pid file");
    let mut up = up(dir.path(), free_port(), &nats_server_binary());
    let stderr = refusal(&mut up).await;
    assert!(stderr.contains("still running"), "{stderr}");
    assert!(stderr.contains(&format!("kill {pid}")), "{stderr}");
    assert!(alive(pid), "pbn up must not touch the leftover server");
}

#[tokio::test(flavor = "multi_thread")]
async fn up_stops_with_the_log_of_a_server_that_exits() {
    let dir = up_dir();
    let mut up = up(dir.path(), free_port(), &nats_server_binary());
    up.wait_stderr("nats-server started", START).await;
    let pid = libc::pid_t::try_from(read_pid(dir.path())).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is the live child of `up`.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stderr = failure(&mut up).await;
    let log = dir.path().join("nats-server.log");
    assert!(stderr.contains("nats-server exited"), "{stderr}");
    assert!(stderr.contains(&log.display().to_string()), "{stderr}");
    assert!(stderr.contains("Trapped \"terminated\" signal"), "the last log lines:\n{stderr}");
    assert!(!pid_file(dir.path()).exists(), "the pid file goes with the server");
}
