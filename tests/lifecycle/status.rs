//! `pbn status`, read from the HTTP listener and through NATS with the admin creds: the same
//! figures, matching the logins a test made.

use async_nats::ConnectOptions;
use pbn::RawConfig;
use serde_json::Value;

use super::{Live, PW};
use crate::support::deploy::{ClientEvents, DeployOptions};
use crate::support::free_port;
use crate::support::pbn::Pbn;

async fn status(args: Vec<String>) -> crate::support::pbn::PbnOutput {
    tokio::task::spawn_blocking(move || Pbn::new(["status"]).args(args).run()).await.expect("ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_connections_sessions_and_the_last_minutes_logins() {
    let addr = format!("127.0.0.1:{}", free_port());
    let config = RawConfig { http: Some(addr.clone()), ..RawConfig::default() };
    let live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    let _alice = live.login("alice").await;
    let _bob = live.login("bob").await;
    let bad = ConnectOptions::with_user_and_password("bob".into(), format!("x{PW}"));
    assert!(live.d.connect(0, bad, &ClientEvents::new()).await.is_err(), "a wrong password");

    let local = status(vec!["--http".into(), addr.clone(), "--json".into()]).await;
    let creds = live.creds.to_str().expect("utf-8 path").to_string();
    let remote = vec!["--server".into(), live.d.url(0), "--creds".into(), creds, "--json".into()];
    let remote = status(remote).await;
    for out in [&local, &remote] {
        let s: Value = out.success().json();
        assert_eq!(s["version"], env!("CARGO_PKG_VERSION"), "{s}");
        assert_eq!(s["sessions"], 2, "{s}");
        assert_eq!(
            (s["logins_last_minute"].as_u64(), s["refusals_last_minute"].as_u64()),
            (Some(3), Some(1)),
            "{s}"
        );
        assert_eq!(s["callout_subscribed"], true, "{s}");
        assert_eq!(s["publisher_failing"], false, "{s}");
        for c in ["callout", "system"] {
            let state = s[c]["state"].as_str().expect("a state");
            assert!(state.starts_with("connected to primary"), "{s}");
            assert!(s[c]["server"].is_string(), "{s}");
        }
    }
    let text = status(vec!["--http".into(), addr]).await;
    let text = &text.success().stdout;
    assert!(text.contains("sessions:            2"), "{text}");
    assert!(text.contains("last minute:         3 logins, 1 refused"), "{text}");
}

#[test]
fn status_without_a_service_fails_naming_the_address() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = Pbn::new(["status", "--http", &addr]).run();
    out.code(1);
    assert!(out.stderr.contains(&addr), "{}", out.stderr);
}
