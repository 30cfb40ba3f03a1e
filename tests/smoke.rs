//! Proves the harness itself against a plain (no-auth) nats-server: start, pub/sub, restart,
//! stop, cluster routing, logs, placeholders, monitoring, failure reporting and cleanup.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::support::{try_wait_until, wait_until, Cluster, Deadline, HarnessError, NatsServer};

const WAIT: Duration = Duration::from_secs(10);

/// Receives one message within `timeout`, or `None`.
async fn next_within(
    sub: &mut async_nats::Subscriber,
    timeout: Duration,
) -> Option<async_nats::Message> {
    tokio::time::timeout(timeout, sub.next()).await.ok().flatten()
}

/// Connects with a fast, unlimited reconnect and counts disconnect events.
async fn connect_counting_disconnects(url: &str) -> (async_nats::Client, Arc<AtomicUsize>) {
    let disconnects = Arc::new(AtomicUsize::new(0));
    let counter = disconnects.clone();
    let client = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(20))
        .event_callback(move |event| {
            let counter = counter.clone();
            async move {
                if matches!(event, async_nats::Event::Disconnected) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
        .connect(url)
        .await
        .expect("connect to the test server");
    (client, disconnects)
}

/// Whether `pid` is a live process (a zombie, exited but not reaped, counts as dead).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: "pid (comm) S ...".
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn server_starts_and_round_trips_a_message() {
    let server = NatsServer::start("").await;
    assert!(server.pid().is_some());
    assert_eq!(server.client_url(), format!("nats://127.0.0.1:{}", server.port()));

    let client = async_nats::connect(server.client_url()).await.expect("connect");
    let mut sub = client.subscribe("smoke.ping").await.expect("subscribe");
    client.publish("smoke.ping", "hello".into()).await.expect("publish");
    client.flush().await.expect("flush");
    let msg = next_within(&mut sub, WAIT).await.expect("message within the deadline");
    assert_eq!(msg.payload.as_ref(), b"hello");
}

#[tokio::test]
async fn log_is_available_and_waits_fail_on_deadline() {
    let server = NatsServer::start("").await;
    let listening = format!("Listening for client connections on 127.0.0.1:{}", server.port());
    server.wait_for_log(&listening, WAIT).await;
    assert!(server.log().contains("Server is ready"));
    assert_eq!(server.log_count("Server is ready"), 1);
    assert!(server.log_path().is_file());

    let missing = server.try_wait_for_log("no such line in any log", Duration::from_millis(100));
    assert!(matches!(missing.await, Err(HarnessError::Timeout { .. })));
}

#[tokio::test]
async fn placeholders_are_rendered_and_monitoring_answers() {
    let config = "listen: 127.0.0.1:{{PORT}}\nhttp: 127.0.0.1:{{HTTP_PORT}}\n\
                  jetstream { store_dir: \"{{DIR}}/js\" }\n";
    let server = NatsServer::start(config).await;
    let rendered = std::fs::read_to_string(server.config_path()).expect("read config");
    assert!(rendered.contains(&format!("127.0.0.1:{}", server.port())), "{rendered}");
    assert!(!rendered.contains("{{"), "{rendered}");
    assert!(server.dir().join("js").is_dir(), "jetstream store dir inside the temp dir");

    let varz = server.monitor("/varz").await;
    assert_eq!(varz["port"].as_u64(), Some(u64::from(server.port())));
    let missing = server.try_monitor("/no-such-endpoint").await;
    assert!(matches!(missing, Err(HarnessError::Monitor { .. })));
}

#[tokio::test]
async fn restart_keeps_the_port_and_clients_reconnect() {
    let mut server = NatsServer::start("").await;
    let (port, first_pid) = (server.port(), server.pid());
    let (client, disconnects) = connect_counting_disconnects(&server.client_url()).await;
    let mut sub = client.subscribe("smoke.restart").await.expect("subscribe");
    client.flush().await.expect("flush");

    server.restart().await;
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), first_pid);
    assert_eq!(server.log_count("Server is ready"), 1, "current_log covers this run only");
    assert_eq!(server.log().matches("Server is ready").count(), 2, "log() covers both runs");

    // The client must notice the restart, reconnect, and resubscribe.
    let deadline = Deadline::after(WAIT, "the client to reconnect and receive a message");
    loop {
        if disconnects.load(Ordering::SeqCst) > 0 {
            client.publish("smoke.restart", "again".into()).await.expect("publish");
            if next_within(&mut sub, Duration::from_millis(100)).await.is_some() {
                break;
            }
        }
        deadline.tick().await;
    }
}

