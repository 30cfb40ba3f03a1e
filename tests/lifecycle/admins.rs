//! Named admins on a live deployment: scopes (one test per family of commands), read-only
//! admins, revocation and expiry, signed requests (replay, staleness) and the audit trail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, HeaderMap};
use pbn::claims::parse_creds;
use pbn::keys::KeyPair;
use pbn::{SignedAdminRequest, StoreRead, LOCAL_OWNER, REQUEST_SUBJECT};
use serde_json::Value;

use super::{Live, PW};
use crate::support::deploy::{DeployOptions, WAIT};
use crate::support::pbn::{Pbn, PbnOutput};
use crate::support::Deadline;

/// Exit codes of the admin API's refusals.
const OUT_OF_SCOPE: i32 = 13;
const READ_ONLY: i32 = 14;

/// A raw NATS client of the live admin, signing requests with `kp` (any admin's key).
pub(super) struct SignedNats {
    pub client: Client,
    pub kp: KeyPair,
}

impl SignedNats {
    /// Connected with the live admin's creds, signing as the admin of `creds`.
    pub async fn new(live: &Live, creds: &Path) -> SignedNats {
        let client = ConnectOptions::with_credentials_file(&live.creds)
            .await
            .expect("admin creds")
            .connect(live.d.url(live.home))
            .await
            .expect("admin connect");
        SignedNats { client, kp: key_of(creds) }
    }

    /// The headers of `payload` signed at `time_ms`.
    pub fn sign(&self, payload: &[u8], time_ms: i64) -> HeaderMap {
        let signed = SignedAdminRequest::sign(&self.kp, time_ms, "", payload);
        let mut headers = HeaderMap::new();
        for (name, value) in signed.headers() {
            headers.insert(name, value.as_str());
        }
        headers
    }

    /// Sends `payload` with `headers` exactly; returns the reply's JSON and headers.
    pub async fn send(&self, headers: HeaderMap, payload: Vec<u8>) -> (Value, Option<HeaderMap>) {
        let request = self.client.request_with_headers(REQUEST_SUBJECT, headers, payload.into());
        let msg = tokio::time::timeout(WAIT, request)
            .await
            .expect("an answer within the deadline")
            .expect("the request is answered");
        (serde_json::from_slice(&msg.payload).expect("a JSON reply"), msg.headers)
    }
}

/// Sends `payload` signed now with `client`'s key.
pub(super) async fn raw_request(
    client: &SignedNats,
    payload: Vec<u8>,
) -> (Value, Option<HeaderMap>) {
    let headers = client.sign(&payload, pbn::unix_now() * 1000);
    client.send(headers, payload).await
}

fn key_of(creds: &Path) -> KeyPair {
    let text = std::fs::read_to_string(creds).expect("creds file");
    parse_creds(&text).expect("creds").key_pair().expect("a seed")
}

fn file(live: &Live, name: &str) -> PathBuf {
    live.creds.with_file_name(name)
}

