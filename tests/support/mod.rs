//! Test harness: real nats-server processes in temp dirs on loopback ports.
//!
//! - [`nats_server_binary`] finds the server (`PBN_NATS_SERVER`, `.tools/bin`, `PATH`).
//! - [`NatsServer`] runs one server (start, stop, restart, logs, monitoring endpoint).
//! - [`Cluster`] runs n routed servers and waits until every route is up.
//! - [`Refuser`] stands in for a server that is not there yet and counts connection attempts.
//! - [`wait_until`] and [`Deadline`] poll a condition with a deadline instead of sleeping.
//!
//! Every process is killed and reaped when its handle drops, and on Linux also when the test
//! process dies (parent-death signal), so no server outlives its test.

// Shared by every test module; no single module uses every item.
#![allow(dead_code)]

mod cluster;
pub mod deploy;
pub mod oidc;
pub mod pbn;
mod process;
mod refuser;
mod server;
mod wait;

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

// Re-exported for the test modules; unused ones are not an error (see `dead_code` above).
#[allow(unused_imports)]
pub use cluster::{Cluster, CLUSTER_NAME, JETSTREAM_BLOCK};
#[allow(unused_imports)]
pub use refuser::Refuser;
#[allow(unused_imports)]
pub use server::{NatsServer, NatsServerBuilder};
#[allow(unused_imports)]
pub use wait::{try_wait_until, wait_until, wait_until_async, Deadline, POLL_INTERVAL};

/// Environment variable naming the nats-server binary to test against (set by `scripts/test.sh`).
pub const NATS_SERVER_ENV: &str = ::pbn::natsd::BINARY_ENV;

/// Where `scripts/install-nats-server.sh` puts the pinned nats-server, relative to the repo root.
pub const LOCAL_NATS_SERVER: &str = ::pbn::natsd::LOCAL_BINARY;

/// Failures of the harness itself (the server could not start, a wait timed out, ...).
///
/// Messages carry the server log where it explains the failure.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file or directory of the harness could not be created, written or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted, e.g. "write config".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The nats-server binary could not be executed.
    #[error("cannot spawn {binary}: {source}")]
    Spawn {
        /// The binary that failed to start.
        binary: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A port the server needed was taken by another process (possible with pre-picked ports).
    #[error("nats-server for client port {port} found a port already in use; log:\n{log}")]
    PortInUse {
        /// The client port of the failed server.
        port: u16,
        /// The server log of the failed run.
        log: String,
    },
    /// The server exited before it was ready (bad config, bad argument, ...).
    #[error("nats-server for client port {port} exited during startup ({status}); log:\n{log}")]
    Exited {
        /// The client port of the failed server.
        port: u16,
        /// How the process ended.
        status: ExitStatus,
        /// The server log of the failed run.
        log: String,
    },
    /// The server did not accept connections in time (it has been killed).
    #[error("nats-server for client port {port} not ready after {timeout:?}; log:\n{log}")]
    NotReady {
        /// The client port of the server.
        port: u16,
        /// How long the harness waited.
        timeout: Duration,
        /// The server log of the failed run.
        log: String,
    },
    /// A polled condition did not become true before its deadline.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// The awaited condition, in words.
        what: String,
        /// How long the harness waited.
        timeout: Duration,
    },
    /// A request to a server's HTTP monitoring endpoint failed.
    #[error("monitoring request {url} failed: {reason}")]
    Monitor {
        /// The requested URL.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// The nats-server binary the tests run: `$PBN_NATS_SERVER` if set, else
/// `<repo>/.tools/bin/nats-server` if present, else `nats-server` on `PATH`.
///
/// # Panics
/// When none exists, with a message telling to run `scripts/install-nats-server.sh`.
pub fn nats_server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(find_nats_server).clone()
}

fn find_nats_server() -> PathBuf {
    ::pbn::natsd::find_binary(None, Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|err| panic!("{err}"))
}

fn is_executable(path: &Path) -> bool {
    ::pbn::natsd::is_executable(path)
}

/// A loopback TCP port that is free now and not handed out before by this process.
///
/// Only for ports that must be known before a server starts and that the server cannot pick
/// itself (rendered multi-server layouts, a server a test starts later on a known port).
/// Another process may still take the port before the server binds it; the starters of
/// rendered layouts retry with fresh ports when that happens ([`HarnessError::PortInUse`]).
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("binding an ephemeral loopback port works on any test machine");
        let port = listener.local_addr().expect("a bound listener has a local address").port();
        if HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
            return port;
        }
    }
}

/// The unsupported nats-server version the version checks are tested with.
pub const OLD_NATS_SERVER_VERSION: &str = "2.10.26";

/// The nats-server 2.10 binary `scripts/install-nats-server.sh 2.10.26` installs (under
/// `.tools/versions/`), for the tests that prove pbn refuses servers older than 2.11.
///
/// # Panics
/// When it is missing, with the command that installs it.
pub fn old_nats_server_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".tools/versions")
        .join(OLD_NATS_SERVER_VERSION)
        .join("nats-server");
    assert!(
        is_executable(&path),
        "{} is missing: run scripts/install-nats-server.sh {OLD_NATS_SERVER_VERSION}",
        path.display()
    );
    path
}

/// The key of a store `pbn init` made: the key file beside it (`<store>.key`), as the binary
/// finds it; `None` when there is none (a plain store).
pub fn store_key(store: &Path) -> Option<::pbn::seal::KeySource> {
    let mut name = store.as_os_str().to_owned();
    name.push(".key");
    let text = std::fs::read_to_string(PathBuf::from(name)).ok()?;
    let key = ::pbn::seal::StoreKey::from_file_text(&text).expect("a store key file");
    Some(::pbn::seal::KeySource::Key(key))
}

/// Opens a store `pbn init` made, with its key, as `command`, without waiting.
pub fn open_store(store: &Path, command: &str) -> ::pbn::Store {
    ::pbn::Store::open_for_with(store, command, Duration::ZERO, store_key(store))
        .unwrap_or_else(|e| panic!("open {}: {e}", store.display()))
}

/// `pbn::init_store` as `pbn init` does it: the store sealed under a fresh key written to the
/// key file beside it (mode 0600), where `pbn serve` and `pbn admin` find it.
pub fn init_sealed_store(
    path: &Path,
    operator: &str,
    xkey: bool,
    ctx: &::pbn::Context,
) -> Result<::pbn::Store, ::pbn::AdminError> {
    use std::os::unix::fs::PermissionsExt;
    let key = ::pbn::seal::StoreKey::generate();
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    let key_path = PathBuf::from(name);
    std::fs::write(&key_path, key.to_file_text().as_bytes()).expect("write the store key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let key = Some(::pbn::seal::KeySource::Key(key));
    ::pbn::init_store_with(path, operator, xkey, ctx, key).map(|(store, _)| store)
}
