//! The admin API itself: micro-service discovery, remote output and exit codes equal to local
//! mode, bad input, who may call it, and the admin creds `pbn init` writes.

use pbn::{AccountAdd, AccountList, OperatorShow, RoleList, UserDelete, UserList, UserShow};
use pbn::{RawConfig, RawPublisher};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use std::time::Instant;

use async_nats::{Client, ConnectOptions, RequestErrorKind};
use pbn::claims::parse_creds;
use pbn::keys::{KeyKind, KeyPair};
use pbn::StoreRead;
use pbn::SYS_ACCOUNT;
use pbn::{AdminClient, RemoteError};
use pbn::{Context, ErrorClass, Request, Response, RolePatch};
use pbn::{MAX_REQUEST_BYTES, REQUEST_SUBJECT, SERVICE_NAME};
use serde_json::Value;

use super::{write_secret, Live, PW};
use crate::support::deploy::{ClientEvents, DeployOptions, WAIT};
use crate::support::pbn::Pbn;
use crate::support::Deadline;

/// A raw client with the admin creds on the home server.
async fn admin_nats(live: &Live) -> Client {
    ConnectOptions::with_credentials_file(&live.creds)
        .await
        .expect("admin creds")
        .connect(live.d.url(live.home))
        .await
        .expect("admin connect")
}

use super::admins::raw_request;

/// Every record, as admin list responses (to prove that nothing changed).
/// [`snapshot`] once the publisher has pushed what the setup queued (it pushes in the
/// background, so the outbox would otherwise differ between two snapshots by timing alone).
async fn settled_snapshot(live: &Live) -> Vec<Response> {
    let deadline = crate::support::Deadline::after(WAIT, "the setup's pushes");
    while !live.d.store().read(|tx| tx.list_outbox()).expect("outbox").is_empty() {
        deadline.tick().await;
    }
    snapshot(live)
}

