//! One nats-server child process (run by [`pbn::natsd::Natsd`]): start, graceful stop,
//! restart, and its connection count.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pbn::natsd::{self, Natsd, NatsdError, Port};

use crate::LoadError;

/// How long a start may take before it is a failure.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the connection count is polled while waiting for it to drop.
const POLL: Duration = Duration::from_millis(50);

/// Finds nats-server: the flag, `$PBN_NATS_SERVER`, the project's `.tools/bin`, then `PATH`.
pub fn find_binary(flag: Option<&Path>) -> Result<PathBuf, LoadError> {
    let found = natsd::find_binary(flag, Path::new(env!("CARGO_MANIFEST_DIR")))
        .map_err(|_| LoadError::NoNatsServer)?;
    if found.is_file() {
        Ok(found)
    } else {
        Err(LoadError::NoNatsServer)
    }
}

/// A nats-server started from a config file, with its log in `log`; it picks its own client
/// and monitoring ports when it binds them, and keeps them across restarts.
pub struct NatsProcess {
    natsd: Natsd,
}

impl NatsProcess {
    /// Starts `binary -c config` on ports the server picks and waits until it is ready.
    pub async fn start(binary: &Path, config: &Path, log: &Path) -> Result<Self, LoadError> {
        let mut opts = natsd::Options::new(binary, config, log);
        opts.client = Port::Pick;
        opts.http = Port::Pick;
        opts.startup_timeout = STARTUP_TIMEOUT;
        opts.stop_timeout = STOP_TIMEOUT;
        let natsd = Natsd::start(opts).await.map_err(|err| start_error(err, log))?;
        Ok(NatsProcess { natsd })
    }

    /// The server's process id (for its CPU time in `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.natsd.pid()
    }

    /// The URL clients connect to.
    pub fn client_url(&self) -> String {
        let port = self.natsd.ports().map_or(0, |ports| ports.client);
        format!("nats://127.0.0.1:{port}")
    }

    /// Stops the server gracefully (SIGTERM), killing it after [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        self.natsd.stop().await;
    }

    /// Stops and starts the server again with the same config and ports.
    pub async fn restart(&mut self) -> Result<(), LoadError> {
        let log = self.natsd.log_path().to_path_buf();
        self.natsd.restart().await.map(drop).map_err(|err| start_error(err, &log))
    }

    /// The number of client connections the server holds (`/varz` `connections`).
    pub async fn connections(&self) -> Result<u64, LoadError> {
        let varz =
            self.natsd.monitor("/varz").await.map_err(|e| LoadError::Monitor(e.to_string()))?;
        varz["connections"]
            .as_u64()
            .ok_or_else(|| LoadError::Monitor("no connections in /varz".into()))
    }

    /// Waits until the server holds at most `count` connections, up to `timeout`.
    pub async fn wait_connections_at_most(&self, count: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.connections().await.is_ok_and(|n| n <= count) {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }
}

/// The benchmark's error for a failed start: spawn failures as I/O, the rest point at the log.
fn start_error(err: NatsdError, log: &Path) -> LoadError {
    match err {
        NatsdError::Spawn { source, .. } => LoadError::Io { action: "spawn nats-server", source },
        _ => LoadError::ServerStart(log.to_path_buf()),
    }
}
