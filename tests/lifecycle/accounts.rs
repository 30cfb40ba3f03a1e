//! Account operations on live sessions: deactivation, emergency and graceful key rotation, creds
//! regeneration and revocation (pushed by the claims publisher, which the service runs).

use std::time::Instant;

use super::{Live, PW};
use crate::support::deploy::DeployOptions;

/// The text nats-server sends a connection whose JWT a pushed revocation voids.
const REVOKED: &str = "User Authentication Revoked";

/// A live deployment with `carl` (APP, role app), who holds creds.
async fn with_carl(opts: DeployOptions) -> Live {
    Live::start(opts, |d| d.add_user("carl", "APP", "app", PW)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_an_account_closes_every_session_in_it_until_reactivated() {
    let live = with_carl(DeployOptions::default()).await;
    let carl_creds = live.creds_for("carl").await;
    let app = [
        live.login("alice").await,
        live.login("bob").await,
        live.connect_creds_on(0, &carl_creds).await,
    ];
    let olga = live.login("olga").await;

    let start = Instant::now();
    live.admin(&["account", "edit", "APP", "--active", "false"]).await.success();
    for conn in &app {
        conn.assert_closed_within(start, 0).await;
    }
    drop(app);
    live.assert_refused("alice").await;
    live.assert_refused("bob").await;
    live.assert_creds_refused_on(0, &carl_creds).await;
    olga.user_info().await;
    assert_eq!(olga.disconnects(), 0, "OTHER is untouched");

    live.admin(&["account", "edit", "APP", "--active", "true"]).await.success();
    let back = live.login("alice").await;
    assert_eq!(back.user_info().await["account"], live.account_key("APP"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_keys_closes_the_account_and_callout_users_come_back_on_the_new_key() {
    let live = with_carl(DeployOptions::default()).await;
    let carl_creds = live.creds_for("carl").await;
    let old_key = live.signing_key("APP");
    let alice = live.login("alice").await;
    let carl = live.connect_creds_on(0, &carl_creds).await;
    let olga = live.login("olga").await;
    assert_eq!(live.issuers("APP", "alice").await, std::slice::from_ref(&old_key));

    let (start, connects) = (Instant::now(), alice.connects());
    let out = live.admin(&["account", "rotate-keys", "APP"]).await;
    out.success();
    let new_key = live.signing_key("APP");
    assert_ne!(new_key, old_key);
    assert!(out.stdout.contains(&format!("new signing key {new_key}")), "{}", out.streams());
    assert!(out.stdout.contains(&format!("removed signing key {old_key}")), "{}", out.streams());
    assert!(out.stdout.contains("\n  carl\n"), "creds holders are named: {}", out.streams());

    alice.assert_closed_within(start, 0).await;
    carl.assert_closed_within(start, 0).await;
    alice.wait_reconnected(connects).await;
    alice.user_info().await;
    assert_eq!(live.issuers("APP", "alice").await, [new_key]);
    drop(carl);
    live.assert_creds_refused_on(0, &carl_creds).await;
    olga.user_info().await;
    assert_eq!(olga.disconnects(), 0, "OTHER is untouched");

    // New creds work again.
    let fresh = live.creds_for("carl").await;
    live.connect_creds_on(0, &fresh).await.user_info().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_rotation_keeps_both_keys_valid_until_the_old_one_is_removed() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let old_key = live.signing_key("APP");
    let alice = live.login("alice").await;

    let out = live.admin(&["account", "signing-key", "add", "APP"]).await;
    out.success();
    let new_key = live.signing_key("APP");
    assert!(out.stdout.contains(&new_key) && out.stdout.contains(&old_key), "{}", out.streams());
    let bob = live.login("bob").await;
    bob.user_info().await;
    assert_eq!(
        live.issuers("APP", "bob").await,
        std::slice::from_ref(&new_key),
        "new logins use the new key"
    );
    alice.user_info().await;
    assert_eq!(alice.disconnects(), 0, "the old key stays valid");
    assert_eq!(live.issuers("APP", "alice").await, std::slice::from_ref(&old_key));

    let (start, connects) = (Instant::now(), alice.connects());
    live.admin(&["account", "signing-key", "remove", "APP", &old_key]).await.success();
    alice.assert_closed_within(start, 0).await;
    alice.wait_reconnected(connects).await;
    alice.user_info().await;
    assert_eq!(live.issuers("APP", "alice").await, std::slice::from_ref(&new_key));
    bob.user_info().await;
    assert_eq!(bob.disconnects(), 0, "sessions of the remaining key stay");

    let last = live.admin(&["account", "signing-key", "remove", "APP", &new_key]).await;
    last.code(2);
    assert!(last.stderr.contains("is the last one"), "{}", last.streams());
}

#[tokio::test(flavor = "multi_thread")]
async fn regenerating_creds_revokes_the_old_ones_on_the_live_server_at_once() {
    let live = with_carl(DeployOptions::default()).await;
    let first = live.creds_for("carl").await;
    let carl = live.connect_creds_on(0, &first).await;

    let start = Instant::now();
    let second = live.creds_for("carl").await;
    carl.assert_closed_within(start, 0).await;
    assert!(carl.has_error(REVOKED), "{:?}", carl.events.server_errors());
    drop(carl);
    live.assert_creds_refused_on(0, &first).await;
    live.connect_creds_on(0, &second).await.user_info().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_a_creds_holder_revokes_its_creds_and_closes_its_sessions() {
    let live = with_carl(DeployOptions::default()).await;
    let creds = live.creds_for("carl").await;
    let by_creds = live.connect_creds_on(0, &creds).await;
    let by_password = live.login("carl").await;

    let start = Instant::now();
    live.admin(&["user", "edit", "carl", "--active", "false"]).await.success();
    by_creds.assert_closed_within(start, 0).await;
    by_password.assert_closed_within(start, 0).await;
    assert!(by_creds.has_error(REVOKED), "{:?}", by_creds.events.server_errors());
    drop((by_creds, by_password));
    live.assert_creds_refused_on(0, &creds).await;
    live.assert_refused("carl").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creds_on_the_other_server_of_a_cluster_are_revoked_too() {
    let live = with_carl(DeployOptions { cluster: Some(2), ..DeployOptions::default() }).await;
    let first = live.creds_for("carl").await;
    let carl = live.connect_creds_on(1, &first).await;

    let start = Instant::now();
    let second = live.creds_for("carl").await;
    carl.assert_closed_within(start, 0).await;
    assert!(carl.has_error(REVOKED), "{:?}", carl.events.server_errors());
    drop(carl);
    live.assert_creds_refused_on(1, &first).await;
    live.connect_creds_on(1, &second).await.user_info().await;
}
