//! Logins with OpenID Connect tokens from a real provider (`oidc-provider`, started by
//! `support::oidc`), through real nats-servers and the callout: mapping by plain and nested
//! array claims lands users in their accounts with their roles' permissions; every kind of bad
//! token is refused with its reason in the auth-error advisory; key rotation and a provider
//! that is down keep logins working; changing or deleting a provider kicks its sessions.

mod cli;
mod live;

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions};
use data_encoding::BASE64URL_NOPAD as B64;
use futures::StreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pbn::{IdpAdd, IdpMap, ListPatch, Request, RolePatch};
use serde_json::{json, Value};

use crate::support::deploy::{
    round_trip, AuthErrors, ClientEvents, DeployOptions, Deployment, USER_INFO_SUBJECT, WAIT,
};
use crate::support::oidc::OidcProvider;
use crate::support::wait_until;

/// The audience the provider's `urn:pbn:nats*` resources put in their tokens.
const AUD: &str = "urn:pbn:nats";

/// A role publishing and subscribing on `prefix.>`, plus what `$SYS.REQ.USER.INFO` needs.
fn role_on(prefix: &str) -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec![format!("{prefix}.>"), USER_INFO_SUBJECT.into()]),
        sub_allow: ListPatch::Set(vec![format!("{prefix}.>"), "_INBOX.>".into()]),
        ..RolePatch::default()
    }
}

/// Accounts DEV and OPS with roles `dev` and `ops`; provider `kc` for `p` (users named by
/// `preferred_username`, `provision` as given) mapping Keycloak-style `realm_access.roles`
/// holding `ops` to OPS/ops, then `groups` holding `dev` to DEV/dev. Not started.
pub(crate) fn setup(p: &OidcProvider, opts: DeployOptions, provision: bool) -> Deployment {
    let d = Deployment::new(opts);
    d.add_account("DEV");
    d.add_account("OPS");
    d.add_role("dev", role_on("dev"));
    d.add_role("ops", role_on("ops"));
    d.admin(Request::IdpAdd(IdpAdd {
        name: "kc".into(),
        issuer: p.issuer(),
        audience: AUD.into(),
        username_claim: Some("preferred_username".into()),
        provision,
        ..IdpAdd::default()
    }));
    for (claim, value, account, role) in
        [("realm_access.roles", "ops", "OPS", "ops"), ("groups", "dev", "DEV", "dev")]
    {
        d.admin(Request::IdpMap(IdpMap {
            name: "kc".into(),
            claim: Some(claim.into()),
            value: Some(value.into()),
            account: account.into(),
            role: role.into(),
            default: false,
        }));
    }
    d
}

/// Connect options presenting `token` as the NATS token.
pub(crate) fn with_token(token: &str) -> ConnectOptions {
    ConnectOptions::with_token(token.into())
}

/// The claims of a token (unverified: the test reads what the provider issued).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&B64.decode(payload.as_bytes()).expect("base64url")).expect("JSON")
}

/// Asserts that `client` can round-trip on `allowed` and that publishing to `denied` is a
/// permission violation.
pub(crate) async fn assert_permissions(
    client: &async_nats::Client,
    events: &ClientEvents,
    allowed: &str,
    denied: &str,
) {
    let mut sub = client.subscribe(format!("{allowed}.>")).await.expect("subscribe");
    round_trip(client).await;
    client.publish(format!("{allowed}.hello"), "yes".into()).await.expect("publish");
    let msg = tokio::time::timeout(WAIT, sub.next()).await.ok().flatten().expect("a message");
    assert_eq!(msg.subject.as_str(), format!("{allowed}.hello"));
    client.publish(format!("{denied}.x"), "no".into()).await.expect("publish");
    client.flush().await.expect("flush");
    let violation = format!("Permissions Violation for Publish to \"{denied}.x\"");
    wait_until(WAIT, &violation, || events.has_server_error(&violation)).await;
}

