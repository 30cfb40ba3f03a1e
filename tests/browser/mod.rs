//! The web console in a real browser: headless chromium driven over WebDriver ([`driver`]),
//! against the real service (`pbn::run_with_store` with its HTTP listener, as in
//! `tests/console`) on a real nats-server. What a person does: sign in, fill in and submit the
//! console's forms, follow its links and confirmation steps; what the servers then do is
//! checked with real NATS clients.
//!
//! `PBN_SCREENSHOTS=1` also writes the screenshots shown in the README to `docs/`.

mod driver;

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use futures::StreamExt;
use pbn::{AdminPasswd, AdminTokenAdd, PasswordParams, Request, Response, Secret};

use crate::http_api::{Api, PW};
use crate::support::deploy::{ClientEvents, WAIT};
use crate::support::Deadline;
use driver::Chromium;

/// Sets admin `name`'s console password on the store (cheap argon2 parameters).
fn set_password(api: &Api, name: &str) {
    let hash = pbn::hash_password_with(&Secret::new(PW), &PasswordParams::for_tests()).unwrap();
    api.d.admin(Request::AdminPasswd(AdminPasswd { name: name.into(), password_hash: hash }));
}

/// A fresh API token of admin `name`.
fn token(api: &Api, name: &str) -> String {
    let add = AdminTokenAdd { name: name.into(), label: None, expires_secs: None };
    match api.d.admin(Request::AdminTokenAdd(add)) {
        Response::Token { token, .. } => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

/// The service and a browser on its console, with admin `admin`'s password set; `None` when
/// the test is skipped (no chromium outside CI).
async fn start(admin: &str) -> Option<(Api, Chromium)> {
    let bins = driver::binaries()?;
    let api = Api::start().await;
    set_password(&api, admin);
    let browser = Chromium::start(&bins, &format!("http://{}", api.addr)).await;
    Some((api, browser))
}

/// Signs in through the form; the status of the page it leads to.
async fn sign_in(b: &Chromium, name: &str, password: &str) -> u16 {
    b.goto("/signin").await;
    assert_eq!(b.heading().await, "Sign in");
    b.fill("name", name).await;
    b.fill("password", password).await;
    b.submit().await;
    b.status().await
}

/// Opens the form behind the dashboard's link `link`, fills `fields`, confirms it, and
/// checks that the change was made.
async fn create(b: &Chromium, link: &str, fields: &[(&str, &str)]) {
    b.goto("/").await;
    b.click_link(link).await;
    for (name, value) in fields {
        b.fill(name, value).await;
    }
    b.submit().await;
    assert_eq!(b.status().await, 200, "{link}: {}", b.text().await);
    assert!(b.heading().await.starts_with("Done: "), "{link}: {}", b.text().await);
}

/// Logs wendy (of account WEB, role web) in to nats-server and round-trips a message on
/// `web.echo`; the client, whose events go to `events`.
async fn wendy_round_trips(api: &Api, events: &ClientEvents) -> async_nats::Client {
    let opts = ConnectOptions::with_user_and_password("wendy".into(), PW.into())
        .max_reconnects(Some(1))
        .reconnect_delay_callback(|_| Duration::from_millis(100));
    let client = api.d.connect(0, opts, events).await.expect("wendy logs in");
    let mut sub = client.subscribe("web.echo").await.expect("subscribe");
    crate::support::deploy::round_trip(&client).await;
    client.publish("web.echo", "hello".into()).await.expect("publish");
    let got = tokio::time::timeout(WAIT, sub.next()).await.expect("in time").expect("a message");
    assert_eq!(got.payload.as_ref(), b"hello");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_an_admin_makes_a_user_that_logs_in_and_deactivating_it_kicks() {
    let Some((api, b)) = start("ops").await else { return };
    assert_eq!(sign_in(&b, "ops", PW).await, 200);
    assert_eq!(b.heading().await, "Dashboard");

    create(&b, "New account", &[("name", "WEB")]).await;
    let role = [
        ("name", "web"),
        ("role.pub_allow", "web.>\n$SYS.REQ.USER.INFO"),
        ("role.sub_allow", "web.>\n_INBOX.>"),
    ];
    create(&b, "New role", &role).await;
    let user = [("name", "wendy"), ("account", "WEB"), ("role", "web"), ("password", PW)];
    create(&b, "New user", &user).await;

    let events = ClientEvents::new();
    let _client = wendy_round_trips(&api, &events).await;

    b.goto("/").await;
    let dash = b.text().await;
    assert!(dash.contains("WEB"), "the new account is listed: {dash}");
    b.screenshot("console-dashboard.png").await;
    b.goto("/users/wendy").await;
    assert_eq!((b.status().await, b.heading().await), (200, "User wendy".to_string()));
    assert!(b.text().await.contains("WEB"), "{}", b.text().await);
    b.screenshot("console-user.png").await;

    b.click_link("Deactivate").await;
    let confirm = b.text().await;
    assert!(confirm.contains("Confirm"), "a confirmation step: {confirm}");
    let active = b.client.find(fantoccini::Locator::Css("main form [name=\"active\"]")).await;
    let checked = active.expect("an active box").prop("checked").await.expect("checked");
    assert_eq!(checked.as_deref(), Some("false"), "the form deactivates");
    assert!(!events.all().iter().any(|e| matches!(e, Event::Disconnected)), "not before");
    b.submit().await;
    assert_eq!(b.status().await, 200, "{}", b.text().await);
    let deadline = Deadline::after(WAIT, "wendy's connection to close");
    while !events.all().iter().any(|e| matches!(e, Event::Disconnected)) {
        deadline.tick().await;
    }
    let again = ConnectOptions::with_user_and_password("wendy".into(), PW.into());
    assert!(api.d.connect(0, again, &ClientEvents::new()).await.is_err(), "wendy is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_tenant_admin_gets_403_on_another_accounts_pages_and_api() {
    let Some((api, b)) = start("tenant").await else { return };
    assert_eq!(sign_in(&b, "tenant", PW).await, 200);
    b.goto("/accounts/APP").await;
    assert_eq!((b.status().await, b.heading().await), (200, "Account APP".to_string()));
    for page in ["/accounts/OTHER", "/users/olga", "/users?account=OTHER"] {
        b.goto(page).await;
        assert_eq!((b.status().await, b.heading().await), (403, "Refused".into()), "{page}");
    }
    b.goto("/users").await;
    let users = b.text().await;
    assert!(users.contains("alice") && !users.contains("olga"), "{users}");

    let tenant = token(&api, "tenant");
    let own = b.fetch_status("/api/v1/accounts/APP", Some(&tenant)).await;
    assert_eq!(own, 200, "its own account over the API");
    for path in ["/api/v1/accounts/OTHER", "/api/v1/users/olga", "/api/v1/users?account=OTHER"] {
        assert_eq!(b.fetch_status(path, Some(&tenant)).await, 403, "{path}");
        let by_cookie = b.fetch_status(path, None).await;
        assert!(matches!(by_cookie, 401 | 403), "{path} with the session cookie: {by_cookie}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_form_without_its_csrf_token_is_refused_and_wrong_passwords_throttle() {
    let Some((_api, b)) = start("ops").await else { return };
    let remove_csrf = "document.querySelector('main form input[name=csrf]').remove();";

    // The sign-in form, then a change form, each posted with its token removed.
    b.goto("/signin").await;
    b.fill("name", "ops").await;
    b.fill("password", PW).await;
    b.client.execute(remove_csrf, vec![]).await.expect("remove the token");
    b.submit().await;
    assert_eq!((b.status().await, b.heading().await), (403, "Refused".into()));
    assert!(b.text().await.contains("CSRF"), "{}", b.text().await);
    assert_eq!(b.cookie("pbn_session").await, None, "not signed in");
    assert_eq!(sign_in(&b, "ops", PW).await, 200, "with the token it works");

    b.goto("/do/account_add").await;
    b.fill("name", "FORGED").await;
    b.client.execute(remove_csrf, vec![]).await.expect("remove the token");
    b.submit().await;
    assert_eq!((b.status().await, b.heading().await), (403, "Refused".into()));
    b.goto("/accounts/FORGED").await;
    assert_eq!(b.status().await, 404, "no account was made");
    b.goto("/do/account_add").await;
    b.fill("name", "FORGED").await;
    b.submit().await;
    assert_eq!(b.status().await, 200, "the same form with its token: {}", b.text().await);

    // Wrong passwords: refused (401) until the throttle refuses even the right one (429).
    let mut wrong = 0;
    loop {
        match sign_in(&b, "ops", "not-the-password").await {
            401 => wrong += 1,
            429 => break,
            other => panic!("a wrong password answered {other}: {}", b.text().await),
        }
        assert!(wrong <= 20, "still not throttled after {wrong} wrong passwords");
    }
    assert!(wrong >= 3, "throttled only after some failures ({wrong})");
    let before = b.cookie("pbn_session").await;
    assert!(before.is_some(), "still the session of the earlier sign-in");
    b.goto("/signin").await;
    b.fill("name", "ops").await;
    b.fill("password", PW).await;
    b.submit().await;
    assert_eq!(b.status().await, 429, "the right password is throttled too");
    let alert = b.client.find(fantoccini::Locator::Css("main [role=alert]")).await;
    assert!(!alert.expect("an alert").text().await.expect("text").is_empty());
    assert_eq!(b.cookie("pbn_session").await, before, "no new session");
}
