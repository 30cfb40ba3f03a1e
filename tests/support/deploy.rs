//! A whole pbn deployment for integration tests (see [`Deployment`]).
//!
//! The store is made by `admin` (`init_store`, then typed requests), the nats-server configs are
//! rendered by `natsconf` from `pbn::trust`, and the callout runs in this process
//! ([`CalloutRunner`]: the one place to swap for `pbn::run` once it exists).
//!
//! There is no claims publisher here: records that change an account JWT (new accounts, the
//! allowed accounts of AUTH) must be added before [`Deployment::start`], which preloads them.
//! Everything the callout reads at login time (users, roles, tokens, active flags) may change
//! afterwards.

use pbn::{AccountAdd, RoleAdd, UserAdd};
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, ConnectError, ConnectOptions, Event};
use futures::StreamExt;
use pbn::claims::{AuthorizationRequestClaims, Claims, AUTH_REQUEST_AUDIENCE};
use pbn::keys::{CurvePublicKey, KeyKind, KeyPair, XKeyPair};
use pbn::Account;
use pbn::SessionRegistry;
use pbn::AUTH_ACCOUNT;
use pbn::{hash_password_with, PasswordParams, Secret};
use pbn::{serve_callout as serve, CALLOUT_SUBJECT, XKEY_HEADER};
use pbn::{Context, LimitPatch, Request, Response, RolePatch};
use pbn::{Layout, RenderedConfig};
use pbn::{Pipeline, PipelineOptions};
use pbn::{RawConfig, Settings};
use pbn::{Store, StoreRead};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::server::START_ATTEMPTS;
use super::{free_port, Deadline, HarnessError, NatsServer};

/// How long setup steps (servers, routes, callout subscriptions) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for an advisory or a message that must come.
pub const WAIT: Duration = Duration::from_secs(10);

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Encrypt callout requests (an AUTH xkey made by `init_store`).
    pub xkey: bool,
    /// Cluster size; `None` runs a single server.
    pub cluster: Option<u16>,
    /// nats-server's auth timeout (also the callout deadline).
    pub auth_timeout: Duration,
    /// Callout runners, each on its own connection in the same queue group; runner `i` connects
    /// to server `i % servers`.
    pub runners: usize,
    /// Requests one runner handles at once.
    pub max_concurrent: usize,
    /// Pipeline tuning (throttle, cache, default TTL).
    pub pipeline: PipelineOptions,
    /// Lines appended to every rendered server config (e.g. `max_payload`).
    pub extra_config: String,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            xkey: false,
            cluster: None,
            auth_timeout: Duration::from_secs(5),
            runners: 1,
            max_concurrent: 32,
            pipeline: PipelineOptions {
                default_jwt_ttl: Duration::from_secs(3600),
                password_cache_size: 2048,
                password_cache_ttl: Duration::from_secs(600),
                throttle_max_failures: 10,
                throttle_user_budget: 100,
                throttle_window: Duration::from_secs(900),
                argon_max_waiting: 64,
                defaults: pbn::default_permissions(),
            },
            extra_config: String::new(),
        }
    }
}

/// A store, its nats-server(s) and the callout runner(s); everything stops on drop.
pub struct Deployment {
    opts: DeployOptions,
    store: Store,
    // Fields drop in order: runners stop before their servers are killed.
    runners: Vec<CalloutRunner>,
    /// Real services started with [`Deployment::start_service`].
    services: usize,
    servers: Vec<NatsServer>,
    // Dropped last: holds the store file and the resolver directories.
    dir: TempDir,
}

impl Deployment {
    /// Creates the store (operator, SYS, AUTH with service user and optional xkey); no server
    /// runs yet. Add records, then [`Deployment::start`].
    pub fn new(opts: DeployOptions) -> Deployment {
        let dir = tempfile::Builder::new().prefix("pbn-deploy-").tempdir().expect("temp dir");
        let path = dir.path().join("store.redb");
        let store = super::init_sealed_store(&path, "test", opts.xkey, &Context::now())
            .unwrap_or_else(|e| panic!("init store: {e}"));
        drop(store);
        // Held as the service holds it: the store the in-process service runs on.
        let store = super::open_store(&path, pbn::SERVICE_COMMAND);
        Deployment { opts, store, runners: Vec::new(), services: 0, servers: Vec::new(), dir }
    }