/// The account a client was placed in.
async fn account_of(client: &async_nats::Client) -> String {
    let reply = tokio::time::timeout(WAIT, client.request(USER_INFO_SUBJECT, "".into()))
        .await
        .expect("user info in time")
        .expect("user info");
    let v: Value = serde_json::from_slice(&reply.payload).expect("JSON");
    v["data"]["account"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_tokens_land_in_the_mapped_accounts_with_the_mapped_roles() {
    let p = OidcProvider::start("k1").await;
    let mut d = setup(&p, DeployOptions::default(), false);
    d.start().await;

    // alice: `groups: [dev, staff]`, as the NATS token (RS256).
    let token = p.token("alice", AUD).await;
    let events = ClientEvents::new();
    let alice = d.connect(0, with_token(&token), &events).await.expect("alice logs in");
    assert_eq!(account_of(&alice).await, d.account("DEV").public_key.as_str());
    assert_permissions(&alice, &events, "dev", "ops").await;
    // The user JWT ends with the provider's token at the latest.
    let session = d.runners()[0].sessions().of_user("alice");
    let exp = claims_of(&token)["exp"].as_i64().expect("exp");
    assert!(!session.is_empty() && session.iter().all(|s| s.expires <= exp), "{session:?}");

    // bob: Keycloak-style `realm_access.roles: [ops, …]`, by the password convention (ES256).
    let token = p.token("bob", "urn:pbn:nats:es256").await;
    let events = ClientEvents::new();
    let opts = ConnectOptions::with_user_and_password("$oidc".into(), token);
    let bob = d.connect(0, opts, &events).await.expect("bob logs in");
    assert_eq!(account_of(&bob).await, d.account("OPS").public_key.as_str());
    assert_permissions(&bob, &events, "ops", "dev").await;

    // EdDSA tokens too.
    let token = p.token("alice", "urn:pbn:nats:eddsa").await;
    let ed = d.connect(0, with_token(&token), &ClientEvents::new()).await.expect("EdDSA login");
    assert_eq!(account_of(&ed).await, d.account("DEV").public_key.as_str());

    // No user records without --provision.
    assert!(d.store().read(|tx| pbn::StoreRead::get_user(tx, "alice")).unwrap().is_none());
}

/// Asserts that `token` is refused and that the advisory's reason contains `reason`.
async fn assert_refused(d: &Deployment, errors: &mut AuthErrors, token: &str, reason: &str) {
    match d.connect(0, with_token(token), &ClientEvents::new()).await {
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
        Ok(_) => panic!("admitted, but expected a refusal with {reason:?}"),
    }
    let got = errors.next_reason().await;
    let prefix = "Auth callout service returned an error: identity provider login refused: ";
    assert!(got.starts_with(prefix) && got.contains(reason), "advisory {got:?} lacks {reason:?}");
}

/// `token` with its payload replaced by `f(payload)`, the signature kept.
fn tampered(token: &str, f: impl Fn(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut c = claims_of(token);
    f(&mut c);
    format!("{}.{}.{}", parts[0], B64.encode(c.to_string().as_bytes()), parts[2])
}

/// `claims` signed with a fresh P-256 key of our own, as key `kid`.
fn forged(claims: &Value, kid: &str) -> String {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(&h, claims, &EncodingKey::from_ec_der(&kp.serialize_der())).expect("sign")
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_with_their_reason_in_the_advisory() {
    let p = OidcProvider::start("k1").await;
    let mut d = setup(&p, DeployOptions::default(), false);
    d.start().await;
    let mut errors = d.auth_errors(0).await;
    let good = p.token("alice", AUD).await;
    let kid = "k1-rs";

    // Expired: a token that lives one second, once that second is over.
    let short = p.token("alice", "urn:pbn:nats:short").await;
    let exp = claims_of(&short)["exp"].as_i64().expect("exp");
    wait_until(Duration::from_secs(5), "the short token to expire", || pbn::unix_now() > exp).await;
    assert_refused(&d, &mut errors, &short, &format!("token expired at {exp}")).await;

    // Another audience.
    let other = p.token("alice", "urn:pbn:other").await;
    assert_refused(&d, &mut errors, &other, "wrong audience [\"urn:pbn:other\"]").await;

    // Unknown issuer (signed by some key: the issuer is looked at first).
    let mut c = claims_of(&good);
    c["iss"] = json!("https://idp.example.com");
    assert_refused(&d, &mut errors, &forged(&c, kid), "unknown issuer \"https://idp.example.com\"")
        .await;

    // The provider's kid, but our key; and the provider's signature over changed claims.
    let c = claims_of(&good);
    assert_refused(&d, &mut errors, &forged(&c, "k1-es"), "bad signature").await;
    let t = tampered(&good, |c| c["groups"] = json!(["ops"]));
    assert_refused(&d, &mut errors, &t, "bad signature").await;

    // `alg: none`, and HS256 keyed with the provider's public key.
    let payload = good.split('.').nth(1).expect("payload");
    let none = format!("{}.{payload}.", B64.encode(br#"{"alg":"none","typ":"JWT"}"#));
    assert_refused(&d, &mut errors, &none, "algorithm \"none\" is not allowed").await;
    let jwks = p.jwks().await;
    let public = jwks["keys"].as_array().expect("keys")[0].to_string();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.into());
    let hs =
        encode(&h, &claims_of(&good), &EncodingKey::from_secret(public.as_bytes())).expect("sign");
    assert_refused(&d, &mut errors, &hs, "algorithm \"HS256\" is not allowed").await;

    // A good token no rule maps (carol: `groups: [nobody]`).
    let carol = p.token("carol", AUD).await;
    assert_refused(
        &d,
        &mut errors,
        &carol,
        "no mapping of identity provider kc matched user \"carol\"",
    )
    .await;

    // The good token still logs in.
    d.connect(0, with_token(&good), &ClientEvents::new()).await.expect("the good token");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_and_a_provider_down_keep_logins_working() {
    let mut p = OidcProvider::start("k1").await;
    let mut d = setup(&p, DeployOptions::default(), false);
    d.start().await;
    let before = p.token("alice", AUD).await;
    d.connect(0, with_token(&before), &ClientEvents::new()).await.expect("first login");

    // Down: the cached keys still verify its tokens.
    p.stop();
    d.connect(0, with_token(&before), &ClientEvents::new()).await.expect("login while down");

    // Rotated: new keys with new ids; a token signed by one is an unknown kid, and the
    // refresh it triggers (at most one per 5 s) finds the new key.
    p.restart("k2").await;
    let after = p.token("alice", AUD).await;
    assert_eq!(
        serde_json::from_slice::<Value>(
            &B64.decode(after.split('.').next().unwrap().as_bytes()).unwrap()
        )
        .unwrap()["kid"],
        "k2-rs"
    );
    let deadline =
        crate::support::Deadline::after(Duration::from_secs(20), "login with a rotated key");
    loop {
        match d.connect(0, with_token(&after), &ClientEvents::new()).await {
            Ok(_) => break,
            Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
        }
        deadline.tick().await;
    }
}
