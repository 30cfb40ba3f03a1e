use super::*;

fn scrape(sessions: &[(&str, usize)]) -> Scrape {
    Scrape {
        sessions: sessions.iter().map(|(_, n)| n).sum(),
        sessions_by_account: sessions.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
        outbox_entries: 1,
        outbox_oldest_age: Duration::from_millis(1500),
        store_bytes: 4096,
    }
}

#[test]
fn logins_are_counted_by_method_and_outcome_in_prometheus_text() {
    let m = Metrics::new();
    m.login("password", None, Duration::from_millis(1));
    m.login("token", None, Duration::from_millis(3));
    m.login("password", Some("bad_password"), Duration::from_millis(30));
    m.login("password", Some("throttled"), Duration::from_millis(1));
    let text = m.encode(&scrape(&[("APP", 2), ("OTHER", 0)]));
    for line in [
        r#"pbn_logins_total{method="password",outcome="admitted"} 1"#,
        r#"pbn_logins_total{method="token",outcome="admitted"} 1"#,
        r#"pbn_logins_total{method="nkey",outcome="admitted"} 0"#,
        r#"pbn_logins_total{method="password",outcome="bad_password"} 1"#,
        "pbn_login_throttle_refusals_total 1",
        "pbn_login_duration_seconds_count 4",
        "pbn_sessions 2",
        r#"pbn_account_sessions{account="APP"} 2"#,
        r#"pbn_account_sessions{account="OTHER"} 0"#,
        "pbn_outbox_entries 1",
        "pbn_outbox_oldest_entry_age_seconds 1.5",
        "pbn_store_size_bytes 4096",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}

#[test]
fn accounts_past_the_cap_are_summed_under_other() {
    let m = Metrics::new();
    let many: Vec<(String, usize)> =
        (0..ACCOUNT_LABELS_MAX + 3).map(|i| (format!("ACC{i:03}"), 2)).collect();
    let text = m.encode(&Scrape { sessions_by_account: many, ..Scrape::default() });
    let series = text.lines().filter(|l| l.starts_with("pbn_account_sessions{")).count();
    assert_eq!(series, ACCOUNT_LABELS_MAX + 1, "{text}");
    assert!(text.lines().any(|l| l == r#"pbn_account_sessions{account="other"} 6"#), "{text}");
    assert!(text.lines().any(|l| l == r#"pbn_account_sessions{account="ACC000"} 2"#), "{text}");
}

#[test]
fn guards_hold_the_argon_gauges_while_they_live() {
    let m = Metrics::new();
    let waiting = m.argon_waiting();
    let running = (m.argon_running(), m.argon_running());
    assert_eq!((m.argon_waiting.get(), m.argon_running.get()), (1, 2));
    drop(waiting);
    drop(running);
    assert_eq!((m.argon_waiting.get(), m.argon_running.get()), (0, 0));
}

#[tokio::test]
async fn a_connection_counts_reconnects_after_its_first_connect() {
    let m = std::sync::Arc::new(Metrics::new());
    let (state, rx) = watch::channel(ConnState::Bootstrapping);
    let (_stop, shutdown) = watch::channel(false);
    let task = tokio::spawn({
        let m = m.clone();
        async move { m.watch_connection("system", rx, shutdown).await }
    });
    let connected = || ConnState::Connected { url: "nats://x".into(), primary: true };
    for s in [connected(), ConnState::Reconnecting, connected(), ConnState::Reconnecting] {
        state.send_replace(s);
        tokio::task::yield_now().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while state.receiver_count() > 0 && state.borrow().clone() != current(&m) {
            assert!(tokio::time::Instant::now() < deadline, "the watcher never caught up");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    drop(state);
    task.await.unwrap();
    let labels = ConnectionLabels { connection: "system" };
    assert_eq!(m.nats_reconnects.get_or_create(&labels).get(), 1);
    assert_eq!(m.nats_connected.get_or_create(&labels).get(), 0);
}

/// The state the gauge shows (only connected or not can be read back).
fn current(m: &Metrics) -> ConnState {
    match m.nats_connected.get_or_create(&ConnectionLabels { connection: "system" }).get() {
        1 => ConnState::Connected { url: "nats://x".into(), primary: true },
        _ => ConnState::Reconnecting,
    }
}
