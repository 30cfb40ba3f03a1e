//! nats-server as a child process, shared by `pbn up`, the integration tests and the load
//! benchmark: find the binary ([`find_binary`]), start it from a config file with its output in
//! a log file, let it choose its own ports and read them back ([`Ports`]), wait until it is
//! ready, stop it, and restart it on the same ports ([`Natsd`]).
//!
//! Every child is tied to this process: on Linux it gets `SIGKILL` when this process dies (even
//! by `kill -9`), and [`Natsd`] kills and reaps it when dropped. The parent-death signal fires
//! when the spawning *thread* ends, so every child is spawned from one long-lived thread
//! ([`spawn_tied`]).
//!
//! Ports: [`Port::Pick`] passes `-1` so the server binds a port the kernel picks (no other
//! process can take it between choice and bind); the port is read back from the JSON file
//! nats-server writes with `--ports_file_dir`. A restart pins the ports the first run got.

use std::fs::{self, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the nats-server binary (set by `scripts/test.sh`).
pub const BINARY_ENV: &str = "PBN_NATS_SERVER";
/// Where `scripts/install-nats-server.sh` puts the pinned nats-server, below the project root.
pub const LOCAL_BINARY: &str = ".tools/bin/nats-server";
/// The log line nats-server prints once it accepts client connections.
pub const READY_LINE: &str = "Server is ready";
/// How often readiness and exits are polled.
const POLL: Duration = Duration::from_millis(20);
/// How long one TCP connect or monitoring request may take (loopback: only a hung server is slower).
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Failures to find, start, stop or query a nats-server.
#[derive(Debug, thiserror::Error)]
pub enum NatsdError {
    /// No binary in any of the places [`find_binary`] looks.
    #[error(
        "nats-server not found: run scripts/install-nats-server.sh (installs {local}), \
         or set PBN_NATS_SERVER, or put nats-server on PATH"
    )]
    NotFound {
        /// The project-local path that was tried.
        local: PathBuf,
    },
    /// `PBN_NATS_SERVER` names something that is not an executable file.
    #[error("PBN_NATS_SERVER={path} is not an executable file")]
    NotExecutable {
        /// The value of the variable.
        path: PathBuf,
    },
    /// A file of the server (log, ports file) could not be opened or read.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted, e.g. "open log".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The binary could not be executed.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary that failed to start.
        binary: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The server exited during startup because a port it was given is taken.
    #[error("nats-server (pid {pid}) found a port already in use ({status}); see {log}")]
    PortInUse {
        /// The process id of the failed server.
        pid: u32,
        /// How the process ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
    },
    /// The server exited during startup for another reason (bad config, bad argument, ...).
    #[error("nats-server (pid {pid}) exited during startup ({status}); see {log}")]
    Exited {
        /// The process id of the failed server.
        pid: u32,
        /// How the process ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
    },
    /// The server did not become ready in time (it has been killed).
    #[error("nats-server (pid {pid}) not ready within {timeout:?}; see {log}")]
    NotReady {
        /// The process id of the server.
        pid: u32,
        /// How long the wait was.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
    },
    /// A signal could not be sent to the server.
    #[error("cannot send signal {signal} to nats-server (pid {pid}): {source}")]
    Signal {
        /// The signal number.
        signal: libc::c_int,
        /// The process id.
        pid: u32,
        /// The underlying error.
        source: io::Error,
    },
    /// An operation that needs a running server found none.
    #[error("nats-server with log {log} is not running")]
    NotRunning {
        /// Its log file.
        log: PathBuf,
    },
    /// The server was started without a monitoring port.
    #[error("nats-server with log {log} has no monitoring port")]
    NoMonitoring {
        /// Its log file.
        log: PathBuf,
    },
    /// A request to the monitoring endpoint failed.
    #[error("monitoring request {url} failed: {reason}")]
    Monitor {
        /// The requested URL.
        url: String,
        /// Why it failed.
        reason: String,
    },
}

