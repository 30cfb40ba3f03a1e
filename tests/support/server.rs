//! One nats-server process with its own temp dir, config, log and ports (see [`NatsServer`]);
//! the process itself is run by [`pbn::natsd::Natsd`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use pbn::natsd::{self, Natsd, NatsdError, Port};
use tempfile::TempDir;

use super::{nats_server_binary, HarnessError};

/// How long a start or restart may take by default (CI machines are slow and busy).
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Start attempts when ports planned before the start (rendered configs) turn out to be taken.
pub(super) const START_ATTEMPTS: usize = 5;
/// Lines of log printed when a test panics while the server is alive.
const PANIC_LOG_LINES: usize = 300;
/// Set (to anything) to keep the temp dirs of servers whose test panicked.
const KEEP_DIRS_ENV: &str = "PBN_TEST_KEEP_DIRS";

/// Options for starting a [`NatsServer`]; [`NatsServer::start`] uses the defaults.
///
/// The harness owns the listen address and ports: it passes `-a 127.0.0.1 -p <port>
/// -m <http_port>`, which override any `listen`/`port`/`http` in the config. Ports not given
/// are picked by the server itself when it binds (`-1`) and read back, so they cannot collide.
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
    /// `{{PORT}}` (client port), `{{HTTP_PORT}}` (monitoring port). Ports the server picks are
    /// rendered as `-1` for the first start and as the picked port once it is ready.
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
    /// a rendered file is run as written.
    pub fn config_ports(mut self) -> Self {
        self.config_ports = true;
        self
    }

    /// Uses this client port instead of one the server picks.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Uses this monitoring (HTTP) port instead of one the server picks.
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
    pub async fn try_start(self) -> Result<NatsServer, HarnessError> {
        let dir = tempfile::Builder::new().prefix("pbn-nats-").tempdir().map_err(|source| {
            HarnessError::Io { action: "create temp dir", path: std::env::temp_dir(), source }
        })?;
        let port = |given: Option<u16>| match (self.config_ports, given) {
            (true, _) => Port::Config,
            (false, Some(port)) => Port::Fixed(port),
            (false, None) => Port::Pick,
        };
        let mut opts = natsd::Options::new(
            &nats_server_binary(),
            &dir.path().join("nats.conf"),
            &dir.path().join("nats.log"),
        );
        opts.client = port(self.port);
        opts.http = port(self.http_port);
        opts.args = self.args.clone();
        opts.work_dir = Some(dir.path().to_path_buf());
        opts.startup_timeout = self.startup_timeout;
        opts.stop_timeout = STOP_TIMEOUT;
        let requested = self.port.unwrap_or(0);
        let mut server =
            NatsServer { dir, natsd: None, port: requested, http_port: 0, cluster_port: 0 };
        server.render(&self.config, self.port, self.http_port)?;
        server.natsd = Some(spawn(opts, requested)?);
        server.ready(requested).await?;
        server.render(&self.config, Some(server.port), Some(server.http_port))?;
        Ok(server)
    }

    /// Like [`NatsServerBuilder::try_start`], but panics (with the server log) on failure.
    pub async fn start(self) -> NatsServer {
        self.try_start().await.unwrap_or_else(|err| panic!("{err}"))
    }
}

fn spawn(opts: natsd::Options, port: u16) -> Result<Natsd, HarnessError> {
    Natsd::spawn(opts).map_err(|err| harness_error(err, port, String::new()))
}

