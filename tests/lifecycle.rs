//! Online administration and live security operations: the whole service in this process
//! (`pbn::run_with_store`, the test keeping the store handle) on real nats-servers,
//! administered remotely by the real `pbn` binary (`pbn admin --server URL --creds FILE`).
//!
//! Every live operation is asserted on the client side: the connection closes within 2 s of the
//! command, and a reconnect gets the new permissions or is refused. Submodules: [`users`] (user
//! and role operations, cluster), [`accounts`] (account deactivation, keys, creds), [`api`] (the
//! admin API itself: discovery, output, exit codes, bad input, who may call it).

mod accounts;
mod admin_inbox;
mod admins;
mod api;
mod audit;
mod bulk;
mod http;
mod prometheus;
mod session_admin;
mod status;
mod store;
mod templates;
mod users;

use pbn::OperatorShow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use pbn::AdminClient;
use pbn::SYS_ACCOUNT;
use pbn::{Context, ListPatch, Request, RolePatch};
use pbn::{RawConfig, Settings};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::deploy::{ClientEvents, DeployOptions, Deployment, USER_INFO_SUBJECT, WAIT};
use crate::support::pbn::{Pbn, PbnOutput};
use crate::support::Deadline;

/// Password of every test user.
const PW: &str = "correct-horse-battery-staple";
/// How soon a live operation must take effect.
const EFFECT: Duration = Duration::from_secs(2);

/// A role publishing and subscribing on `prefix.>`, plus what `$SYS.REQ.USER.INFO` needs.
fn role_on(prefix: &str) -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec![format!("{prefix}.>"), USER_INFO_SUBJECT.into()]),
        sub_allow: ListPatch::Set(vec![format!("{prefix}.>"), "_INBOX.>".into()]),
        ..RolePatch::default()
    }
}

/// A deployment with the service running in this process and admin creds on disk.
struct Live {
    d: Deployment,
    shutdown: watch::Sender<bool>,
    service: Option<JoinHandle<Result<(), pbn::ServerError>>>,
    creds: PathBuf,
    /// The server the service (and remote admin) connects to.
    home: usize,
}

impl Live {
    /// Accounts APP and OTHER, roles `app` (on `app.>`) and `ops` (on `ops.>`), users `alice`
    /// and `bob` (APP, app) and `olga` (OTHER, app); `extra` adds more before the servers start.
    async fn start(opts: DeployOptions, extra: impl FnOnce(&Deployment)) -> Live {
        Live::start_with(opts, extra, RawConfig::default()).await
    }

    /// [`Live::start`] with the service configured by `config` (store and servers are set).
    async fn start_with(
        opts: DeployOptions,
        extra: impl FnOnce(&Deployment),
        config: RawConfig,
    ) -> Live {
        let mut d = Deployment::new(DeployOptions { runners: 0, ..opts });
        d.add_account("APP");
        d.add_account("OTHER");
        d.add_role("app", role_on("app"));
        d.add_role("ops", role_on("ops"));
        d.add_user("alice", "APP", "app", PW);
        d.add_user("bob", "APP", "app", PW);
        d.add_user("olga", "OTHER", "app", PW);
        extra(&d);
        d.start().await;
        let dir = d.store().path().parent().expect("the store is in a temp dir").to_path_buf();
        let creds = dir.join("admin.creds");
        let text = pbn::admin_creds(d.store(), &Context::now()).expect("admin creds");
        write_secret(&creds, &text);
        let home = 0;
        let settings = Settings::resolve(
            None,
            config,
            RawConfig {
                store: Some(d.store().path().to_path_buf()),
                servers: Some(vec![d.url(home)]),
                ..RawConfig::default()
            },
        )
        .expect("service settings");
        let (shutdown, rx) = watch::channel(false);
        let service = tokio::spawn(pbn::run_with_store(settings, d.store().clone(), rx));
        let live = Live { d, shutdown, service: Some(service), creds, home };
        live.d.wait_callout_ready().await;
        live.wait_admin_ready().await;
        live
    }

