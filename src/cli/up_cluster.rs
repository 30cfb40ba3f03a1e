//! `pbn up --replicas N`: a local N-server JetStream cluster with one `pbn serve` replica per
//! server, all replicas of one log (replicated mode, see "Running several replicas" in the
//! README). It is for trying replicated mode on one machine: every replica is its own process
//! with a pid file, so one can be killed and the others go on answering logins.
//!
//! Layout in the `--dir` directory: `pbn.redb` (replica 1's store, created on first use, with
//! `admin.creds` beside it), `replica-I.redb` for the others (copies of `pbn.redb` made on first
//! use, each with its key file), `nats/pbn-I.conf` (rendered every start), `nats-server-I.pid`,
//! `nats-server-I.log`, `replica-I.pid` and `replica-I.log`. Server `I` listens for clients on
//! `--port + I - 1`; replica `I` connects to it and serves `/readyz` and `/metrics` on
//! `--port + 1000 + I - 1`.
//!
//! `pbn up` stays in the foreground as the supervisor: an exit of a server or a replica is
//! reported (with the last lines of its log) and the rest go on; it stops when no replica or
//! no server is left, or on SIGINT/SIGTERM, and then stops every child.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::sync::watch;

use super::args::UpArgs;
use super::serve::{runtime, watch_signals};
use super::up::{check_port_free, prepare_store, refuse_leftover_server, Server};
use crate::admin::{self, AccountEdit, Context, LimitPatch, Request};
use crate::natsconf::{self, Layout};
use crate::natsd::{self, send_signal};

/// Replica `i`'s HTTP port is `--port + HTTP_PORT_OFFSET + i`.
const HTTP_PORT_OFFSET: u16 = 1000;
/// Route ports of the rendered cluster are `--port + ROUTE_PORT_OFFSET + i` (as `nats-conf`).
const ROUTE_PORT_OFFSET: u16 = 2000;
/// How long the cluster and the replicas may take to become ready (a busy machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the children are checked for an exit.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Lines of a child's log shown when it exits.
const LOG_TAIL_LINES: usize = 15;
/// JetStream disk granted to pbn's AUTH account so it can hold the log.
const AUTH_JS_DISK: i64 = 1 << 30;
/// JetStream memory granted to pbn's AUTH account.
const AUTH_JS_MEMORY: i64 = 64 << 20;

/// `pbn up --replicas N` with `N >= 2`, after the checks every `pbn up` makes.
pub(super) fn up_replicated(a: &UpArgs, dir: &Path, bin: &Path) -> Result<()> {
    let n = a.replicas;
    for i in 1..=n {
        refuse_leftover_server(&dir.join(format!("nats-server-{i}.pid")))?;
        refuse_leftover_replica(&dir.join(format!("replica-{i}.pid")))?;
    }
    check_ports(a.port, n)?;
    let stores = prepare_stores(dir, n)?;
    let confs = write_cluster_config(&stores[0], dir, a.port, n)?;
    let servers = start_servers(bin, dir, &confs)?;
    let mut replicas = Vec::with_capacity(usize::from(n));
    for (i, store) in (1..=n).zip(&stores) {
        replicas.push(ReplicaChild::start(dir, (i, n), store, a.port)?);
    }
    runtime()?.block_on(async move {
        let (tx, rx) = watch::channel(false);
        watch_signals(Arc::new(tx))?;
        wait_ready(&servers, &mut replicas, rx.clone()).await?;
        eprintln!(
            "{n} replicas ready; clients connect to any of nats://127.0.0.1:{}..{}; \
             admin: pbn admin --server nats://127.0.0.1:{} --creds {}",
            a.port,
            a.port + n - 1,
            a.port,
            super::admin_creds_path(&stores[0]).display()
        );
        supervise(servers, replicas, rx).await
    })
}

/// Refuses every port the layout uses that something already listens on.
fn check_ports(port: u16, n: u16) -> Result<()> {
    if u32::from(port) + u32::from(ROUTE_PORT_OFFSET) + u32::from(n) > u32::from(u16::MAX) {
        bail!("--port {port} leaves no room for {n} servers' route ports (port + 2000 + i)");
    }
    for i in 0..n {
        check_port_free(port + i, "client")?;
        check_port_free(port + ROUTE_PORT_OFFSET + i, "route")?;
        check_port_free(port + HTTP_PORT_OFFSET + i, "HTTP of a replica")?;
    }
    Ok(())
}

