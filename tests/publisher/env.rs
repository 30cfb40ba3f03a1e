//! A pbn deployment for the publisher tests: a store made by `admin`, nats-server configs rendered
//! by `natsconf` from `pbn::trust`, and `pbn::run_with_store` in this process,
//! sharing the store handle with the test (redb allows one open handle per process).

use pbn::{AccountAdd, AccountEdit, OutboxList, RoleAdd, UserAdd, UserCreds};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, ConnectError, ConnectOptions, Event};
use pbn::claims::{self, AccountClaims, Claims};
use pbn::keys::{AccountPublicKey, KeyKind, KeyPair, UserPublicKey};
use pbn::ServerError;
use pbn::SYS_ACCOUNT;
use pbn::{hash_password_with, PasswordParams, Secret};
use pbn::{Account, Name, Role};
use pbn::{Context, LimitPatch, OutboxView, Request, Response, RolePatch};
use pbn::{Layout, RenderedConfig};
use pbn::{RawConfig, RawPublisher, Settings};
use pbn::{Store, StoreRead};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{free_port, wait_until_async, Deadline, NatsServer};

/// Upper bound for anything that should happen within a few pushes or reconnects.
pub const WAIT: Duration = Duration::from_secs(20);
/// The role every test user gets (default permissions: everything in its account).
pub const ROLE: &str = "member";
/// Password of every test user.
pub const PASSWORD: &str = "correct horse battery staple";

/// A store in a temp dir (also holding the rendered configs and resolver dirs).
pub struct Env {
    pub dir: TempDir,
    pub store: Store,
}

