//! Writes the fixture (two served stores and the server's keys under `seeds/fixture/`) and the
//! seed corpora (`seeds/<target>/`) from pbn's own code: forged callout requests (plain and
//! sealed) for password, token and nkey users, the Go JWT vectors, creds files, admin requests
//! as the admin client sends them and an example config.

use pbn::{AccountAdd, RoleAdd, TokenAdd, UserAdd, UserEdit};
use std::fs;
use std::path::{Path, PathBuf};

use data_encoding::BASE64URL_NOPAD;
use pbn::claims::{
    format_user_creds, AuthorizationRequestClaims, Claims, ClientInfo, ConnectOptions, ServerId,
    AUTH_REQUEST_AUDIENCE,
};
use pbn::keys::{KeyKind, KeyPair, XKeyPair};
use pbn::{hash_password_with, PasswordParams, Secret};
use pbn::{Context, LimitPatch, Request, Response, RolePatch};
use pbn_fuzz::{fixture, fixture_dir, Fixture, Side, AUTH_PLACEHOLDER, NOW, SERVER_PLACEHOLDER};

const PASSWORD: &str = "correct horse battery staple";
const NONCE: &str = "fuzz-nonce-QTLWX7c8aNQGzdIb";

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds_dir().join(target);
    fs::create_dir_all(&dir).expect("seed dir");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn exec(store: &pbn::Store, req: &Request) -> Response {
    pbn::execute(store, req, &Context::now()).expect("a valid fixture request").response
}

/// The admin requests that build a store; also the admin-decoder seeds.
fn setup_requests(phc: &str, nkey: &str) -> Vec<Request> {
    let user = |name: &str, pw: Option<&str>| {
        Request::UserAdd(UserAdd {
            name: name.into(),
            account: "app".into(),
            role: "dev".into(),
            email: Some(format!("{name}@example.com")),
            description: Some("fuzz fixture".into()),
            password_hash: pw.map(str::to_string),
        })
    };
    vec![
        Request::AccountAdd(AccountAdd {
            name: "app".into(),
            description: Some("fuzzed logins".into()),
            limits: LimitPatch::default(),
            disallow_bearer: false,
        }),
        Request::RoleAdd(RoleAdd { name: "dev".into(), role: RolePatch::default() }),
        user("pw-user", Some(phc)),
        user("token-user", None),
        user("nkey-user", None),
        Request::UserEdit(UserEdit {
            name: "nkey-user".into(),
            account: None,
            role: None,
            active: None,
            email: None,
            description: None,
            nkey: Some(nkey.into()),
        }),
    ]
}

/// Makes one served store; returns the token of `token-user`.
fn make_store(name: &str, xkey: bool, requests: &[Request]) -> String {
    let path = fixture_dir().join(format!("{name}.redb"));
    let _ = fs::remove_file(&path);
    let (store, _) = pbn::init_store(&path, "fuzz", xkey, &Context::now()).expect("init");
    for req in requests {
        exec(&store, req);
    }
    let add =
        Request::TokenAdd(TokenAdd { name: "token-user".into(), label: None, expires_secs: None });
    let Response::Token { token, .. } = exec(&store, &add) else { panic!("a token") };
    let auth = store.read(pbn::auth_account).expect("AUTH");
    fs::write(fixture_dir().join(format!("{name}.auth")), auth.public_key.to_string()).unwrap();
    if let Some(seed) = auth.callout.as_ref().and_then(|c| c.xkey.as_ref()) {
        let pair = XKeyPair::from_seed(seed).expect("a valid xkey seed");
        fs::write(fixture_dir().join(format!("{name}.auth_xkey")), pair.public_key()).unwrap();
    }
    token
}

