//! Criterion benches of the in-process callout pipeline (group `callout`).
//!
//! One `Pipeline::handle` call per iteration: open (xkey variants), decode + verify the server's
//! request, authenticate, authorize, mint + sign the user JWT, sign (and seal) the response.
//! Credentials: `password_cache_hit` (production argon2id parameters; the first call pays argon2
//! and fills the verified-password cache, the timed calls hit it), `token` and `nkey`; each also
//! as `*_xkey`, with the request sealed to the AUTH account's xkey. `token_templated` is
//! `token` for a user whose role has subject templates (`devices.{{name}}.>`,
//! `site.{{tag:site}}.>`, `cmd.{{name}}.>`): the cost of filling them in.
//! `oidc`: an identity provider's EdDSA token (keys given inline, so cached from the first
//! call; one mapping rule).
//!
//! Requests are forged once, signed by a server key with `exp` far in the future. Each forged
//! request has its own `client_info.id`; its session is removed from the registry before every
//! timed call (outside the timing), so each call admits a new session into a registry in its
//! normal state, as a fresh connection would.

mod support;

use pbn::{IdpAdd, IdpMap, ListPatch, RoleAdd, RolePatch, TokenAdd, UserAdd, UserEdit};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use data_encoding::BASE64URL_NOPAD;
use pbn::claims::{
    self, AuthorizationRequestClaims, AuthorizationResponseClaims, Claims, ClientInfo,
    ConnectOptions, ServerId, AUTH_REQUEST_AUDIENCE,
};
use pbn::keys::{CurvePublicKey, KeyKind, KeyPair, XKeyPair};
use pbn::SessionRegistry;
use pbn::Store;
use pbn::{hash_password_with, PasswordParams, Secret};
use pbn::{Context, Request, Response};
use pbn::{Pipeline, PipelineOptions};
use pbn::{RawConfig, Settings};
use tempfile::TempDir;

use support::{served_store, ACCOUNT, ROLE};

const PASSWORD: &str = "correct horse battery staple";
/// The nonce nats-server would have sent in INFO (the nkey client signs it).
const NONCE: &str = "bench-nonce-QTLWX7c8aNQGzdIb";

/// What a client presents.
enum Cred {
    Password,
    Token(String),
    Nkey(Box<KeyPair>),
}

/// One forged request, ready to hand to the pipeline.
struct Forged {
    payload: Vec<u8>,
    header: Option<String>,
    client_id: u64,
}

/// A pipeline on a fresh store, plus what is needed to forge requests for it.
/// No reply size limit: the benchmark measures the pipeline, not a server's max payload.
const MAX: usize = usize::MAX;

struct Bench {
    _dir: TempDir,
    /// Runs the async `Pipeline::handle` (a current-thread runtime: the argon2 verification of
    /// the first password call uses its blocking pool).
    rt: tokio::runtime::Runtime,
    pipeline: Pipeline,
    server: KeyPair,
    server_xkey: XKeyPair,
    auth_key: String,
    auth_xkey: Option<CurvePublicKey>,
    token: String,
    /// The token of a user whose role has subject templates.
    templated_token: String,
    nkey_user: KeyPair,
    oidc_token: String,
}

fn add_user(store: &Store, ctx: &Context, name: &str, password_hash: Option<String>) {
    let req = Request::UserAdd(UserAdd {
        name: name.into(),
        account: ACCOUNT.into(),
        role: ROLE.into(),
        email: None,
        description: None,
        password_hash,
        tags: Default::default(),
    });
    pbn::execute(store, &req, ctx).expect("a valid user");
}

/// The role of `token_templated`: per-user subjects from the user name and a tag, with as many
/// lists as the plain role fills from the defaults.
const TEMPLATED_ROLE: &str = "device";

/// Adds [`TEMPLATED_ROLE`] and a token user holding it with the tag `site`; returns the token.
fn add_templated_user(store: &Store, ctx: &Context) -> String {
    let role = RolePatch {
        pub_allow: ListPatch::Set(vec!["devices.{{name}}.>".into(), "site.{{tag:site}}.>".into()]),
        sub_allow: ListPatch::Set(vec!["cmd.{{name}}.>".into()]),
        ..RolePatch::default()
    };
    let add = Request::RoleAdd(RoleAdd { name: TEMPLATED_ROLE.into(), role });
    pbn::execute(store, &add, ctx).expect("a valid templated role");
    let req = Request::UserAdd(UserAdd {
        name: "device-user".into(),
        account: ACCOUNT.into(),
        role: TEMPLATED_ROLE.into(),
        email: None,
        description: None,
        password_hash: None,
        tags: [("site".to_string(), "berlin".to_string())].into(),
    });
    pbn::execute(store, &req, ctx).expect("a valid user");
    let add_token =
        Request::TokenAdd(TokenAdd { name: "device-user".into(), label: None, expires_secs: None });
    let Ok(Response::Token { token, .. }) =
        pbn::execute(store, &add_token, ctx).map(|o| o.response)
    else {
        panic!("token add answers with the token");
    };
    token
}

