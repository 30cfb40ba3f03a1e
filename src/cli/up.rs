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
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use tokio::sync::watch;

use super::args::UpArgs;
use super::serve::{runtime, watch_signals};
use crate::admin::{self, Context};
use crate::config::{RawConfig, Settings};
use crate::natsconf::{self, Layout};
use crate::server::version::ServerVersion;

/// The pid of the running nats-server, in the `pbn up` directory.
pub const PID_FILE: &str = "nats-server.pid";
/// The nats-server log, in the `pbn up` directory.
pub const LOG_FILE: &str = "nats-server.log";
/// The server log line that means every listener accepts connections.
const READY_LINE: &str = "Server is ready";
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
    refuse_leftover_server(&dir)?;
    let bin = nats_server_binary(a.nats_server.as_deref())?;
    check_version(&bin)?;
    let store_path = prepare_store(&dir)?;
    let conf = write_config(&store_path, &dir, a.port)?;
    check_port_free(a.port, "client")?;
    // Spawned from the main thread, which lives as long as the process: the parent-death signal
    // fires when the spawning thread ends, not the process.
    let server = Server::start(&bin, &conf, &dir)?;
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
        let child = server.child.clone();
        let watcher = tokio::spawn(watch_child(child, tx.clone(), rx.clone()));
        let result = crate::server::run(settings, rx).await.context("pbn serve failed");
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
    child: Arc<Mutex<Child>>,
    tx: Arc<watch::Sender<bool>>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<ExitStatus> {
    loop {
        let status = child.lock().unwrap_or_else(PoisonError::into_inner).try_wait();
        if let Ok(Some(status)) = status {
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
fn prepare_store(dir: &Path) -> Result<PathBuf> {
    let store_path = dir.join("pbn.redb");
    if store_path.exists() {
        return Ok(store_path);
    }
    let (store, _) = admin::init::init_store(&store_path, "pbn", false, &Context::now())?;
    eprintln!("created store {}", store_path.display());
    let creds = super::admin_creds_path(&store_path);
    if creds.exists() {
        eprintln!("warning: {} exists and was left alone", creds.display());
    } else {
        super::write_admin_creds(&store, super::secrets::SecretFile::open(&creds)?)?;
        eprintln!("wrote admin creds {}", creds.display());
    }
    Ok(store_path)
}

/// Renders the single-server config for `port` into `<dir>/nats/`; returns its path.
fn write_config(store_path: &Path, dir: &Path, port: u16) -> Result<PathBuf> {
    let store = super::open_store(store_path)?;
    let trust = admin::init::trust(&store, &Context::now())?;
    drop(store);
    let mut layout = Layout::single(dir.join("nats"), port);
    layout.auth_timeout = Duration::from_secs(5);
    let files = natsconf::render(&trust, &layout)?;
    natsconf::write_configs(&files)?;
    Ok(files[0].path.clone())
}

/// Finds nats-server: the flag, `$PBN_NATS_SERVER`, `./.tools/bin/nats-server`, then `PATH`.
fn nats_server_binary(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PBN_NATS_SERVER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let local = Path::new(".tools/bin/nats-server");
    if local.is_file() {
        return Ok(local.to_path_buf());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|d| d.join("nats-server")).find(|p| p.is_file())
    });
    on_path
        .context("nats-server not found: run scripts/install-nats-server.sh or pass --nats-server")
}

/// Refuses a nats-server binary older than [`crate::server::version::MINIMUM`] (from `nats-server --version`).
fn check_version(bin: &Path) -> Result<()> {
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
fn check_port_free(port: u16, what: &str) -> Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(err) => bail!(
            "port {port} ({what} port of nats-server) is not free on 127.0.0.1 ({err}): \
             stop what uses it or pick another port with --port"
        ),
    }
}

/// Refuses to start when a nats-server of an earlier `pbn up` in `dir` still runs; removes a
/// stale pid file.
fn refuse_leftover_server(dir: &Path) -> Result<()> {
    let pid_file = dir.join(PID_FILE);
    let text = match fs::read_to_string(&pid_file) {
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
    fs::remove_file(&pid_file).with_context(|| format!("cannot remove {}", pid_file.display()))
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
struct Server {
    child: Arc<Mutex<Child>>,
    pid: u32,
    log: PathBuf,
    pid_file: PathBuf,
}

impl Server {
    /// Starts `bin -c conf` with its log in `dir` and writes the pid file.
    fn start(bin: &Path, conf: &Path, dir: &Path) -> Result<Server> {
        let log = dir.join(LOG_FILE);
        let log_file =
            fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Process::new(bin);
        command.arg("-c").arg(conf).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file);
        let child =
            spawn_tied(&mut command).with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id();
        let server =
            Server { child: Arc::new(Mutex::new(child)), pid, log, pid_file: dir.join(PID_FILE) };
        fs::write(&server.pid_file, format!("{pid}\n"))
            .with_context(|| format!("cannot write {}", server.pid_file.display()))?;
        Ok(server)
    }

    /// The exit status, if the server has exited.
    fn try_wait(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner).try_wait().ok().flatten()
    }

    /// Waits until the server's own log says it is ready; fails when it exits first.
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(self.exited(status).context("nats-server did not start"));
            }
            if fs::read_to_string(&self.log).is_ok_and(|log| log.contains(READY_LINE)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server did not become ready within {} s; see {}",
                    START_TIMEOUT.as_secs(),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The error for an exited server: its status and the last lines of its log.
    fn exited(&self, status: ExitStatus) -> anyhow::Error {
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
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_file(&self.pid_file);
    }
}

/// Spawns `command` so that the child gets `SIGKILL` when the spawning thread's process dies.
#[cfg(target_os = "linux")]
fn spawn_tied(command: &mut Process) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2) and
    // getppid(2), which are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal would come.
            if libc::getppid() != parent {
                return Err(io::Error::other("pbn up died while starting nats-server"));
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Spawns `command` (no parent-death signal on this platform; the drop handler still kills it).
#[cfg(not(target_os = "linux"))]
fn spawn_tied(command: &mut Process) -> io::Result<Child> {
    command.spawn()
}