impl Env {
    /// A fresh store (operator, SYS, AUTH) with the role [`ROLE`].
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("pbn-pub-").tempdir().expect("temp dir");
        let path = dir.path().join("store.redb");
        let store = crate::support::init_sealed_store(&path, "test", false, &ctx())
            .unwrap_or_else(|e| panic!("init store: {e}"));
        let env = Env { dir, store };
        env.admin(Request::RoleAdd(RoleAdd { name: ROLE.into(), role: RolePatch::default() }));
        env
    }

    /// Executes an admin request now, panicking on failure.
    pub fn admin(&self, req: Request) -> Response {
        pbn::execute(&self.store, &req, &ctx())
            .unwrap_or_else(|e| panic!("admin request {req:?}: {e}"))
            .response
    }

    /// Adds a managed account with `max_connections` (`-1` unlimited).
    pub fn add_account(&self, name: &str, max_connections: i64) {
        let limits = LimitPatch { max_connections: Some(max_connections), ..LimitPatch::default() };
        self.admin(Request::AccountAdd(AccountAdd {
            name: name.into(),
            description: None,
            limits,
            disallow_bearer: false,
        }));
    }

    /// Sets `max_connections` of account `name` through admin (queues a push).
    pub fn set_max_connections(&self, name: &str, n: i64) {
        let limits = LimitPatch { max_connections: Some(n), ..LimitPatch::default() };
        self.admin(Request::AccountEdit(AccountEdit {
            name: name.into(),
            description: None,
            limits,
            active: None,
            disallow_bearer: None,
        }));
    }

    /// Adds a user of `account` with password [`PASSWORD`] (cheap test argon2 parameters).
    pub fn add_user(&self, name: &str, account: &str) {
        let hash = hash_password_with(&Secret::new(PASSWORD), &PasswordParams::for_tests())
            .unwrap_or_else(|e| panic!("hash the password of {name}: {e}"));
        self.admin(Request::UserAdd(UserAdd {
            name: name.into(),
            account: account.into(),
            role: ROLE.into(),
            email: None,
            description: None,
            password_hash: Some(hash),
            tags: Default::default(),
        }));
    }

    /// Fresh creds of user `name` (minted by admin).
    pub fn creds(&self, name: &str) -> String {
        match self.admin(Request::UserCreds(UserCreds { name: name.into(), keep_previous: true })) {
            Response::Creds { creds, .. } => creds,
            other => panic!("expected creds, got {other:?}"),
        }
    }

    /// Creds for a user the store does not know, signed by the current signing key of
    /// `account` (so the account can be deleted while they exist).
    pub fn foreign_creds(&self, account: &str) -> String {
        let acc = self.account(account);
        let role = Role::new(Name::parse(ROLE).expect("valid name"), pbn::unix_now());
        let kp = KeyPair::generate(KeyKind::User);
        let key = UserPublicKey::parse(kp.public_key()).expect("a user key");
        let defaults = pbn::default_permissions();
        let spec = pbn::UserSpec {
            account: &acc,
            role: &role,
            user_key: &key,
            name: "outsider",
            iat: pbn::unix_now(),
            exp: 0,
            defaults: &defaults,
        };
        let jwt = pbn::user_jwt(&spec).expect("mint a user JWT");
        pbn::creds(&jwt, &kp.seed()).to_string()
    }

    /// An account record by name.
    pub fn account(&self, name: &str) -> Account {
        self.store.read(|tx| tx.require_account(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The outbox as `pbn admin outbox list` shows it.
    pub fn outbox(&self) -> Vec<OutboxView> {
        match self.admin(Request::OutboxList(OutboxList {})) {
            Response::Outbox(v) => v,
            other => panic!("expected the outbox, got {other:?}"),
        }
    }

    /// Waits until every outbox entry has been pushed and verified.
    pub async fn wait_outbox_empty(&self) {
        wait_until_async(WAIT, "the outbox to drain", || async { self.outbox().is_empty() }).await;
    }

    /// Renders the server config(s) for the store as it is now (accounts in it are preloaded),
    /// client ports from `port` (a free base port when `None`), `cluster` nodes.
    pub fn render(&self, port: Option<u16>, cluster: Option<u16>) -> Vec<RenderedConfig> {
        let trust = pbn::trust(&self.store, &ctx()).expect("trust from the store");
        let layout = Layout {
            out_dir: self.dir.path().join(format!("nats-{}", free_port())),
            port: port.unwrap_or_else(|| pick_base_port(cluster.unwrap_or(1))),
            cluster,
            auth_timeout: Duration::from_secs(5),
            host: "127.0.0.1".into(),
        };
        let configs = pbn::render(&trust, &layout).expect("render the configs");
        pbn::write_configs(&configs).expect("write the configs");
        configs
    }
}

/// The admin context at the current time.
pub fn ctx() -> Context {
    Context::now()
}

/// Starts a server for `config` (edited by `edit`) on a client port the server picks (the
/// rendered one is overridden; route ports stay as rendered).
pub async fn start_server(config: &RenderedConfig, edit: impl Fn(&str) -> String) -> NatsServer {
    NatsServer::builder(&edit(&config.text)).start().await
}

/// Publisher settings for tests: short debounce, fast backoff, `max_attempts` tries.
pub fn settings(env: &Env, servers: Vec<String>, debounce: Duration, attempts: u32) -> Settings {
    let publisher = RawPublisher {
        debounce: Some(debounce),
        backoff_base: Some(Duration::from_millis(50)),
        backoff_max: Some(Duration::from_millis(400)),
        max_attempts: Some(attempts),
        request_timeout: Some(Duration::from_secs(2)),
        ..RawPublisher::default()
    };
    let flags = RawConfig {
        store: Some(env.store.path().to_path_buf()),
        servers: Some(servers),
        publisher,
        ..RawConfig::default()
    };
    Settings::resolve(None, RawConfig::default(), flags).expect("valid test settings")
}

/// `pbn serve` running in this process on the shared store handle.
pub struct Service {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Service {
    /// Starts the service with `settings` on `env`'s store.
    pub fn start(env: &Env, settings: Settings) -> Service {
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(pbn::run_with_store(settings, env.store.clone(), shutdown));
        Service { stop, task: Some(task) }
    }

    /// Signals shutdown and waits until the service has stopped.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let ended = tokio::time::timeout(WAIT, task).await.expect("service stops in time");
            ended.expect("service task").expect("service ends cleanly");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A connection of a fresh SYS user (for the claims API) to `url`.
pub async fn sys_client(env: &Env, url: &str) -> Client {
    crate::support::deploy::sys_user_options(&env.account(SYS_ACCOUNT))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("system user connect to {url}: {e}"))
}

/// The account JWT the server holds for account `name` (first reply), if any.
pub async fn lookup(sys: &Client, env: &Env, name: &str) -> Option<String> {
    lookup_key(sys, &env.account(name).public_key).await
}

/// The account JWT the server holds for the account `key` (first reply), if any.
pub async fn lookup_key(sys: &Client, key: &AccountPublicKey) -> Option<String> {
    let subject = format!("$SYS.REQ.ACCOUNT.{key}.CLAIMS.LOOKUP");
    let reply = tokio::time::timeout(WAIT, sys.request(subject, "".into()))
        .await
        .expect("lookup answered in time")
        .expect("lookup request");
    let jwt = String::from_utf8(reply.payload.to_vec()).expect("utf-8 reply");
    (!jwt.is_empty()).then_some(jwt)
}

/// The decoded account claims the server holds for `name`, if any.
pub async fn held(sys: &Client, env: &Env, name: &str) -> Option<Claims<AccountClaims>> {
    let jwt = lookup(sys, env, name).await?;
    Some(claims::decode(&jwt).expect("the server holds a valid account JWT"))
}

/// Waits until the server holds a JWT for `name` that satisfies `ok`.
pub async fn wait_held(
    sys: &Client,
    env: &Env,
    name: &str,
    ok: impl Fn(&Claims<AccountClaims>) -> bool,
) {
    let what = format!("the server to hold the expected JWT of {name}");
    wait_until_async(WAIT, &what, || async { held(sys, env, name).await.is_some_and(|c| ok(&c)) })
        .await;
}

/// Records the events of one client connection.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    /// `opts` recording into `self`.
    pub fn attach(&self, opts: ConnectOptions) -> ConnectOptions {
        let events = self.0.clone();
        opts.event_callback(move |event| {
            let events = events.clone();
            async move { events.lock().unwrap_or_else(PoisonError::into_inner).push(event) }
        })
    }

    /// Whether a server error containing `text` (ignoring case) was received.
    pub fn has_server_error(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|e| match e {
            Event::ServerError(err) => err.to_string().to_lowercase().contains(&text),
            _ => false,
        })
    }

    /// Whether the connection was lost at least once.
    pub fn disconnected(&self) -> bool {
        let events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        events.iter().any(|e| matches!(e, Event::Disconnected))
    }
}

/// Logs in through the callout as `user` with [`PASSWORD`] (no reconnects).
pub async fn login(url: &str, user: &str) -> Result<Client, ConnectError> {
    ConnectOptions::with_user_and_password(user.into(), PASSWORD.into())
        .max_reconnects(1)
        .connect(url)
        .await
}

/// Connects with a creds file text, recording events (no reconnects).
pub async fn connect_creds(
    url: &str,
    creds: &str,
    events: &Events,
) -> Result<Client, ConnectError> {
    let opts = ConnectOptions::with_credentials(creds).expect("valid creds").max_reconnects(1);
    events.attach(opts).connect(url).await
}

/// How many connections of `server` subscribe to the callout subject: where the service's
/// callout runs (a probe connection of the failback check has the same name but no
/// subscription).
pub async fn callout_subscribers(server: &NatsServer) -> usize {
    let Ok(connz) = server.try_monitor("/connz?subs=1").await else { return 0 };
    let serves = |c: &&serde_json::Value| {
        c["subscriptions_list"]
            .as_array()
            .is_some_and(|subs| subs.iter().any(|s| s.as_str() == Some(pbn::CALLOUT_SUBJECT)))
    };
    connz["connections"].as_array().into_iter().flatten().filter(serves).count()
}

/// Waits until the callout runs on `server` (`true`) or no longer does (`false`).
pub async fn wait_callout(server: &NatsServer, serving: bool, timeout: Duration) {
    let what = format!("callout serving={serving} on port {}", server.port());
    let deadline = Deadline::after(timeout, what);
    while (callout_subscribers(server).await > 0) != serving {
        deadline.tick().await;
    }
}

/// A client port `p` such that `p + i` and the route ports `p + 2000 + i` of `nodes` nodes are
/// free now (the layout `pbn::render` uses).
pub fn pick_base_port(nodes: u16) -> u16 {
    loop {
        let base = free_port();
        let Some(top) = base.checked_add(2000 + nodes) else { continue };
        let mut ports = (0..nodes).flat_map(|i| [base + i, base + 2000 + i]);
        if top < u16::MAX && ports.all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
}