/// The store of each replica: `pbn.redb` first (created on first use), then `replica-I.redb`.
/// Missing copies are made from `pbn.redb` (after granting AUTH JetStream, while it is still an
/// ordinary store), each with its key file (mode 0600).
fn prepare_stores(dir: &Path, n: u16) -> Result<Vec<PathBuf>> {
    let first = prepare_store(dir)?;
    let others: Vec<PathBuf> = (2..=n).map(|i| dir.join(format!("replica-{i}.redb"))).collect();
    if others.iter().any(|p| !p.exists()) {
        grant_jetstream(&first)?;
    }
    for path in others.iter().filter(|p| !p.exists()) {
        copy_store(&first, path)?;
        eprintln!("created replica store {}", path.display());
    }
    Ok(std::iter::once(first).chain(others).collect())
}

/// Gives pbn's AUTH account the JetStream limits the log needs, unless the store is already a
/// replica of a log (then it has them, and only the log may change it).
fn grant_jetstream(store_path: &Path) -> Result<()> {
    let store = super::open_store(store_path, None)?;
    if store.is_replica()? {
        return Ok(());
    }
    let limits = LimitPatch {
        js_disk: Some(AUTH_JS_DISK),
        js_memory: Some(AUTH_JS_MEMORY),
        ..LimitPatch::default()
    };
    let edit = AccountEdit { name: crate::AUTH_ACCOUNT.into(), limits, ..AccountEdit::default() };
    admin::execute(&store, &Request::AccountEdit(edit), &Context::now())
        .context("cannot grant JetStream to pbn's AUTH account")?;
    Ok(())
}

