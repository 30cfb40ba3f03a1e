//! A deployment on loopback: a store with bench users, the rendered nats-server config, the
//! server process, and pbn's service (in-process, or the `pbn serve` binary as a child).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pbn::keys::{KeyKind, KeyPair, UserPublicKey};
use pbn::Context;
use pbn::Layout;
use pbn::UserSpec;
use pbn::{hash_password_with, PasswordParams, Secret};
use pbn::{RawConfig, Settings};
use pbn::{Store, StoreError, StoreRead};
use tempfile::TempDir;
use tokio::sync::watch;

use crate::server::NatsProcess;
use crate::support::{bulk_users, BulkUsers, ACCOUNT, ROLE};
use crate::LoadError;

/// Users per bulk-insert transaction.
const BATCH: usize = 10_000;
/// How long the service may take to answer its first login.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one readiness probe may take.
const READY_ATTEMPT: Duration = Duration::from_millis(250);

/// The password of bench password user `name`.
pub fn password_of(name: &str) -> String {
    format!("bench-password-of-{name}")
}

/// argon2id hashes (production parameters) of the passwords of `names`, on every core.
fn hash_all(names: &[String]) -> Result<Vec<String>, LoadError> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = names.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = names
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|n| {
                            hash_password_with(
                                &Secret::new(password_of(n)),
                                &PasswordParams::default(),
                            )
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(names.len());
        for w in workers {
            let part =
                w.join().map_err(|_| LoadError::Setup("a hashing thread panicked".into()))?;
            out.extend(part.map_err(|e| LoadError::Setup(e.to_string()))?);
        }
        Ok(out)
    })
}

/// Adds password users named `{prefix}{i}`, `count` of them, with production argon2id hashes.
pub fn password_users(store: &Store, prefix: &str, count: usize) -> Result<Vec<String>, LoadError> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let hashes = hash_all(&names)?;
    bulk_users(store, prefix, count, BATCH, false, |i| Some(hashes[i].clone()));
    Ok(names)
}

/// Adds token users `tok{i}`.
pub fn token_users(store: &Store, count: usize) -> BulkUsers {
    bulk_users(store, "tok", count, BATCH, true, |_| None)
}

/// Creds (JWT + seed) for `count` fresh user keys in the bench account: what `pbn admin user
/// creds` hands out, minted here without a store write per user.
pub fn mint_creds(store: &Store, count: usize) -> Result<Vec<String>, LoadError> {
    let (acc, role) = store.read(|tx| -> Result<_, StoreError> {
        Ok((tx.require_account(ACCOUNT)?, tx.require_role(ROLE)?))
    })?;
    let defaults = pbn::default_permissions();
    let now = pbn::unix_now();
    (0..count)
        .map(|i| {
            let kp = KeyPair::generate(KeyKind::User);
            let key = UserPublicKey::parse(kp.public_key()).map_err(LoadError::setup)?;
            let name = format!("creds{i}");
            let spec = UserSpec {
                account: &acc,
                role: &role,
                user_key: &key,
                name: &name,
                iat: now,
                exp: 0,
                defaults: &defaults,
            };
            let jwt = pbn::user_jwt(&spec).map_err(LoadError::setup)?;
            Ok(pbn::creds(&jwt, &kp.seed()).to_string())
        })
        .collect()
}

/// Creds of a fresh system-account user, for claims lookups.
pub fn system_creds(store: &Store) -> Result<String, LoadError> {
    let sys = store.read(|tx| tx.require_account(pbn::SYS_ACCOUNT))?;
    let kp = KeyPair::generate(KeyKind::User);
    let jwt =
        pbn::internal_user_jwt(&sys, kp.public_key(), "bench-sys", &[], &[], pbn::unix_now(), None)
            .map_err(LoadError::setup)?;
    Ok(pbn::creds(&jwt, &kp.seed()).to_string())
}

