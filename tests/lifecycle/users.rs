//! User and role operations on live sessions: deactivate, delete, new role, new account, role
//! edit; in a cluster too.

use std::time::Instant;

use super::{pub_allow, Live, UserConn};
use crate::support::deploy::{DeployOptions, USER_INFO_SUBJECT};

/// Asserts that `conn` is still connected and was never dropped.
async fn assert_untouched(conn: &UserConn, who: &str) {
    conn.user_info().await;
    assert_eq!(conn.disconnects(), 0, "{who} was disconnected: {:?}", conn.events.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivating_a_user_closes_its_sessions_and_refuses_it_until_reactivated() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let alice = [live.login("alice").await, live.login("alice").await];
    let bob = live.login("bob").await;

    let start = Instant::now();
    live.admin(&["user", "edit", "alice", "--active", "false"]).await.success();
    for conn in &alice {
        conn.assert_closed_within(start, 0).await;
    }
    live.assert_refused("alice").await;
    assert_untouched(&bob, "bob").await;
    drop(alice);

    live.admin(&["user", "edit", "alice", "--active", "true"]).await.success();
    let back = live.login("alice").await;
    back.user_info().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_user_closes_its_sessions_and_refuses_it() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let alice = live.login("alice").await;
    let bob = live.login("bob").await;

    let start = Instant::now();
    live.admin(&["user", "delete", "alice"]).await.success();
    alice.assert_closed_within(start, 0).await;
    live.assert_refused("alice").await;
    assert_untouched(&bob, "bob").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_role_closes_the_session_and_the_reconnect_gets_its_permissions() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let alice = live.login("alice").await;
    assert_eq!(pub_allow(&alice.user_info().await), [USER_INFO_SUBJECT, "app.>"]);

    // Edits that change nothing the server enforces leave the session alone.
    live.admin(&["user", "edit", "alice", "--role", "app", "--email", "a@example.com"])
        .await
        .success();
    assert_untouched(&alice, "alice").await;

    let (start, connects) = (Instant::now(), alice.connects());
    live.admin(&["user", "edit", "alice", "--role", "ops"]).await.success();
    alice.assert_closed_within(start, 0).await;
    alice.wait_reconnected(connects).await;
    assert_eq!(pub_allow(&alice.user_info().await), [USER_INFO_SUBJECT, "ops.>"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn moving_a_user_reconnects_it_into_the_new_account() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let alice = live.login("alice").await;
    assert_eq!(alice.user_info().await["account"], live.account_key("APP"));

    let (start, connects) = (Instant::now(), alice.connects());
    live.admin(&["user", "edit", "alice", "--account", "OTHER"]).await.success();
    alice.assert_closed_within(start, 0).await;
    alice.wait_reconnected(connects).await;
    assert_eq!(alice.user_info().await["account"], live.account_key("OTHER"));
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_a_role_closes_its_users_sessions_who_reconnect_with_the_new_permissions() {
    let live = Live::start(DeployOptions::default(), |d| {
        d.add_user("otto", "OTHER", "ops", super::PW);
        d.add_user("carl", "APP", "app", super::PW);
    })
    .await;
    let users = [live.login("alice").await, live.login("bob").await, live.login("olga").await];
    let otto = live.login("otto").await;
    let carl_creds = live.creds_for("carl").await;
    let carl = live.connect_creds_on(0, &carl_creds).await;

    // A description changes no grant: nobody is closed.
    live.admin(&["role", "edit", "app", "--description", "words"]).await.success();
    for u in &users {
        assert_untouched(u, "a user of app").await;
    }
    assert_untouched(&carl, "carl (creds)").await;

    let connects: Vec<usize> = users.iter().map(UserConn::connects).collect();
    let start = Instant::now();
    live.admin(&["role", "edit", "app", "--pub", "app2.>", "--pub", USER_INFO_SUBJECT])
        .await
        .success();
    for (u, before) in users.iter().zip(connects) {
        u.assert_closed_within(start, 0).await;
        u.wait_reconnected(before).await;
        assert_eq!(pub_allow(&u.user_info().await), [USER_INFO_SUBJECT, "app2.>"]);
    }
    assert_untouched(&otto, "otto (role ops)").await;
    // Creds carry the old grants in their JWT: they are revoked, on the live server at once.
    carl.assert_closed_within(start, 0).await;
    assert!(carl.has_error("User Authentication Revoked"), "{:?}", carl.events.all());
    drop(carl);
    live.assert_creds_refused_on(0, &carl_creds).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_on_the_server_the_service_is_not_connected_to_is_closed_too() {
    let opts = DeployOptions { cluster: Some(2), ..DeployOptions::default() };
    let live = Live::start(opts, |_| {}).await;
    assert_eq!(live.home, 0);
    let alice = live.login_on(1, "alice").await;
    let bob = live.login_on(1, "bob").await;

    let start = Instant::now();
    live.admin(&["user", "edit", "alice", "--active", "false"]).await.success();
    alice.assert_closed_within(start, 0).await;
    drop(alice);
    live.assert_refused_on(1, "alice").await;
    assert_untouched(&bob, "bob").await;

    let (start, connects) = (Instant::now(), bob.connects());
    live.admin(&["user", "edit", "bob", "--role", "ops"]).await.success();
    bob.assert_closed_within(start, 0).await;
    bob.wait_reconnected(connects).await;
    assert_eq!(pub_allow(&bob.user_info().await), [USER_INFO_SUBJECT, "ops.>"]);
}