fn setup(xkey: bool) -> Bench {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = served_store(&dir.path().join("store.redb"), xkey);
    let ctx = Context::now();
    let phc = hash_password_with(&Secret::new(PASSWORD), &PasswordParams::default())
        .expect("production parameters are valid");
    add_user(&store, &ctx, "pw-user", Some(phc));
    add_user(&store, &ctx, "token-user", None);
    let add_token =
        Request::TokenAdd(TokenAdd { name: "token-user".into(), label: None, expires_secs: None });
    let Ok(Response::Token { token, .. }) =
        pbn::execute(&store, &add_token, &ctx).map(|o| o.response)
    else {
        panic!("token add answers with the token");
    };
    add_user(&store, &ctx, "nkey-user", None);
    let nkey_user = KeyPair::generate(KeyKind::User);
    let register = Request::UserEdit(UserEdit {
        name: "nkey-user".into(),
        account: None,
        role: None,
        active: None,
        email: None,
        description: None,
        nkey: Some(nkey_user.public_key().into()),
        tags: Default::default(),
    });
    pbn::execute(&store, &register, &ctx).expect("a valid nkey");
    let templated_token = add_templated_user(&store, &ctx);
    let oidc_token = add_idp(&store, &ctx);
    let auth = store.read(pbn::auth_account).expect("init made AUTH");
    let auth_xkey = auth.callout.as_ref().and_then(|c| c.xkey.as_ref()).map(|seed| {
        let pair = XKeyPair::from_seed(seed).expect("init stores a valid xkey seed");
        CurvePublicKey::parse(pair.public_key()).expect("an xkey pair has a curve public key")
    });
    let settings = Settings::resolve(None, RawConfig::default(), RawConfig::default())
        .expect("default settings are valid");
    let opts = PipelineOptions::from_settings(&settings.callout);
    let pipeline =
        Pipeline::new(store, Arc::new(SessionRegistry::new()), opts).expect("a served store");
    Bench {
        _dir: dir,
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"),
        pipeline,
        server: KeyPair::generate(KeyKind::Server),
        server_xkey: XKeyPair::generate(),
        auth_key: auth.public_key.to_string(),
        auth_xkey,
        token,
        templated_token,
        nkey_user,
        oidc_token,
    }
}

/// Adds provider `bench` (an Ed25519 key given inline, `groups` holding `bench` mapped to the
/// bench account and role) and returns a token it signed, valid for a day.
fn add_idp(store: &Store, ctx: &Context) -> String {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an ed25519 key");
    let x = BASE64URL_NOPAD.encode(kp.public_key_raw());
    let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"b1","x":"{x}"}}]}}"#);
    let add = Request::IdpAdd(IdpAdd {
        name: "bench".into(),
        issuer: "https://idp.example.com".into(),
        audience: "nats".into(),
        jwks: Some(jwks),
        ..IdpAdd::default()
    });
    pbn::execute(store, &add, ctx).expect("a valid provider");
    let map = Request::IdpMap(IdpMap {
        name: "bench".into(),
        claim: Some("groups".into()),
        value: Some("bench".into()),
        account: ACCOUNT.into(),
        role: ROLE.into(),
        default: false,
    });
    pbn::execute(store, &map, ctx).expect("a valid mapping");
    let claims = serde_json::json!({"iss": "https://idp.example.com", "aud": "nats",
        "sub": "oidc-user", "groups": ["bench"], "iat": ctx.now, "exp": ctx.now + 86_400});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("b1".into());
    let key = jsonwebtoken::EncodingKey::from_ed_der(&kp.serialize_der());
    jsonwebtoken::encode(&header, &claims, &key).expect("signs")
}