#[tokio::test]
async fn stopped_server_refuses_connections_until_restarted() {
    let mut server = NatsServer::start("").await;
    let status = server.stop().await.expect("a running server has an exit status");
    assert!(status.success(), "graceful stop exits cleanly: {status}");
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", server.port())).await.is_err());
    assert_eq!(server.stop().await, None, "stopping twice is a no-op");

    server.restart().await;
    assert!(server.is_running());
    async_nats::connect(server.client_url()).await.expect("connect after restart");
}

#[tokio::test]
async fn killed_server_is_reaped_and_can_be_restarted() {
    let mut server = NatsServer::start("").await;
    let pid = server.pid().expect("running");
    server.kill();
    assert!(!process_alive(pid), "nats-server {pid} survived kill()");
    assert_eq!(server.pid(), None);
    assert!(!server.log().contains("Server Exiting"), "kill is not a graceful stop");

    server.restart().await;
    async_nats::connect(server.client_url()).await.expect("connect after restart");
}

#[tokio::test]
async fn bad_config_reports_exit_with_the_log() {
    let result = NatsServer::builder("port: {").try_start().await;
    match result {
        Err(HarnessError::Exited { log, status, .. }) => {
            assert!(!status.success());
            assert!(log.contains("Parse error"), "{log}");
        }
        other => panic!("expected an exit error, got {other:?}"),
    }
}

#[tokio::test]
async fn taken_port_is_reported_as_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local addr").port();
    let result = NatsServer::builder("").port(port).try_start().await;
    assert!(matches!(result, Err(HarnessError::PortInUse { port: p, .. }) if p == port));
}

#[tokio::test]
async fn drop_kills_the_process_and_removes_the_dir() {
    let server = NatsServer::start("").await;
    let pid = server.pid().expect("running");
    let dir = server.dir().to_path_buf();
    drop(server);
    assert!(!process_alive(pid), "nats-server {pid} survived its handle");
    assert!(!dir.exists(), "temp dir {} survived its handle", dir.display());
}

#[tokio::test]
async fn cluster_of_three_routes_messages_between_nodes() {
    let cluster = Cluster::start(3, |_| String::new()).await;
    for node in cluster.nodes() {
        assert_eq!(Cluster::try_route_peers(node).await.expect("routez"), 2);
    }
    let varz = cluster.node(2).monitor("/varz").await;
    assert_eq!(varz["server_name"].as_str(), Some("node-2"));
    assert_eq!(varz["cluster"]["name"].as_str(), Some(crate::support::CLUSTER_NAME));

    let first = async_nats::connect(cluster.node(0).client_url()).await.expect("connect node 0");
    let third = async_nats::connect(cluster.node(2).client_url()).await.expect("connect node 2");
    let mut sub = third.subscribe("smoke.cluster").await.expect("subscribe");
    third.flush().await.expect("flush");

    // Interest reaches node 0 asynchronously: publish until the message arrives.
    let deadline = Deadline::after(WAIT, "a message from node 0 to reach node 2");
    loop {
        first.publish("smoke.cluster", "routed".into()).await.expect("publish");
        first.flush().await.expect("flush");
        if let Some(msg) = next_within(&mut sub, Duration::from_millis(50)).await {
            assert_eq!(msg.payload.as_ref(), b"routed");
            break;
        }
        deadline.tick().await;
    }
}

