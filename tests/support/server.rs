//! One nats-server process with its own temp dir, config, log and ports (see [`NatsServer`]).

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wait::{Deadline, POLL_INTERVAL};
use super::{free_port, nats_server_binary, process, HarnessError};

/// The log line nats-server prints once every listener accepts connections.
const READY_LINE: &str = "Server is ready";
/// How long a start or restart may take by default (CI machines are slow and busy).
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one monitoring request may take.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);
/// Start attempts when a pre-picked port turns out to be taken.
pub(super) const START_ATTEMPTS: usize = 5;
/// Lines of log printed when a test panics while the server is alive.
const PANIC_LOG_LINES: usize = 300;
/// Set (to anything) to keep the temp dirs of servers whose test panicked.
const KEEP_DIRS_ENV: &str = "PBN_TEST_KEEP_DIRS";

/// Options for starting a [`NatsServer`]; [`NatsServer::start`] uses the defaults.
///
/// The harness owns the listen address and ports: it passes `-a 127.0.0.1 -p <port>
/// -m <http_port>`, which override any `listen`/`port`/`http` in the config.
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    config: String,
    port: Option<u16>,
    http_port: Option<u16>,
    args: Vec<String>,
    startup_timeout: Duration,
    config_ports: bool,
}

impl NatsServerBuilder {
    /// A builder for a server running `config` (nats-server config syntax).
    ///
    /// Placeholders replaced before the config is written: `{{DIR}}` (the server's temp dir),
    /// `{{PORT}}` (client port), `{{HTTP_PORT}}` (monitoring port).
    pub fn new(config: &str) -> Self {
        Self {
            config: config.to_owned(),
            port: None,
            http_port: None,
            args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            config_ports: false,
        }
    }

    /// Lets the config's own `listen` and `http` stand: no `-a`, `-p` and `-m` are passed, so
    /// a rendered file is run as written. The client and HTTP ports given with
    /// [`NatsServerBuilder::port`] and [`NatsServerBuilder::http_port`] must be the config's.
    pub fn config_ports(mut self) -> Self {
        self.config_ports = true;
        self
    }

    /// Uses this client port instead of a free one picked by [`free_port`].
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Uses this monitoring (HTTP) port instead of a free one picked by [`free_port`].
    pub fn http_port(mut self, port: u16) -> Self {
        self.http_port = Some(port);
        self
    }

    /// Adds a command-line argument (e.g. `-DV` for debug and trace logging).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// How long a start (and later restarts) may take before it is a failure.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the server and waits until it accepts client connections.
    ///
    /// Ports picked by the harness are re-picked when another process took one meanwhile.
    pub async fn try_start(self) -> Result<NatsServer, HarnessError> {
        let repickable = !self.config_ports && (self.port.is_none() || self.http_port.is_none());
        let mut attempt = 1;
        loop {
            let port = self.port.unwrap_or_else(free_port);
            let http_port = self.http_port.unwrap_or_else(free_port);
            match self.start_once(port, http_port).await {
                Err(HarnessError::PortInUse { .. }) if repickable && attempt < START_ATTEMPTS => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Like [`NatsServerBuilder::try_start`], but panics (with the server log) on failure.
    pub async fn start(self) -> NatsServer {
        self.try_start().await.unwrap_or_else(|err| panic!("{err}"))
    }

    async fn start_once(&self, port: u16, http_port: u16) -> Result<NatsServer, HarnessError> {
        let dir = tempfile::Builder::new().prefix("pbn-nats-").tempdir().map_err(|source| {
            HarnessError::Io { action: "create temp dir", path: std::env::temp_dir(), source }
        })?;
        let mut server = NatsServer {
            dir,
            port,
            http_port,
            args: self.args.clone(),
            startup_timeout: self.startup_timeout,
            config_ports: self.config_ports,
            child: None,
            run_start: 0,
        };
        server.try_rewrite_config(&self.config)?;
        server.launch().await?;
        Ok(server)
    }
}

/// A running (or stopped) nats-server owned by a test.
///
/// Its temp dir holds `nats.conf` and `nats.log` (stdout and stderr of every run, appended) and
/// is the working directory of the process, so relative paths in the config land inside it.
/// Dropping the handle kills and reaps the process, prints the log if the test is panicking,
/// and removes the dir (kept when `PBN_TEST_KEEP_DIRS` is set and the test panicked).
#[derive(Debug)]
pub struct NatsServer {
    dir: TempDir,
    port: u16,
    http_port: u16,
    args: Vec<String>,
    startup_timeout: Duration,
    /// The config's `listen` and `http` are used as written (no `-a`, `-p`, `-m`).
    config_ports: bool,
    child: Option<Child>,
    /// Byte offset in the log where the current (or last) run's output starts.
    run_start: u64,
}

impl NatsServer {
    /// Starts a server with `config` and default options (see [`NatsServerBuilder`]).
    ///
    /// # Panics
    /// If it does not become ready; the message carries the server log.
    pub async fn start(config: &str) -> NatsServer {
        NatsServerBuilder::new(config).start().await
    }

    /// A builder for a server running `config`, for non-default options.
    pub fn builder(config: &str) -> NatsServerBuilder {
        NatsServerBuilder::new(config)
    }

    /// The URL clients connect to: `nats://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port; the same across [`NatsServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP monitoring port; the same across restarts.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The monitoring base URL: `http://127.0.0.1:<http_port>`.
    pub fn monitoring_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The server's temp dir (config, log, and whatever the config puts in `{{DIR}}`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the rendered config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("nats.conf")
    }

    /// Path of the log file (all runs).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("nats.log")
    }

    /// The whole log, of every run since the first start.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .unwrap_or_default()
    }