/// What a forged client presents.
enum Cred<'a> {
    Password(&'a str, &'a str),
    Token(&'a str),
    Nkey(&'a KeyPair),
}

/// The payload JSON of a request, with placeholders for the store's and server's keys.
fn request_json(f: &Fixture, side: &Side, cred: &Cred, sealed: bool, id: u64) -> Vec<u8> {
    let mut connect = ConnectOptions { protocol: 1, lang: "rust".into(), ..Default::default() };
    let mut client = ClientInfo {
        host: "127.0.0.1".into(),
        id,
        kind: "Client".into(),
        client_type: "nats".into(),
        ..Default::default()
    };
    match cred {
        Cred::Password(u, p) => {
            connect.username = (*u).into();
            connect.password = (*p).into();
        }
        Cred::Token(t) => connect.token = (*t).into(),
        Cred::Nkey(kp) => {
            connect.nkey = kp.public_key().into();
            connect.signed_nonce = BASE64URL_NOPAD.encode(&kp.sign(NONCE.as_bytes()));
            client.nonce = NONCE.into();
        }
    }
    let server = ServerId {
        name: "fuzz".into(),
        host: "127.0.0.1".into(),
        id: f.server.public_key().into(),
        version: "2.15.1".into(),
        xkey: if sealed { pbn_fuzz::SERVER_XKEY_PLACEHOLDER.into() } else { String::new() },
        ..Default::default()
    };
    let body = AuthorizationRequestClaims {
        server,
        user_nkey: KeyPair::generate(KeyKind::User).public_key().into(),
        client,
        connect_opts: connect,
        ..Default::default()
    };
    // Encoded as pbn encodes (type, version, jti), then the keys put back as placeholders.
    let token = Claims::new(side.auth_key.as_str(), body)
        .with_audience(AUTH_REQUEST_AUDIENCE)
        .with_issued_at(NOW)
        .with_expires(NOW + 10 * 365 * 24 * 3600)
        .encode(&f.server)
        .expect("a request encodes");
    let payload = token.split('.').nth(1).expect("three parts");
    let json = BASE64URL_NOPAD.decode(payload.as_bytes()).expect("base64url");
    String::from_utf8(json)
        .expect("JSON")
        .replace(&side.auth_key, AUTH_PLACEHOLDER)
        .replace(f.server.public_key(), SERVER_PLACEHOLDER)
        .into_bytes()
}

fn main() {
    fs::create_dir_all(fixture_dir()).expect("fixture dir");
    let server = KeyPair::generate(KeyKind::Server);
    fs::write(fixture_dir().join("server.seed"), server.seed().expose()).unwrap();
    fs::write(fixture_dir().join("server_xkey.seed"), XKeyPair::generate().seed().expose())
        .unwrap();
    let phc = hash_password_with(&Secret::new(PASSWORD), &PasswordParams::for_tests()).unwrap();
    let nkey_user = KeyPair::generate(KeyKind::User);
    let requests = setup_requests(&phc, nkey_user.public_key());
    let plain_token = make_store("plain", false, &requests);
    let sealed_token = make_store("sealed", true, &requests);
    let f = fixture();
    let header = f.server_xkey.public_key().to_string();
    let mut id = 1;
    for (side, sealed, token) in [(&f.plain, false, &plain_token), (&f.sealed, true, &sealed_token)]
    {
        let creds = [
            ("password", Cred::Password("pw-user", PASSWORD)),
            ("bad_password", Cred::Password("pw-user", "wrong")),
            ("no_user", Cred::Password("nobody", PASSWORD)),
            ("token", Cred::Token(token)),
            ("nkey", Cred::Nkey(&nkey_user)),
        ];
        let tag = if sealed { "sealed" } else { "plain" };
        for (name, cred) in &creds {
            id += 1;
            let json = request_json(f, side, cred, sealed, id);
            let mode = u8::from(sealed);
            write("callout_signed", &format!("{tag}_{name}"), &[&[mode], &json[..]].concat());
            let token = f.sign(&f.fill(side, &json));
            let out = side.handle(
                &if sealed { f.seal(token.as_bytes()) } else { token.clone().into_bytes() },
                sealed.then_some(header.as_str()),
                NOW,
            );
            let expect_ok = !name.starts_with("bad") && !name.starts_with("no_");
            assert_eq!(out.error.is_none(), expect_ok, "{tag} {name}: {:?}", out.error);
            write("jwt", &format!("request_{tag}_{name}"), token.as_bytes());
            if sealed {
                write(
                    "callout",
                    &format!("sealed_{name}"),
                    &[&[1], &f.seal(token.as_bytes())[..]].concat(),
                );
                write(
                    "callout",
                    &format!("harness_sealed_{name}"),
                    &[&[2], token.as_bytes()].concat(),
                );
                let hdr = format!("{header}\n");
                write(
                    "callout",
                    &format!("header_{name}"),
                    &[&[3], hdr.as_bytes(), &f.seal(token.as_bytes())].concat(),
                );
            } else {
                write("callout", &format!("plain_{name}"), &[&[0], token.as_bytes()].concat());
            }
            if let Some(reply) = out.reply {
                let reply = match &side.auth_xkey {
                    Some(x) => f.server_xkey.open(&reply, x).expect("sealed to the server"),
                    None => reply,
                };
                write("jwt", &format!("response_{tag}_{name}"), &reply);
            }
        }
    }
    vectors(&requests, &nkey_user);
    println!("fixture and seeds written under {}", seeds_dir().display());
}

/// Go vectors, creds, admin requests and the example config.
fn vectors(requests: &[Request], user: &KeyPair) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(data.join("vectors.json")).expect("vectors")).unwrap();
    for j in v["jwts"].as_array().expect("jwts") {
        write(
            "jwt",
            &format!("go_{}", j["id"].as_str().unwrap()),
            j["jwt"].as_str().unwrap().as_bytes(),
        );
    }
    for name in ["natsrs_TestUser.creds", "natsserver_one.creds"] {
        write("creds", name, &fs::read(data.join(name)).expect("a creds file"));
    }
    let jwt = fs::read_to_string(seeds_dir().join("jwt/response_plain_token")).unwrap_or_default();
    write("creds", "pbn_minted.creds", format_user_creds(&jwt, &user.seed()).as_bytes());
    for (i, req) in requests.iter().enumerate() {
        write("admin_request", &format!("setup_{i}"), &serde_json::to_vec(req).unwrap());
    }
    let more = [
        r#"{"op":"account_list"}"#,
        r#"{"op":"user_show","name":"pw-user"}"#,
        r#"{"op":"token_add","name":"token-user","label":"ci","expires_secs":3600}"#,
        r#"{"op":"role_add","name":"ops","role":{"pub_allow":["app.>"],"sub_deny":["$SYS.>"],"max_connections":3}}"#,
        r#"{"op":"nope"}"#,
    ];
    for (i, s) in more.iter().enumerate() {
        write("admin_request", &format!("handwritten_{i}"), s.as_bytes());
    }
    write("config", "example.toml", EXAMPLE_CONFIG.as_bytes());
}

const EXAMPLE_CONFIG: &str = r#"store = "/var/lib/pbn/pbn.redb"
servers = ["nats://127.0.0.1:4222", "nats://10.0.0.2:4222"]

[callout]
max_concurrent = 64
subscription_capacity = 1024
queue_group = "pbn"
default_jwt_ttl = "1h"
password_cache_size = 10000
password_cache_ttl = "10m"
throttle_max_failures = 10
throttle_window = "1m"

[publisher]
debounce = "200ms"
backoff_base = "1s"
backoff_max = "5m"
max_attempts = 20
retention = "7d"
cleanup_interval = "1h"
request_timeout = "5s"
"#;
