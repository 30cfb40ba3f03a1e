//! The admin API of `pbn serve`: a NATS micro service ([`api::SERVICE_NAME`]) on the system
//! connection, one endpoint ([`api::REQUEST_SUBJECT`]) taking a JSON admin request.
//!
//! It runs on the system connection because only system-account users can reach it there: users
//! placed by the callout live in managed accounts, and the server enforces which system users
//! may publish to `pbn.admin.>` (the admin creds carry the `pbn-admin` role's permissions).
//! Requests are handled one at a time: each runs [`lifecycle::apply`] on the blocking pool (one
//! store transaction); then the service waits (bounded) for the publisher to push what it queued,
//! kicks the sessions it invalidated, and only then replies, so when `pbn admin` returns the
//! live effect has happened. A bad request gets an error reply and
//! changes nothing; the service keeps serving.

use std::sync::Arc;

use async_nats::service::ServiceExt;
use async_nats::HeaderMap;
use futures::StreamExt;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::admin::api::{self, Reply};
use crate::admin::{Context, ErrorClass};
use crate::keys::AccountPublicKey;
use crate::lifecycle;
use crate::model::Session;
use crate::sessions::SessionRegistry;
use crate::store::Store;

/// What the admin API needs: the shared store handle and the callout's session registry.
#[derive(Debug, Clone)]
pub(super) struct AdminApi {
    /// The store (shared with the callout).
    pub store: Store,
    /// Live callout sessions, for kicks.
    pub sessions: Arc<SessionRegistry>,
}

/// Why serving on one client ended.
enum Ended {
    /// The endpoint's subscription closed (the connection is going away).
    Closed,
    /// A new client replaced this one.
    Replaced,
    /// Shutdown, or nobody can signal a new client any more.
    Stop,
}

/// Serves the admin API on the current system connection, restarting on every new client, until
/// `shutdown`.
pub(super) async fn serve(
    mut clients: watch::Receiver<Option<async_nats::Client>>,
    api: AdminApi,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let current = clients.borrow_and_update().clone();
        if let Some(client) = current {
            match serve_on(&client, &api, &mut clients, &mut shutdown).await {
                Ok(Ended::Replaced) => continue,
                Ok(Ended::Stop) => return,
                Ok(Ended::Closed) => {}
                Err(e) => warn!(error = %e, "cannot start the admin API"),
            }
        }
        tokio::select! {
            r = clients.changed() => if r.is_err() { return },
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}

/// Runs the micro service on `client` until its subscription closes, the client is replaced or
/// shutdown is requested; then stops it.
async fn serve_on(
    client: &async_nats::Client,
    api: &AdminApi,
    clients: &mut watch::Receiver<Option<async_nats::Client>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Ended, async_nats::Error> {
    let service = client
        .service_builder()
        .description("pbn administration: JSON admin requests, see `pbn admin --server`")
        .start(api::SERVICE_NAME, api::SERVICE_VERSION)
        .await?;
    let mut endpoint = service.endpoint(api::REQUEST_SUBJECT).await?;
    info!(subject = api::REQUEST_SUBJECT, "admin API serving");
    let ended = loop {
        tokio::select! {
            request = endpoint.next() => match request {
                Some(request) => handle(client, api, request).await,
                None => break Ended::Closed,
            },
            r = clients.changed() => break if r.is_err() { Ended::Stop } else { Ended::Replaced },
            _ = crate::shutdown::requested(shutdown) => break Ended::Stop,
        }
    };
    service.stop().await?;
    Ok(ended)
}

async fn handle(
    client: &async_nats::Client,
    api: &AdminApi,
    request: async_nats::service::Request,
) {
    let (reply, kicks, queued) = apply(api, &request.message.payload).await;
    let mut warnings = Vec::new();
    if !queued.is_empty()
        && !lifecycle::wait_pushed(&api.store, &queued, lifecycle::PUSH_WAIT).await
    {
        warn!(accounts = queued.len(), "account JWTs not pushed yet; see `pbn admin outbox list`");
        warnings.push(format!(
            "{} account JWT(s) not confirmed on the servers yet; `pbn admin outbox list` shows them",
            queued.len()
        ));
    }
    if !kicks.is_empty() {
        let report = lifecycle::kick(client, &kicks, &api.sessions).await;
        info!(
            kicked = report.kicked,
            gone = report.gone,
            failed = report.failed,
            "sessions closed"
        );
        if report.failed > 0 {
            warnings.push(format!("{} live session(s) could not be closed", report.failed));
        }
    }
    let mut headers = HeaderMap::new();
    if !warnings.is_empty() {
        headers.insert(api::WARNING_HEADER, warnings.join("; ").as_str());
    }
    if let (Some(code), Reply::Error(e)) = (reply.error_code(), &reply) {
        // A header value is one line: control characters would break the protocol.
        let line: String =
            e.message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        headers.insert(api::SERVICE_ERROR_HEADER, line.as_str());
        headers.insert(api::SERVICE_ERROR_CODE_HEADER, code.to_string().as_str());
    }
    if let Err(e) = request.respond_with_headers(Ok(reply.to_bytes().into()), headers).await {
        warn!(error = %e, "cannot answer an admin request");
    }
}

/// Decodes and runs one request; returns the reply, the sessions to close and the accounts
/// whose push it queued.
async fn apply(api: &AdminApi, payload: &[u8]) -> (Reply, Vec<Session>, Vec<AccountPublicKey>) {
    let req = match api::decode_request(payload) {
        Ok(req) => req,
        Err(e) => {
            warn!(error = %e, "admin request refused");
            return (Reply::from(&e), vec![], vec![]);
        }
    };
    let op = api::op_name(&req);
    let (store, sessions) = (api.store.clone(), api.sessions.clone());
    let done = tokio::task::spawn_blocking(move || {
        lifecycle::apply(&store, &sessions, &req, &Context::now())
    })
    .await;
    match done {
        Ok(applied) => {
            match &applied.result {
                Ok(_) => info!(op, "admin request done"),
                Err(e) => info!(op, error = %e, "admin request failed"),
            }
            (Reply::from_result(&applied.result), applied.kicks, applied.queued)
        }
        Err(e) => {
            warn!(op, error = %e, "admin request task failed");
            let reply = Reply::error(ErrorClass::Other, format!("admin request {op} failed"));
            (reply, vec![], vec![])
        }
    }
}
