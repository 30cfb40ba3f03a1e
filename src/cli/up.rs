//! `pbn up`: a nats-server child, supervised, with `pbn serve` answering its callout.
//!
//! Before starting the server it refuses, each with an error naming the cause: a server of an
//! earlier `pbn up` in the same directory that is still running (found through the pid file), a
//! nats-server binary older than [`crate::server::version::MINIMUM`], and a port the config uses that is taken.
//! The child is tied to this process: on Linux it gets `SIGKILL` when its parent dies (even by
//! `kill -9`), and it is killed on every normal exit. While pbn serves, the child is watched; when
//! it exits, pbn stops and reports the exit status and the last lines of the server's log.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use tokio::sync::watch;

use super::args::UpArgs;
use super::serve::{runtime, watch_signals};
use crate::admin::{self, Context};
use crate::config::{RawConfig, Settings};
use crate::natsconf::{self, Layout};
use crate::natsd::{self, Natsd, NatsdError};
use crate::server::version::ServerVersion;

/// The pid of the running nats-server, in the `pbn up` directory.
pub const PID_FILE: &str = "nats-server.pid";
/// The nats-server log, in the `pbn up` directory.
pub const LOG_FILE: &str = "nats-server.log";
/// Lines of the server log shown when the server exits.
const LOG_TAIL_LINES: usize = 20;
/// How long the server may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the child is checked for an exit.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// `pbn up`.
pub fn up(a: UpArgs) -> Result<()> {
    fs::create_dir_all(&a.dir).with_context(|| format!("cannot create {}", a.dir.display()))?;
    let dir = std::path::absolute(&a.dir)?;
    refuse_leftover_server(&dir.join(PID_FILE))?;
    let bin = nats_server_binary(a.nats_server.as_deref())?;
    check_version(&bin)?;
    if a.replicas > 1 {
        return super::up_cluster::up_replicated(&a, &dir, &bin);
    }
    let store_path = prepare_store(&dir)?;
    let conf = write_config(&store_path, &dir, a.port)?;
    check_port_free(a.port, "client")?;
    // Tied to this process (parent-death signal, see `natsd::spawn_tied`).
    let server = Server::start(&bin, &conf, &dir.join(LOG_FILE), &dir.join(PID_FILE))?;
    server.wait_ready()?;
    eprintln!("nats-server started (pid {}), log: {}", server.pid, server.log.display());
    eprintln!("clients connect with nats://USER:PASSWORD@127.0.0.1:{}", a.port);
    let settings = Settings::resolve(
        None,
        RawConfig::default(),
        RawConfig {
            store: Some(store_path),
            servers: Some(vec![format!("nats://127.0.0.1:{}", a.port)]),
            ..RawConfig::default()
        },
    )?;
    serve_while_up(&server, settings)
}

/// Runs the service until a signal or until the server exits (then returns the server's reason).
fn serve_while_up(server: &Server, settings: Settings) -> Result<()> {
    let (tx, rx) = watch::channel(false);
    let tx = Arc::new(tx);
    let result = runtime()?.block_on(async {
        watch_signals(tx.clone())?;
        let natsd = server.natsd.clone();
        let watcher = tokio::spawn(watch_child(natsd, tx.clone(), rx.clone()));
        let result = super::serve::run_service(settings, rx).await.context("pbn serve failed");
        let _ = tx.send(true);
        let exited = watcher.await.ok().flatten();
        Ok::<_, anyhow::Error>((result, exited))
    });
    let (result, exited) = result?;
    if let Some(status) = exited.or_else(|| server.try_wait()) {
        return Err(server.exited(status));
    }
    result
}

/// Polls the child until it exits (then signals shutdown and returns its status) or shutdown.
async fn watch_child(
    natsd: Arc<Mutex<Natsd>>,
    tx: Arc<watch::Sender<bool>>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<ExitStatus> {
    loop {
        let status = natsd.lock().unwrap_or_else(PoisonError::into_inner).try_wait();
        if let Some(status) = status {
            tracing::error!(%status, "nats-server exited; stopping");
            let _ = tx.send(true);
            return Some(status);
        }
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
    }
}

/// Creates the store (and the admin creds beside it) on first use; returns its path.
pub(super) fn prepare_store(dir: &Path) -> Result<PathBuf> {
    let store_path = dir.join("pbn.redb");
    if store_path.exists() {
        return Ok(store_path);
    }
    let (key, _) = super::store_key::for_init(&store_path, None)?;
    let (store, _) =
        admin::init::init_store_with(&store_path, "pbn", false, &Context::now(), Some(key))?;
    eprintln!("created store {}", store_path.display());
    let creds = super::admin_creds_path(&store_path);
    if creds.exists() {
        eprintln!("warning: {} exists and was left alone", creds.display());
    } else {
        super::write_admin_creds(&store, super::secrets::SecretFile::open(&creds)?, None)?;
        eprintln!("wrote admin creds {}", creds.display());
    }
    Ok(store_path)
}

/// Renders the single-server config for `port` into `<dir>/nats/`; returns its path.
fn write_config(store_path: &Path, dir: &Path, port: u16) -> Result<PathBuf> {
    let store = super::open_store(store_path, None)?;
    let trust = admin::init::trust(&store, &Context::now())?;
    drop(store);
    let mut layout = Layout::single(dir.join("nats"), port);
    layout.auth_timeout = Duration::from_secs(5);
    let files = natsconf::render(&trust, &layout)?;
    natsconf::write_configs(&files)?;
    Ok(files[0].path.clone())
}

/// Finds nats-server: the flag, `$PBN_NATS_SERVER`, `./.tools/bin/nats-server`, then `PATH`.
pub(super) fn nats_server_binary(flag: Option<&Path>) -> Result<PathBuf> {
    natsd::find_binary(flag, Path::new("")).map_err(|err| match err {
        NatsdError::NotFound { .. } => anyhow!(
            "nats-server not found: run scripts/install-nats-server.sh or pass --nats-server"
        ),
        err => err.into(),
    })
}

/// Refuses a nats-server binary older than [`crate::server::version::MINIMUM`] (from `nats-server --version`).
pub(super) fn check_version(bin: &Path) -> Result<()> {
    let out = Process::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} --version", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let found = ServerVersion::from_version_output(&text)
        .with_context(|| format!("{} is not a usable nats-server", bin.display()))?;
    found.check_supported().with_context(|| {
        format!(
            "{} is too old; install a newer one with scripts/install-nats-server.sh",
            bin.display()
        )
    })
}