fn snapshot(live: &Live) -> Vec<Response> {
    let ctx = Context::now();
    let lists = [
        Request::AccountList(AccountList {}),
        Request::RoleList(RoleList {}),
        Request::UserList(UserList { account: None }),
    ];
    let mut out: Vec<Response> = lists
        .iter()
        .map(|r| pbn::execute(live.d.store(), r, &ctx).expect("list").response)
        .collect();
    let outbox = live.d.store().read(|tx| tx.list_outbox()).expect("outbox");
    out.push(Response::Done { message: format!("{outbox:?}") });
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_is_a_discoverable_micro_service() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let client = admin_nats(&live).await;
    let ask = |subject: String| {
        let client = client.clone();
        async move {
            let msg = client.request(subject, "".into()).await.expect("discovery answered");
            serde_json::from_slice::<Value>(&msg.payload).expect("JSON")
        }
    };
    let ping = ask("$SRV.PING".into()).await;
    assert_eq!(ping["name"], SERVICE_NAME);
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    let info = ask(format!("$SRV.INFO.{SERVICE_NAME}")).await;
    let endpoints = info["endpoints"].as_array().expect("endpoints");
    assert!(endpoints.iter().any(|e| e["subject"] == REQUEST_SUBJECT), "{info}");
    let stats = ask(format!("$SRV.STATS.{SERVICE_NAME}")).await;
    assert_eq!(stats["name"], SERVICE_NAME, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_output_and_exit_codes_are_local_modes() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let ctx = Context::now();
    let local = |req: Request| pbn::execute(live.d.store(), &req, &ctx).map(|o| o.response);

    let out = live.admin(&["user", "list"]).await;
    out.success();
    assert_eq!(out.stdout, local(Request::UserList(UserList { account: None })).unwrap().to_text());
    let out = live.admin(&["--json", "user", "show", "alice"]).await;
    out.success();
    let shown = local(Request::UserShow(UserShow { name: "alice".into() })).unwrap();
    assert_eq!(out.stdout.trim_end(), serde_json::to_string_pretty(&shown).unwrap());

    let missing = live.admin(&["user", "show", "nobody"]).await;
    missing.code(3);
    let err = local(Request::UserShow(UserShow { name: "nobody".into() })).unwrap_err();
    assert!(missing.stderr.contains(&err.to_string()), "{}", missing.streams());
    live.admin(&["account", "add", "APP"]).await.code(4);
    live.admin(&["role", "add", "bad", "--pub", "a..b"]).await.code(2);
    live.admin(&["account", "signing-key", "remove", "APP", "AXYZ"]).await.code(3);

    // Creds minted by the service are written by the client, 0600.
    let file = live.creds.with_file_name("alice.creds");
    let out = live.admin(&["user", "creds", "alice", "--out", file.to_str().unwrap()]).await;
    out.success();
    assert!(out.stdout.starts_with("wrote "), "{}", out.streams());
    let mode = std::fs::metadata(&file).expect("creds written").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    parse_creds(&std::fs::read_to_string(&file).unwrap()).expect("a creds file");

    // An admin can mint more admin creds remotely; they reach the admin API.
    let more = live.creds.with_file_name("more-admin.creds");
    let out = live.admin(&["operator", "admin-creds", "--out", more.to_str().unwrap()]).await;
    out.success();
    let other = AdminClient::connect(&live.d.url(0), &more, WAIT).await.expect("connect");
    assert!(other.call(&Request::OperatorShow(OperatorShow {})).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_store_names_the_remote_options() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let store = live.d.store().path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Pbn::new(["admin", "--store"]).args([&store]).args(["user", "list"]).run()
    })
    .await
    .unwrap();
    out.code(5);
    assert!(out.stderr.contains("--server URL --creds FILE"), "{}", out.streams());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_error_replies_change_nothing_and_the_service_keeps_serving() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let client = super::admins::SignedNats::new(&live, &live.creds).await;
    let before = settled_snapshot(&live).await;

    let (reply, headers) = raw_request(&client, b"{not json".to_vec()).await;
    assert_eq!(reply["error"]["class"], "usage", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().starts_with("malformed request"));
    let headers = headers.expect("error headers");
    assert_eq!(headers.get("Nats-Service-Error-Code").map(|v| v.as_str()), Some("400"));

    let (reply, _) = raw_request(&client, br#"{"op":"drop_everything"}"#.to_vec()).await;
    assert_eq!(reply["error"]["class"], "usage", "{reply}");
    assert_eq!(reply["error"]["message"], "unknown operation \"drop_everything\"");

    let (reply, _) = raw_request(&client, br#"{"op":"user_delete"}"#.to_vec()).await;
    assert_eq!(reply["error"]["class"], "usage", "a missing field: {reply}");

    let mut big = br#"{"op":"user_delete","name":""#.to_vec();
    big.resize(MAX_REQUEST_BYTES + 10, b'a');
    big.extend_from_slice(br#""}"#);
    let (reply, _) = raw_request(&client, big).await;
    assert_eq!(reply["error"]["class"], "usage", "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().contains("larger than"), "{reply}");

    let (reply, _) =
        raw_request(&client, br#"{"op":"user_delete","name":"nobody"}"#.to_vec()).await;
    assert_eq!(reply["error"]["class"], "not_found", "{reply}");

    assert_eq!(snapshot(&live), before, "nothing changed");
    let (reply, _) = raw_request(&client, br#"{"op":"user_show","name":"alice"}"#.to_vec()).await;
    assert_eq!(reply["ok"]["data"]["name"], "alice", "still serving: {reply}");
}

/// Creds of a system-account user that may publish only on `other.>`.
fn sys_creds_without_admin(live: &Live) -> std::path::PathBuf {
    let sys = live.d.account(SYS_ACCOUNT);
    let kp = KeyPair::generate(KeyKind::User);
    let jwt = pbn::internal_user_jwt(
        &sys,
        kp.public_key(),
        "not-admin",
        &["other.>"],
        &["_INBOX.>"],
        pbn::unix_now(),
        None,
    )
    .expect("mint");
    let path = live.creds.with_file_name("not-admin.creds");
    write_secret(&path, &pbn::creds(&jwt, &kp.seed()));
    path
}

/// Asserts that a system user without the admin permissions gets a permissions violation for
/// `req`, through the library client and through `pbn admin ARGS`.
async fn assert_not_permitted(live: &Live, req: &Request, args: &'static [&'static str]) {
    let creds = sys_creds_without_admin(live);
    let client = AdminClient::connect(&live.d.url(0), &creds, WAIT).await.expect("connect");
    match client.call(req).await {
        Err(RemoteError::NotPermitted(text)) => {
            assert!(text.contains("Permissions Violation for Publish"), "{text}");
            assert!(text.contains(REQUEST_SUBJECT), "{text}");
        }
        other => panic!("expected a permissions violation, got {other:?}"),
    }
    let url = live.d.url(0);
    let out = tokio::task::spawn_blocking(move || {
        Pbn::new(["admin", "--server", &url, "--creds"]).args([&creds]).args(args).run()
    })
    .await
    .unwrap();
    out.code(1);
    assert!(out.stderr.contains("Permissions Violation"), "{}", out.streams());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admin_permissions_reach_the_admin_api() {
    let live = Live::start(DeployOptions::default(), |d| {
        d.add_role("all", RolePatch::default());
        d.add_user("root", "APP", "all", PW);
    })
    .await;
    let before = settled_snapshot(&live).await;
    let delete_bob = Request::UserDelete(UserDelete { name: "bob".into() });

    // A system user without the admin permissions: the server refuses the publish.
    assert_not_permitted(&live, &delete_bob, &["user", "delete", "bob"]).await;

    // A callout user of a managed account, allowed everything there: nobody answers.
    let root = live
        .d
        .connect(
            0,
            ConnectOptions::with_user_and_password("root".into(), PW.into()),
            &ClientEvents::new(),
        )
        .await
        .expect("root logs in");
    let payload = serde_json::to_vec(&delete_bob).unwrap();
    let err = root.request(REQUEST_SUBJECT, payload.into()).await.expect_err("no responder");
    assert_eq!(err.kind(), RequestErrorKind::NoResponders);

    assert_eq!(snapshot(&live), before, "nothing changed");
    let admin = live.admin_client().await;
    assert!(
        admin.call(&Request::UserShow(UserShow { name: "bob".into() })).await.is_ok(),
        "bob is still there"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_requests_exit_with_their_class() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let url = live.d.url(live.home);
    let admin = AdminClient::connect(&url, &live.creds, Duration::from_millis(500)).await.unwrap();
    let err = admin.call(&Request::UserShow(UserShow { name: "nobody".into() })).await.unwrap_err();
    assert!(matches!(err, RemoteError::Refused { class: ErrorClass::NotFound, .. }), "{err:?}");
    // Without a service, `pbn admin --server` says so and exits 1.
    let _ = live.shutdown.send(true);
    let deadline = Deadline::after(Duration::from_secs(20), "the admin API to stop");
    loop {
        match admin.call(&Request::OperatorShow(OperatorShow {})).await {
            Err(RemoteError::NoService(_)) => break,
            _ => deadline.tick().await,
        }
    }
    let out = live.admin(&["user", "list"]).await;
    out.code(1);
    assert!(out.stderr.contains("no pbn admin service answers"), "{}", out.streams());
}

/// The admin creds in `path`, checked to be a 0600 creds file; returns their user claims.
fn read_admin_creds(path: &std::path::Path) -> pbn::claims::Claims<pbn::claims::UserClaims> {
    let mode = std::fs::metadata(path).expect("admin creds written").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    let parsed = parse_creds(&std::fs::read_to_string(path).unwrap()).expect("a creds file");
    pbn::claims::decode::<pbn::claims::UserClaims>(&parsed.jwt).expect("a user JWT")
}

#[test]
fn pbn_init_writes_admin_creds_beside_the_store_or_where_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("pbn.redb");
    let out = Pbn::new(["init", "--store"]).args([&store]).run();
    out.success();
    let claims = read_admin_creds(&dir.path().join("admin.creds"));
    assert_eq!(claims.nats.limits.publish.allow, ["pbn.admin.>", "$SRV.>"]);
    assert!(out.stdout.contains(&format!("system account: {}", claims.nats.issuer_account)));

    let other = dir.path().join("elsewhere.creds");
    let second = dir.path().join("second.redb");
    let init = Pbn::new(["init", "--store"]).args([&second]).args(["--admin-creds"]).args([&other]);
    init.run().success();
    read_admin_creds(&other);
}

#[test]
fn pbn_init_never_overwrites_admin_creds() {
    let dir = tempfile::tempdir().expect("temp dir");
    Pbn::new(["init", "--store"]).args([dir.path().join("first.redb")]).run().success();
    let creds = dir.path().join("admin.creds");
    let original = std::fs::read_to_string(&creds).unwrap();

    // Named explicitly: init refuses and makes no store.
    let store = dir.path().join("second.redb");
    let out =
        Pbn::new(["init", "--store"]).args([&store]).args(["--admin-creds"]).args([&creds]).run();
    out.code(4);
    assert!(out.stderr.contains("already exists"), "{}", out.streams());
    assert!(!store.exists());

    // Beside the store: init skips it and says how to mint admin creds instead.
    let out = Pbn::new(["init", "--store"]).args([&store]).run();
    out.success();
    assert!(out.stderr.contains("operator admin-creds"), "{}", out.streams());
    assert_eq!(std::fs::read_to_string(&creds).unwrap(), original);
    let minted = dir.path().join("second-admin.creds");
    let mint = ["operator", "admin-creds", "--out"];
    Pbn::new(["admin", "--store"]).args([&store]).args(mint).args([&minted]).run().success();
    let claims = read_admin_creds(&minted);
    let sys = format!("system account: {}", claims.nats.issuer_account);
    assert!(out.stdout.contains(&sys), "a user of this store's system account: {}", out.stdout);
}

/// A request waiting for its push holds up no other: with a publisher that pushes only after a
/// long debounce, `account add` waits for its push while `role list`, sent after it, is answered
/// at once (a serial admin API would answer it only after the add).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_its_push_does_not_hold_up_the_others() {
    let slow = RawConfig {
        publisher: RawPublisher { debounce: Some(Duration::from_secs(1)), ..Default::default() },
        ..RawConfig::default()
    };
    let live = Live::start_with(DeployOptions::default(), |_| {}, slow).await;
    let (adder, lister) = (live.admin_client().await, live.admin_client().await);
    let add = Request::AccountAdd(AccountAdd { name: "LATE".into(), ..Default::default() });
    let started = Instant::now();
    let add = tokio::spawn(async move {
        let reply = adder.call_with_warnings(&add).await;
        (reply, started.elapsed())
    });
    // Sent once the add is in the store (its transaction ran), so both are in flight together.
    let deadline = Deadline::after(WAIT, "the add to be applied");
    while live.d.store().read(|tx| tx.get_account("LATE")).expect("read").is_none() {
        deadline.tick().await;
    }
    let listed = lister.call(&Request::RoleList(RoleList {})).await.expect("role list");
    let list_took = started.elapsed();
    assert!(matches!(listed, Response::Roles(_)), "{listed:?}");
    let (added, add_took) = add.await.expect("add task");
    // No warning: the push was confirmed (the publisher's notification woke the wait), not
    // given up at the push-wait deadline.
    assert!(matches!(&added, Ok((Response::Account(_), w)) if w.is_empty()), "{added:?}");
    assert!(
        list_took < add_took && add_took >= Duration::from_millis(800),
        "the list ({list_took:?}) answered before the add that waits for its push ({add_took:?})"
    );
}
