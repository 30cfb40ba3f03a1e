//! Account operations on live sessions: deactivation and reactivation; signing keys and creds
//! (which need the claims publisher to push the account).

use std::time::Instant;

use super::Live;
use crate::support::deploy::DeployOptions;

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_an_account_closes_every_session_in_it_until_reactivated() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let app = [live.login("alice").await, live.login("bob").await];
    let olga = live.login("olga").await;

    let start = Instant::now();
    live.admin(&["account", "edit", "APP", "--active", "false"]).await.success();
    for conn in &app {
        conn.assert_closed_within(start, 0).await;
    }
    drop(app);
    live.assert_refused("alice").await;
    live.assert_refused("bob").await;
    olga.user_info().await;
    assert_eq!(olga.disconnects(), 0, "OTHER is untouched");

    live.admin(&["account", "edit", "APP", "--active", "true"]).await.success();
    let back = live.login("alice").await;
    assert_eq!(back.user_info().await["account"], live.account_key("APP"));
}
