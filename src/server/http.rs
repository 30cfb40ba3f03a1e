//! The HTTP listener of `pbn serve`, off unless `http` is set: `GET /metrics` (Prometheus text),
//! `GET /healthz` (the process is alive) and `GET /readyz` (200 only when every check passes, else 503 with a JSON body naming
//! the checks that failed). Later HTTP features mount their routes on the same router.
//!
//! Readiness is read from the running parts as they are at the request: the store is open for
//! as long as the service runs; each managed connection reports whether its client is connected
//! to a server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State as NatsState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

mod api;
pub(crate) mod openapi;
pub(crate) mod routes;
pub(crate) mod tls;

use super::connection::ConnState;
use super::metrics::{Metrics, Scrape};
use super::publisher::PushWatch;
use super::sessions::SessionRegistry;
use crate::store::{Store, StoreError, StoreRead};

/// Errors of the HTTP listener.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("cannot use {path} for HTTPS: {reason}")]
    Tls {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// Serving failed.
    #[error("HTTP listener on {addr} failed: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the routes read: the clients of the two managed connections (`/readyz`), the metrics,
/// the session registry and the store (`/metrics`).
#[derive(Debug, Clone)]
pub struct Health {
    /// The callout's connection (the AUTH service user).
    pub callout: watch::Receiver<Option<async_nats::Client>>,
    /// The system connection (publisher, admin API, events).
    pub system: watch::Receiver<Option<async_nats::Client>>,
    /// Login counters and latencies.
    pub metrics: Arc<Metrics>,
    /// Live callout sessions.
    pub sessions: Arc<SessionRegistry>,
    /// The store (outbox depth).
    pub store: Store,
    /// The publisher's state.
    pub pushes: Arc<PushWatch>,
    /// The callout connection's state.
    pub callout_state: watch::Receiver<ConnState>,
    /// The system connection's state.
    pub system_state: watch::Receiver<ConnState>,
    /// When the service started.
    pub started: std::time::Instant,
    /// Replicated mode: whether the replica has applied everything in the log.
    pub in_sync: Option<watch::Receiver<bool>>,
    /// The admin API, which the HTTP API runs its requests through.
    pub(crate) admin: super::admin_api::AdminApi,
    /// Reverse proxies whose `X-Forwarded-For` the console's sign-in throttle believes.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The console's signed-in admins, whose session cookie the API also accepts.
    pub console_sessions: Arc<crate::console::session::Sessions>,
}

impl Health {
    /// The checks, each `Ok` or the reason it fails.
    fn checks(&self) -> Vec<(&'static str, Result<(), String>)> {
        let subscribed = match self.metrics.subscriptions() {
            0 => Err("no callout subscription".to_string()),
            _ => Ok(()),
        };
        let publisher = match self.pushes.is_failing() {
            true => Err("the last account push failed (see `pbn admin outbox list`)".to_string()),
            false => Ok(()),
        };
        let mut checks = vec![
            ("callout_connection", connected(&self.callout)),
            ("system_connection", connected(&self.system)),
            ("callout_subscription", subscribed),
            ("publisher", publisher),
        ];
        if let Some(in_sync) = &self.in_sync {
            let synced = match *in_sync.borrow() {
                true => Ok(()),
                false => Err("not caught up with the replicated log (logins use the local \
                              view; admin writes need the log)"
                    .to_string()),
            };
            checks.push(("replica_log", synced));
        }
        checks
    }
}

fn connected(client: &watch::Receiver<Option<async_nats::Client>>) -> Result<(), String> {
    match client.borrow().as_ref().map(|c| c.connection_state()) {
        Some(NatsState::Connected) => Ok(()),
        Some(state) => Err(format!("not connected ({state})")),
        None => Err("no server reached yet".into()),
    }
}

/// Binds `addr` (port 0 picks a free port); returns the listener and the address it got.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), HttpError> {
    let listener =
        TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| HttpError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Serves the routes on `listener` until `shutdown`; over TLS with `tls`.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), HttpError> {
    let addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr: SocketAddr::from(([0, 0, 0, 0], 0)), source })?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .nest(api::PREFIX, api::router())
        .with_state(health.clone())
        .merge(crate::console::router(health, tls.is_some()));
    let app = app.into_make_service_with_connect_info::<tls::Peer>();
    let stop = async move { crate::shutdown::requested(&mut shutdown).await };
    let scheme = if tls.is_some() { "https" } else { "http" };
    info!(%addr, scheme, "HTTP listener serving /healthz, /readyz, /metrics, /status, /api/v1 and the console");
    let served = match tls {
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor)
                .map_err(|source| HttpError::Serve { addr, source })?;
            axum::serve(listener, app).with_graceful_shutdown(stop).await
        }
        None => {
            let listener = tls::PlainListener(listener);
            axum::serve(listener, app).with_graceful_shutdown(stop).await
        }
    };
    served.map_err(|source| HttpError::Serve { addr, source })
}

/// The Prometheus text; gauges read at the scrape.
async fn metrics(
    State(health): State<Health>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    let scrape = scrape(&health).await.unwrap_or_else(|e: StoreError| {
        tracing::warn!(error = %e, "cannot read the store for /metrics");
        Scrape::default()
    });
    let text = health.metrics.encode(&scrape);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// What the scrape-time gauges show: sessions by account name, the outbox, the store's size.
async fn scrape(health: &Health) -> Result<Scrape, StoreError> {
    let counts = health.sessions.count_by_account();
    let (accounts, outbox) = health
        .store
        .read_async(|tx| Ok::<_, StoreError>((tx.list_accounts()?, tx.list_outbox()?)))
        .await?;
    let sessions_by_account = accounts
        .iter()
        .map(|a| (a.name.to_string(), counts.get(a.public_key.as_str()).copied().unwrap_or(0)))
        .collect();
    let now_ms = crate::clock::unix_now_ms();
    let oldest = outbox.iter().map(|e| e.created).min().map_or(0, |c| now_ms.saturating_sub(c));
    let store_bytes = std::fs::metadata(health.store.path()).map_or(0, |m| m.len());
    Ok(Scrape {
        sessions: health.sessions.len(),
        sessions_by_account,
        outbox_entries: outbox.len(),
        outbox_oldest_age: Duration::from_millis(u64::try_from(oldest).unwrap_or(0)),
        store_bytes,
    })
}

/// `pbn status` as JSON.
async fn status(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    match super::status::collect(&health).await {
        Ok(s) => (StatusCode::OK, Json(serde_json::to_value(s).unwrap_or_default())),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))),
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let checks = health.checks();
    let failed: serde_json::Map<String, Value> = checks
        .iter()
        .filter_map(|(name, r)| {
            r.as_ref().err().map(|e| (name.to_string(), Value::from(e.clone())))
        })
        .collect();
    if failed.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "failed": failed })))
    }
}