    /// The log of the current run only (since the last start or restart).
    pub fn current_log(&self) -> String {
        let raw = fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(self.run_start).map_or(raw.len(), |start| start.min(raw.len()));
        String::from_utf8_lossy(&raw[start..]).into_owned()
    }

    /// How many lines of the current run's log contain `pattern` (a plain substring).
    pub fn log_count(&self, pattern: &str) -> usize {
        self.current_log().lines().filter(|line| line.contains(pattern)).count()
    }

    /// Waits until the current run's log contains `pattern` (a plain substring).
    pub async fn try_wait_for_log(
        &self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        let what = format!("{pattern:?} in the log of nats-server on port {}", self.port);
        super::try_wait_until(timeout, &what, || self.current_log().contains(pattern)).await
    }

    /// Like [`NatsServer::try_wait_for_log`], but panics (with the log) on timeout.
    pub async fn wait_for_log(&self, pattern: &str, timeout: Duration) {
        if let Err(err) = self.try_wait_for_log(pattern, timeout).await {
            panic!("{err}; log:\n{}", self.current_log());
        }
    }

    /// The process id while the server runs (not yet stopped or killed by the harness).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive; reaps it if it exited on its own.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.kill();
                false
            }
            None => false,
        }
    }

    /// Replaces the config file with `config` (placeholders rendered); takes effect at the
    /// next [`NatsServer::restart`] or [`NatsServer::reload`].
    pub fn try_rewrite_config(&self, config: &str) -> Result<(), HarnessError> {
        let rendered = config
            .replace("{{DIR}}", &self.dir().display().to_string())
            .replace("{{PORT}}", &self.port.to_string())
            .replace("{{HTTP_PORT}}", &self.http_port.to_string());
        let path = self.config_path();
        fs::write(&path, rendered).map_err(|source| HarnessError::Io {
            action: "write config",
            path,
            source,
        })
    }

    /// Like [`NatsServer::try_rewrite_config`], but panics on failure.
    pub fn rewrite_config(&self, config: &str) {
        self.try_rewrite_config(config).unwrap_or_else(|err| panic!("{err}"));
    }

    /// Asks the running server to reload its config file (SIGHUP).
    ///
    /// # Panics
    /// If the server is not running.
    pub fn reload(&self) {
        let child = self.child.as_ref().expect("reload needs a running nats-server");
        process::signal(child, libc::SIGHUP)
            .unwrap_or_else(|err| panic!("cannot signal nats-server {}: {err}", child.id()));
    }

    /// Stops the server gracefully (SIGTERM), killing it if it takes longer than 10 s.
    /// Does nothing if it is not running. Clients see a disconnect.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if matches!(child.try_wait(), Ok(None)) {
            // Failure means the process is already gone; try_wait below reaps it.
            let _ = process::signal(&child, libc::SIGTERM);
        }
        let deadline = Deadline::after(STOP_TIMEOUT, "nats-server to exit after SIGTERM");
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if !deadline.expired() => tokio::time::sleep(POLL_INTERVAL).await,
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

    /// Stops the server (if running) and starts it again with the same config file, ports and
    /// temp dir (so resolver dirs and JetStream data survive), waiting until it is ready.
    /// Also starts a server that was stopped or killed.
    pub async fn try_restart(&mut self) -> Result<(), HarnessError> {
        self.stop().await;
        let deadline = Deadline::after(self.startup_timeout, "ports to be free for a restart");
        loop {
            match self.launch().await {
                // Fixed ports cannot be re-picked; another process may hold one briefly.
                Err(HarnessError::PortInUse { .. }) if !deadline.expired() => {
                    deadline.try_tick().await?;
                }
                result => return result,
            }
        }
    }

    /// Like [`NatsServer::try_restart`], but panics (with the server log) on failure.
    pub async fn restart(&mut self) {
        self.try_restart().await.unwrap_or_else(|err| panic!("{err}"));
    }

    /// GETs `path` (e.g. `/varz`, `/connz?auth=1`, `/routez`) from the monitoring endpoint
    /// and parses the JSON body.
    pub async fn try_monitor(&self, path: &str) -> Result<serde_json::Value, HarnessError> {
        let url = format!("{}{path}", self.monitoring_url());
        let fail = |reason: String| HarnessError::Monitor { url: url.clone(), reason };
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.http_port)).await?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            Ok::<_, std::io::Error>(raw)
        };
        let raw = tokio::time::timeout(MONITOR_TIMEOUT, exchange)
            .await
            .map_err(|_| fail(format!("no response within {MONITOR_TIMEOUT:?}")))?
            .map_err(|err| fail(err.to_string()))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) =
            text.split_once("\r\n\r\n").ok_or_else(|| fail("response has no header end".into()))?;
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(fail(format!("status {status:?}, body {body:?}")));
        }
        serde_json::from_str(body).map_err(|err| fail(format!("body is not json: {err}")))
    }

    /// Like [`NatsServer::try_monitor`], but panics on failure.
    pub async fn monitor(&self, path: &str) -> serde_json::Value {
        self.try_monitor(path).await.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Spawns the process with the current config and waits until it is ready.
    async fn launch(&mut self) -> Result<(), HarnessError> {
        let log_path = self.log_path();
        let io_err = |action, source| HarnessError::Io { action, path: log_path.clone(), source };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| io_err("open log", source))?;
        self.run_start = log.metadata().map_err(|source| io_err("stat log", source))?.len();
        let stderr = log.try_clone().map_err(|source| io_err("duplicate log handle", source))?;
        let binary = nats_server_binary();
        let mut command = Command::new(&binary);
        command.arg("-c").arg(self.config_path());
        if !self.config_ports {
            command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
            command.args(["-m", &self.http_port.to_string()]);
        }
        command
            .args(&self.args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = process::spawn(command)
            .map_err(|source| HarnessError::Spawn { binary: binary.clone(), source })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls until the current run logged readiness and accepts a TCP connection; kills the
    /// process on failure.
    async fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let deadline = Deadline::after(self.startup_timeout, "nats-server to become ready");
        loop {
            // A try_wait error leaves the child in place; the deadline then kills it.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(self.exit_error(status));
            }
            if self.current_log().contains(READY_LINE)
                && TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
            {
                return Ok(());
            }
            if deadline.expired() {
                self.kill();
                let log = self.current_log();
                return Err(HarnessError::NotReady {
                    port: self.port,
                    timeout: self.startup_timeout,
                    log,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn exit_error(&self, status: ExitStatus) -> HarnessError {
        let log = self.current_log();
        if log.contains("address already in use") {
            HarnessError::PortInUse { port: self.port, log }
        } else {
            HarnessError::Exited { port: self.port, status, log }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            return;
        }
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let shown = &lines[lines.len().saturating_sub(PANIC_LOG_LINES)..];
        eprintln!(
            "---- nats-server log (client port {}, {} of {} lines) ----\n{}\n---- end of log ----",
            self.port,
            shown.len(),
            lines.len(),
            shown.join("\n")
        );
        if std::env::var_os(KEEP_DIRS_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept nats-server dir {}", self.dir().display());
        }
    }
}
