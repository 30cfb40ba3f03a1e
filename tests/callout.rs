//! The auth callout against real nats-servers: logins by password, token, nkey and sentinel
//! creds land in the right account with exactly the role's permissions; refused logins carry
//! their reason in the AUTH account's auth-error advisory; forged requests get no JWT; queue
//! groups, clusters, reconnect storms and JWT expiry behave.
//!
//! Every deployment comes from `support::deploy` (store via `admin`, configs via `natsconf`,
//! callout in this process). The advisory reason is the only place the callout's error text
//! reaches, so rejections compare it with the `Display` of the expected [`CalloutError`].

pub(crate) mod attack;
mod forged;
mod storm;

use pbn::{AccountEdit, TokenAdd, UserEdit};
use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions};
use futures::StreamExt;
use pbn::keys::{KeyKind, KeyPair};
use pbn::CalloutError;
use pbn::{ListPatch, Request, Response, RolePatch};
use pbn::{CALLOUT_SUBJECT, XKEY_HEADER};
use serde_json::Value;

use crate::support::deploy::{
    callout_reason, round_trip, AuthErrors, ClientEvents, DeployOptions, Deployment,
    USER_INFO_SUBJECT as USER_INFO, WAIT,
};
use crate::support::wait_until;

/// Password of every test user (URL-safe, for the URL-only login).
const PW: &str = "correct-horse-battery-staple";

/// The role most tests use: publish `app.>` except `app.secret`, subscribe `app.>`, plus what
/// a `$SYS.REQ.USER.INFO` request needs.
fn app_role() -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec!["app.>".into(), USER_INFO.into()]),
        pub_deny: ListPatch::Set(vec!["app.secret".into()]),
        sub_allow: ListPatch::Set(vec!["app.>".into(), "_INBOX.>".into()]),
        ..RolePatch::default()
    }
}

/// Accounts APP and OTHER, role `app`, users `alice` (APP) and `olga` (OTHER); not started.
fn setup(opts: DeployOptions) -> Deployment {
    let d = Deployment::new(opts);
    d.add_account("APP");
    d.add_account("OTHER");
    d.add_role("app", app_role());
    d.add_user("alice", "APP", "app", PW);
    d.add_user("olga", "OTHER", "app", PW);
    d
}

/// [`setup`], started.
async fn started(opts: DeployOptions) -> Deployment {
    let mut d = setup(opts);
    d.start().await;
    d
}

/// Password connect options.
fn password(user: &str, pw: &str) -> ConnectOptions {
    ConnectOptions::with_user_and_password(user.into(), pw.into())
}

/// The `data` of the server's answer to `$SYS.REQ.USER.INFO` from `client`.
async fn user_info(client: &async_nats::Client) -> Value {
    let reply = tokio::time::timeout(WAIT, client.request(USER_INFO, "".into()))
        .await
        .expect("user info within the deadline")
        .expect("user info request");
    let v: Value = serde_json::from_slice(&reply.payload).expect("user info is JSON");
    v["data"].clone()
}

/// Asserts that `client` was placed in account `name`.
async fn assert_account(d: &Deployment, client: &async_nats::Client, name: &str) {
    let info = user_info(client).await;
    assert_eq!(info["account"].as_str(), Some(d.account(name).public_key.as_str()), "{info}");
}

/// A JSON array of strings, sorted (an absent list is empty).
fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect();
    out.sort();
    out
}

