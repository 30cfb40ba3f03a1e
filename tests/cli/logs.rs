//! The logs of `pbn serve` (the real binary, `--log debug --log-format json`) through a whole
//! scenario with real passwords, tokens and seeds: every line is JSON, a refused login is one
//! line with its reason, and no secret the scenario used or the store holds appears anywhere.

use std::time::Duration;

use async_nats::ConnectOptions;

use super::bad_input::stored_secrets;
use super::Deployment;
use crate::support::pbn::Pbn;
use crate::support::{free_port, wait_until};

const PASSWORD: &str = "a-long-and-secret-password";
const WRONG: &str = "a-wrong-but-secret-password";

#[tokio::test]
async fn serve_logs_are_json_name_refusals_and_never_hold_a_secret() {
    let d = Deployment::init();
    d.ok(&["account", "add", "app"]);
    d.ok(&["role", "add", "all"]);
    let add = ["user", "add", "alice", "--account", "app", "--role", "all", "--password-stdin"];
    Pbn::new(["admin", "--store"]).args([&d.store]).args(add).stdin(PASSWORD).run().success();
    let token = d.ok(&["--json", "user", "token", "add", "alice"]).json();
    let token = token["data"]["token"].as_str().expect("a token").to_string();
    // Read before the service holds the store.
    let mut secrets = stored_secrets(&d.store);
    let port = free_port();
    let _server = d.start_server(port).await;
    let url = format!("nats://127.0.0.1:{port}");
    let log = d.dir().join("serve.log");
    let serve = Pbn::new(["serve", "--store"])
        .args([&d.store])
        .args(["--server", &url, "--log", "debug", "--log-format", "json"])
        .spawn_logged(&log);
    wait_until(Duration::from_secs(40), "the callout to subscribe", || {
        serve.log().contains("callout subscribed")
    })
    .await;
    let good = ConnectOptions::with_user_and_password("alice".into(), PASSWORD.into());
    drop(good.connect(&url).await.expect("alice logs in"));
    let bad = ConnectOptions::with_user_and_password("alice".into(), WRONG.into());
    assert!(bad.connect(&url).await.is_err(), "a wrong password");
    let by_token = ConnectOptions::with_token(token.clone()).connect(&url).await;
    drop(by_token.expect("token login"));
    wait_until(Duration::from_secs(10), "the refusal logged", || {
        serve.log().contains("bad_password")
    })
    .await;

    let text = serve.log();
    secrets.extend([PASSWORD.to_string(), WRONG.to_string(), token]);
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret ({} chars) in the logs", s.len());
    }
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let refused: Vec<_> =
        lines.iter().filter(|l| l["fields"]["message"] == "callout login refused").collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["level"], "INFO");
    assert_eq!(refused[0]["fields"]["reason"], "bad_password", "{text}");
    let admitted = lines.iter().filter(|l| l["fields"]["message"] == "callout admitted").count();
    assert_eq!(admitted, 2, "{text}");
}

/// `log_format = "json"` in the config file of `pbn serve --config` turns on JSON lines; a bad
/// value is refused naming it.
#[tokio::test]
async fn the_config_file_sets_the_log_format_and_a_bad_one_is_refused() {
    let d = Deployment::init();
    let config = d.dir().join("pbn.toml");
    let store = d.store.display().to_string();
    let port = free_port();
    let text = format!(
        "store = {store:?}\nservers = [\"nats://127.0.0.1:{port}\"]\nlog_format = \"json\"\n"
    );
    std::fs::write(&config, text).expect("write the config");
    let serve =
        Pbn::new(["serve", "--config"]).args([&config]).spawn_logged(&d.dir().join("s.log"));
    wait_until(Duration::from_secs(20), "pbn serve to log its start", || {
        serve.log().contains("pbn serve started")
    })
    .await;
    for line in serve.log().lines() {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(json["level"].is_string(), "{line}");
    }
    drop(serve);

    std::fs::write(&config, format!("store = {store:?}\nlog_format = \"xml\"\n")).expect("write");
    let out = Pbn::new(["serve", "--config"]).args([&config]).run();
    out.code(2);
    assert!(out.stderr.contains("log_format") && out.stderr.contains("xml"), "{}", out.stderr);
}