/// Renders the server config for `store` into `dir/nats` and starts nats-server on a port it
/// picks itself.
pub async fn start_server(
    store: &Store,
    dir: &Path,
    binary: &Path,
) -> Result<(NatsProcess, String), LoadError> {
    let trust = pbn::trust(store, &Context::now()).map_err(LoadError::setup)?;
    // The rendered port is overridden: the server picks its own (see `NatsProcess::start`).
    let layout = Layout::single(dir.join("nats"), 4222);
    let files = pbn::render(&trust, &layout).map_err(LoadError::setup)?;
    pbn::write_configs(&files).map_err(LoadError::setup)?;
    let server = NatsProcess::start(binary, &files[0].path, &dir.join("nats-server.log")).await?;
    let url = server.client_url();
    Ok((server, url))
}

/// Settings for a service on `store_path` talking to `url`, with pbn's defaults otherwise.
pub fn settings(store_path: &Path, url: &str) -> Result<Settings, LoadError> {
    let flags = RawConfig {
        store: Some(store_path.to_path_buf()),
        servers: Some(vec![url.to_string()]),
        ..RawConfig::default()
    };
    Settings::resolve(None, RawConfig::default(), flags).map_err(LoadError::setup)
}

/// pbn's service running in this process on a shared store handle.
pub struct InProcess {
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), pbn::ServerError>>,
}

impl InProcess {
    /// Starts `service::run_with_store` on `store`.
    pub fn start(settings: Settings, store: Store) -> InProcess {
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(pbn::run_with_store(settings, store, rx));
        InProcess { shutdown, task }
    }

    /// Signals shutdown and waits for the service to stop.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
    }
}

/// `pbn serve` as a child process (for memory measurements of the real binary).
pub struct ChildService {
    child: std::process::Child,
}

impl ChildService {
    /// Runs `binary serve --store STORE --server URL`, logging to `log`.
    pub fn start(binary: &Path, store: &Path, url: &str, log: &Path) -> Result<Self, LoadError> {
        Self::start_with(binary, store, url, log, &[])
    }

    /// [`ChildService::start`] with `extra` arguments after `serve`'s own.
    pub fn start_with(
        binary: &Path,
        store: &Path,
        url: &str,
        log: &Path,
        extra: &[&str],
    ) -> Result<Self, LoadError> {
        let out = std::fs::File::create(log).map_err(LoadError::io("create the pbn log"))?;
        let err = out.try_clone().map_err(LoadError::io("create the pbn log"))?;
        let child = std::process::Command::new(binary)
            .arg("serve")
            .arg("--store")
            .arg(store)
            .arg("--server")
            .arg(url)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(LoadError::io("spawn pbn serve"))?;
        Ok(ChildService { child })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the child with SIGTERM (killing it if it does not exit in time).
    pub async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain syscall on our own, not yet reaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until a token login through the callout succeeds; returns how long that took.
///
/// Each attempt is abandoned after [`READY_ATTEMPT`], so an attempt sent before the service
/// subscribed (which the server would hold until its auth timeout) skews the result little.
pub async fn wait_ready(url: &str, token: &str) -> Result<Duration, LoadError> {
    let started = Instant::now();
    loop {
        let opts = async_nats::ConnectOptions::with_token(token.to_string());
        if let Ok(Ok(c)) = tokio::time::timeout(READY_ATTEMPT, opts.connect(url)).await {
            drop(c);
            return Ok(started.elapsed());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(LoadError::NotReady(READY_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temp dir with a store of the bench records, shared with the in-process service.
pub struct Workspace {
    /// The directory (removed on drop).
    pub dir: TempDir,
    /// The store file.
    pub store_path: PathBuf,
    /// The open store.
    pub store: Store,
}

impl Workspace {
    /// A new temp dir with a served store (see `support::served_store`).
    pub fn new() -> Result<Workspace, LoadError> {
        let dir = tempfile::Builder::new()
            .prefix("pbn-load-")
            .tempdir()
            .map_err(LoadError::io("create a temp dir"))?;
        let store_path = dir.path().join("pbn.redb");
        let store = crate::support::served_store(&store_path, false);
        Ok(Workspace { dir, store_path, store })
    }
}