/// Asserts that connecting to server 0 with `opts` is refused and that the advisory carries
/// `reason`.
async fn assert_rejected(
    d: &Deployment,
    errors: &mut AuthErrors,
    opts: ConnectOptions,
    reason: &str,
) {
    match d.connect(0, opts, &ClientEvents::new()).await {
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
        Ok(_) => panic!("admitted, but expected a rejection with {reason:?}"),
    }
    assert_eq!(errors.next_reason().await, reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn password_login_lands_in_its_account_with_exactly_the_role_permissions() {
    let d = started(DeployOptions::default()).await;
    let events = ClientEvents::new();
    let alice = d.login("alice", PW, &events).await;

    let info = user_info(&alice).await;
    assert_eq!(info["account"].as_str(), Some(d.account("APP").public_key.as_str()));
    let perms = &info["permissions"];
    assert_eq!(sorted(&perms["publish"]["allow"]), [USER_INFO, "app.>"]);
    assert_eq!(sorted(&perms["publish"]["deny"]), ["app.secret"]);
    assert_eq!(sorted(&perms["subscribe"]["allow"]), ["_INBOX.>", "app.>"]);
    assert!(sorted(&perms["subscribe"]["deny"]).is_empty(), "{perms}");

    // A second connection of the account sees the allowed publish, and only that: messages of
    // one connection arrive in order, so `app.hello` first means `app.secret` was dropped.
    let watcher = d.login("alice", PW, &ClientEvents::new()).await;
    let mut sub = watcher.subscribe("app.>").await.expect("subscribe app.>");
    round_trip(&watcher).await;
    alice.publish("app.secret", "no".into()).await.expect("publish");
    alice.publish("app.hello", "yes".into()).await.expect("publish");
    alice.publish("other.x", "no".into()).await.expect("publish");
    let _denied = alice.subscribe("other.>").await.expect("client-side subscribe");
    alice.flush().await.expect("flush");
    let msg = tokio::time::timeout(WAIT, sub.next()).await.ok().flatten().expect("a message");
    assert_eq!(msg.subject.as_str(), "app.hello");

    wait_until(WAIT, "three permission violations", || {
        [
            r#"Permissions Violation for Publish to "app.secret""#,
            r#"Permissions Violation for Publish to "other.x""#,
            r#"Permissions Violation for Subscription to "other.>""#,
        ]
        .iter()
        .all(|e| events.has_server_error(e))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_login_is_admitted() {
    let d = started(DeployOptions::default()).await;
    let req = Request::TokenAdd(TokenAdd { name: "alice".into(), label: None, expires_secs: None });
    let Response::Token { token, .. } = d.admin(req) else { panic!("token add answers a token") };
    let client = d.connect(0, ConnectOptions::with_token(token), &ClientEvents::new()).await;
    assert_account(&d, &client.expect("token login"), "APP").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nkey_login_is_admitted() {
    let d = started(DeployOptions::default()).await;
    let key = KeyPair::generate(KeyKind::User);
    d.admin(Request::UserEdit(UserEdit {
        name: "olga".into(),
        account: None,
        role: None,
        active: None,
        email: None,
        description: None,
        nkey: Some(key.public_key().into()),
        tags: Default::default(),
    }));
    let opts = ConnectOptions::with_nkey(key.seed().expose().to_string());
    let client = d.connect(0, opts, &ClientEvents::new()).await.expect("nkey login");
    assert_account(&d, &client, "OTHER").await;

    // An nkey no user registered is refused.
    let mut errors = d.auth_errors(0).await;
    let other = KeyPair::generate(KeyKind::User);
    let opts = ConnectOptions::with_nkey(other.seed().expose().to_string());
    match d.connect(0, opts, &ClientEvents::new()).await {
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation),
        Ok(_) => panic!("an unregistered nkey was admitted"),
    }
    let reason = callout_reason(&CalloutError::UnknownNkey(other.public_key().into()));
    assert_eq!(errors.next_reason().await, reason);
}

/// Logs in over a raw socket with only what `nats://USER:PASS@HOST:PORT` gives a client (a
/// CONNECT with `user` and `pass`, no JWT), then proves the connection works with a round trip.
/// Raw, because async-nats 0.51 ignores the user info of server URLs.
async fn raw_url_login(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("nats://").ok_or("not a nats:// url")?;
    let (userinfo, hostport) = rest.split_once('@').ok_or("no user info")?;
    let (user, pass) = userinfo.split_once(':').ok_or("no password")?;
    let (host, port) = hostport.rsplit_once(':').ok_or("no port")?;
    if host != "127.0.0.1" {
        return Err(format!("not the loopback server: {host}"));
    }
    let port: u16 = port.parse().map_err(|_| "not a port")?;
    attack::raw_login(port, std::net::Ipv4Addr::LOCALHOST, user, pass, WAIT).await
}

#[tokio::test(flavor = "multi_thread")]
async fn url_only_login_goes_through_the_default_sentinel() {
    let d = started(DeployOptions::default()).await;
    let port = d.server(0).port();
    raw_url_login(&format!("nats://alice:{PW}@127.0.0.1:{port}")).await.expect("url login");
    let refused = raw_url_login(&format!("nats://alice:wrong@127.0.0.1:{port}")).await;
    assert_eq!(refused, Err("-ERR 'Authorization Violation'".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_sentinel_creds_with_user_and_password_are_admitted() {
    let d = started(DeployOptions::default()).await;
    let sentinel = pbn::sentinel_jwt(&d.account("AUTH"), pbn::unix_now()).expect("sentinel");
    // The sentinel is a bearer token: the nonce signature is not checked, any user seed does.
    let creds = pbn::creds(&sentinel, &KeyPair::generate(KeyKind::User).seed());
    let opts = ConnectOptions::with_credentials(&creds).expect("parse creds");
    let client =
        d.connect(0, opts.user_and_password("alice".into(), PW.into()), &ClientEvents::new());
    assert_account(&d, &client.await.expect("sentinel login"), "APP").await;

    // The sentinel alone proves nothing.
    let mut errors = d.auth_errors(0).await;
    let opts = ConnectOptions::with_credentials(&creds).expect("parse creds");
    assert_rejected(&d, &mut errors, opts, &callout_reason(&CalloutError::NoCredentials)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_rejected() {
    let d = started(DeployOptions::default()).await;
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::BadPassword("alice".into()));
    assert_rejected(&d, &mut errors, password("alice", "not-the-password"), &reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_user_is_rejected() {
    let d = started(DeployOptions::default()).await;
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::UnknownUser("nobody".into()));
    assert_rejected(&d, &mut errors, password("nobody", PW), &reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_user_is_rejected() {
    let d = started(DeployOptions::default()).await;
    d.login("alice", PW, &ClientEvents::new()).await;
    d.admin(Request::UserEdit(UserEdit {
        name: "alice".into(),
        account: None,
        role: None,
        active: Some(false),
        email: None,
        description: None,
        nkey: None,
        tags: Default::default(),
    }));
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::InactiveUser("alice".into()));
    assert_rejected(&d, &mut errors, password("alice", PW), &reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_of_an_inactive_account_is_rejected() {
    let d = started(DeployOptions::default()).await;
    d.login("alice", PW, &ClientEvents::new()).await;
    d.admin(Request::AccountEdit(AccountEdit {
        name: "APP".into(),
        description: None,
        limits: Default::default(),
        active: Some(false),
        disallow_bearer: None,
    }));
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::InactiveAccount("APP".into()));
    assert_rejected(&d, &mut errors, password("alice", PW), &reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_token_is_rejected() {
    let d = started(DeployOptions::default()).await;
    let req =
        Request::TokenAdd(TokenAdd { name: "alice".into(), label: None, expires_secs: Some(1) });
    let Response::Token { token, id, .. } = d.admin(req) else { panic!("token add answers") };
    let expires = pbn::unix_now() + 1;
    wait_until(Duration::from_secs(5), "the token to expire", || pbn::unix_now() > expires).await;
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::TokenExpired { user: "alice".into(), id });
    assert_rejected(&d, &mut errors, ConnectOptions::with_token(token), &reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_over_the_per_user_cap_is_rejected() {
    let mut d = setup(DeployOptions::default());
    d.add_role("single", RolePatch { max_connections: Some(1), ..app_role() });
    d.add_user("uma", "APP", "single", PW);
    d.start().await;
    let _first = d.login("uma", PW, &ClientEvents::new()).await;
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::ConnectionLimit { user: "uma".into(), max: 1 });
    assert_rejected(&d, &mut errors, password("uma", PW), &reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_outside_the_role_networks_is_rejected() {
    let mut d = setup(DeployOptions::default());
    let role = RolePatch { source_cidrs: Some(vec!["10.0.0.0/8".into()]), ..app_role() };
    d.add_role("office", role);
    d.add_user("sam", "APP", "office", PW);
    d.start().await;
    let mut errors = d.auth_errors(0).await;
    let reason = callout_reason(&CalloutError::SourceNotAllowed {
        user: "sam".into(),
        host: "127.0.0.1".into(),
    });
    assert_rejected(&d, &mut errors, password("sam", PW), &reason).await;
    // The same role without the restriction admits.
    d.login("alice", PW, &ClientEvents::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_throttle_the_user() {
    let mut opts = DeployOptions::default();
    opts.pipeline.throttle_max_failures = 3;
    let d = started(opts).await;
    let mut errors = d.auth_errors(0).await;
    let bad = callout_reason(&CalloutError::BadPassword("alice".into()));
    for _ in 0..3 {
        assert_rejected(&d, &mut errors, password("alice", "wrong"), &bad).await;
    }
    // Now even the right password is refused, with the throttle as the reason.
    match d.connect(0, password("alice", PW), &ClientEvents::new()).await {
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation),
        Ok(_) => panic!("a throttled user was admitted"),
    }
    let reason = errors.next_reason().await;
    assert!(reason.starts_with(&callout_reason(&"login throttled")), "{reason}");
    // Per user: another user from the same host still gets in.
    d.login("olga", PW, &ClientEvents::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_tokens_do_not_lock_out_other_token_users() {
    let mut opts = DeployOptions::default();
    opts.pipeline.throttle_max_failures = 3;
    let d = started(opts).await;
    let token = match d.admin(Request::TokenAdd(TokenAdd {
        name: "alice".into(),
        label: None,
        expires_secs: None,
    })) {
        Response::Token { token, .. } => token,
        other => panic!("token add answered {other:?}"),
    };
    let mut errors = d.auth_errors(0).await;
    let unknown = callout_reason(&CalloutError::UnknownToken);
    // More wrong tokens than the per-user limit, fewer than the per-host one (5 x 3).
    for i in 0..4 {
        let guess = ConnectOptions::with_token(format!("pbn_guess{i}"));
        assert_rejected(&d, &mut errors, guess, &unknown).await;
    }
    let client = d.connect(0, ConnectOptions::with_token(token), &ClientEvents::new()).await;
    assert!(client.is_ok(), "a valid token is admitted after other tokens failed");
}

/// Logs in while watching the raw callout requests: they are sealed (xkey header, not a JWT)
/// exactly when `xkey` is on, and the login is admitted either way.
async fn admits_with_xkey(xkey: bool) {
    let d = started(DeployOptions { xkey, ..DeployOptions::default() }).await;
    assert_eq!(d.auth_xkey().is_some(), xkey);
    let observer = d.service_client(0).await;
    let mut requests = observer.subscribe(CALLOUT_SUBJECT).await.expect("observe requests");
    round_trip(&observer).await;
    let alice = d.login("alice", PW, &ClientEvents::new()).await;
    assert_account(&d, &alice, "APP").await;
    let req = tokio::time::timeout(WAIT, requests.next()).await.ok().flatten().expect("request");
    let header = req.headers.as_ref().and_then(|h| h.get(XKEY_HEADER)).map(|v| v.to_string());
    assert_eq!(header.is_some(), xkey, "xkey header: {header:?}");
    assert_eq!(req.payload.starts_with(b"eyJ"), !xkey);
}

#[tokio::test(flavor = "multi_thread")]
async fn xkey_enabled_admits() {
    admits_with_xkey(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xkey_disabled_admits() {
    admits_with_xkey(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_on_server_b_is_admitted_by_the_service_on_server_a() {
    let d = started(DeployOptions { cluster: Some(2), ..DeployOptions::default() }).await;
    let client = d.connect(1, password("alice", PW), &ClientEvents::new()).await;
    assert_account(&d, &client.expect("login on server B"), "APP").await;
    // The session was admitted by the only runner (connected to A) for a client of B.
    let b_id = d.server(1).monitor("/varz").await["server_id"].as_str().map(String::from);
    let sessions = d.runners()[0].sessions().of_user("alice");
    assert_eq!(sessions.len(), 1);
    assert_eq!(Some(sessions[0].server_id.to_string()), b_id);
    let a_subs = d.server(0).monitor("/connz?subs=1").await.to_string();
    let b_subs = d.server(1).monitor("/connz?subs=1").await.to_string();
    assert!(a_subs.contains(CALLOUT_SUBJECT) && !b_subs.contains(CALLOUT_SUBJECT));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runners_share_the_queue_group_and_answer_each_request_once() {
    let d = started(DeployOptions { runners: 2, ..DeployOptions::default() }).await;
    let logins = (0..20).map(|_| d.connect(0, password("alice", PW), &ClientEvents::new()));
    let clients: Vec<_> = futures::future::join_all(logins).await;
    assert!(clients.iter().all(Result::is_ok), "every login admitted");
    let counts: Vec<usize> = d.runners().iter().map(|r| r.admitted()).collect();
    // A request answered by both runners would be admitted (and counted) twice.
    assert_eq!(counts.iter().sum::<usize>(), 20, "per-runner admissions {counts:?}");
    assert!(counts.iter().all(|&n| n > 0), "both runners served: {counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn role_jwt_ttl_disconnects_the_client_when_it_expires() {
    let mut d = setup(DeployOptions::default());
    d.add_role("short", RolePatch { jwt_ttl_secs: Some(3), ..app_role() });
    d.add_user("tina", "APP", "short", PW);
    d.start().await;
    let events = ClientEvents::new();
    let start = Instant::now();
    let _tina = d.login("tina", PW, &events).await;
    wait_until(Duration::from_secs(15), "User Authentication Expired", || {
        events.has_server_error("User Authentication Expired")
    })
    .await;
    let elapsed = start.elapsed();
    // exp = whole second of minting + 3 s, so expiry comes 2 to 3 s after the login.
    assert!(elapsed >= Duration::from_millis(1900), "expired after {elapsed:?}");
    assert!(elapsed <= Duration::from_secs(6), "expired after {elapsed:?}");
}