/// Refuses a port that something already listens on (nats-server would fail to bind it, and
/// clients would reach the other listener).
pub(super) fn check_port_free(port: u16, what: &str) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(err) => bail!(
            "port {port} ({what} port of nats-server) is not free on 127.0.0.1 ({err}): \
             stop what uses it or pick another port with --port"
        ),
    }
}

/// Refuses to start when the nats-server of an earlier `pbn up` whose pid is in `pid_file`
/// still runs; removes a stale pid file.
pub(super) fn refuse_leftover_server(pid_file: &Path) -> Result<()> {
    let dir = pid_file.parent().unwrap_or(Path::new("."));
    let text = match fs::read_to_string(pid_file) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", pid_file.display())),
    };
    if let Some(pid) = text.trim().parse::<u32>().ok().filter(|&pid| is_live_nats_server(pid)) {
        bail!(
            "a nats-server started by an earlier `pbn up` in {} is still running (pid {pid}, \
             see {}); stop it with `kill {pid}`, then run pbn up again",
            dir.display(),
            pid_file.display()
        );
    }
    fs::remove_file(pid_file).with_context(|| format!("cannot remove {}", pid_file.display()))
}

/// Whether `pid` is a running (not zombie) process named `nats-server`.
fn is_live_nats_server(pid: u32) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name: `pid (comm) S ...`.
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    comm.trim() == "nats-server" && !matches!(state, None | Some('Z' | 'X'))
}

/// The running nats-server child. Dropping it kills the server and removes the pid file.
pub(super) struct Server {
    pub(super) natsd: Arc<Mutex<Natsd>>,
    pub(super) pid: u32,
    pub(super) log: PathBuf,
    pid_file: PathBuf,
}

impl Server {
    /// Starts `bin -c conf` logging to `log` and writes its pid to `pid_file`.
    pub(super) fn start(bin: &Path, conf: &Path, log: &Path, pid_file: &Path) -> Result<Server> {
        let log = log.to_path_buf();
        // A fresh log per run: `wait_ready` and the exit report read only this run's lines.
        fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut opts = natsd::Options::new(bin, conf, &log);
        opts.startup_timeout = START_TIMEOUT;
        let natsd = Natsd::spawn(opts).map_err(|err| match err {
            NatsdError::Spawn { binary, source } => {
                anyhow::Error::new(source).context(format!("cannot start {}", binary.display()))
            }
            err => err.into(),
        })?;
        let pid = natsd.pid().context("nats-server exited at once")?;
        let server = Server {
            natsd: Arc::new(Mutex::new(natsd)),
            pid,
            log,
            pid_file: pid_file.to_path_buf(),
        };
        fs::write(&server.pid_file, format!("{pid}\n"))
            .with_context(|| format!("cannot write {}", server.pid_file.display()))?;
        Ok(server)
    }

    /// The exit status, if the server has exited.
    pub(super) fn try_wait(&self) -> Option<ExitStatus> {
        self.natsd.lock().unwrap_or_else(PoisonError::into_inner).try_wait()
    }

    /// Waits until the server is ready; fails when it exits first.
    pub(super) fn wait_ready(&self) -> Result<()> {
        let result =
            self.natsd.lock().unwrap_or_else(PoisonError::into_inner).wait_ready_blocking();
        match result {
            Ok(_) => Ok(()),
            Err(NatsdError::Exited { status, .. } | NatsdError::PortInUse { status, .. }) => {
                Err(self.exited(status).context("nats-server did not start"))
            }
            Err(NatsdError::NotReady { .. }) => bail!(
                "nats-server did not become ready within {} s; see {}",
                START_TIMEOUT.as_secs(),
                self.log.display()
            ),
            Err(err) => Err(err.into()),
        }
    }

    /// The error for an exited server: its status and the last lines of its log.
    pub(super) fn exited(&self, status: ExitStatus) -> anyhow::Error {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        anyhow!(
            "nats-server exited ({status}); last lines of its log {}:\n{tail}",
            self.log.display()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.natsd.lock().unwrap_or_else(PoisonError::into_inner).kill();
        let _ = fs::remove_file(&self.pid_file);
    }
}