/// Adds admin `name` remotely (`admin admin add NAME EXTRA… --out FILE`) and returns its creds.
pub(super) async fn add_admin(live: &Live, name: &str, extra: &[&str]) -> PathBuf {
    let path = file(live, &format!("{name}.creds"));
    let mut args = vec!["admin", "add", name, "--out", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    live.admin(&args).await.success();
    path
}

/// Runs `pbn admin --server URL --creds CREDS ARGS…`.
pub(super) async fn admin_as(live: &Live, creds: &Path, args: &[&str]) -> PbnOutput {
    let pbn =
        Pbn::new(["admin", "--server", &live.d.url(live.home), "--creds"]).args([creds]).args(args);
    tokio::task::spawn_blocking(move || pbn.run()).await.expect("pbn ran")
}

/// A live deployment with admin `tenant` of scope `account:APP`.
async fn tenant() -> (Live, PathBuf) {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let creds = add_admin(&live, "tenant", &["--scope", "account:APP"]).await;
    (live, creds)
}

/// Asserts each of `args` is refused as out of scope for `creds`, naming the admin.
async fn refused(live: &Live, creds: &Path, commands: &[&[&str]]) {
    for args in commands {
        let out = admin_as(live, creds, args).await;
        out.code(OUT_OF_SCOPE);
        assert!(
            out.stderr.contains("admin tenant (scope account:APP) may not"),
            "{}",
            out.streams()
        );
    }
}

fn names(out: &PbnOutput) -> Vec<String> {
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON output");
    let list = v["data"].as_array().cloned().unwrap_or_default();
    list.iter().map(|x| x["name"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_sees_only_its_account_and_cannot_change_accounts() {
    let (live, t) = tenant().await;
    let out = admin_as(&live, &t, &["account", "list", "--json"]).await;
    assert_eq!(names(out.success()), ["APP"]);
    admin_as(&live, &t, &["account", "show", "APP"]).await.success();
    refused(
        &live,
        &t,
        &[
            &["account", "show", "OTHER"],
            &["account", "edit", "APP", "--max-connections", "5"],
            &["account", "add", "NEW"],
            &["account", "delete", "OTHER"],
            &["account", "export", "add", "APP", "--subject", "app.x"],
        ],
    )
    .await;
    assert!(live.d.store().read(|tx| tx.get_account("NEW")).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_manages_the_users_of_its_account_only() {
    let (live, t) = tenant().await;
    let out = admin_as(&live, &t, &["user", "list", "--json"]).await;
    assert_eq!(names(out.success()), ["alice", "bob"]);
    admin_as(
        &live,
        &t,
        &["user", "add", "ann", "--account", "APP", "--role", "app", "--no-password"],
    )
    .await
    .success();
    refused(
        &live,
        &t,
        &[
            &["user", "show", "olga"],
            &["user", "delete", "olga"],
            &["user", "list", "--account", "OTHER"],
            &["user", "edit", "alice", "--account", "OTHER"],
            &["user", "add", "x", "--account", "OTHER", "--role", "app", "--no-password"],
        ],
    )
    .await;
    assert!(live.d.store().read(|tx| tx.get_user("olga")).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_changes_only_roles_its_account_alone_holds() {
    let (live, t) = tenant().await;
    admin_as(&live, &t, &["role", "add", "mine", "--pub", "app.mine.>"]).await.success();
    admin_as(&live, &t, &["role", "edit", "mine", "--pub", "app.other.>"]).await.success();
    // `app` is held by olga of OTHER too.
    refused(
        &live,
        &t,
        &[
            &["role", "edit", "app", "--pub", "x.>"],
            &["role", "delete", "app"],
            &["role", "edit", "pbn-admin", "--pub", "x.>"],
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_manages_tokens_of_its_account_only() {
    let (live, t) = tenant().await;
    admin_as(&live, &t, &["user", "token", "add", "alice"]).await.success();
    refused(&live, &t, &[&["user", "token", "add", "olga"], &["user", "token", "list", "olga"]])
        .await;
    assert!(live.d.store().read(|tx| tx.require_user("olga")).unwrap().tokens.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_mints_creds_in_its_account_only() {
    let (live, t) = tenant().await;
    let mine = file(&live, "alice-t.creds");
    admin_as(&live, &t, &["user", "creds", "alice", "--out", mine.to_str().unwrap()])
        .await
        .success();
    let theirs = file(&live, "olga-t.creds");
    refused(&live, &t, &[&["user", "creds", "olga", "--out", theirs.to_str().unwrap()]]).await;
    assert!(!theirs.exists(), "no creds written for a refused request");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_cannot_touch_signing_keys() {
    let (live, t) = tenant().await;
    let before = live.signing_key("APP");
    refused(
        &live,
        &t,
        &[&["account", "signing-key", "add", "APP"], &["account", "rotate-keys", "APP"]],
    )
    .await;
    assert_eq!(live.signing_key("APP"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_cannot_touch_the_operator() {
    let (live, t) = tenant().await;
    let out = file(&live, "op-t.creds");
    refused(
        &live,
        &t,
        &[&["operator", "show"], &["operator", "admin-creds", "--out", out.to_str().unwrap()]],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_cannot_manage_admins_nor_read_the_audit_trail() {
    let (live, t) = tenant().await;
    let out = file(&live, "x-t.creds");
    refused(
        &live,
        &t,
        &[
            &["admin", "list"],
            &["admin", "add", "x", "--out", out.to_str().unwrap()],
            &["admin", "revoke", "pbn-admin"],
            &["audit", "list"],
        ],
    )
    .await;
    let admins = live.d.store().read(|tx| tx.list_admins()).unwrap();
    assert!(admins.iter().all(|a| a.revoked.is_none()) && admins.len() == 2, "{admins:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_sees_and_retries_only_its_accounts_outbox_entries() {
    let (live, t) = tenant().await;
    let out = admin_as(&live, &t, &["outbox", "list", "--json"]).await;
    let v: Value = serde_json::from_str(&out.success().stdout).unwrap();
    let entries = v["data"].as_array().cloned().unwrap_or_default();
    assert!(entries.iter().all(|e| e["account_name"] == "APP"), "{v}");
    refused(&live, &t, &[&["outbox", "retry", "OTHER"]]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_admin_reads_everything_and_changes_nothing() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let ro = add_admin(&live, "auditor", &["--read-only"]).await;
    for args in [
        &["user", "list"][..],
        &["account", "show", "OTHER"],
        &["admin", "list"],
        &["audit", "list"],
    ] {
        admin_as(&live, &ro, args).await.success();
    }
    let out = file(&live, "ro.creds");
    for args in [
        &["user", "delete", "alice"][..],
        &["account", "add", "NEW"],
        &["user", "creds", "alice", "--out", out.to_str().unwrap()],
        &["admin", "revoke", "pbn-admin"],
    ] {
        let res = admin_as(&live, &ro, args).await;
        res.code(READ_ONLY);
        assert!(res.stderr.contains("admin auditor is read-only"), "{}", res.streams());
    }
    assert!(live.d.store().read(|tx| tx.get_user("alice")).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_admin_is_cut_off_on_every_server_and_refused() {
    let live =
        Live::start(DeployOptions { cluster: Some(2), ..DeployOptions::default() }, |_| {}).await;
    let temp = add_admin(&live, "temp", &[]).await;
    admin_as(&live, &temp, &["user", "list"]).await.success();
    let conns = [live.connect_creds_on(0, &temp).await, live.connect_creds_on(1, &temp).await];

    let start = Instant::now();
    live.admin(&["admin", "revoke", "temp"]).await.success();
    for conn in &conns {
        conn.assert_closed_within(start, 0).await;
    }
    drop(conns);
    live.assert_creds_refused_on(0, &temp).await;
    // Signed with its key but sent over another connection: the service refuses it.
    let raw = SignedNats::new(&live, &temp).await;
    let (reply, _) = raw_request(&raw, br#"{"op":"user_list"}"#.to_vec()).await;
    assert_eq!(reply["error"]["class"], "admin_inactive", "{reply}");
    let shown = live.admin(&["admin", "show", "temp", "--json"]).await;
    assert!(shown.success().stdout.contains("\"revoked\""), "{}", shown.streams());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_or_stale_request_is_refused() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let raw = SignedNats::new(&live, &live.creds).await;
    let add = |name: &str| {
        let req = pbn::Request::from(pbn::AccountAdd { name: name.into(), ..Default::default() });
        serde_json::to_vec(&req).unwrap()
    };
    let payload = add("ONCE");
    let headers = raw.sign(&payload, pbn::unix_now() * 1000);
    let (first, _) = raw.send(headers.clone(), payload.clone()).await;
    assert_eq!(first["ok"]["data"]["name"], "ONCE", "{first}");
    let (again, _) = raw.send(headers, payload).await;
    assert_eq!(again["error"]["class"], "replay", "{again}");
    assert!(again["error"]["message"].as_str().unwrap().contains("replayed"), "{again}");

    let payload = add("LATE");
    let headers = raw.sign(&payload, (pbn::unix_now() - 31) * 1000);
    let (stale, _) = raw.send(headers, payload).await;
    assert_eq!(stale["error"]["class"], "replay", "{stale}");
    assert!(stale["error"]["message"].as_str().unwrap().contains("stale"), "{stale}");
    assert!(live.d.store().read(|tx| tx.get_account("LATE")).unwrap().is_none());

    let (unsigned, _) = raw.send(HeaderMap::new(), br#"{"op":"user_list"}"#.to_vec()).await;
    assert_eq!(unsigned["error"]["class"], "unauthenticated", "{unsigned}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_admin_is_refused() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let short = add_admin(&live, "short", &["--expires", "3s"]).await;
    let raw = SignedNats::new(&live, &short).await;
    let deadline = Deadline::after(Duration::from_secs(15), "the admin to expire");
    let mut served = false;
    loop {
        let (reply, _) = raw_request(&raw, br#"{"op":"user_list"}"#.to_vec()).await;
        if reply["error"]["class"] == "admin_inactive" {
            assert!(reply["error"]["message"].as_str().unwrap().contains("expired"), "{reply}");
            break;
        }
        served |= reply.get("ok").is_some();
        deadline.tick().await;
    }
    assert!(served, "the admin was served before it expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_names_the_admin_of_every_change_and_holds_no_secret() {
    let (live, t) = tenant().await;
    let pw = file(&live, "pw.txt");
    std::fs::write(&pw, format!("{PW}\n")).unwrap();
    let creds = file(&live, "alice-a.creds");
    let ops: Vec<(&Path, Vec<&str>)> = vec![
        (&live.creds, vec!["account", "add", "AUD"]),
        (&live.creds, vec!["user", "passwd", "bob", "--password-file", pw.to_str().unwrap()]),
        (&t, vec!["user", "creds", "alice", "--out", creds.to_str().unwrap()]),
        (&t, vec!["user", "token", "add", "alice"]),
    ];
    let mut secrets = vec![PW.to_string()];
    for (who, args) in &ops {
        let out = admin_as(&live, who, args).await;
        out.success();
        secrets.extend(out.stdout.split_whitespace().filter(|w| w.len() > 20).map(String::from));
    }
    let seed = std::fs::read_to_string(&creds).unwrap();
    secrets.push(parse_creds(&seed).unwrap().seed.expose().to_string());
    refused(&live, &t, &[&["user", "delete", "olga"]]).await;

    let out = live.admin(&["audit", "list", "--since", "10m", "--json"]).await;
    let v: Value = serde_json::from_str(&out.success().stdout).unwrap();
    let entries = v["data"].as_array().cloned().unwrap();
    let find = |verb: &str, target: &str| {
        entries.iter().find(|e| e["verb"] == verb && e["target"].as_str().unwrap().contains(target))
    };
    let who = |verb, target| find(verb, target).map(|e| e["admin"].as_str().unwrap().to_string());
    assert_eq!(who("admin_add", "tenant").as_deref(), Some("pbn-admin"));
    assert_eq!(who("account_add", "AUD").as_deref(), Some("pbn-admin"));
    assert_eq!(who("user_passwd", "bob").as_deref(), Some("pbn-admin"));
    assert_eq!(who("user_creds", "alice").as_deref(), Some("tenant"));
    assert_eq!(who("token_add", "alice").as_deref(), Some("tenant"));
    let refusal = find("user_delete", "olga").expect("the refusal is recorded");
    assert!(refusal["result"].as_str().unwrap().starts_with("refused"), "{refusal}");
    assert!(entries.iter().all(|e| e["admin_key"].as_str().is_some_and(|k| k.starts_with('U'))));

    let by = live.admin(&["audit", "list", "--admin", "tenant", "--json"]).await;
    let v: Value = serde_json::from_str(&by.success().stdout).unwrap();
    assert!(v["data"].as_array().unwrap().iter().all(|e| e["admin"] == "tenant"), "{v}");

    let stored = live.d.store().read(|tx| tx.list_audit(0)).unwrap();
    let text = format!("{stored:?} {}", out.stdout);
    for secret in secrets.iter().filter(|s| !s.starts_with('U') && !s.contains('/')) {
        assert!(!text.contains(secret.as_str()), "a secret is in the audit trail");
    }
    for marker in ["$argon2", "-----BEGIN", "SUA"] {
        assert!(!text.contains(marker), "{marker} is in the audit trail");
    }
    assert!(stored.iter().all(|e| e.admin != LOCAL_OWNER));
}

#[test]
fn init_makes_the_first_named_admin_and_the_store_owner_adds_more() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.redb");
    Pbn::new(["init", "--store"]).args([&store]).args(["--expires", "1d"]).run().success();
    let local = |args: &[&str]| Pbn::new(["admin", "--store"]).args([&store]).args(args).run();
    let out = local(&["admin", "list", "--json"]);
    let v: Value = serde_json::from_str(&out.success().stdout).unwrap();
    let first = &v["data"][0];
    assert_eq!(first["name"], "pbn-admin", "{v}");
    assert_eq!(first["scope"], "operator");
    let expires = first["expires"].as_i64().unwrap() - pbn::unix_now();
    assert!((86_000..=86_400).contains(&expires), "{v}");
    let claims = parse_creds(&std::fs::read_to_string(dir.path().join("admin.creds")).unwrap())
        .map(|c| pbn::claims::decode::<pbn::claims::UserClaims>(&c.jwt).unwrap())
        .unwrap();
    assert_eq!(claims.exp, first["expires"].as_i64().unwrap(), "the JWT expires with the admin");

    let creds = dir.path().join("t.creds");
    let add = ["admin", "add", "t", "--scope", "account:NOPE", "--out", creds.to_str().unwrap()];
    local(&add).code(3);
    local(&["account", "add", "APP"]).success();
    let add = ["admin", "add", "t", "--scope", "account:APP", "--out", creds.to_str().unwrap()];
    local(&add).success();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777, 0o600);
    local(&["admin", "add", "t2", "--out", creds.to_str().unwrap()]).code(4);
    local(&["admin", "add", "t", "--out", dir.path().join("u.creds").to_str().unwrap()]).code(4);
    let bad = dir.path().join("bad.creds");
    local(&["admin", "add", "bad", "--scope", "user:x", "--out", bad.to_str().unwrap()]).code(2);
    assert!(!bad.exists());
    let out = local(&["audit", "list", "--json"]);
    let v: Value = serde_json::from_str(&out.success().stdout).unwrap();
    let entries = v["data"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["verb"] == "admin_add" && e["admin"] == LOCAL_OWNER), "{v}");
    assert!(entries.iter().all(|e| e["admin"] == LOCAL_OWNER), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_permissions_without_an_admin_record_are_refused_with_their_own_exit_code() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let sys = live.d.account(pbn::SYS_ACCOUNT);
    let kp = KeyPair::generate(pbn::keys::KeyKind::User);
    let subjects = ["pbn.admin.>"];
    let jwt = pbn::internal_user_jwt(
        &sys,
        kp.public_key(),
        "stranger",
        &subjects,
        &["_INBOX.>"],
        pbn::unix_now(),
        None,
    )
    .expect("mint");
    let path = file(&live, "stranger.creds");
    super::write_secret(&path, &pbn::creds(&jwt, &kp.seed()));
    let out = admin_as(&live, &path, &["user", "list"]).await;
    out.code(10);
    assert!(out.stderr.contains("no admin has key"), "{}", out.streams());
}
