//! The replicated deployment of the chaos scenario, every party its own process: three
//! nats-servers in a JetStream cluster (rendered by `pbn::render` with `cluster: Some(3)`) and
//! `pbn serve --replicated` replicas, each on its own copy of one store file.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pbn::natsd::{self, Natsd, Port};
use pbn::{AccountEdit, AdminClient, Context, Layout, LimitPatch, Request, AUTH_ACCOUNT};

use crate::admin::write_secret;
use crate::deploy::{self, Workspace};
use crate::LoadError;

/// How long a server, a replica or the log may take to get ready (a 100,000-user store starts
/// the log in a few hundred 1 MiB entries).
pub const READY: Duration = Duration::from_secs(240);
/// How long one admin request may take before it counts as failed.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait polls.
const POLL: Duration = Duration::from_millis(20);

/// Three nats-servers with JetStream, a store with `tokens` token users and JetStream limits for
/// AUTH (the log's account), and admin creds for it.
pub struct Cluster {
    /// Temp dir and the source store every replica copies.
    pub ws: Workspace,
    /// The servers, by index.
    pub servers: Vec<Natsd>,
    /// Their client URLs (kept across restarts).
    pub urls: Vec<String>,
    /// Admin creds (0600).
    pub creds: PathBuf,
    /// The token users' tokens in clear.
    pub tokens: Vec<String>,
    pbn: PathBuf,
}

impl Cluster {
    /// Builds the store (`tokens` token users, `extra_users` more without credentials) and
    /// starts `nodes` servers (3 for a cluster, 1 for a single server without JetStream).
    pub async fn start(
        pbn: &Path,
        nats: &Path,
        nodes: u16,
        tokens: usize,
        extra_users: usize,
    ) -> Result<Cluster, LoadError> {
        let ws = Workspace::new()?;
        let tokens = deploy::token_users(&ws.store, tokens).tokens;
        if extra_users > 0 {
            crate::support::bulk_users(&ws.store, "x", extra_users, 10_000, false, |_| None);
        }
        let ctx = Context::now();
        let limits = LimitPatch {
            js_disk: Some(4 << 30),
            js_memory: Some(256 << 20),
            ..LimitPatch::default()
        };
        let auth = AccountEdit { name: AUTH_ACCOUNT.into(), limits, ..AccountEdit::default() };
        pbn::execute(&ws.store, &Request::AccountEdit(auth), &ctx).map_err(LoadError::setup)?;
        let creds = ws.dir.path().join("admin.creds");
        let text = pbn::admin_creds(&ws.store, &ctx).map_err(LoadError::setup)?;
        write_secret(&creds, text.as_bytes())?;
        let servers = start_servers(&ws, nats, nodes).await?;
        let urls = servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.ports().map_or(0, |p| p.client)))
            .collect();
        Ok(Cluster { ws, servers, urls, creds, tokens, pbn: pbn.to_path_buf() })
    }

    /// A replica on a fresh copy of the store, on server `own` first (the others after it),
    /// replicated when `replicated`.
    pub fn replica(&self, name: &str, own: usize, replicated: bool) -> Result<Replica, LoadError> {
        let store = self.ws.dir.path().join(format!("{name}.redb"));
        copy_store(&self.ws.store_path, &store)?;
        let mut extra = vec!["--store".to_string(), store.display().to_string()];
        if replicated {
            extra.push("--replicated".into());
        }
        self.spawn(name, own, store, extra)
    }

    /// Runs `pbn serve` with `args` (its `--store` or `--join` among them) on server `own` first.
    pub fn spawn(
        &self,
        name: &str,
        own: usize,
        store: PathBuf,
        args: Vec<String>,
    ) -> Result<Replica, LoadError> {
        let log = self.ws.dir.path().join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LoadError::io("open a replica log"))?;
        let err = out.try_clone().map_err(LoadError::io("open a replica log"))?;
        let http = crate::observe::free_addr()?;
        let n = self.urls.len();
        let mut cmd = std::process::Command::new(&self.pbn);
        cmd.arg("serve").args(&args).args(["--http", &http]);
        for k in 0..n {
            cmd.args(["--server", &self.urls[(own + k) % n]]);
        }
        let child = cmd
            .env("PBN_LOG_REPLICAS", n.to_string())
            .env("PBN_LOG", "pbn=info")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(LoadError::io("spawn pbn serve"))?;
        Ok(Replica { child, store, http, log })
    }

    /// An admin client on server `i`.
    pub async fn admin(&self, i: usize) -> Result<AdminClient, LoadError> {
        AdminClient::connect(&self.urls[i], &self.creds, ADMIN_TIMEOUT)
            .await
            .map_err(LoadError::setup)
    }

    /// Waits until every server has its routes and JetStream again after a restart.
    pub async fn wait_healthy(&self) -> Result<(), LoadError> {
        wait_cluster(&self.servers).await
    }
}

/// Renders the configs into `ws/nats` and starts `nodes` servers, each logging in its own dir.
async fn start_servers(ws: &Workspace, nats: &Path, nodes: u16) -> Result<Vec<Natsd>, LoadError> {
    let trust = pbn::trust(&ws.store, &Context::now()).map_err(LoadError::setup)?;
    let layout = Layout {
        out_dir: ws.dir.path().join("nats"),
        port: pick_base_port(nodes),
        cluster: (nodes > 1).then_some(nodes),
        auth_timeout: Duration::from_secs(5),
        host: "127.0.0.1".into(),
    };
    let files = pbn::render(&trust, &layout).map_err(LoadError::setup)?;
    pbn::write_configs(&files).map_err(LoadError::setup)?;
    let mut servers = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let dir = ws.dir.path().join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).map_err(LoadError::io("create a node dir"))?;
        let log = dir.join("nats-server.log");
        let mut opts = natsd::Options::new(nats, &f.path, &log);
        opts.http = Port::Pick;
        opts.startup_timeout = READY;
        servers.push(Natsd::spawn(opts).map_err(LoadError::setup)?);
    }
    for s in &mut servers {
        s.wait_ready().await.map_err(LoadError::setup)?;
    }
    wait_cluster(&servers).await?;
    Ok(servers)
}