    /// A deployment of a copy of the store file `src` (e.g. one an older build wrote), opened
    /// with [`Store::open`], which migrates it. No server runs yet.
    pub fn from_store_file(opts: DeployOptions, src: &std::path::Path) -> Deployment {
        let dir = tempfile::Builder::new().prefix("pbn-deploy-").tempdir().expect("temp dir");
        let path = dir.path().join("store.redb");
        std::fs::copy(src, &path).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        let store = Store::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", src.display()));
        Deployment { opts, store, runners: Vec::new(), services: 0, servers: Vec::new(), dir }
    }

    /// The store (the callout reads it at every login).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Executes an admin request now, panicking on failure.
    pub fn admin(&self, req: Request) -> Response {
        pbn::execute(&self.store, &req, &Context::now())
            .unwrap_or_else(|e| panic!("admin request {req:?}: {e}"))
            .response
    }

    /// Adds a managed account with default (unlimited) limits.
    pub fn add_account(&self, name: &str) {
        self.admin(Request::AccountAdd(AccountAdd {
            name: name.into(),
            description: None,
            limits: LimitPatch::default(),
            disallow_bearer: false,
        }));
    }

    /// Adds a role.
    pub fn add_role(&self, name: &str, role: RolePatch) {
        self.admin(Request::RoleAdd(RoleAdd { name: name.into(), role }));
    }

    /// Adds a user with `password`, hashed with the cheap test parameters of argon2id.
    pub fn add_user(&self, name: &str, account: &str, role: &str, password: &str) {
        let hash = hash_password_with(&Secret::new(password), &PasswordParams::for_tests())
            .unwrap_or_else(|e| panic!("hash the password of {name}: {e}"));
        self.admin(Request::UserAdd(UserAdd {
            name: name.into(),
            account: account.into(),
            role: role.into(),
            email: None,
            description: None,
            password_hash: Some(hash),
            tags: Default::default(),
        }));
    }

