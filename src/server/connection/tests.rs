//! Unit tests of the connection module that need no nats-server (the integration tests in
//! `tests/connection.rs` cover failover against real servers).

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::dial::Dialer;
use super::*;
use crate::keys::{KeyKind, KeyPair};

fn settings(servers: &[&str]) -> ConnectionSettings {
    ConnectionSettings {
        servers: servers.iter().map(|s| (*s).to_owned()).collect(),
        name: "unit".to_owned(),
        connect_timeout: Duration::from_millis(500),
        ..ConnectionSettings::default()
    }
}

fn dialer(settings: ConnectionSettings, auth: ConnectionAuth) -> Dialer {
    let (events, _) = mpsc::unbounded_channel();
    Dialer::new(settings, auth, events).expect("valid test settings")
}

#[test]
fn defaults_are_valid_and_sensible() {
    let defaults = ConnectionSettings::default();
    defaults.validate().expect("defaults validate");
    assert!(defaults.retry_backoff_base <= defaults.retry_backoff_max);
    assert!(defaults.failback_healthy_checks >= 2, "one lucky probe must not trigger failback");
    assert!(defaults.connect_timeout < defaults.request_timeout);
}

#[test]
fn validation_rejects_each_bad_setting() {
    let empty = ConnectionSettings { servers: vec![], ..ConnectionSettings::default() };
    assert!(matches!(empty.validate(), Err(ConnectionError::NoServers)));

    let bad_url = settings(&["nats://127.0.0.1:4222", "http://example.com"]);
    match bad_url.validate() {
        Err(ConnectionError::InvalidServerUrl { url, .. }) => assert_eq!(url, "http://example.com"),
        other => panic!("expected InvalidServerUrl, got {other:?}"),
    }

    let zero = ConnectionSettings { ping_interval: Duration::ZERO, ..settings(&["nats://h:1"]) };
    assert!(matches!(
        zero.validate(),
        Err(ConnectionError::InvalidSetting { name: "ping_interval", .. })
    ));

    let inverted = ConnectionSettings {
        retry_backoff_base: Duration::from_secs(2),
        retry_backoff_max: Duration::from_secs(1),
        ..settings(&["nats://h:1"])
    };
    assert!(matches!(
        inverted.validate(),
        Err(ConnectionError::InvalidSetting { name: "retry_backoff_max", .. })
    ));

    let no_checks = ConnectionSettings { failback_healthy_checks: 0, ..settings(&["nats://h:1"]) };
    assert!(matches!(
        no_checks.validate(),
        Err(ConnectionError::InvalidSetting { name: "failback_healthy_checks", .. })
    ));
}