impl Bench {
    /// A request from client `client_id` presenting `cred`, signed by the server and sealed when
    /// the AUTH account has an xkey.
    fn forge(&self, cred: &Cred, client_id: u64) -> Forged {
        let mut connect = ConnectOptions { protocol: 1, lang: "rust".into(), ..Default::default() };
        let mut client = ClientInfo {
            host: "127.0.0.1".into(),
            id: client_id,
            kind: "Client".into(),
            client_type: "nats".into(),
            ..Default::default()
        };
        match cred {
            Cred::Password => {
                connect.username = "pw-user".into();
                connect.password = PASSWORD.into();
            }
            Cred::Token(t) => connect.token = t.clone(),
            Cred::Nkey(kp) => {
                connect.nkey = kp.public_key().into();
                connect.signed_nonce = BASE64URL_NOPAD.encode(&kp.sign(NONCE.as_bytes()));
                client.nonce = NONCE.into();
            }
        }
        let body = AuthorizationRequestClaims {
            server: ServerId {
                name: "bench".into(),
                host: "127.0.0.1".into(),
                id: self.server.public_key().into(),
                version: "2.15.1".into(),
                xkey: if self.auth_xkey.is_some() {
                    self.server_xkey.public_key().into()
                } else {
                    String::new()
                },
                ..Default::default()
            },
            user_nkey: KeyPair::generate(KeyKind::User).public_key().into(),
            client,
            connect_opts: connect,
            ..Default::default()
        };
        let far = pbn::unix_now() + 10 * 365 * 24 * 3600;
        let token = Claims::new(self.auth_key.as_str(), body)
            .with_audience(AUTH_REQUEST_AUDIENCE)
            .with_expires(far)
            .encode(&self.server)
            .expect("the forged request encodes");
        match &self.auth_xkey {
            None => Forged { payload: token.into_bytes(), header: None, client_id },
            Some(auth_xkey) => Forged {
                payload: self.server_xkey.seal(token.as_bytes(), auth_xkey).expect("seals"),
                header: Some(self.server_xkey.public_key().into()),
                client_id,
            },
        }
    }

    /// Handles `f` once and checks the reply carries a user JWT (opened when sealed).
    fn assert_admits(&self, f: &Forged) {
        let now = pbn::unix_now();
        let out = self.rt.block_on(self.pipeline.handle(&f.payload, f.header.as_deref(), now, MAX));
        assert!(out.error.is_none(), "the forged request is admitted: {:?}", out.error);
        let reply = out.reply.expect("an admitted request has a reply");
        let plain = match &self.auth_xkey {
            None => reply,
            Some(auth_xkey) => self.server_xkey.open(&reply, auth_xkey).expect("sealed to us"),
        };
        let text = String::from_utf8(plain).expect("a JWT is text");
        let resp: Claims<AuthorizationResponseClaims> = claims::decode(&text).expect("verifies");
        assert!(!resp.nats.jwt.is_empty(), "the response carries a user JWT");
        self.forget(f);
    }

    fn forget(&self, f: &Forged) {
        self.pipeline.sessions().remove(self.server.public_key(), f.client_id);
    }

    /// Total time of `iters` calls, each on a registry without the request's session.
    fn time(&self, f: &Forged, iters: u64) -> Duration {
        let now = pbn::unix_now();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            self.forget(f);
            let start = Instant::now();
            let handled =
                self.pipeline.handle(black_box(&f.payload), f.header.as_deref(), now, MAX);
            let out = self.rt.block_on(handled);
            total += start.elapsed();
            black_box(out);
        }
        total
    }
}

fn bench_callout(c: &mut Criterion) {
    let mut group = c.benchmark_group("callout");
    for xkey in [false, true] {
        let bench = setup(xkey);
        let suffix = if xkey { "_xkey" } else { "" };
        let creds = [
            ("password_cache_hit", Cred::Password),
            ("token", Cred::Token(bench.token.clone())),
            ("nkey", Cred::Nkey(Box::new(bench.nkey_user.clone()))),
            ("token_templated", Cred::Token(bench.templated_token.clone())),
            ("oidc", Cred::Token(bench.oidc_token.clone())),
        ];
        for (id, (name, cred)) in creds.iter().enumerate() {
            let forged = bench.forge(cred, 1000 + id as u64);
            // The password case: this first call runs argon2 and fills the cache.
            bench.assert_admits(&forged);
            group.bench_function(format!("{name}{suffix}"), |b| {
                b.iter_custom(|iters| bench.time(&forged, iters))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_callout);
criterion_main!(benches);
