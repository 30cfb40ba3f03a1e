//! One nats-server child process: start, graceful stop, restart, and its connection count.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::LoadError;

/// How long a start may take before it is a failure.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The log line nats-server prints once it accepts clients.
const READY_LINE: &str = "Server is ready";

/// Finds nats-server: the flag (or `$PBN_NATS_SERVER`), the project's `.tools/bin`, then `PATH`.
pub fn find_binary(flag: Option<&Path>) -> Result<PathBuf, LoadError> {
    if let Some(p) = flag {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(LoadError::NoNatsServer) };
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths).map(|d| d.join("nats-server")).find(|p| p.is_file())
        })
        .ok_or(LoadError::NoNatsServer)
}

/// A loopback port that is free now (another process may still take it before the server
/// binds it; the benchmark then fails at startup with the server log).
pub fn free_port() -> Result<u16, LoadError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(LoadError::io("bind"))?;
    Ok(listener.local_addr().map_err(LoadError::io("bind"))?.port())
}

/// A nats-server started from a config file, with its log in `log`.
pub struct NatsProcess {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    http_port: u16,
    child: Option<Child>,
}

impl NatsProcess {
    /// Starts `binary -c config` with monitoring on a free port and waits until it is ready.
    pub async fn start(binary: &Path, config: &Path, log: &Path) -> Result<Self, LoadError> {
        let mut p = NatsProcess {
            binary: binary.to_path_buf(),
            config: config.to_path_buf(),
            log: log.to_path_buf(),
            http_port: free_port()?,
            child: None,
        };
        p.launch().await?;
        Ok(p)
    }

    async fn launch(&mut self) -> Result<(), LoadError> {
        let from = std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(LoadError::io("open the nats-server log"))?;
        let err = log.try_clone().map_err(LoadError::io("open the nats-server log"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c").arg(&self.config).arg("-m").arg(self.http_port.to_string());
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child when
        // this process dies, so no server outlives an aborted benchmark.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(LoadError::io("spawn nats-server"))?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let text = std::fs::read(&self.log).unwrap_or_default();
            let tail = &text[(from as usize).min(text.len())..];
            if String::from_utf8_lossy(tail).contains(READY_LINE) {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                return Err(LoadError::ServerStart(self.log.clone()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server gracefully (SIGTERM), killing it after [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: plain syscall on our own child's pid, which is not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts the server again with the same config and ports.
    pub async fn restart(&mut self) -> Result<(), LoadError> {
        self.stop().await;
        self.launch().await
    }

    /// The number of client connections the server holds (`/varz` `connections`).
    pub async fn connections(&self) -> Result<u64, LoadError> {
        let body = http_get(self.http_port, "/varz").await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| LoadError::Monitor(e.to_string()))?;
        v["connections"]
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A minimal HTTP/1.0 GET against the loopback monitoring port; returns the body.
async fn http_get(port: u16, path: &str) -> Result<String, LoadError> {
    let io = |e: std::io::Error| LoadError::Monitor(e.to_string());
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.map_err(io)?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    Ok(body.to_string())
}
