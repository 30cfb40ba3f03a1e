//! Fixtures shared by the fuzz targets: a served store copied from `seeds/fixture/` (so the keys
//! inside the committed seeds match), the server keys that sign and seal forged requests, and the
//! forging itself.
//!
//! The fixture is made once per process ([`fixture`]); every target run reuses it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use data_encoding::BASE64URL_NOPAD;
use pbn::keys::{CurvePublicKey, KeyPair, Seed, XKeyPair};
use pbn::SessionRegistry;
use pbn::Store;
use pbn::{Handled, Pipeline, PipelineOptions};
use pbn::{RawConfig, Settings};
use tempfile::TempDir;

/// Placeholders a seed's JSON may hold; [`Fixture::fill`] puts the fixture's keys in their place.
pub const AUTH_PLACEHOLDER: &str = "@AUTH@";
/// See [`AUTH_PLACEHOLDER`]: the server's public key.
pub const SERVER_PLACEHOLDER: &str = "@SERVER@";
/// See [`AUTH_PLACEHOLDER`]: the server's xkey public key.
pub const SERVER_XKEY_PLACEHOLDER: &str = "@SXKEY@";

/// The JWT header nats-server writes.
const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";

/// Where the fixture store and key seeds live.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join("fixture")
}

/// One served store: a pipeline over a copy of it and its AUTH account's keys.
pub struct Side {
    /// Drives the async pipeline; current-thread, with the blocking pool argon2 runs on.
    runtime: tokio::runtime::Runtime,
    /// The pipeline under test.
    pub pipeline: Pipeline,
    /// The AUTH account's public key (`sub` of a request).
    pub auth_key: String,
    /// The AUTH account's xkey public key (requests are sealed to it), when it has one.
    pub auth_xkey: Option<CurvePublicKey>,
}

/// Both served stores (AUTH without and with an xkey) and the server's keys.
pub struct Fixture {
    _dir: TempDir,
    /// AUTH has no xkey: requests come in plain.
    pub plain: Side,
    /// AUTH has an xkey: requests come sealed, with the `Nats-Server-Xkey` header.
    pub sealed: Side,
    /// The server that signs requests.
    pub server: KeyPair,
    /// The server's xkey (requests are sealed with it).
    pub server_xkey: XKeyPair,
}

/// The process-wide fixture.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(load)
}

fn read_text(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; run scripts/fuzz.sh to write the fixture"))
        .trim()
        .to_string()
}

fn read_seed(name: &str) -> Seed {
    Seed::new(read_text(name)).expect("the fixture holds valid seeds")
}

fn side(dir: &Path, name: &str) -> Side {
    let path = dir.join(format!("{name}.redb"));
    std::fs::copy(fixture_dir().join(format!("{name}.redb")), &path).expect("the fixture store");
    let store = Store::open(&path).expect("the fixture store opens");
    let settings = Settings::resolve(None, RawConfig::default(), RawConfig::default())
        .expect("default settings are valid");
    let mut opts = PipelineOptions::from_settings(&settings.callout);
    // The loosest throttle allowed, so the fuzzer keeps reaching password verification.
    opts.throttle_max_failures = 200; // hosts get 5x, the most allowed
    let pipeline = Pipeline::new(store, Arc::new(SessionRegistry::new()), opts)
        .expect("the fixture store is served");
    let auth_xkey = std::fs::read_to_string(fixture_dir().join(format!("{name}.auth_xkey")))
        .ok()
        .map(|k| CurvePublicKey::parse(k.trim()).expect("an xkey public key"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    Side { runtime, pipeline, auth_key: read_text(&format!("{name}.auth")), auth_xkey }
}

fn load() -> Fixture {
    let dir = tempfile::tempdir().expect("a temp dir");
    Fixture {
        plain: side(dir.path(), "plain"),
        sealed: side(dir.path(), "sealed"),
        _dir: dir,
        server: KeyPair::from_seed(&read_seed("server.seed")).expect("a server seed"),
        server_xkey: XKeyPair::from_seed(&read_seed("server_xkey.seed")).expect("an xkey seed"),
    }
}

impl Fixture {
    /// Replaces the placeholders in a request payload by the keys of `side`.
    pub fn fill(&self, side: &Side, json: &[u8]) -> Vec<u8> {
        let Ok(text) = std::str::from_utf8(json) else {
            return json.to_vec();
        };
        text.replace(AUTH_PLACEHOLDER, &side.auth_key)
            .replace(SERVER_PLACEHOLDER, self.server.public_key())
            .replace(SERVER_XKEY_PLACEHOLDER, self.server_xkey.public_key())
            .into_bytes()
    }

    /// A JWT whose payload is `payload` (any bytes), signed by the server.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signed = format!("{HEADER_B64}.{}", BASE64URL_NOPAD.encode(payload));
        let sig = self.server.sign(signed.as_bytes());
        format!("{signed}.{}", BASE64URL_NOPAD.encode(&sig))
    }

    /// `token` sealed from the server to the sealed side's AUTH account, as nats-server sends it.
    pub fn seal(&self, token: &[u8]) -> Vec<u8> {
        let to = self.sealed.auth_xkey.as_ref().expect("the sealed side has an xkey");
        self.server_xkey.seal(token, to).expect("sealing never fails")
    }
}

impl Side {
    /// Hands one request to the pipeline and forgets the session it admitted, so the registry
    /// stays small however long the fuzzer runs.
    pub fn handle(&self, payload: &[u8], header: Option<&str>, now: i64) -> Handled {
        let out = self.runtime.block_on(self.pipeline.handle(payload, header, now, MAX_REPLY));
        if let Some(s) = &out.admitted {
            self.pipeline.sessions().remove(&s.server_id.to_string(), s.client_id);
        }
        out
    }
}

/// The largest response the fuzzed server takes: nats-server's default max payload (1 MiB).
pub const MAX_REPLY: usize = 1024 * 1024;

/// The time every target hands the pipeline (fixed, so a crash replays the same way); the
/// seed requests expire ten years later.
pub const NOW: i64 = 1_790_000_000;
