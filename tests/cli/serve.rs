//! The real `pbn serve` binary at the default log level: one line at start, one per connection
//! change, no ERROR for a routine server restart; and it refuses a server older than 2.11.

use std::process::Command;
use std::time::Duration;

use super::{Deployment, WAIT};
use crate::support::pbn::{Pbn, Running};
use crate::support::{free_port, old_nats_server_binary, wait_until, OLD_NATS_SERVER_VERSION};

/// How long the service may take to connect (it starts with a store open and two logins).
const CONNECT: Duration = Duration::from_secs(30);

/// `pbn serve --store S --server URL` with the default log filter.
fn serve(d: &Deployment, url: &str) -> Running {
    Pbn::new(["serve", "--store"]).args([&d.store]).args(["--server", url]).spawn()
}

/// Waits until `needle` appears at least `n` times on `serve`'s standard error.
async fn wait_count(serve: &Running, needle: &str, n: usize) {
    wait_until(CONNECT, &format!("{n} x {needle:?} on stderr"), || {
        serve.stderr().matches(needle).count() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_start_and_reconnect_and_no_error_for_a_restart() {
    let d = Deployment::init();
    let mut server = d.start_server(free_port()).await;
    let mut serve = serve(&d, &server.client_url());
    serve.wait_stderr("pbn serve started", CONNECT).await;
    // Both connections (callout, system) say they are connected.
    wait_count(&serve, "connected to primary", 2).await;
    server.restart().await;
    wait_count(&serve, "connection lost", 2).await;
    wait_count(&serve, "connected to primary", 4).await;
    serve.signal(libc::SIGTERM);
    let status = serve.wait_exit(WAIT).await;
    let stderr = serve.stderr();
    assert!(status.success(), "{stderr}");
    let start = stderr.lines().find(|l| l.contains("pbn serve started")).expect("a start line");
    for field in ["version=", "store=", "servers=", "serves="] {
        assert!(start.contains(field), "start line lacks {field}: {start}");
    }
    assert!(!stderr.contains("ERROR"), "a routine restart logged an error:\n{stderr}");
    assert!(!stderr.contains("async_nats"), "async-nats events are off by default:\n{stderr}");
}

/// An old nats-server without auth, killed when dropped.
struct OldServer(std::process::Child);

impl Drop for OldServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_a_nats_server_older_than_2_11() {
    let d = Deployment::init();
    let port = free_port();
    let child = Command::new(old_nats_server_binary())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the old nats-server");
    let _server = OldServer(child);
    wait_until(WAIT, "the old server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let mut serve = serve(&d, &format!("nats://127.0.0.1:{port}"));
    let status = serve.wait_exit(CONNECT).await;
    let stderr = serve.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(OLD_NATS_SERVER_VERSION), "{stderr}");
    assert!(stderr.contains("too old") && stderr.contains("2.11.0"), "{stderr}");
}
