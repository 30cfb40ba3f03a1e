//! Several nats-servers in a cluster with JetStream, and several `pbn serve` replicas (the real
//! binary, each on its own copy of one store file) on them. Submodules: [`added`] (replicas
//! added to a running deployment: a snapshot for the joiner, old creds re-issued), [`harness`] (the
//! cluster harness itself), [`natsconf`] (`pbn nats-conf --cluster 3` files run as a cluster,
//! JetStream in pbn's account), [`sessions`] (the cluster-wide session view: kicks and caps
//! across replicas and restarts), [`replicated`] (replicas on one log: replicated mode),
//! [`chaos`] (a connect storm while a replica and a server are killed), [`follower`] (a
//! follower woken before the append it reads is stored), [`runtime`] (replicated
//! mode at run time: compaction, lagging and joining replicas).
//!
//! Replica `i` connects to server `i`: nats-server hands a queue-group message to a subscriber
//! on the server it arrives at before one across a route, so a login on server `i` is answered
//! by replica `i` (the tests check this in the replicas' logs rather than assume it).

mod added;
mod chaos;
mod follower;
mod harness;
mod join;
mod natsconf;
mod replicated;
mod runtime;
mod sessions;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use pbn::{Context, CALLOUT_SUBJECT};

use crate::support::deploy::{ClientEvents, Deployment};
use crate::support::pbn::{Pbn, PbnChild, PbnOutput};
use crate::support::{free_port, Deadline};

/// Password of every test user.
const PW: &str = "correct-horse-battery-staple";
/// How long setup steps and awaited effects may take on a busy machine.
const WAIT: Duration = Duration::from_secs(30);
/// How soon a kick must close a connection once the admin command returned.
const EFFECT: Duration = Duration::from_secs(2);

/// A `pbn serve` process on its own copy of the deployment's store, with debug logs (one line
/// per admitted login) and an HTTP listener for `/metrics`.
struct Replica {
    child: PbnChild,
    store: PathBuf,
    server: String,
    http: String,
    log: PathBuf,
}

impl Replica {
    /// Copies the deployment's store to `DIR/NAME.redb` and serves it on server `server`.
    fn start(d: &Deployment, name: &str, server: usize) -> Replica {
        let dir = d.store().path().parent().expect("the store is in a temp dir");
        let store = dir.join(format!("{name}.redb"));
        copy_store(d.store().path(), &store);
        Replica::serve(store, d.url(server), dir.join(format!("{name}.log")))
    }

    fn serve(store: PathBuf, server: String, log: PathBuf) -> Replica {
        Replica::serve_with(store, server, log, &[])
    }

    /// [`Replica::serve`] in replicated mode (`--replicated`, the log in 3 copies).
    fn serve_replicated(store: PathBuf, server: String, log: PathBuf) -> Replica {
        Replica::serve_with(store, server, log, &["--replicated"])
    }

    fn serve_with(store: PathBuf, server: String, log: PathBuf, extra: &[&str]) -> Replica {
        let http = format!("127.0.0.1:{}", free_port());
        let child = Pbn::new(["serve", "--store"])
            .args([&store])
            .args(["--server", &server, "--http", &http])
            .args(extra)
            .env("PBN_LOG", "pbn=debug")
            .env("PBN_LOG_REPLICAS", "3")
            .spawn_logged(&log);
        Replica { child, store, server, http, log }
    }

    /// Stops the process (SIGKILL, as a crash) and starts it again on the same store file and
    /// server, appending to the same log.
    fn restart(self) -> Replica {
        let Replica { child, store, server, log, .. } = self;
        drop(child);
        Replica::serve(store, server, log)
    }

    fn log(&self) -> String {
        self.child.log()
    }

    /// Logins this replica admitted (its debug line per login).
    fn admitted(&self, user: &str) -> usize {
        let needle = format!("user={user}");
        self.log().lines().filter(|l| l.contains("callout admitted") && l.contains(&needle)).count()
    }