    /// Stops the service (as a shutdown does) and starts it again on the same store.
    async fn restart_service(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.service.take() {
            task.await.expect("service task").expect("service stopped cleanly");
        }
        let settings = Settings::resolve(
            None,
            RawConfig::default(),
            RawConfig {
                store: Some(self.d.store().path().to_path_buf()),
                servers: Some(vec![self.d.url(self.home)]),
                ..RawConfig::default()
            },
        )
        .expect("service settings");
        let (shutdown, rx) = watch::channel(false);
        self.shutdown = shutdown;
        let store = self.d.store().clone();
        self.service = Some(tokio::spawn(pbn::run_with_store(settings, store, rx)));
        self.d.wait_callout_ready().await;
        self.wait_admin_ready().await;
    }

    /// Waits until the admin API answers (the system connection is up and subscribed).
    async fn wait_admin_ready(&self) {
        let client = self.admin_client().await;
        let deadline = Deadline::after(Duration::from_secs(30), "the admin API to answer");
        while client.call(&Request::OperatorShow(OperatorShow {})).await.is_err() {
            deadline.tick().await;
        }
        client.close().await;
    }

    /// A library admin client (the binary's transport) on the home server.
    async fn admin_client(&self) -> AdminClient {
        AdminClient::connect(&self.d.url(self.home), &self.creds, WAIT)
            .await
            .unwrap_or_else(|e| panic!("admin client: {e}"))
    }

    /// Runs `pbn admin --server URL --creds FILE ARGS…` (off the runtime: it blocks).
    async fn admin(&self, args: &[&str]) -> PbnOutput {
        let pbn = Pbn::new(["admin", "--server", &self.d.url(self.home), "--creds"])
            .args([&self.creds])
            .args(args);
        tokio::task::spawn_blocking(move || pbn.run()).await.expect("pbn ran")
    }

    /// Logs `user` in on server `i`, reconnecting quickly after a disconnect.
    async fn login_on(&self, i: usize, user: &str) -> UserConn {
        let events = ClientEvents::new();
        let opts = ConnectOptions::with_user_and_password(user.into(), PW.into())
            .ignore_discovered_servers()
            .reconnect_delay_callback(|_| Duration::from_millis(100));
        let client = self
            .d
            .connect(i, opts, &events)
            .await
            .unwrap_or_else(|e| panic!("login of {user} on server {i}: {e}"));
        UserConn { client, events }
    }

    async fn login(&self, user: &str) -> UserConn {
        self.login_on(0, user).await
    }

    /// Asserts that a fresh login of `user` on server `i` is refused by the server.
    async fn assert_refused_on(&self, i: usize, user: &str) {
        let opts = ConnectOptions::with_user_and_password(user.into(), PW.into());
        match self.d.connect(i, opts, &ClientEvents::new()).await {
            Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
            Ok(_) => panic!("{user} was admitted, but should be refused"),
        }
    }

    async fn assert_refused(&self, user: &str) {
        self.assert_refused_on(0, user).await
    }

    fn account_key(&self, name: &str) -> String {
        self.d.account(name).public_key.to_string()
    }

    /// The newest signing key of account `name`.
    fn signing_key(&self, name: &str) -> String {
        let acc = self.d.account(name);
        acc.current_signing_key().expect("accounts have signing keys").public().to_string()
    }

    /// Mints creds for `user` remotely (`user creds USER --out FILE`) and returns the file.
    async fn creds_for(&self, user: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = self.creds.with_file_name(format!("{user}-{n}.creds"));
        let file = path.to_str().expect("temp paths are UTF-8");
        self.admin(&["user", "creds", user, "--out", file]).await.success();
        path
    }

