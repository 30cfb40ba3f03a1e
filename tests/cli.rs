//! The `pbn` command line end to end: `pbn init`, `pbn admin`, `pbn nats-conf` and creds, run as
//! the real binary, with real nats-servers started from the files `pbn nats-conf` writes.
//!
//! - `deploy`: what a deployment built this way enforces (permissions, limits, revocations,
//!   account deactivation, clusters).
//! - `bad_input`: every refused input gives a clear message, the documented exit code, and leaves
//!   the store unchanged; secrets never show up in output; files get mode 0600.
//! - `output`: files written with `--out` (never through a symlink, never over an existing file
//!   without `--force`), a closed standard output, and what error messages and tables echo.
//! - `serve`: the real `pbn serve` logs its start and connection changes, and refuses old servers.
//! - `up`: `pbn up` supervises its nats-server (ports, versions, leftovers, exits, `kill -9`).
//! - `production`: TLS, monitoring and one file per server of a cluster, run as written, with
//!   `pbn serve`; `pbn nats-conf --server` while the service holds the store.

mod bad_input;
mod bulk;
mod deploy;
mod logs;
mod output;
mod production;
mod readme;
mod rekey;
mod serve;
mod store_key;
mod up;
mod up_replicas;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tempfile::TempDir;

use crate::support::pbn::{Pbn, PbnOutput};
use crate::support::{nats_server_binary, wait_until, NatsServer};

/// How long a condition on a live server may take to become true.
const WAIT: Duration = Duration::from_secs(10);

/// A store made by `pbn init` in its own temp dir, driven through the real binary.
struct Deployment {
    dir: TempDir,
    store: PathBuf,
    creds_written: AtomicUsize,
}

impl Deployment {
    /// Runs `pbn init --store <tmp>/pbn.redb` and checks it succeeded.
    fn init() -> Self {
        let dir = tempfile::Builder::new().prefix("pbn-cli-").tempdir().expect("create temp dir");
        let store = dir.path().join("pbn.redb");
        Pbn::new(["init", "--store"]).args([&store]).run().success();
        Deployment { dir, store, creds_written: AtomicUsize::new(0) }
    }

    /// The temp dir (store, creds, config output).
    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `pbn admin --store <store> ARGS...`, whatever its outcome.
    fn admin(&self, args: &[&str]) -> PbnOutput {
        Pbn::new(["admin", "--store"]).args([&self.store]).args(args).run()
    }

    /// Like [`Deployment::admin`], asserting success.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> PbnOutput {
        let out = self.admin(args);
        out.success();
        out
    }

    /// `pbn admin user creds USER --out <new file>`; returns the file.
    #[track_caller]
    fn creds(&self, user: &str, extra: &[&str]) -> PathBuf {
        let n = self.creds_written.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.dir().join(format!("{user}-{n}.creds"));
        let out = Pbn::new(["admin", "--store"])
            .args([&self.store])
            .args(["user", "creds", user, "--out"])
            .args([&path])
            .args(extra)
            .run();
        out.success();
        path
    }

    /// `pbn nats-conf --store S --out <tmp>/conf --port PORT [--cluster N] --force` (it
    /// regenerates the same files); returns the files written, each checked with
    /// `nats-server -t -c`.
    #[track_caller]
    fn nats_conf(&self, port: u16, cluster: Option<u16>) -> Vec<PathBuf> {
        let out_dir = self.dir().join("conf");
        let mut cmd = Pbn::new(["nats-conf", "--store"]).args([&self.store]).args(["--out"]);
        cmd = cmd.args([&out_dir]).args(["--port", &port.to_string(), "--force"]);
        if let Some(n) = cluster {
            cmd = cmd.args(["--cluster", &n.to_string()]);
        }
        cmd.run().success();
        let files = match cluster {
            None => vec![out_dir.join("nats.conf")],
            Some(n) => (1..=n).map(|i| out_dir.join(format!("pbn-{i}.conf"))).collect(),
        };
        files.iter().for_each(|f| assert_config_valid(f));
        files
    }

    /// Writes the single-server config for `port` and starts a nats-server on it.
    async fn start_server(&self, port: u16) -> NatsServer {
        let file = &self.nats_conf(port, None)[0];
        NatsServer::builder(&read(file)).port(port).start().await
    }

    /// Regenerates the config (same dir, same port) and restarts `server` on it.
    async fn regenerate_and_restart(&self, server: &mut NatsServer) {
        let file = &self.nats_conf(server.port(), None)[0];
        server.rewrite_config(&read(file));
        server.restart().await;
    }

    /// The JSON of `account list`, `role list` and `user list`: what "the store is unchanged"
    /// is checked against.
    fn snapshot(&self) -> String {
        ["account", "role", "user"]
            .iter()
            .map(|what| self.ok(&["--json", what, "list"]).stdout)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The text of a file.
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// Asserts that `nats-server -t -c FILE` accepts the file.
#[track_caller]
fn assert_config_valid(file: &Path) {
    let out = Command::new(nats_server_binary())
        .arg("-t")
        .arg("-c")
        .arg(file)
        .output()
        .expect("run nats-server -t");
    assert!(
        out.status.success(),
        "nats-server -t -c {} refused the file:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client connection that records every `-ERR` the server sends it.
struct Conn {
    client: async_nats::Client,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Conn {
    /// Connects to `url` with the creds file `creds`.
    async fn connect(url: &str, creds: &Path) -> Result<Conn, async_nats::ConnectError> {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        let options = async_nats::ConnectOptions::with_credentials_file(creds)
            .await
            .unwrap_or_else(|err| panic!("read creds {}: {err}", creds.display()))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(err) = event {
                        sink.lock().unwrap_or_else(PoisonError::into_inner).push(err.to_string());
                    }
                }
            });
        let client = options.connect(url).await?;
        Ok(Conn { client, errors })
    }

    /// Like [`Conn::connect`], panicking with the error on failure.
    async fn open(url: &str, creds: &Path) -> Conn {
        Conn::connect(url, creds)
            .await
            .unwrap_or_else(|err| panic!("connect to {url} with {}: {err}", creds.display()))
    }

    /// Waits until the server reported an error containing `needle` (case-insensitive).
    async fn wait_error(&self, needle: &str) {
        let needle = needle.to_lowercase();
        let errors = self.errors.clone();
        wait_until(WAIT, &format!("server error {needle:?}"), move || {
            let seen = errors.lock().unwrap_or_else(PoisonError::into_inner);
            seen.iter().any(|e| e.to_lowercase().contains(&needle))
        })
        .await;
    }

    /// The server errors seen so far.
    fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