/// Waits until every running server of `servers` sees all the others and has JetStream.
async fn wait_cluster(servers: &[Natsd]) -> Result<(), LoadError> {
    let peers = servers.len() - 1;
    for s in servers.iter().filter(|s| s.pid().is_some()) {
        let Some(http) = s.ports().and_then(|p| p.http) else { continue };
        natsd::wait_for(http, "routes", READY, |h| async move {
            Ok(natsd::route_peers(h).await? >= peers)
        })
        .await
        .map_err(LoadError::setup)?;
        if peers > 0 {
            natsd::wait_for(http, "jetstream", READY, natsd::jetstream_ready)
                .await
                .map_err(LoadError::setup)?;
        }
    }
    Ok(())
}

/// A client port `p` such that `p + i` (clients) and `p + 2000 + i` (routes) are free now.
fn pick_base_port(nodes: u16) -> u16 {
    loop {
        let Ok(probe) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else { continue };
        let Ok(addr) = probe.local_addr() else { continue };
        let base = addr.port();
        drop(probe);
        if base.checked_add(2000 + nodes).is_none() {
            continue;
        }
        let mut ports = (0..nodes).flat_map(|i| [base + i, base + 2000 + i]);
        if ports.all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
}

/// Copies a store file and its key file.
pub fn copy_store(src: &Path, dst: &Path) -> Result<(), LoadError> {
    std::fs::copy(src, dst).map_err(LoadError::io("copy the store"))?;
    let key = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".key");
        PathBuf::from(s)
    };
    if key(src).exists() {
        std::fs::copy(key(src), key(dst)).map_err(LoadError::io("copy the store key"))?;
    }
    Ok(())
}

/// Opens a replica's store file with its key file (after the replica stopped).
pub fn open_store(path: &Path) -> Result<pbn::Store, LoadError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    let text = std::fs::read_to_string(PathBuf::from(name)).map_err(LoadError::io("read a key"))?;
    let key = pbn::seal::StoreKey::from_file_text(&text).map_err(LoadError::setup)?;
    let key = Some(pbn::seal::KeySource::Key(key));
    pbn::Store::open_for_with(path, "bench", Duration::ZERO, key).map_err(LoadError::setup)
}

/// One `pbn serve` child; dropping it kills it with SIGKILL (a crash).
pub struct Replica {
    child: std::process::Child,
    /// Its store file.
    pub store: PathBuf,
    /// Its HTTP listener (`/status`).
    pub http: String,
    /// Its log file.
    pub log: PathBuf,
}

impl Replica {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How often `needle` is in its log.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().matches(needle).count()
    }

    /// Waits until its log has "in sync with the log" `n` times; returns how long that took.
    pub async fn wait_in_sync(&self, n: usize) -> Result<Duration, LoadError> {
        let started = Instant::now();
        while self.log_count("in sync with the log") < n {
            // `pbn serve` reports a fatal error on its last line and exits.
            if started.elapsed() > READY || self.log_count("error: ") > 0 {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail = &log[log.len().saturating_sub(2000)..];
                return Err(LoadError::Setup(format!(
                    "{} not in sync: {tail}",
                    self.log.display()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(started.elapsed())
    }

    /// Waits until it answers logins (its first "serving" state), for embedded replicas.
    pub async fn wait_serving(&self, url: &str, token: &str) -> Result<Duration, LoadError> {
        deploy::wait_ready(url, token).await
    }

    /// Its applied log position (`GET /status`), `None` while it cannot answer.
    pub async fn applied(&self) -> Option<u64> {
        let body = http_get(&self.http, "/status").await?;
        let status: serde_json::Value = serde_json::from_str(&body).ok()?;
        status["replica"]["applied_seq"].as_u64()
    }

    /// Stops it with SIGTERM and waits (SIGKILL after 15 s).
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a plain syscall on our own, not yet reaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every replica of `rs` answers with the same applied position; returns it.
pub async fn converge(rs: &[&Replica], timeout: Duration) -> Result<u64, LoadError> {
    let started = Instant::now();
    loop {
        let mut seqs = Vec::new();
        for r in rs {
            seqs.push(r.applied().await);
        }
        if let Some(Some(first)) = seqs.first() {
            if seqs.iter().all(|s| *s == Some(*first)) {
                return Ok(*first);
            }
        }
        if started.elapsed() > timeout {
            return Err(LoadError::Setup(format!("replicas did not converge: {seqs:?}")));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `GET path` over HTTP/1.0: the body of a 200 answer.
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.split(' ').nth(1).filter(|s| *s == "200").map(|_| body.to_string())
}

/// A user-add request for `name` in the bench account, without credentials.
pub fn user_add(name: &str) -> Request {
    Request::UserAdd(pbn::UserAdd {
        name: name.into(),
        account: crate::support::ACCOUNT.into(),
        role: crate::support::ROLE.into(),
        email: None,
        description: None,
        password_hash: None,
        tags: Default::default(),
    })
}
