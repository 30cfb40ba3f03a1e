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

/// `/metrics` once the outbox the deployment left at startup is pushed.
async fn settled_metrics(addr: &str) -> String {
    let deadline = Deadline::after(Duration::from_secs(30), "the startup pushes");
    loop {
        let text = get_text(addr, "/metrics").await;
        if sample(&text, "pbn_outbox_entries") == 0.0 {
            return text;
        }
        deadline.tick().await;
    }
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
    let metrics = get_text(&addr, "/metrics").await;
    for connection in ["callout", "system"] {
        let connected = format!("pbn_nats_connected{{connection=\"{connection}\"}}");
        let reconnects = format!("pbn_nats_reconnects_total{{connection=\"{connection}\"}}");
        assert_eq!(sample(&metrics, &connected), 1.0, "{metrics}");
        assert_eq!(sample(&metrics, &reconnects), 1.0, "{metrics}");
    }
}

/// Every metric after real logins (password, cached password, token, refusals) and real admin
/// changes through `pbn admin --server`: exact values, as deltas where startup counts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_logins_by_method_and_outcome_and_admin_requests_exactly() {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = RawConfig { http: Some(addr.clone()), ..RawConfig::default() };
    let live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    wait_for(&addr, "/readyz", 200).await;
    let before = settled_metrics(&addr).await;
    let token = live.admin(&["--json", "user", "token", "add", "alice"]).await.success().json();
    let token = token["data"]["token"].as_str().expect("token in the output").to_string();
    let _alice = live.login("alice").await;
    let _again = live.login("alice").await;
    let _bob = live.login("bob").await;
    let bad = ConnectOptions::with_user_and_password("alice".into(), "wrong".into());
    assert!(live.d.connect(0, bad, &ClientEvents::new()).await.is_err(), "a wrong password");
    let events = ClientEvents::new();
    let by_token = live.d.connect(0, ConnectOptions::with_token(token), &events).await;
    let _by_token = by_token.expect("token login");
    let guess = ConnectOptions::with_token("pbn_not-a-token".into());
    assert!(live.d.connect(0, guess, &ClientEvents::new()).await.is_err(), "an unknown token");
    live.admin(&["account", "edit", "OTHER", "--active", "false"]).await.success();
    live.admin(&["account", "edit", "NOPE", "--active", "false"]).await;

    let text = get_text(&addr, "/metrics").await;
    let delta = |name: &str| sample(&text, name) - sample(&before, name);
    let exact = [
        (r#"pbn_logins_total{method="password",outcome="admitted"}"#, 3.0),
        (r#"pbn_logins_total{method="password",outcome="bad_password"}"#, 1.0),
        (r#"pbn_logins_total{method="token",outcome="admitted"}"#, 1.0),
        (r#"pbn_logins_total{method="token",outcome="unknown_token"}"#, 1.0),
        (r#"pbn_logins_total{method="nkey",outcome="admitted"}"#, 0.0),
        ("pbn_login_duration_seconds_count", 6.0),
        ("pbn_login_cache_hits_total", 1.0),
        ("pbn_login_cache_misses_total", 3.0),
        ("pbn_argon2_duration_seconds_count", 3.0),
        ("pbn_login_throttle_refusals_total", 0.0),
        (r#"pbn_admin_requests_total{command="token_add",result="ok"}"#, 1.0),
        (r#"pbn_admin_requests_total{command="account_edit",result="ok"}"#, 1.0),
        (r#"pbn_admin_requests_total{command="account_edit",result="error"}"#, 1.0),
        (r#"pbn_pushes_total{result="failed"}"#, 0.0),
    ];
    for (name, want) in exact {
        assert_eq!(delta(name), want, "{name} grew by {} in:\n{text}", delta(name));
    }
    let now = [
        ("pbn_sessions", 4.0),
        (r#"pbn_account_sessions{account="APP"}"#, 4.0),
        (r#"pbn_account_sessions{account="OTHER"}"#, 0.0),
        ("pbn_argon2_waiting", 0.0),
        ("pbn_argon2_running", 0.0),
        ("pbn_outbox_entries", 0.0),
        ("pbn_outbox_oldest_entry_age_seconds", 0.0),
        (r#"pbn_nats_connected{connection="callout"}"#, 1.0),
        (r#"pbn_nats_connected{connection="system"}"#, 1.0),
        (r#"pbn_nats_reconnects_total{connection="callout"}"#, 0.0),
        (r#"pbn_reconcile_runs_total{result="ok"}"#, 1.0),
        (r#"pbn_reconcile_runs_total{result="failed"}"#, 0.0),
        ("pbn_reconcile_differences_total", 0.0),
        ("pbn_push_duration_seconds_count", sample(&text, r#"pbn_pushes_total{result="ok"}"#)),
    ];
    for (name, want) in now {
        assert_eq!(sample(&text, name), want, "{name} in:\n{text}");
    }
    // The account edit waits for its push (the AUTH account's may come with it).
    assert!(delta(r#"pbn_pushes_total{result="ok"}"#) >= 1.0, "{text}");
    let size = std::fs::metadata(live.d.store().path()).expect("the store file").len();
    assert_eq!(sample(&text, "pbn_store_size_bytes"), size as f64, "{text}");
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