    /// Waits until the log has `needle` at least `n` times.
    async fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Deadline::after(WAIT, format!("{needle:?} x{n} in the replica's log"));
        while self.log().matches(needle).count() < n {
            if deadline.expired() {
                panic!("{}; log:\n{}", deadline.error(), self.log());
            }
            deadline.tick().await;
        }
    }

    /// The replica's `pbn_sessions` gauge (its registry's size), `None` while it cannot answer.
    async fn sessions(&self) -> Option<f64> {
        let body = http_get(&self.http, "/metrics").await?;
        body.lines().find_map(|l| l.strip_prefix("pbn_sessions ").and_then(|v| v.parse().ok()))
    }

    /// Waits until the replica counts `n` live sessions.
    async fn wait_sessions(&self, n: usize) {
        let deadline = Deadline::after(WAIT, format!("{n} sessions in the replica's view"));
        while self.sessions().await != Some(n as f64) {
            if deadline.expired() {
                panic!(
                    "{}; has {:?}; log:\n{}",
                    deadline.error(),
                    self.sessions().await,
                    self.log()
                );
            }
            deadline.tick().await;
        }
    }
}

/// Copies the store file `src` to `dst`, with its key file (`<store>.key`) when it has one.
fn copy_store(src: &Path, dst: &Path) {
    let key = |p: &Path| {
        let mut name = p.as_os_str().to_os_string();
        name.push(".key");
        PathBuf::from(name)
    };
    std::fs::copy(src, dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    if key(src).exists() {
        std::fs::copy(key(src), key(dst)).unwrap_or_else(|e| panic!("copy the store key: {e}"));
    }
}

/// `GET path` on `addr` over HTTP/1.0: the body of a 200 answer.
async fn http_get(addr: &str, path: &str) -> Option<String> {
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

/// Waits until `replicas` callout subscriptions exist across the deployment's `servers`.
async fn wait_callouts(d: &Deployment, servers: usize, replicas: usize) {
    let deadline = Deadline::after(WAIT, format!("{replicas} callout subscriptions"));
    loop {
        let mut found = 0;
        for i in 0..servers {
            let connz = d.server(i).monitor("/connz?subs=1").await;
            let subscribed = |c: &&serde_json::Value| {
                c["subscriptions_list"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|s| s.as_str() == Some(CALLOUT_SUBJECT)))
            };
            found +=
                connz["connections"].as_array().into_iter().flatten().filter(subscribed).count();
        }
        if found >= replicas {
            return;
        }
        deadline.tick().await;
    }
}

/// Admin creds for the deployment's store, written (0600) next to it; made before the store is
/// copied, so every replica knows them.
fn admin_creds(d: &Deployment) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = pbn::admin_creds(d.store(), &Context::now()).expect("admin creds");
    let path = d.store().path().with_file_name("admin.creds");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create the creds file");
    f.write_all(text.as_bytes()).expect("write the creds");
    path
}

/// Runs `pbn admin --server URL --creds FILE ARGS…` (off the runtime: it blocks).
async fn admin(url: &str, creds: &Path, args: &[&str]) -> PbnOutput {
    let pbn = Pbn::new(["admin", "--server", url, "--creds"]).args([creds]).args(args);
    tokio::task::spawn_blocking(move || pbn.run()).await.expect("pbn ran")
}

/// A user's connection and its events.
struct UserConn {
    client: Client,
    events: ClientEvents,
}

impl UserConn {
    fn disconnected(&self) -> bool {
        self.events.all().iter().any(|e| matches!(e, Event::Disconnected))
    }

    /// Waits until the connection closed, asserting it took at most [`EFFECT`] from `since`.
    async fn assert_closed_within(&self, since: std::time::Instant) {
        let deadline = Deadline::after(WAIT, "the connection to close");
        while !self.disconnected() {
            deadline.tick().await;
        }
        assert!(since.elapsed() <= EFFECT, "closed only after {:?}", since.elapsed());
    }
}

fn login_options(user: &str) -> ConnectOptions {
    ConnectOptions::with_user_and_password(user.into(), PW.into())
        .ignore_discovered_servers()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
}

/// Logs `user` in on server `i`.
async fn login(d: &Deployment, i: usize, user: &str) -> UserConn {
    let events = ClientEvents::new();
    let client = d
        .connect(i, login_options(user), &events)
        .await
        .unwrap_or_else(|e| panic!("login of {user} on server {i}: {e}"));
    UserConn { client, events }
}

/// Asserts that a login of `user` on server `i` is refused.
async fn assert_refused(d: &Deployment, i: usize, user: &str) {
    match d.connect(i, login_options(user), &ClientEvents::new()).await {
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
        Ok(_) => panic!("{user} was admitted on server {i}, but should be refused"),
    }
}