    /// Connects to server `i` with the creds file `path`.
    async fn connect_creds_on(&self, i: usize, path: &Path) -> UserConn {
        let events = ClientEvents::new();
        let opts = ConnectOptions::with_credentials_file(path)
            .await
            .expect("a creds file")
            .ignore_discovered_servers()
            .reconnect_delay_callback(|_| Duration::from_millis(100));
        let client = self
            .d
            .connect(i, opts, &events)
            .await
            .unwrap_or_else(|e| panic!("connect with {} to server {i}: {e}", path.display()));
        UserConn { client, events }
    }

    /// Asserts that connecting to server `i` with the creds file `path` is refused.
    async fn assert_creds_refused_on(&self, i: usize, path: &Path) {
        let opts = ConnectOptions::with_credentials_file(path).await.expect("a creds file");
        match self.d.connect(i, opts, &ClientEvents::new()).await {
            Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
            Ok(_) => panic!("{} was admitted, but should be refused", path.display()),
        }
    }

    /// The signing keys that issued the live connections of `user` in account `account` (from
    /// the server's CONNZ, asked as a system user).
    async fn issuers(&self, account: &str, user: &str) -> Vec<String> {
        let client = crate::support::deploy::sys_user_options(&self.d.account(SYS_ACCOUNT))
            .connect(self.d.url(self.home))
            .await
            .expect("system user connects");
        let query =
            serde_json::json!({"acc": self.account_key(account), "user": user, "auth": true});
        let reply = client
            .request("$SYS.REQ.SERVER.PING.CONNZ", query.to_string().into())
            .await
            .expect("connz answered");
        let v: Value = serde_json::from_slice(&reply.payload).expect("connz is JSON");
        let conns = v["data"]["connections"].as_array().cloned().unwrap_or_default();
        conns.iter().filter_map(|c| c["issuer_key"].as_str().map(String::from)).collect()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(service) = self.service.take() {
            service.abort();
        }
    }
}

/// Writes `text` to a new file with mode 0600.
fn write_secret(path: &std::path::Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("write the secret file");
}

/// A user's connection and its events.
struct UserConn {
    client: Client,
    events: ClientEvents,
}

impl UserConn {
    fn count(&self, wanted: fn(&Event) -> bool) -> usize {
        self.events.all().iter().filter(|e| wanted(e)).count()
    }

    fn disconnects(&self) -> usize {
        self.count(|e| matches!(e, Event::Disconnected))
    }

    fn connects(&self) -> usize {
        self.count(|e| matches!(e, Event::Connected))
    }

    /// Waits until the connection has dropped (once more than `before` times), failing if that
    /// takes longer than [`EFFECT`] after `since`.
    async fn assert_closed_within(&self, since: Instant, before: usize) {
        let deadline = Deadline::after(WAIT, "the connection to close");
        while self.disconnects() <= before {
            deadline.tick().await;
        }
        let took = since.elapsed();
        assert!(took <= EFFECT, "the connection closed only after {took:?}");
    }

    /// Waits until the client is connected again after its `connects_before`-th connect.
    async fn wait_reconnected(&self, connects_before: usize) {
        let deadline = Deadline::after(WAIT, "the client to reconnect");
        while self.connects() <= connects_before {
            deadline.tick().await;
        }
    }

    /// Whether the server sent an error containing `text` (any case).
    fn has_error(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.events.server_errors().iter().any(|e| e.to_lowercase().contains(&text))
    }

    /// The `data` of `$SYS.REQ.USER.INFO` for this connection.
    async fn user_info(&self) -> Value {
        let reply = tokio::time::timeout(WAIT, self.client.request(USER_INFO_SUBJECT, "".into()))
            .await
            .expect("user info within the deadline")
            .expect("user info request");
        let v: Value = serde_json::from_slice(&reply.payload).expect("user info is JSON");
        v["data"].clone()
    }
}

/// The publish allow list in a user-info answer, sorted.
fn pub_allow(info: &Value) -> Vec<String> {
    let mut v: Vec<String> = info["permissions"]["publish"]["allow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    v.sort();
    v
}