/// Copies the store `src` and its key file to `dst` (both 0600).
fn copy_store(src: &Path, dst: &Path) -> Result<()> {
    let pairs = [
        (src.to_path_buf(), dst.to_path_buf()),
        (super::store_key::beside(src), super::store_key::beside(dst)),
    ];
    for (from, to) in pairs.iter().filter(|(from, _)| from.exists()) {
        fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        fs::set_permissions(to, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", to.display()))?;
    }
    Ok(())
}

/// Renders the cluster's files into `<dir>/nats/` from the store's trust; returns their paths.
fn write_cluster_config(store_path: &Path, dir: &Path, port: u16, n: u16) -> Result<Vec<PathBuf>> {
    let store = super::open_store(store_path, None)?;
    // A replica's store changes only through the log: its JWTs are rendered without recording
    // new `iat`s (each below any later push, so the servers still take every later change).
    let trust = if store.is_replica()? {
        admin::init::trust_read_only(&store, &Context::now())?
    } else {
        admin::init::trust(&store, &Context::now())?
    };
    drop(store);
    let layout = Layout {
        out_dir: dir.join("nats"),
        port,
        cluster: Some(n),
        auth_timeout: Duration::from_secs(5),
        host: "127.0.0.1".into(),
    };
    let files = natsconf::render(&trust, &layout)?;
    natsconf::write_configs(&files)?;
    Ok(files.into_iter().map(|f| f.path).collect())
}

/// Starts one server per config (tied to this process) and waits until each accepts clients.
fn start_servers(bin: &Path, dir: &Path, confs: &[PathBuf]) -> Result<Vec<Server>> {
    let mut servers = Vec::with_capacity(confs.len());
    for (i, conf) in (1..).zip(confs) {
        let log = dir.join(format!("nats-server-{i}.log"));
        let pid_file = dir.join(format!("nats-server-{i}.pid"));
        servers.push(Server::start(bin, conf, &log, &pid_file)?);
    }
    for (i, server) in (1..).zip(&servers) {
        server.wait_ready().with_context(|| format!("nats-server {i} did not start"))?;
        eprintln!("nats-server {i} started (pid {}), log: {}", server.pid, server.log.display());
    }
    Ok(servers)
}

/// Refuses to start when a replica of an earlier `pbn up` in the directory still runs; removes
/// a stale pid file.
fn refuse_leftover_replica(pid_file: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(pid_file) else { return Ok(()) };
    let pid = text.trim().parse::<u32>().ok();
    let comm = pid.map(|p| fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default());
    if let (Some(pid), Some("pbn")) = (pid, comm.as_deref().map(str::trim)) {
        bail!(
            "a replica started by an earlier `pbn up` is still running (pid {pid}, see {}); \
             stop it with `kill {pid}`, then run pbn up again",
            pid_file.display()
        );
    }
    fs::remove_file(pid_file).with_context(|| format!("cannot remove {}", pid_file.display()))
}

/// One `pbn serve --replicated` child. Dropping it stops the process and removes its pid file.
struct ReplicaChild {
    index: u16,
    child: Option<Child>,
    http: u16,
    log: PathBuf,
    pid_file: PathBuf,
}

impl ReplicaChild {
    /// Starts replica `index` of `n` on `store`, connected to server `index` (tied to this
    /// process). The log is kept in three copies when there are three servers or more.
    fn start(dir: &Path, (index, n): (u16, u16), store: &Path, port: u16) -> Result<ReplicaChild> {
        let exe = std::env::current_exe().context("cannot find the pbn binary")?;
        let (client, http) = (port + index - 1, port + HTTP_PORT_OFFSET + index - 1);
        let log = dir.join(format!("replica-{index}.log"));
        let out =
            fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .arg("--store")
            .arg(store)
            .args(["--server", &format!("nats://127.0.0.1:{client}")])
            .args(["--http", &format!("127.0.0.1:{http}"), "--replicated"])
            .env("PBN_LOG_REPLICAS", if n >= 3 { "3" } else { "1" })
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = natsd::spawn_tied(command).context("cannot start a pbn serve replica")?;
        let pid_file = dir.join(format!("replica-{index}.pid"));
        fs::write(&pid_file, format!("{}\n", child.id()))
            .with_context(|| format!("cannot write {}", pid_file.display()))?;
        Ok(ReplicaChild { index, child: Some(child), http, log, pid_file })
    }

    /// The exit status, if the process has exited.
    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the process: SIGTERM, then SIGKILL if it has not exited within 10 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = send_signal(&child, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_file(&self.pid_file);
    }
}

impl Drop for ReplicaChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until every replica answers `/readyz` with 200; fails when a replica exits first or
/// the time is up.
async fn wait_ready(
    servers: &[Server],
    replicas: &mut [ReplicaChild],
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for r in replicas.iter_mut() {
        while natsd::monitor(r.http, "/readyz").await.is_err() {
            if let Some(status) = r.try_wait() {
                bail!(
                    "replica {} exited ({status}) before it was ready:\n{}",
                    r.index,
                    tail(&r.log)
                );
            }
            if let Some((i, status)) = exited_server(servers) {
                return Err(servers[i].exited(status).context("a nats-server exited"));
            }
            if Instant::now() > deadline {
                bail!(
                    "replica {} was not ready within {} s; see {}",
                    r.index,
                    READY_TIMEOUT.as_secs(),
                    r.log.display()
                );
            }
            tokio::select! {
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
                _ = shutdown.wait_for(|stop| *stop) => bail!("interrupted while starting"),
            }
        }
        eprintln!(
            "replica {} ready (http 127.0.0.1:{}), log: {}",
            r.index,
            r.http,
            r.log.display()
        );
    }
    Ok(())
}

/// The first server that has exited, with its status.
fn exited_server(servers: &[Server]) -> Option<(usize, ExitStatus)> {
    servers.iter().enumerate().find_map(|(i, s)| s.try_wait().map(|status| (i, status)))
}

/// Watches the children until shutdown or until no replica or no server is left; reports every
/// exit. Stops the replicas before the servers.
async fn supervise(
    mut servers: Vec<Server>,
    mut replicas: Vec<ReplicaChild>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let result = loop {
        replicas.retain_mut(|r| match r.try_wait() {
            None => true,
            Some(status) => {
                eprintln!(
                    "replica {} exited ({status}); the others go on:\n{}",
                    r.index,
                    tail(&r.log)
                );
                false
            }
        });
        servers.retain(|s| match s.try_wait() {
            None => true,
            Some(status) => {
                eprintln!("warning: {:#}", s.exited(status));
                false
            }
        });
        if replicas.is_empty() {
            break Err(anyhow::anyhow!("every replica has exited"));
        }
        if servers.is_empty() {
            break Err(anyhow::anyhow!("every nats-server has exited"));
        }
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => break Ok(()),
        }
    };
    tokio::task::spawn_blocking(move || {
        replicas.iter_mut().for_each(ReplicaChild::stop);
        drop(servers);
    })
    .await
    .context("stopping the children")?;
    result
}

/// The last lines of the log at `path`.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