    /// An account record by name.
    pub fn account(&self, name: &str) -> Account {
        self.store.read(|tx| tx.require_account(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The AUTH account's public key.
    pub fn auth_key(&self) -> String {
        self.account(AUTH_ACCOUNT).public_key.to_string()
    }

    /// The AUTH account's xkey public key, when callouts are encrypted.
    pub fn auth_xkey(&self) -> Option<CurvePublicKey> {
        let seed = self.account(AUTH_ACCOUNT).callout?.xkey?;
        let x = XKeyPair::from_seed(&seed).expect("the store holds a valid xkey seed");
        Some(CurvePublicKey::parse(x.public_key()).expect("an xkey pair has a curve public key"))
    }

    /// Renders the configs, starts the server(s) and the callout runner(s), and waits until the
    /// callout answers from every server. With `runners: 0` only the servers start (a test runs
    /// the callout itself, e.g. the whole service, then calls [`Deployment::wait_callout_ready`]).
    pub async fn start(&mut self) {
        self.start_servers_only().await;
        for i in 0..self.opts.runners {
            let url = self.url(i % self.servers.len());
            let runner = CalloutRunner::start(self.store.clone(), &url, &self.opts).await;
            self.runners.push(runner);
        }
        if self.opts.runners > 0 {
            self.wait_callout_ready().await;
        }
    }

    /// Starts the server(s) and the real service, `pbn::run_with_store` on the shared
    /// store handle (instead of in-process runners), and waits until its callout is subscribed.
    pub async fn start_service(&mut self) -> ServiceHandle {
        self.start_servers_only().await;
        let servers: Vec<String> = (0..self.servers.len()).map(|i| self.url(i)).collect();
        let flags = RawConfig {
            store: Some(self.store.path().to_path_buf()),
            servers: Some(servers),
            ..RawConfig::default()
        };
        let settings = Settings::resolve(None, RawConfig::default(), flags).expect("settings");
        let (stop, shutdown) = pbn::shutdown_channel();
        let task = tokio::spawn(pbn::run_with_store(settings, self.store.clone(), shutdown));
        self.services += 1;
        self.wait_callout_ready().await;
        ServiceHandle { stop, task: Some(task) }
    }

    async fn start_servers_only(&mut self) {
        let trust = pbn::trust(&self.store, &Context::now()).expect("trust from the store");
        let mut attempt = 1;
        self.servers = loop {
            let configs = self.render(&trust);
            match self.start_servers(&configs).await {
                Err(HarnessError::PortInUse { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => panic!("{e}"),
                Ok(servers) => break servers,
            }
        };
    }

    fn render(&self, trust: &pbn::Trust) -> Vec<RenderedConfig> {
        let nodes = self.opts.cluster.unwrap_or(1);
        let layout = Layout {
            out_dir: self.dir.path().join("nats"),
            port: pick_base_port(nodes),
            cluster: self.opts.cluster,
            auth_timeout: self.opts.auth_timeout,
            host: "127.0.0.1".into(),
        };
        let configs = pbn::render(trust, &layout).expect("render the server configs");
        pbn::write_configs(&configs).expect("write the server configs");
        configs
    }

    async fn start_servers(
        &self,
        configs: &[RenderedConfig],
    ) -> Result<Vec<NatsServer>, HarnessError> {
        let mut servers = Vec::with_capacity(configs.len());
        for c in configs {
            let text = format!("{}\n{}\n", c.text, self.opts.extra_config);
            // The client port is the server's pick; route ports are the rendered ones.
            servers.push(NatsServer::builder(&text).try_start().await?);
        }
        let peers = servers.len() - 1;
        let deadline = Deadline::after(SETUP_TIMEOUT, format!("{peers} route peers per node"));
        for s in &servers {
            while super::Cluster::try_route_peers(s).await? < peers {
                deadline.try_tick().await?;
            }
        }
        Ok(servers)
    }

    /// Waits until every runner's callout subscription is registered and every server sees
    /// callout interest, locally or over a route.
    ///
    /// (A probe request cannot be used: nats-server denies every client of the callout
    /// account, the service user included, publishing on the callout subject.)
    pub async fn wait_callout_ready(&self) {
        let deadline = Deadline::after(SETUP_TIMEOUT, "callout interest on every server");
        loop {
            let mut local = 0;
            let mut everywhere = true;
            for s in &self.servers {
                let here = callout_subscriptions(&s.monitor("/connz?subs=1").await);
                let routed =
                    s.monitor("/routez?subs=1").await.to_string().contains(CALLOUT_SUBJECT);
                local += here;
                everywhere &= here > 0 || routed;
            }
            if local >= self.runners.len() + self.services && everywhere {
                return;
            }
            deadline.tick().await;
        }
    }

    /// Claims of an unencrypted callout request as nats-server would send them, from `server`:
    /// audience, subject (AUTH), `server_id`, a fresh `user_nkey`, client id 1 on 127.0.0.1,
    /// expiring with the auth timeout.
    pub fn request_claims(&self, server: &KeyPair) -> Claims<AuthorizationRequestClaims> {
        let mut body = AuthorizationRequestClaims::default();
        body.server.id = server.public_key().to_string();
        body.server.name = "forged".into();
        body.server.host = "127.0.0.1".into();
        body.user_nkey = KeyPair::generate(KeyKind::User).public_key().to_string();
        body.client.host = "127.0.0.1".into();
        body.client.id = 1;
        body.client.kind = "Client".into();
        body.client.client_type = "nats".into();
        body.connect_opts.protocol = 1;
        let now = pbn::unix_now();
        let ttl = self.opts.auth_timeout.as_secs() as i64;
        Claims::new(self.auth_key(), body)
            .with_audience(AUTH_REQUEST_AUDIENCE)
            .with_issued_at(now)
            .with_expires(now + ttl)
    }

    /// Server `i`.
    pub fn server(&self, i: usize) -> &NatsServer {
        &self.servers[i]
    }

    /// Server `i`, mutably (to restart it).
    pub fn server_mut(&mut self, i: usize) -> &mut NatsServer {
        &mut self.servers[i]
    }

    /// The client URL of server `i`.
    pub fn url(&self, i: usize) -> String {
        self.servers[i].client_url()
    }

    /// The callout runners.
    pub fn runners(&self) -> &[CalloutRunner] {
        &self.runners
    }

    /// A fresh connection of the AUTH service user (in `auth_users`, so never called out) to
    /// server `i`.
    pub async fn service_client(&self, i: usize) -> Client {
        service_options(&self.store, "pbn-test-service")
            .connect(self.url(i))
            .await
            .unwrap_or_else(|e| panic!("service user connect: {e}"))
    }

    /// Connects a client to server `i` with `opts`, recording its events in `events`.
    ///
    /// The future owns what it needs, so many can run at once.
    pub fn connect(
        &self,
        i: usize,
        opts: ConnectOptions,
        events: &ClientEvents,
    ) -> impl Future<Output = Result<Client, ConnectError>> + Send + 'static {
        let (opts, url) = (events.attach(opts), self.url(i));
        async move { opts.connect(url).await }
    }

    /// Connects `user` with `password` to server 0, panicking (with the server log) on failure.
    pub async fn login(&self, user: &str, password: &str, events: &ClientEvents) -> Client {
        let opts = ConnectOptions::with_user_and_password(user.into(), password.into());
        match self.connect(0, opts, events).await {
            Ok(c) => c,
            Err(e) => panic!("login of {user}: {e}; log:\n{}", self.servers[0].current_log()),
        }
    }

    /// Subscribes (as the service user, on server `i`) to the auth-error advisories of AUTH.
    pub async fn auth_errors(&self, i: usize) -> AuthErrors {
        let client = self.service_client(i).await;
        let sub = client.subscribe(AUTH_ERR_SUBJECT).await.expect("subscribe to advisories");
        round_trip(&client).await;
        AuthErrors { _client: client, sub }
    }
}

/// Client connections in a `/connz?subs=1` answer that subscribe to the callout subject.
fn callout_subscriptions(connz: &serde_json::Value) -> usize {
    let subscribed = |c: &&serde_json::Value| {
        c["subscriptions_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s.as_str() == Some(CALLOUT_SUBJECT)))
    };
    connz["connections"].as_array().into_iter().flatten().filter(subscribed).count()
}

/// Connect options of the AUTH service user: a JWT minted from the store, the nonce signed with
/// the service user's seed, fast reconnects.
pub fn service_options(store: &Store, name: &str) -> ConnectOptions {
    let auth = store.read(|tx| tx.require_account(AUTH_ACCOUNT)).expect("the AUTH account");
    let seed = auth
        .callout
        .as_ref()
        .and_then(|c| c.service_user.clone())
        .expect("init_store gives AUTH a service user");
    let key = Arc::new(KeyPair::from_seed(&seed).expect("the service user seed is valid"));
    let jwt =
        pbn::internal_user_jwt(&auth, key.public_key(), name, &[], &[], pbn::unix_now(), None)
            .expect("mint the service user JWT");
    ConnectOptions::with_jwt(jwt, move |nonce| {
        let key = key.clone();
        async move { Ok(key.sign(&nonce)) }
    })
    .name(name)
    .reconnect_delay_callback(|_| Duration::from_millis(20))
}

/// Connect options of a fresh, unrestricted user of the system account `sys` (for the claims
/// API, CONNZ and KICK requests in tests).
pub fn sys_user_options(sys: &Account) -> ConnectOptions {
    let kp = Arc::new(KeyPair::generate(KeyKind::User));
    let jwt =
        pbn::internal_user_jwt(sys, kp.public_key(), "test-sys", &[], &[], pbn::unix_now(), None)
            .expect("mint a system user JWT");
    ConnectOptions::with_jwt(jwt, move |nonce| {
        let kp = kp.clone();
        async move { Ok(kp.sign(&nonce)) }
    })
}

/// A request/reply round trip with the server (`$SYS.REQ.USER.INFO`, answered by the server
/// itself): afterwards every operation `client` sent before, subscriptions above all, has been
/// processed. (`Client::flush` only writes the socket.) `client` must be allowed to publish on
/// `$SYS.REQ.USER.INFO` and to subscribe to `_INBOX.>`.
pub async fn round_trip(client: &Client) {
    tokio::time::timeout(WAIT, client.request(USER_INFO_SUBJECT, "".into()))
        .await
        .expect("user info answered within the deadline")
        .expect("user info request");
}

/// The server's user-info service, answered in every account.
pub const USER_INFO_SUBJECT: &str = "$SYS.REQ.USER.INFO";

/// Publishes a callout request (`payload`, with the xkey `header` if any) on the callout subject
/// with a fresh reply inbox and returns the first answer within `wait`.
pub async fn send_request(
    client: &Client,
    payload: Vec<u8>,
    header: Option<String>,
    wait: Duration,
) -> Option<async_nats::Message> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.expect("subscribe to the inbox");
    let mut headers = async_nats::HeaderMap::new();
    if let Some(h) = header {
        headers.insert(XKEY_HEADER, h.as_str());
    }
    client
        .publish_with_reply_and_headers(CALLOUT_SUBJECT, inbox, headers, payload.into())
        .await
        .expect("publish a callout request");
    client.flush().await.expect("flush the callout request");
    tokio::time::timeout(wait, replies.next()).await.ok().flatten()
}

/// One callout service in this process: a service-user connection, a [`Pipeline`] with its own
/// session registry, and `callout::listener::serve` on a task.
pub struct CalloutRunner {
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    sessions: Arc<SessionRegistry>,
}

impl CalloutRunner {
    /// Connects to `url` as the service user and starts serving (returns before the
    /// subscription is registered: see [`Deployment::wait_callout_ready`]).
    pub async fn start(store: Store, url: &str, opts: &DeployOptions) -> CalloutRunner {
        let client = service_options(&store, "pbn-callout")
            .subscription_capacity(8192)
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("callout runner connect to {url}: {e}"));
        CalloutRunner::serve_on(client, store, opts)
    }

    /// Serves the callout of `store` on an existing connection (e.g. to a plain server, where
    /// any client may publish on the callout subject).
    pub fn serve_on(client: Client, store: Store, opts: &DeployOptions) -> CalloutRunner {
        let sessions = Arc::new(SessionRegistry::new());
        let pipeline = Pipeline::new(store, sessions.clone(), opts.pipeline.clone())
            .unwrap_or_else(|e| panic!("callout pipeline: {e}"));
        let (shutdown, rx) = watch::channel(false);
        let max = opts.max_concurrent;
        let task = tokio::spawn(async move {
            if let Err(e) = serve(client, Arc::new(pipeline), "pbn", max, rx).await {
                panic!("callout runner stopped: {e}");
            }
        });
        CalloutRunner { shutdown, task: Some(task), sessions }
    }

    /// Sessions this runner admitted (a JWT minted and sent) and still holds.
    pub fn admitted(&self) -> usize {
        self.sessions.len()
    }

    /// The session registry of this runner.
    pub fn sessions(&self) -> &SessionRegistry {
        &self.sessions
    }

    /// Stops serving and waits for the requests in flight.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.await.expect("the callout runner task ends cleanly");
        }
    }
}

impl Drop for CalloutRunner {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The subject of the per-account auth-error advisory, published inside the callout account.
pub const AUTH_ERR_SUBJECT: &str = "$SYS.ACCOUNT.CLIENT.AUTH.ERR";

/// Auth-error advisories of the AUTH account, in order.
pub struct AuthErrors {
    _client: Client,
    sub: async_nats::Subscriber,
}

impl AuthErrors {
    /// The `reason` of the next advisory, or a panic after [`WAIT`].
    pub async fn next_reason(&mut self) -> String {
        let msg = tokio::time::timeout(WAIT, self.sub.next())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no {AUTH_ERR_SUBJECT} advisory within {WAIT:?}"));
        let event: serde_json::Value =
            serde_json::from_slice(&msg.payload).expect("the advisory is JSON");
        event["reason"].as_str().unwrap_or_default().to_string()
    }
}

/// The advisory reason nats-server gives for an error response carrying `error`.
pub fn callout_reason(error: &impl std::fmt::Display) -> String {
    format!("Auth callout service returned an error: {error}")
}

/// Records the events of one client connection (server errors, disconnects, ...).
#[derive(Clone, Default)]
pub struct ClientEvents(Arc<Mutex<Vec<Event>>>);

impl ClientEvents {
    /// New, empty.
    pub fn new() -> Self {
        ClientEvents::default()
    }