#[test]
fn invalid_url_errors_hide_the_password() {
    let bad = settings(&["http://user:hunter2@example.com"]);
    let err = bad.validate().expect_err("http is not a nats scheme");
    assert!(matches!(err, ConnectionError::InvalidServerUrl { .. }));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn backoff_doubles_from_the_base_up_to_the_cap() {
    let s = ConnectionSettings {
        retry_backoff_base: Duration::from_millis(100),
        retry_backoff_max: Duration::from_millis(700),
        ..ConnectionSettings::default()
    };
    let delays: Vec<u64> = (0..6).map(|n| s.backoff(n).as_millis() as u64).collect();
    assert_eq!(delays, vec![0, 100, 200, 400, 700, 700]);
    assert_eq!(s.backoff(u32::MAX), Duration::from_millis(700), "no overflow on long outages");
}

#[test]
fn redact_url_hides_user_info_only() {
    assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    assert_eq!(redact_url("nats://user:secret@host:4222"), "nats://***@host:4222");
    assert_eq!(redact_url("tls://token@host"), "tls://***@host");
    assert_eq!(redact_url("user:pw@host:4222"), "***@host:4222");
    assert_eq!(redact_url("ws://host:80/path@x"), "ws://host:80/path@x");
    assert_eq!(redact_url("nats://a:b@c@host"), "nats://***@host");
}

#[test]
fn credentials_and_auth_debug_show_no_secret() {
    let user = KeyPair::generate(KeyKind::User);
    let seed = user.seed();
    let secret_seed = seed.expose().to_owned();
    let credentials = Credentials { jwt: "eyJhbGciOi.secret-payload.sig".to_owned(), seed };
    let shown = format!("{credentials:?}");
    assert!(!shown.contains(&secret_seed), "{shown}");
    assert!(!shown.contains("secret-payload"), "{shown}");

    let auth = ConnectionAuth::jwt(|| Err("unused".into()));
    assert_eq!(format!("{auth:?}"), "Jwt(<provider>)");
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let (_tx, rx) = watch::channel(false);
    let result = Connection::start(settings(&["nats://127.0.0.1:1"]), ConnectionAuth::Plain, rx);
    assert!(matches!(result, Err(ConnectionError::NoRuntime { .. })));
}

#[tokio::test]
async fn start_refuses_invalid_settings() {
    let (_tx, rx) = watch::channel(false);
    let result = Connection::start(settings(&[]), ConnectionAuth::Plain, rx);
    assert!(matches!(result, Err(ConnectionError::NoServers)));
}

#[tokio::test]
async fn a_failing_provider_fails_the_dial_before_any_network_io() {
    let auth = ConnectionAuth::jwt(|| Err("service user missing".into()));
    let dialer = dialer(settings(&["nats://127.0.0.1:1"]), auth);
    match dialer.dial(0).await {
        Err(ConnectionError::Credentials { source, .. }) => {
            assert_eq!(source.to_string(), "service user missing");
        }
        other => panic!("expected Credentials, got {other:?}"),
    }
}

#[tokio::test]
async fn a_panicking_provider_is_reported_not_propagated() {
    let auth = ConnectionAuth::jwt(|| panic!("provider bug"));
    let dialer = dialer(settings(&["nats://127.0.0.1:1"]), auth);
    assert!(matches!(dialer.dial(0).await, Err(ConnectionError::Credentials { .. })));
}

#[tokio::test]
async fn a_non_user_seed_is_refused() {
    let account_seed = KeyPair::generate(KeyKind::Account).seed();
    let auth = ConnectionAuth::jwt(move || {
        Ok(Credentials { jwt: "jwt".to_owned(), seed: Seed::new(account_seed.expose())? })
    });
    let dialer = dialer(settings(&["nats://127.0.0.1:1"]), auth);
    assert!(matches!(dialer.dial(0).await, Err(ConnectionError::InvalidSeed { .. })));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("bound").port();
    drop(listener);
    let dialer = dialer(settings(&[&format!("nats://127.0.0.1:{port}")]), ConnectionAuth::Plain);
    assert!(matches!(dialer.dial(0).await, Err(ConnectionError::Connect { .. })));
}

/// A fake server that accepts TCP connections and sends INFO, then never answers (a hung
/// process): reachable, but not healthy.
async fn stalled_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("bound").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let info = format!(
                "INFO {{\"server_id\":\"FAKE\",\"version\":\"2.10.0\",\"proto\":1,\
                 \"host\":\"127.0.0.1\",\"port\":{port},\"max_payload\":1048576}}\r\n"
            );
            if stream.write_all(info.as_bytes()).await.is_ok() {
                held.push(stream);
            }
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_primary_that_accepts_but_never_answers_fails_the_probe_in_time() {
    let (port, server) = stalled_server().await;
    let timeout = Duration::from_millis(300);
    let s = ConnectionSettings {
        connect_timeout: timeout,
        ..settings(&[&format!("nats://127.0.0.1:{port}")])
    };
    let dialer = dialer(s, ConnectionAuth::Plain);
    let started = std::time::Instant::now();
    let result = dialer.probe_primary().await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(ConnectionError::Connect { .. } | ConnectionError::Timeout { .. })),
        "a hung primary must not count as healthy: {result:?}"
    );
    assert!(elapsed >= timeout, "failed before the timeout: {elapsed:?}");
    assert!(elapsed < timeout * 5, "the probe is bounded by connect_timeout: {elapsed:?}");
    server.abort();
}