/// The harness error for `err` of the server with client port `port` and current log `log`.
fn harness_error(err: NatsdError, port: u16, log: String) -> HarnessError {
    match err {
        NatsdError::PortInUse { .. } => HarnessError::PortInUse { port, log },
        NatsdError::Exited { status, .. } => HarnessError::Exited { port, status, log },
        NatsdError::NotReady { timeout, .. } => HarnessError::NotReady { port, timeout, log },
        NatsdError::Spawn { binary, source } => HarnessError::Spawn { binary, source },
        NatsdError::Io { action, path, source } => HarnessError::Io { action, path, source },
        NatsdError::Monitor { url, reason } => HarnessError::Monitor { url, reason },
        other => HarnessError::Monitor { url: String::new(), reason: other.to_string() },
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
    // Declared before `dir`: the process is killed before its dir is removed.
    natsd: Option<Natsd>,
    dir: TempDir,
    port: u16,
    http_port: u16,
    /// The route port, 0 without a `cluster` block.
    cluster_port: u16,
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

    fn natsd(&self) -> &Natsd {
        self.natsd.as_ref().expect("a started server has its process handle")
    }

    fn natsd_mut(&mut self) -> &mut Natsd {
        self.natsd.as_mut().expect("a started server has its process handle")
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

    /// The route (cluster) port, if the config has a `cluster` block; the same across restarts
    /// once the config names it.
    pub fn cluster_port(&self) -> Option<u16> {
        Some(self.cluster_port).filter(|&port| port != 0)
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
        self.natsd.as_ref().map(Natsd::current_log).unwrap_or_default()
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
        self.natsd().pid()
    }

    /// Whether the process is alive; reaps it if it exited on its own.
    pub fn is_running(&mut self) -> bool {
        let natsd = self.natsd_mut();
        natsd.pid().is_some() && natsd.try_wait().is_none()
    }

    /// Replaces the config file with `config` (placeholders rendered); takes effect at the
    /// next [`NatsServer::restart`] or [`NatsServer::reload`].
    pub fn try_rewrite_config(&self, config: &str) -> Result<(), HarnessError> {
        self.render(config, Some(self.port), Some(self.http_port))
    }

    /// Writes `config` with its placeholders rendered; `None` ports as `-1`.
    fn render(
        &self,
        config: &str,
        port: Option<u16>,
        http_port: Option<u16>,
    ) -> Result<(), HarnessError> {
        let shown = |port: Option<u16>| port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let rendered = config
            .replace("{{DIR}}", &self.dir().display().to_string())
            .replace("{{PORT}}", &shown(port))
            .replace("{{HTTP_PORT}}", &shown(http_port));
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
        self.natsd().signal(libc::SIGHUP).unwrap_or_else(|err| panic!("reload: {err}"));
    }

    /// Stops the server gracefully (SIGTERM), killing it if it takes longer than 10 s.
    /// Does nothing if it is not running. Clients see a disconnect.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        self.natsd_mut().stop().await
    }

    /// Kills the server at once (SIGKILL) and reaps it, like a crash. No-op when stopped.
    pub fn kill(&mut self) {
        self.natsd_mut().kill();
    }

    /// Stops the server (if running) and starts it again with the same config file, ports and
    /// temp dir (so resolver dirs and JetStream data survive), waiting until it is ready.
    /// Also starts a server that was stopped or killed.
    pub async fn try_restart(&mut self) -> Result<(), HarnessError> {
        let result = self.natsd_mut().restart().await;
        result.map(drop).map_err(|err| harness_error(err, self.port, self.current_log()))
    }

    /// Like [`NatsServer::try_restart`], but panics (with the server log) on failure.
    pub async fn restart(&mut self) {
        self.try_restart().await.unwrap_or_else(|err| panic!("{err}"));
    }

    /// GETs `path` (e.g. `/varz`, `/connz?auth=1`, `/routez`) from the monitoring endpoint
    /// and parses the JSON body.
    pub async fn try_monitor(&self, path: &str) -> Result<serde_json::Value, HarnessError> {
        natsd::monitor(self.http_port, path)
            .await
            .map_err(|err| harness_error(err, self.port, String::new()))
    }

    /// Like [`NatsServer::try_monitor`], but panics on failure.
    pub async fn monitor(&self, path: &str) -> serde_json::Value {
        self.try_monitor(path).await.unwrap_or_else(|err| panic!("{err}"))
    }

    /// The running server's id (as `$SYS.REQ.SERVER.<id>.*` and connect events name it) and
    /// its `server_name`, from `/varz`.
    pub async fn identity(&self) -> natsd::ServerIdentity {
        natsd::identity(self.http_port).await.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Waits until the first run is ready and records its ports.
    async fn ready(&mut self, requested: u16) -> Result<(), HarnessError> {
        match self.natsd_mut().wait_ready().await {
            Ok(ports) => {
                self.port = ports.client;
                self.http_port = ports.http.unwrap_or(0);
                self.cluster_port = ports.cluster.unwrap_or(0);
                Ok(())
            }
            Err(err) => Err(harness_error(err, requested, self.current_log())),
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(natsd) = self.natsd.as_mut() {
            natsd.kill();
        }
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