/// Finds nats-server: `flag` if given, else `$PBN_NATS_SERVER`, else `<root>/.tools/bin/nats-server`
/// if it is a file, else `nats-server` on `PATH`.
pub fn find_binary(flag: Option<&Path>, root: &Path) -> Result<PathBuf, NatsdError> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(NatsdError::NotExecutable { path })
        };
    }
    let local = root.join(LOCAL_BINARY);
    if is_executable(&local) {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_executable(candidate))
        .ok_or(NatsdError::NotFound { local })
}

/// Whether `path` is a file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// How a listener's port is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// As the config file says (no flag passed).
    Config,
    /// Picked by the server when it binds (`-1`), read back from its ports file.
    Pick,
    /// This port.
    Fixed(u16),
}

impl Port {
    /// The flag value, or `None` when the config decides.
    fn arg(self) -> Option<String> {
        match self {
            Port::Config => None,
            Port::Pick => Some("-1".into()),
            Port::Fixed(port) => Some(port.to_string()),
        }
    }
}

/// The ports a running server listens on, from its ports file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ports {
    /// The client port.
    pub client: u16,
    /// The HTTP monitoring port, if monitoring is on.
    pub http: Option<u16>,
    /// The route (cluster) port, if the server is in a cluster.
    pub cluster: Option<u16>,
}

impl Ports {
    /// Parses the JSON nats-server writes with `--ports_file_dir`, e.g.
    /// `{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}`.
    pub fn parse(json: &str) -> Option<Ports> {
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        let port = |key: &str| {
            let url = value[key].as_array()?.first()?.as_str()?;
            url.trim_end_matches('/').rsplit(':').next()?.parse::<u16>().ok()
        };
        Some(Ports { client: port("nats")?, http: port("monitoring"), cluster: port("cluster") })
    }
}

/// How to start a [`Natsd`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The nats-server binary (see [`find_binary`]).
    pub binary: PathBuf,
    /// The config file, passed with `-c`.
    pub config: PathBuf,
    /// The log file; stdout and stderr of every run are appended to it.
    pub log: PathBuf,
    /// The client port; with anything but [`Port::Config`] the listen host is 127.0.0.1.
    pub client: Port,
    /// The HTTP monitoring port.
    pub http: Port,
    /// More arguments (e.g. `-DV`).
    pub args: Vec<String>,
    /// The working directory of the process (relative paths in the config resolve there).
    pub work_dir: Option<PathBuf>,
    /// How long a start may take before it is a failure.
    pub startup_timeout: Duration,
    /// How long a graceful stop may take before the process is killed.
    pub stop_timeout: Duration,
}

