//! `pbn serve` and `pbn up`: the long-running commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use anyhow::{bail, Context as _, Result};
use tokio::sync::watch;

use super::args::{ServeArgs, UpArgs};
use crate::admin::{self, Context};
use crate::config::{RawConfig, Settings};
use crate::natsconf::{self, Layout};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A shutdown signal that turns true on SIGINT or SIGTERM.
fn signal_shutdown() -> Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Settings from the config file, `PBN_*` variables and the flags (flags win).
fn settings(a: &ServeArgs) -> Result<Settings> {
    let file = a.config.as_deref().map(RawConfig::from_file).transpose()?;
    let env = RawConfig::from_env(std::env::vars())?;
    let flags = RawConfig {
        store: a.store.clone(),
        servers: (!a.servers.is_empty()).then(|| a.servers.clone()),
        ..RawConfig::default()
    };
    Ok(Settings::resolve(file, env, flags)?)
}

/// `pbn serve`.
pub fn serve(a: ServeArgs) -> Result<()> {
    let settings = settings(&a)?;
    runtime()?.block_on(async move {
        let shutdown = signal_shutdown()?;
        crate::service::run(settings, shutdown).await.context("pbn serve failed")
    })
}

/// Finds nats-server: the flag, `$PBN_NATS_SERVER`, `./.tools/bin/nats-server`, then `PATH`.
fn nats_server_binary(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PBN_NATS_SERVER") {
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

/// Kills the nats-server child when `pbn up` ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to 10 s) until the child accepts connections on `port`, so the service does not
/// start by logging that no server is reachable.
fn wait_for_port(port: u16, child: &mut Child) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("nats-server exited at start ({status})");
        }
        if std::time::Instant::now() > deadline {
            bail!("nats-server did not listen on port {port} within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// `pbn up`.
pub fn up(a: UpArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let dir = std::path::absolute(&a.dir)?;
    let store_path = dir.join("pbn.redb");
    let ctx = Context::now();
    if !store_path.exists() {
        let (store, _) = admin::init::init_store(&store_path, "pbn", false, &ctx)?;
        eprintln!("created store {}", store_path.display());
        let creds = super::admin_creds_path(&store_path);
        if creds.exists() {
            eprintln!("warning: {} exists and was left alone", creds.display());
        } else {
            super::write_admin_creds(&store, super::secrets::SecretFile::open(&creds)?)?;
            eprintln!("wrote admin creds {}", creds.display());
        }
    }
    let store = super::open_store(&store_path)?;
    let trust = admin::init::trust(&store, &ctx)?;
    drop(store);
    let mut layout = Layout::single(dir.join("nats"), a.port);
    layout.auth_timeout = std::time::Duration::from_secs(5);
    let files = natsconf::render(&trust, &layout)?;
    natsconf::write_configs(&files)?;
    let conf = &files[0].path;
    let bin = nats_server_binary(a.nats_server.as_deref())?;
    let log = std::fs::File::create(dir.join("nats-server.log"))?;
    let child = Process::new(&bin)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut guard = ChildGuard(child);
    wait_for_port(a.port, &mut guard.0)?;
    eprintln!(
        "nats-server started (pid {}), log: {}",
        guard.0.id(),
        dir.join("nats-server.log").display()
    );
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
    let result = runtime()?.block_on(async move {
        let shutdown = signal_shutdown()?;
        crate::service::run(settings, shutdown).await.context("pbn serve failed")
    });
    if let Ok(Some(status)) = guard.0.try_wait() {
        bail!("nats-server exited early ({status}); see {}", dir.join("nats-server.log").display());
    }
    result
}