    /// `opts` with an event callback that records into `self`.
    pub fn attach(&self, opts: ConnectOptions) -> ConnectOptions {
        let events = self.0.clone();
        opts.event_callback(move |event| {
            let events = events.clone();
            async move { events.lock().unwrap_or_else(PoisonError::into_inner).push(event) }
        })
    }

    /// Every recorded event.
    pub fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The text of every server error (`-ERR`) received.
    pub fn server_errors(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                Event::ServerError(async_nats::ServerError::Other(text)) => Some(text),
                Event::ServerError(other) => Some(other.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Whether a server error equal to `text` (ignoring case) was received.
    pub fn has_server_error(&self, text: &str) -> bool {
        self.server_errors().iter().any(|e| e.eq_ignore_ascii_case(text))
    }
}

/// A client port `p` such that the ports a rendered layout of `nodes` nodes uses (`p + i` for
/// clients, `p + 2000 + i` for routes) are free now.
fn pick_base_port(nodes: u16) -> u16 {
    loop {
        let base = free_port();
        if nodes == 1 {
            return base;
        }
        let Some(top) = base.checked_add(2000 + nodes) else { continue };
        let mut ports = (0..nodes).flat_map(|i| [base + i, base + 2000 + i]);
        if top < u16::MAX && ports.all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok()) {
            return base;
        }
    }
}

/// The real service running in the test process; stopped (and awaited) by [`ServiceHandle::stop`],
/// or signalled to stop on drop.
pub struct ServiceHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<Result<(), pbn::ServerError>>>,
}

impl ServiceHandle {
    /// Signals shutdown and waits for `run_with_store` to return.
    pub async fn stop(mut self) -> Result<(), pbn::ServerError> {
        let _ = self.stop.send(true);
        let task = self.task.take().expect("a running service has its task");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the service stops within the deadline")
            .expect("the service task does not panic")
    }
}

impl Drop for ServiceHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
