//! Audit events on NATS: a subscriber on `pbn.audit.>` gets exactly one event per login attempt
//! and one per committed admin change (reads publish none), and `pbn admin audit tail` follows
//! them with the admin creds.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subscriber};
use futures::StreamExt;
use serde_json::Value;

use super::{Live, PW};
use crate::support::deploy::{round_trip, sys_user_options, ClientEvents, DeployOptions};
use crate::support::Deadline;

/// The next event on `sub`, within a deadline.
async fn next(sub: &mut Subscriber) -> (String, Value) {
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an audit event within 10 s")
        .expect("the subscription is open");
    let json = serde_json::from_slice(&msg.payload).expect("events are JSON");
    (msg.subject.to_string(), json)
}

async fn audit_subscriber(live: &Live) -> (Client, Subscriber) {
    let sys = live.d.account(pbn::SYS_ACCOUNT);
    let client = sys_user_options(&sys).connect(live.d.url(0)).await.expect("a system user");
    let sub = client.subscribe("pbn.audit.>").await.expect("subscribe");
    round_trip(&client).await;
    (client, sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_login_attempt_and_per_admin_change() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let (_client, mut sub) = audit_subscriber(&live).await;
    let _alice = live.login("alice").await;
    let _bob = live.login("bob").await;
    let bad = ConnectOptions::with_user_and_password("olga".into(), format!("not-{PW}"));
    assert!(live.d.connect(0, bad, &ClientEvents::new()).await.is_err(), "a wrong password");
    live.admin(&["user", "list"]).await.success();
    live.admin(&["account", "edit", "OTHER", "--active", "false"]).await.success();
    live.admin(&["user", "edit", "olga", "--active", "false"]).await.success();
    live.admin(&["user", "show", "olga"]).await.success();
    // The last change: events are published in order, so nothing may come between the
    // expected ones and this.
    live.admin(&["account", "edit", "OTHER", "--active", "true"]).await.success();

    let mut logins = Vec::new();
    let mut admins = Vec::new();
    while admins.len() < 3 {
        let (subject, event) = next(&mut sub).await;
        assert_eq!(event["version"], 1, "{event}");
        assert!(event["id"].is_string() && event["time"].is_string(), "{event}");
        let text = event.to_string();
        assert!(!text.contains(PW), "a password in an event: {text}");
        match event["type"].as_str() {
            Some("pbn.audit.login") => logins.push((subject, event)),
            Some("pbn.audit.admin") => admins.push((subject, event)),
            _ => panic!("unexpected event on {subject}: {event}"),
        }
    }
    let app = live.account_key("APP");
    let login_subjects: Vec<&str> = logins.iter().map(|(s, _)| s.as_str()).collect();
    let admitted = format!("pbn.audit.login.{app}.admitted");
    let want = [admitted.as_str(), &admitted, "pbn.audit.login.unknown.refused"];
    assert_eq!(login_subjects, want, "{logins:?}");
    let refused = &logins[2].1;
    assert_eq!(
        (&refused["user"], &refused["method"], &refused["reason"], &refused["outcome"]),
        (
            &Value::from("olga"),
            &Value::from("password"),
            &Value::from("bad_password"),
            &Value::from("refused")
        )
    );
    assert_eq!(refused["client_host"], "127.0.0.1", "{refused}");
    assert_eq!(refused["server_id"].as_str().map(|s| s.len()), Some(56), "{refused}");
    let commands: Vec<&str> = admins.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        commands,
        [
            "pbn.audit.admin.account_edit",
            "pbn.audit.admin.user_edit",
            "pbn.audit.admin.account_edit"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tail_follows_events_with_the_admin_creds() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let creds = live.creds.clone();
    let url = live.d.url(0);
    let tail = tokio::task::spawn_blocking(move || {
        crate::support::pbn::Pbn::new(["admin", "--server", &url, "--creds"])
            .args([&creds])
            .args(["audit", "tail", "--count", "2", "--subject", "pbn.audit.admin.>"])
            .run()
    });
    // The tail subscribes at some point: changes are made until it has seen two.
    let deadline = Deadline::after(Duration::from_secs(30), "the tail to see two changes");
    let mut active = false;
    while !tail.is_finished() {
        let value = if active { "true" } else { "false" };
        live.admin(&["user", "edit", "olga", "--active", value]).await.success();
        active = !active;
        deadline.tick().await;
    }
    let out = tail.await.expect("the tail ran");
    out.success();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event a line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    for event in lines {
        assert_eq!(
            (event["type"].as_str(), event["command"].as_str()),
            (Some("pbn.audit.admin"), Some("user_edit"))
        );
    }
}

#[test]
fn audit_tail_without_a_server_is_a_usage_error() {
    let out = crate::support::pbn::Pbn::new(["admin", "audit", "tail"]).run();
    out.code(2);
}

/// With `audit = false` nothing is published: the first message a subscriber gets after a
/// login and a change is the marker the test sends itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_off_publishes_no_event() {
    let config = pbn::RawConfig { audit: Some(false), ..pbn::RawConfig::default() };
    let live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    let (client, mut sub) = audit_subscriber(&live).await;
    let _alice = live.login("alice").await;
    live.admin(&["user", "edit", "olga", "--active", "false"]).await.success();
    client.publish("pbn.audit.marker", "{}".into()).await.expect("publish the marker");
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next()).await;
    let subject = msg.expect("the marker within 10 s").expect("open").subject;
    assert_eq!(subject.as_str(), "pbn.audit.marker");
}