impl Options {
    /// Options for `binary -c config` logging to `log`, with the config's ports, 20 s to start
    /// (busy CI machines are slow) and 10 s to stop.
    pub fn new(binary: &Path, config: &Path, log: &Path) -> Options {
        Options {
            binary: binary.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            client: Port::Config,
            http: Port::Config,
            args: Vec::new(),
            work_dir: None,
            startup_timeout: Duration::from_secs(20),
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// The directory the ports file goes to: the log's.
    fn ports_dir(&self) -> PathBuf {
        match self.log.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// A nats-server child process; dropping it kills and reaps the process.
#[derive(Debug)]
pub struct Natsd {
    opts: Options,
    child: Option<Child>,
    /// The ports of the current (or last) run, once it was ready.
    ports: Option<Ports>,
    /// Byte offset in the log where the current (or last) run's output starts.
    run_start: u64,
}

impl Natsd {
    /// Starts the server and waits until it is ready (see [`Natsd::wait_ready`]).
    pub async fn start(opts: Options) -> Result<Natsd, NatsdError> {
        let mut natsd = Natsd::spawn(opts)?;
        natsd.wait_ready().await?;
        Ok(natsd)
    }

    /// Starts the server without waiting; follow with [`Natsd::wait_ready`] or
    /// [`Natsd::wait_ready_blocking`].
    pub fn spawn(opts: Options) -> Result<Natsd, NatsdError> {
        let mut natsd = Natsd { opts, child: None, ports: None, run_start: 0 };
        natsd.launch()?;
        Ok(natsd)
    }

    /// The options the server runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.opts.log
    }

    /// The ports of the current (or last) run; `None` before it became ready.
    pub fn ports(&self) -> Option<Ports> {
        self.ports
    }

    /// The process id while the server runs (not stopped or killed through this handle).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log of the current run only (since the last start or restart).
    pub fn current_log(&self) -> String {
        let raw = fs::read(&self.opts.log).unwrap_or_default();
        let start = usize::try_from(self.run_start).map_or(raw.len(), |start| start.min(raw.len()));
        String::from_utf8_lossy(&raw[start..]).into_owned()
    }

    /// The exit status if the process has exited (it is then reaped and forgotten).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// Sends `signal` (e.g. `libc::SIGHUP` to reload the config) to the running server.
    pub fn signal(&self, signal: libc::c_int) -> Result<(), NatsdError> {
        let child = self.child.as_ref().ok_or_else(|| self.not_running())?;
        send_signal(child, signal).map_err(|source| NatsdError::Signal {
            signal,
            pid: child.id(),
            source,
        })
    }

    /// Waits (polling, up to the startup timeout) until the current run is ready: its log says
    /// so, its ports file is written and its client port accepts a connection. Kills the
    /// process when the deadline passes.
    pub async fn wait_ready(&mut self) -> Result<Ports, NatsdError> {
        let deadline = Instant::now() + self.opts.startup_timeout;
        loop {
            if let Some(ports) = self.poll_ready(deadline)? {
                return Ok(ports);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Like [`Natsd::wait_ready`], for callers without an async runtime.
    pub fn wait_ready_blocking(&mut self) -> Result<Ports, NatsdError> {
        let deadline = Instant::now() + self.opts.startup_timeout;
        loop {
            if let Some(ports) = self.poll_ready(deadline)? {
                return Ok(ports);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops the server gracefully (SIGTERM), killing it after the stop timeout. Returns how it
    /// ended, or `None` if it was not running.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if matches!(child.try_wait(), Ok(None)) {
            // Failure means the process is already gone; try_wait below reaps it.
            let _ = send_signal(&child, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.opts.stop_timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                _ => {
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }

    /// Kills the server at once (SIGKILL) and reaps it, like a crash. No-op when stopped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean the process already exited; wait() reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (if running) and starts it again with the same config file and the
    /// ports of its last ready run, waiting until it is ready. A port briefly held by another
    /// process is retried until the startup timeout.
    pub async fn restart(&mut self) -> Result<Ports, NatsdError> {
        self.stop().await;
        if let Some(ports) = self.ports {
            self.pin(ports);
        }
        let deadline = Instant::now() + self.opts.startup_timeout;
        loop {
            self.launch()?;
            match self.wait_ready().await {
                Err(NatsdError::PortInUse { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(POLL).await;
                }
                result => return result,
            }
        }
    }

    /// GETs `path` (e.g. `/varz`) from the monitoring endpoint and parses the JSON body.
    pub async fn monitor(&self, path: &str) -> Result<serde_json::Value, NatsdError> {
        let log = || self.opts.log.clone();
        let port = self.ports.ok_or_else(|| self.not_running())?;
        let http = port.http.ok_or_else(|| NatsdError::NoMonitoring { log: log() })?;
        monitor(http, path).await
    }

    /// The identity of the running server (see [`identity`]).
    pub async fn identity(&self) -> Result<ServerIdentity, NatsdError> {
        let log = || self.opts.log.clone();
        let port = self.ports.ok_or_else(|| self.not_running())?;
        identity(port.http.ok_or_else(|| NatsdError::NoMonitoring { log: log() })?).await
    }

    /// Pins every picked port to the one `ports` shows.
    fn pin(&mut self, ports: Ports) {
        if self.opts.client == Port::Pick {
            self.opts.client = Port::Fixed(ports.client);
        }
        if let (Port::Pick, Some(http)) = (self.opts.http, ports.http) {
            self.opts.http = Port::Fixed(http);
        }
    }

    fn not_running(&self) -> NatsdError {
        NatsdError::NotRunning { log: self.opts.log.clone() }
    }

    /// Spawns the process for a new run, its output appended to the log.
    fn launch(&mut self) -> Result<(), NatsdError> {
        let path = self.opts.log.clone();
        let io_err = |action, source| NatsdError::Io { action, path: path.clone(), source };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| io_err("open log", source))?;
        self.run_start = log.metadata().map_err(|source| io_err("stat log", source))?.len();
        let stderr = log.try_clone().map_err(|source| io_err("duplicate log handle", source))?;
        let mut command = Command::new(&self.opts.binary);
        command.arg("-c").arg(&self.opts.config);
        if let Some(port) = self.opts.client.arg() {
            command.args(["-a", "127.0.0.1", "-p", &port]);
        }
        if let Some(port) = self.opts.http.arg() {
            command.args(["-m", &port]);
        }
        command.arg("--ports_file_dir").arg(self.opts.ports_dir()).args(&self.opts.args);
        if let Some(dir) = &self.opts.work_dir {
            command.current_dir(dir);
        }
        command.stdin(Stdio::null()).stdout(log).stderr(stderr);
        let child = spawn_tied(command)
            .map_err(|source| NatsdError::Spawn { binary: self.opts.binary.clone(), source })?;
        self.child = Some(child);
        self.ports = None;
        Ok(())
    }

    /// One readiness check: `Some` when ready, an error when the process exited or the
    /// deadline passed (then the process is killed).
    fn poll_ready(&mut self, deadline: Instant) -> Result<Option<Ports>, NatsdError> {
        let pid = self.pid().ok_or_else(|| self.not_running())?;
        if let Some(status) = self.try_wait() {
            let log = self.opts.log.clone();
            return Err(if self.current_log().contains("address already in use") {
                NatsdError::PortInUse { pid, status, log }
            } else {
                NatsdError::Exited { pid, status, log }
            });
        }
        if self.current_log().contains(READY_LINE) {
            if let Some(ports) = self.read_ports_file(pid)? {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ports.client));
                if TcpStream::connect_timeout(&addr, IO_TIMEOUT).is_ok() {
                    self.ports = Some(ports);
                    return Ok(Some(ports));
                }
            }
        }
        if Instant::now() >= deadline {
            self.kill();
            let log = self.opts.log.clone();
            return Err(NatsdError::NotReady { pid, timeout: self.opts.startup_timeout, log });
        }
        Ok(None)
    }

    /// Reads and removes the ports file of process `pid`; `None` while it is missing or not
    /// yet completely written.
    fn read_ports_file(&self, pid: u32) -> Result<Option<Ports>, NatsdError> {
        let dir = self.opts.ports_dir();
        let suffix = format!("_{pid}.ports");
        let entries = fs::read_dir(&dir).map_err(|source| NatsdError::Io {
            action: "list",
            path: dir.clone(),
            source,
        })?;
        let file = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(&suffix)));
        let Some(file) = file else { return Ok(None) };
        let ports = fs::read_to_string(&file).ok().as_deref().and_then(Ports::parse);
        if ports.is_some() {
            // The ports are kept in memory; the file would only pile up across restarts.
            let _ = fs::remove_file(&file);
        }
        Ok(ports)
    }
}

impl Drop for Natsd {
    fn drop(&mut self) {
        self.kill();
    }
}

mod monitor;
mod spawn;

pub use monitor::{identity, jetstream_ready, monitor, route_peers, wait_for, ServerIdentity};
pub use spawn::{send_signal, spawn_tied};

#[cfg(test)]
mod tests;
