//! `pbn serve`: the only place where the long-running tasks are wired together.
//!
//! [`run`] opens the store, starts two managed NATS connections (the AUTH service user, which
//! answers the callout, and a SYS user, which watches connection events and pushes account JWTs)
//! and runs the callout on whichever server the service connection currently has, and the claims
//! publisher on the system connection, until the shutdown signal. It starts
//! without any reachable server (bootstrap mode) and serves as soon as a connection exists.

pub(crate) mod admin_api;
pub mod audit;
pub mod callout;
pub mod connection;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod publisher;
pub mod sessions;
pub mod status;
pub mod version;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::issue;
use crate::keys::{KeyKind, KeyPair};
use crate::model::Account;
use crate::model::{AUTH_ACCOUNT, SYS_ACCOUNT};
use crate::replica::Replica;
use crate::store::{Store, StoreError, StoreRead};
use callout::{Pipeline, PipelineOptions};
use connection::{
    redact_url, Connection, ConnectionAuth, ConnectionError, ConnectionSettings, Credentials,
    CredentialsError, CredentialsProvider,
};
use publisher::Publisher;
use sessions::SessionRegistry;

/// Errors that stop `pbn serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP listener could not start.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The store lacks what the service needs.
    #[error("store is not initialised for serving: {0}")]
    NotInitialised(String),
    /// The callout could not be set up.
    #[error(transparent)]
    Callout(#[from] callout::CalloutError),
    /// A NATS connection could not be set up.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A background task failed.
    #[error("task failed: {0}")]
    Task(String),
    /// The replicated store could not be set up (replicated mode).
    #[error(transparent)]
    Replica(#[from] crate::replica::ReplicaError),
    /// A server pbn connected to is older than pbn supports.
    #[error("refusing nats server {url}: {source}")]
    Version {
        /// The server's URL (user-info hidden).
        url: String,
        /// What is wrong with its version.
        source: version::VersionError,
    },
}

/// How often expired sessions are dropped from the registry.
const SESSION_PRUNE_INTERVAL: Duration = Duration::from_secs(30);
/// How often sessions the server never connected are looked for: a refused login's slot is
/// free at most this long after [`crate::server::sessions::CONFIRM_TIMEOUT`].
const UNCONFIRMED_PRUNE_INTERVAL: Duration = Duration::from_secs(1);

/// Opens the store named in `settings` and runs the service until `shutdown` becomes true.
pub async fn run(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<(), ServerError> {
    let path = settings.store.clone();
    let store = tokio::task::spawn_blocking(move || {
        Store::open_for(&path, crate::store::SERVICE_COMMAND, Duration::ZERO)
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))??;
    run_with_store(settings, store, shutdown).await
}

/// Runs the service on an open store (which the caller may keep using: the handle is shared)
/// until `shutdown` becomes true, or until a connection reaches a server older than
/// `version::MINIMUM` (then it stops and returns [`ServerError::Version`]).
/// `settings.store` is only reported.
pub async fn run_with_store(
    settings: Settings,
    store: Store,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let forward = tokio::spawn(forward_shutdown(shutdown, stop_tx.clone()));
    let result = serve(settings, store, stop, stop_tx).await;
    forward.abort();
    result
}

/// Sets `stop` once `shutdown` becomes true (or its sender is gone).
async fn forward_shutdown(mut shutdown: watch::Receiver<bool>, stop: Arc<watch::Sender<bool>>) {
    let _ = shutdown.wait_for(|s| *s).await;
    let _ = stop.send(true);
}

/// Checks the version of every server `client` connects to; on a server older than
/// `version::MINIMUM` sets `stop` and returns the error.
async fn refuse_old_servers(
    mut client: watch::Receiver<Option<async_nats::Client>>,
    stop: Arc<watch::Sender<bool>>,
) -> Result<(), ServerError> {
    let mut stopped = stop.subscribe();
    loop {
        let checked = client.borrow_and_update().as_ref().map(|c| {
            let info = c.server_info();
            let url = format!("{}:{}", info.host, info.port);
            version::check(&info.version).map_err(|source| ServerError::Version { url, source })
        });
        if let Some(Err(err)) = checked {
            error!(error = %err, "stopping");
            let _ = stop.send(true);
            return Err(err);
        }
        tokio::select! {
            changed = client.changed() => if changed.is_err() { return Ok(()) },
            _ = stopped.wait_for(|s| *s) => return Ok(()),
        }
    }
}

/// [`run_with_store`] with its internal stop signal.
async fn serve(
    settings: Settings,
    store: Store,
    shutdown: watch::Receiver<bool>,
    stop: Arc<watch::Sender<bool>>,
) -> Result<(), ServerError> {
    let started = std::time::Instant::now();
    let (auth, sys) = store.read(|tx| -> Result<_, StoreError> {
        Ok((tx.require_account(AUTH_ACCOUNT)?, tx.require_account(SYS_ACCOUNT)?))
    })?;
    let sessions = Arc::new(SessionRegistry::new());
    let opts = PipelineOptions::from_settings(&settings.callout);
    let pipeline = Pipeline::new(store.clone(), sessions.clone(), opts)?;
    let (audit, audit_queue) = audit::Audit::new(pipeline.metrics().clone());
    let audit = settings.audit.then_some(audit);
    let pipeline = Arc::new(match &audit {
        Some(a) => pipeline.with_audit(a.clone()),
        None => pipeline,
    });
    // Bound before anything connects: a taken address stops the start with its own error.
    let listener = match settings.http {
        Some(addr) => Some(http::bind(addr).await?.0),
        None => None,
    };
    let http_tls = match &settings.http_tls {
        Some((cert, key)) => Some(http::tls::acceptor(cert, key)?),
        None => None,
    };
    // A joined replica connects with its own creds (kept in its store), others as the AUTH
    // service user.
    let auth_key = auth.public_key.to_string();
    let identity = match settings.replica {
        Some(_) => {
            let id = store.replica_identity()?;
            id.map(|id| crate::replica::with_current_permissions(&store, id))
        }
        None => None,
    };
    let (service_settings, service_auth) = match &identity {
        Some(id) => replica_connection(&settings, id)?,
        None => (
            connection_settings(&settings, "pbn-callout"),
            ConnectionAuth::Jwt(service_credentials(auth)?),
        ),
    };
    let service = Connection::start(service_settings, service_auth, shutdown.clone())?;
    let system = Connection::start(
        connection_settings(&settings, "pbn-system"),
        ConnectionAuth::Jwt(system_credentials(sys)),
        shutdown.clone(),
    )?;
    let replica = settings
        .replica
        .as_ref()
        .map(|r| Replica::new(store.clone(), r, service.client()))
        .transpose()?;
    let mut guards = vec![
        tokio::spawn(refuse_old_servers(service.client(), stop.clone())),
        tokio::spawn(refuse_old_servers(system.client(), stop.clone())),
    ];
    if let (Some(replica), Some(id)) = (&replica, &identity) {
        let (replica, name, stopped) = (replica.clone(), id.name.clone(), shutdown.clone());
        let key = KeyPair::from_seed(&id.seed).map(|kp| kp.public_key().to_string());
        let key = key.map_err(|e| ServerError::NotInitialised(e.to_string()))?;
        let sys = system.client();
        guards.push(tokio::spawn(async move {
            let removed = tokio::select! {
                r = replica.removed(&name, stopped.clone()) => r,
                r = replica.revoked(&name, &key, &auth_key, sys, stopped.clone()) => r,
            };
            if removed.is_err() {
                replica.removal_grace(stopped).await;
                let _ = stop.send(true);
            }
            Ok(removed?)
        }));
    }
    let servers: Vec<String> = settings.servers.iter().map(|u| redact_url(u)).collect();
    info!(version = env!("CARGO_PKG_VERSION"), store = %settings.store.display(), ?servers,
        serves = "auth callout, account claims, admin API", replicated = replica.is_some(),
        store_integrity_checked = store.integrity_checked(), "pbn serve started");
    let metrics = pipeline.metrics().clone();
    let publisher = Publisher::new(store.clone(), settings.publisher.clone())
        .with_metrics(metrics.clone())
        .with_replica(replica.clone());
    let admin = admin_api::AdminApi {
        store: store.clone(),
        sessions: sessions.clone(),
        pushes: publisher.push_watch(),
        keys: Default::default(),
        nonces: Default::default(),
        audit_retention: settings.audit_retention,
        metrics: metrics.clone(),
        audit: audit.clone(),
        replica: replica.clone(),
    };
    let health = http::Health {
        callout: service.client(),
        system: system.client(),
        metrics,
        sessions: sessions.clone(),
        store: store.clone(),
        pushes: publisher.push_watch(),
        callout_state: service.state(),
        system_state: system.state(),
        started,
        in_sync: replica.as_ref().map(Replica::in_sync),
        admin: admin.clone(),
        trusted_proxies: settings.http_trusted_proxies.clone().into(),
        console_sessions: Arc::default(),
    };
    let observers = Observers::spawn(health, (listener, http_tls), audit_queue, &shutdown);
    let parts = Parts { admin, pipeline, sessions, publisher, replica };
    let tasks = spawn_tasks(&settings, parts, &service, &system, &shutdown);
    for task in tasks {
        if let Err(e) = task.await {
            warn!(error = %e, "service task ended abnormally");
        }
    }
    observers.join().await?;
    service.join().await?;
    system.join().await?;
    for guard in guards {
        guard.await.map_err(|e| ServerError::Task(e.to_string()))??;
    }
    info!("pbn serve stopped");
    Ok(())
}

/// The tasks that watch and report on the service: connection-state metrics, the audit
/// publisher, the status responder and the HTTP listener.
struct Observers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    http: Option<tokio::task::JoinHandle<Result<(), http::HttpError>>>,
}

impl Observers {
    fn spawn(
        health: http::Health,
        (listener, tls): (Option<tokio::net::TcpListener>, Option<tokio_rustls::TlsAcceptor>),
        audit_queue: audit::AuditQueue,
        shutdown: &watch::Receiver<bool>,
    ) -> Observers {
        let metrics = health.metrics.clone();
        let states =
            [("callout", health.callout_state.clone()), ("system", health.system_state.clone())];
        let mut tasks: Vec<_> = states
            .into_iter()
            .map(|(name, state)| {
                let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
                tokio::spawn(async move { metrics.watch_connection(name, state, shutdown).await })
            })
            .collect();
        let system = health.system.clone();
        tasks.push(tokio::spawn(audit::publish(audit_queue, system, metrics, shutdown.clone())));
        tasks.push(tokio::spawn(status::serve(health.clone(), shutdown.clone())));
        let http = listener.map(|l| tokio::spawn(http::serve(l, health, tls, shutdown.clone())));
        Observers { tasks, http }
    }

    /// Waits for every task (after the shutdown signal).
    async fn join(self) -> Result<(), ServerError> {
        if let Some(http) = self.http {
            http.await.map_err(|e| ServerError::Task(e.to_string()))??;
        }
        for task in self.tasks {
            task.await.map_err(|e| ServerError::Task(e.to_string()))?;
        }
        Ok(())
    }
}

/// What the tasks of `pbn serve` share.
struct Parts {
    admin: admin_api::AdminApi,
    pipeline: Arc<Pipeline>,
    sessions: Arc<SessionRegistry>,
    publisher: Publisher,
    replica: Option<Replica>,
}

/// Starts the long-running tasks of `pbn serve`: the callout on the service connection (and in
/// replicated mode the log's follower); the disconnect tracker, the admin API and the publisher
/// on the system connection; the session pruner; the refresh of identity providers' keys.
fn spawn_tasks(
    settings: &Settings,
    Parts { admin, pipeline, sessions, publisher, replica }: Parts,
    service: &Connection,
    system: &Connection,
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let callout = &settings.callout;
    let keys = crate::auth::oidc::cache::refresh_on_schedule(
        pipeline.oidc().clone(),
        admin.store.clone(),
        shutdown.clone(),
    );
    let mut tasks = vec![
        tokio::spawn(keys),
        tokio::spawn(callout_loop(
            service.client(),
            pipeline,
            callout.queue_group.clone(),
            callout.max_concurrent,
            shutdown.clone(),
        )),
        tokio::spawn(sessions::track(system.client(), sessions.clone(), shutdown.clone())),
        tokio::spawn(admin_api::serve(system.client(), admin, shutdown.clone())),
        tokio::spawn(prune_sessions(sessions, shutdown.clone())),
        tokio::spawn(publisher.run(system.client(), shutdown.clone())),
    ];
    if let Some(replica) = replica {
        tasks.push(tokio::spawn(follow_log(replica, service.client(), shutdown.clone())));
    }
    tasks
}

/// Follows the log on the current service connection, restarting on every new client.
async fn follow_log(
    replica: Replica,
    clients: watch::Receiver<Option<async_nats::Client>>,
    shutdown: watch::Receiver<bool>,
) {
    on_each_client("replica log", clients, shutdown, |client, stop| {
        let replica = replica.clone();
        async move { replica.follow_on(client, stop).await }
    })
    .await;
}

fn connection_settings(settings: &Settings, name: &str) -> ConnectionSettings {
    ConnectionSettings {
        servers: settings.servers.clone(),
        name: name.into(),
        subscription_capacity: settings.callout.subscription_capacity,
        tls_ca: settings.tls_ca.clone(),
        failback_check_interval: settings.connection.failback_check_interval,
        failback_healthy_checks: settings.connection.failback_healthy_checks,
        ..ConnectionSettings::default()
    }
}

/// The service connection of a joined replica: its own creds (JWT and seed from its store)
/// and its own inbox prefix, which its permissions require.
fn replica_connection(
    settings: &Settings,
    id: &crate::store::ReplicaIdentity,
) -> Result<(ConnectionSettings, ConnectionAuth), ServerError> {
    let kp =
        KeyPair::from_seed(&id.seed).map_err(|e| ServerError::NotInitialised(e.to_string()))?;
    let mut connection = connection_settings(settings, &format!("pbn-replica-{}", id.name));
    connection.inbox_prefix = Some(crate::admin::replicas::inbox_prefix(kp.public_key()));
    let (jwt, seed) = (id.jwt.clone(), id.seed.clone());
    let auth = ConnectionAuth::Jwt(Arc::new(move || {
        Ok(Credentials { jwt: jwt.clone(), seed: seed.clone() })
    }));
    Ok((connection, auth))
}

/// Credentials of the AUTH service user (the key in `auth_users`), minted at each connect.
fn service_credentials(auth: Account) -> Result<CredentialsProvider, ServerError> {
    let seed = auth
        .callout
        .as_ref()
        .and_then(|c| c.service_user.clone())
        .ok_or_else(|| ServerError::NotInitialised("AUTH has no service user".into()))?;
    let kp = KeyPair::from_seed(&seed).map_err(|e| ServerError::NotInitialised(e.to_string()))?;
    Ok(Arc::new(move || internal_credentials(&auth, &kp, "pbn-callout")))
}

/// Credentials of a system-account user: a fresh key per connect, nothing stored.
fn system_credentials(sys: Account) -> CredentialsProvider {
    Arc::new(move || internal_credentials(&sys, &KeyPair::generate(KeyKind::User), "pbn-system"))
}

/// A JWT for `kp` as pbn's own user `name` in `account` (no permissions beyond the account's),
/// issued now, with its seed.
fn internal_credentials(
    account: &Account,
    kp: &KeyPair,
    name: &str,
) -> Result<Credentials, CredentialsError> {
    let now = crate::clock::unix_now();
    let jwt = issue::internal_user_jwt(account, kp.public_key(), name, &[], &[], now, None)?;
    Ok(Credentials { jwt, seed: kp.seed() })
}

/// Runs the callout on the current service connection, restarting it on every new client.
async fn callout_loop(
    clients: watch::Receiver<Option<async_nats::Client>>,
    pipeline: Arc<Pipeline>,
    queue_group: String,
    max_concurrent: usize,
    shutdown: watch::Receiver<bool>,
) {
    on_each_client("callout subscription", clients, shutdown, |client, stop| {
        let (pipeline, group) = (pipeline.clone(), queue_group.clone());
        async move { callout::listener::serve(client, pipeline, &group, max_concurrent, stop).await }
    })
    .await;
}

/// Runs `serve` on the current client of `clients`, and again on each new client (stopping the
/// previous run through its stop signal and waiting for it first), until `shutdown`. The one
/// restart loop of every task bound to a managed connection.
pub(crate) async fn on_each_client<F, Fut, E>(
    what: &'static str,
    mut clients: watch::Receiver<Option<async_nats::Client>>,
    mut shutdown: watch::Receiver<bool>,
    mut serve: F,
) where
    F: FnMut(async_nats::Client, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    loop {
        if *shutdown.borrow() {
            return;
        }
        let current = clients.borrow_and_update().clone();
        if let Some(client) = current {
            let (stop_tx, stop_rx) = watch::channel(false);
            let run = serve(client, stop_rx);
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => if let Err(e) = r { warn!(error = %e, "{what} failed") },
                r = clients.changed() => {
                    let _ = stop_tx.send(true);
                    let _ = run.await;
                    if r.is_err() { return }
                    continue;
                }
                _ = crate::shutdown::requested(&mut shutdown) => {
                    let _ = stop_tx.send(true);
                    let _ = run.await;
                    return;
                }
            }
        }
        tokio::select! {
            r = clients.changed() => if r.is_err() { return },
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}

async fn prune_sessions(sessions: Arc<SessionRegistry>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SESSION_PRUNE_INTERVAL);
    let mut unconfirmed = tokio::time::interval(UNCONFIRMED_PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => { sessions.prune(crate::clock::unix_now()); }
            _ = unconfirmed.tick() => {
                let dropped = sessions.prune_unconfirmed(crate::server::sessions::CONFIRM_TIMEOUT);
                if dropped > 0 {
                    info!(dropped, "sessions the server never connected released");
                }
            }
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}
