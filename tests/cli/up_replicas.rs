//! `pbn up --replicas 3`: three nats-servers with JetStream and three `pbn serve` replicas on
//! one log. A user added through one server logs in through another; with one replica killed
//! (`kill -9`) the others take its logins and admin requests; on SIGTERM every child stops.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use crate::support::pbn::{Pbn, Running};
use crate::support::{free_port, nats_server_binary, wait_until};

/// How long the cluster and its replicas may take to come up (a busy machine).
const START: Duration = Duration::from_secs(90);
/// How long a reaction to a kill or a signal may take.
const QUICK: Duration = Duration::from_secs(20);
const PW: &str = "a-long-enough-password";

/// A client port `p` such that every port the layout uses is free: clients `p..p+3`, replica
/// HTTP `p+1000..`, routes `p+2000..`.
fn base_port() -> u16 {
    let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
    loop {
        let base = free_port();
        let ports = (0..3).flat_map(|i| [base + i, base + 1000 + i, base + 2000 + i]);
        if base < 60_000 && ports.into_iter().all(free) {
            return base;
        }
    }
}

fn read_pid(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim().parse().expect("a pid")
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// `pbn admin --server nats://127.0.0.1:PORT --creds DIR/admin.creds ARGS…`, which must succeed.
fn admin(dir: &Path, port: u16, args: &[&str]) {
    Pbn::new(["admin", "--server", &format!("nats://127.0.0.1:{port}"), "--creds"])
        .args([dir.join("admin.creds")])
        .args(args)
        .stdin(format!("{PW}\n"))
        .run()
        .success();
}

/// Logs `user` in on `port` and round-trips a message on `app.<user>`.
async fn round_trip(port: u16, user: &str) -> Result<(), String> {
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), PW.into())
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .map_err(|e| e.to_string())?;
    let subject = format!("app.{user}");
    let mut sub = client.subscribe(subject.clone()).await.map_err(|e| e.to_string())?;
    client.publish(subject, "hi".into()).await.map_err(|e| e.to_string())?;
    let got = tokio::time::timeout(QUICK, futures::StreamExt::next(&mut sub)).await;
    match got {
        Ok(Some(m)) if m.payload.as_ref() == b"hi" => Ok(()),
        other => Err(format!("no round trip: {other:?}")),
    }
}

/// Retries [`round_trip`] until it works (the callout's interest crosses routes asynchronously).
async fn logs_in(port: u16, user: &str, up: &Running) {
    let deadline = crate::support::Deadline::after(QUICK, format!("{user} to log in on {port}"));
    loop {
        match round_trip(port, user).await {
            Ok(()) => return,
            Err(e) if deadline.expired() => panic!("{e}\n{}", up.stderr()),
            Err(_) => deadline.tick().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_three_replicas_serves_through_every_server_and_outlives_a_killed_replica() {
    let dir = tempfile::Builder::new().prefix("pbn-up3-").tempdir().expect("temp dir");
    let d = dir.path();
    let port = base_port();
    let mut up = Pbn::new(["up", "--replicas", "3", "--dir"])
        .args([d])
        .args(["--port", &port.to_string(), "--nats-server"])
        .args([nats_server_binary()])
        .spawn();
    up.wait_stderr("3 replicas ready", START).await;
    let servers: Vec<u32> =
        (1..=3).map(|i| read_pid(&d.join(format!("nats-server-{i}.pid")))).collect();
    let replicas: Vec<u32> =
        (1..=3).map(|i| read_pid(&d.join(format!("replica-{i}.pid")))).collect();

    admin(d, port, &["account", "add", "APP"]);
    admin(d, port + 1, &["role", "add", "app", "--pub", "app.>", "--sub", "app.>"]);
    let alice = ["user", "add", "alice", "--account", "APP", "--role", "app", "--password-stdin"];
    admin(d, port + 2, &alice);
    for i in 0..3 {
        logs_in(port + i, "alice", &up).await;
    }

    // SAFETY: kill(2) has no memory-safety preconditions; the pid is a live child of `up`.
    assert_eq!(unsafe { libc::kill(replicas[0] as libc::pid_t, libc::SIGKILL) }, 0);
    up.wait_stderr("replica 1 exited", QUICK).await;
    // Server 1's requests now reach the replicas on servers 2 and 3.
    let bob = ["user", "add", "bob", "--account", "APP", "--role", "app", "--password-stdin"];
    admin(d, port, &bob);
    logs_in(port, "bob", &up).await;
    logs_in(port + 2, "alice", &up).await;

    up.signal(libc::SIGTERM);
    let status = up.wait_exit(QUICK).await;
    assert!(status.success(), "pbn up stops cleanly on SIGTERM:\n{}", up.stderr());
    for pid in servers.iter().chain(&replicas[1..]) {
        wait_until(QUICK, "every child to stop with pbn up", || !alive(*pid)).await;
    }
    for i in 1..=3 {
        assert!(!d.join(format!("replica-{i}.pid")).exists(), "replica {i}'s pid file is gone");
        assert!(!d.join(format!("nats-server-{i}.pid")).exists(), "server {i}'s pid file is gone");
    }
}

#[test]
fn up_refuses_more_than_five_replicas() {
    let out = Pbn::new(["up", "--replicas", "6"]).run();
    out.code(2);
    assert!(out.stderr.contains("--replicas"), "{}", out.streams());
}
