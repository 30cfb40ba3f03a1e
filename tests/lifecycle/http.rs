//! The HTTP listener of `pbn serve`: `/healthz` answers while the process lives, `/readyz` follows
//! the service's NATS connections (503 naming the failed checks while the server is down).

use std::time::Duration;

use pbn::RawConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use async_nats::ConnectOptions;

use super::Live;
use crate::support::deploy::{ClientEvents, DeployOptions};
use crate::support::{free_port, Deadline};

/// `GET path` on `addr`: the status code and the JSON body.
async fn get(addr: &str, path: &str) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8(raw).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    Some((status, serde_json::from_str(body).ok()?))
}

/// The body of `GET path` as text (for `/metrics`).
async fn get_text(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the HTTP listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

/// The value of the sample `name` (with its labels) in Prometheus text, 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Polls `GET path` until it answers with `status`; returns the body.
async fn wait_for(addr: &str, path: &str, status: u16) -> Value {
    let deadline = Deadline::after(Duration::from_secs(30), format!("{path} to answer {status}"));
    loop {
        match get(addr, path).await {
            Some((s, body)) if s == status => return body,
            _ => deadline.tick().await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_nats_connection_and_healthz_stays_up() {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = RawConfig { http: Some(addr.clone()), ..RawConfig::default() };
    let mut live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    assert_eq!(wait_for(&addr, "/readyz", 200).await["status"], "ready");
    assert_eq!(get(&addr, "/healthz").await.expect("healthz").0, 200);
    let metrics = get_text(&addr, "/metrics").await;
    assert_eq!(sample(&metrics, "pbn_callout_subscriptions"), 1.0, "{metrics}");

    live.d.server_mut(0).stop().await;
    let body = wait_for(&addr, "/readyz", 503).await;
    assert_eq!(body["status"], "not ready", "{body}");
    for check in ["callout_connection", "system_connection"] {
        assert!(body["failed"][check].is_string(), "{check} named: {body}");
    }
    assert_eq!(get(&addr, "/healthz").await.expect("healthz while NATS is down").0, 200);

    live.d.server_mut(0).restart().await;
    assert_eq!(wait_for(&addr, "/readyz", 200).await["status"], "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_login_by_outcome() {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = RawConfig { http: Some(addr.clone()), ..RawConfig::default() };
    let live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    wait_for(&addr, "/readyz", 200).await;
    let before = get_text(&addr, "/metrics").await;
    let _alice = live.login("alice").await;
    let _bob = live.login("bob").await;
    let bad = ConnectOptions::with_user_and_password("alice".into(), "wrong".into());
    assert!(live.d.connect(0, bad, &ClientEvents::new()).await.is_err(), "a wrong password");
    let text = get_text(&addr, "/metrics").await;
    let admitted = r#"pbn_logins_total{outcome="admitted"}"#;
    let refused = r#"pbn_logins_total{outcome="bad_password"}"#;
    assert_eq!(sample(&text, admitted) - sample(&before, admitted), 2.0, "{text}");
    assert_eq!(sample(&text, refused) - sample(&before, refused), 1.0, "{text}");
    assert!(sample(&text, "pbn_sessions") >= 2.0, "{text}");
    assert!(text.contains("pbn_login_duration_seconds_bucket"), "{text}");
}

/// A taken HTTP address stops `pbn serve` at once with the listener's error, before it connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_http_address_stops_the_service_with_its_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let d = crate::support::deploy::Deployment::new(DeployOptions::default());
    let flags = RawConfig {
        store: Some(d.store().path().to_path_buf()),
        http: Some(addr),
        ..RawConfig::default()
    };
    let settings = pbn::Settings::resolve(None, RawConfig::default(), flags).expect("settings");
    let (_stop, shutdown) = pbn::shutdown_channel();
    let run = pbn::run_with_store(settings, d.store().clone(), shutdown);
    let result = tokio::time::timeout(Duration::from_secs(10), run).await.expect("stops at once");
    assert!(matches!(result, Err(pbn::ServerError::Http(_))), "{result:?}");
}

#[test]
fn a_bad_http_address_is_refused_naming_it() {
    let bad = RawConfig { http: Some("localhost:port".into()), ..RawConfig::default() };
    let err = pbn::Settings::resolve(None, RawConfig::default(), bad).expect_err("refused");
    assert!(
        matches!(&err, pbn::ConfigError::Invalid { name: "http", value, .. } if value == "localhost:port"),
        "{err:?}"
    );
}
