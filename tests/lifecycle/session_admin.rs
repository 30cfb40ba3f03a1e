//! `pbn admin session list` and `session kick` against the running service: the live
//! connections it admitted, and ending one without changing any record.

use std::time::Instant;

use serde_json::Value;

use super::Live;
use crate::support::deploy::DeployOptions;
use crate::support::wait_until_async;

/// The sessions `session list ARGS…` shows (its `--json` form).
async fn sessions(live: &Live, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["--json", "session", "list"];
    full.extend_from_slice(args);
    let out = live.admin(&full).await;
    let v = out.success().json();
    assert_eq!(v["kind"], "sessions", "{v}");
    v["data"].as_array().cloned().unwrap_or_default()
}

fn of_user<'a>(list: &'a [Value], user: &str) -> Vec<&'a Value> {
    list.iter().filter(|s| s["user"] == user).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn session_list_shows_the_connection_and_kick_ends_it_without_changing_the_user() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let before = live.admin(&["--json", "user", "show", "alice"]).await.success().json();
    let start = pbn::unix_now();
    let alice = live.login("alice").await;
    let _bob = live.login("bob").await;
    let _olga = live.login("olga").await;

    let all = sessions(&live, &[]).await;
    let mine = of_user(&all, "alice");
    assert_eq!(mine.len(), 1, "{all:?}");
    let s = mine[0];
    assert_eq!(s["account"], "APP");
    assert_eq!(s["host"], "127.0.0.1");
    assert_eq!(s["method"], "password");
    assert_eq!(s["server"], alice.client.server_info().server_id.as_str());
    let since = s["since"].as_i64().expect("since");
    assert!(since >= start - 1 && since <= pbn::unix_now(), "{s}");
    assert!(s["expires"].as_i64().expect("an expiry") > since, "{s}");
    let id = s["id"].as_str().expect("an id").to_string();
    assert_eq!(id, format!("{}@{}", s["client_id"], s["server"].as_str().unwrap()));

    // Filters.
    let other = sessions(&live, &["--account", "OTHER"]).await;
    assert_eq!(other.iter().map(|s| &s["user"]).collect::<Vec<_>>(), ["olga"]);
    let bobs = sessions(&live, &["--user", "bob"]).await;
    assert_eq!(bobs.iter().map(|s| &s["user"]).collect::<Vec<_>>(), ["bob"]);

    // The kick ends exactly that connection; the client logs in again, the record is unchanged.
    let (kicked_at, connects) = (Instant::now(), alice.connects());
    live.admin(&["session", "kick", &id]).await.success();
    alice.assert_closed_within(kicked_at, 0).await;
    alice.wait_reconnected(connects).await;
    alice.user_info().await;
    let after = live.admin(&["--json", "user", "show", "alice"]).await.success().json();
    assert_eq!(before, after, "a kick changes no record");
    wait_until_async(crate::support::deploy::WAIT, "alice's new session to be listed", || async {
        let all = sessions(&live, &["--user", "alice"]).await;
        all.len() == 1 && all[0]["id"] != id.as_str()
    })
    .await;

    // An id that names no session is not found (exit 3); --user ends every session of the user.
    live.admin(&["session", "kick", &id]).await.code(3);
    let (kicked_at, bob) = (Instant::now(), &_bob);
    live.admin(&["session", "kick", "--user", "bob"]).await.success();
    bob.assert_closed_within(kicked_at, 0).await;
}