#[tokio::test]
async fn wait_until_polls_until_true_and_fails_on_deadline() {
    let mut polls = 0;
    wait_until(WAIT, "the third poll", || {
        polls += 1;
        polls == 3
    })
    .await;
    assert_eq!(polls, 3);

    let never = try_wait_until(Duration::from_millis(60), "never", || false).await;
    assert!(matches!(never, Err(HarnessError::Timeout { what, .. }) if what == "never"));
}

#[test]
fn server_started_from_a_short_lived_thread_outlives_the_thread() {
    // The parent-death signal follows the spawning thread, so this fails unless servers are
    // spawned from the harness's long-lived spawner thread.
    let start = || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        runtime.expect("build runtime").block_on(NatsServer::start(""))
    };
    let mut server = std::thread::spawn(start).join().expect("thread starting the server");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    runtime.expect("build runtime").block_on(async {
        let client = async_nats::connect(server.client_url()).await.expect("connect");
        client.flush().await.expect("round trip");
    });
    assert!(server.is_running());
}

/// Selects what [`helper_process_with_a_running_server`] does; unset, it does nothing.
const HELPER_ENV: &str = "PBN_SMOKE_HELPER";

/// Runs this test binary's helper test in a child process in `mode`; returns its output.
fn run_helper(mode: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("path of the test binary");
    std::process::Command::new(exe)
        .args(["smoke::helper_process_with_a_running_server", "--exact", "--ignored"])
        .arg("--nocapture")
        .env(HELPER_ENV, mode)
        .output()
        .expect("run the helper test process")
}

/// The value the helper printed as `helper-server-<key>=<value>`.
fn helper_value(output: &std::process::Output, key: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let prefix = format!("helper-server-{key}=");
    let value = stdout.lines().find_map(|line| line.strip_prefix(&prefix));
    value.map(str::to_owned).unwrap_or_else(|| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        panic!("helper printed no {key}; stdout:\n{stdout}\nstderr:\n{stderr}")
    })
}

/// The nats-server pid the helper printed.
fn helper_server_pid(output: &std::process::Output) -> u32 {
    let pid = helper_value(output, "pid");
    pid.parse().unwrap_or_else(|err| panic!("helper pid {pid:?}: {err}"))
}

#[tokio::test]
#[ignore = "helper run in a child process by the tests below"]
async fn helper_process_with_a_running_server() {
    let Ok(mode) = std::env::var(HELPER_ENV) else { return };
    let server = NatsServer::start("").await;
    println!("helper-server-pid={}", server.pid().expect("running"));
    println!("helper-server-dir={}", server.dir().display());
    match mode.as_str() {
        "abort" => std::process::abort(),
        "panic" => panic!("helper panics with a live server"),
        other => panic!("unknown {HELPER_ENV} mode {other:?}"),
    }
}

#[tokio::test]
async fn servers_die_with_an_aborted_test_process() {
    let output = run_helper("abort");
    assert!(!output.status.success());
    let pid = helper_server_pid(&output);
    wait_until(WAIT, "the orphaned nats-server to die", || !process_alive(pid)).await;
    // An aborted process runs no destructors: its temp dir is left for us to remove.
    std::fs::remove_dir_all(helper_value(&output, "dir")).expect("remove the helper's dir");
}

#[tokio::test]
async fn a_panicking_test_prints_the_server_log() {
    let output = run_helper("panic");
    assert!(!output.status.success());
    let pid = helper_server_pid(&output);
    assert!(!process_alive(pid), "nats-server {pid} survived the panicking test");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("---- nats-server log"), "{stderr}");
    assert!(stderr.contains("Server is ready"), "{stderr}");
    let dir = helper_value(&output, "dir");
    assert!(!std::path::Path::new(&dir).exists(), "temp dir {dir} survived the panic");
}
