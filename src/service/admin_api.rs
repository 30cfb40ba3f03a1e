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
use crate::admin::{Context, ErrorClass, Response};
use crate::keys::AccountPublicKey;
use crate::lifecycle;
use crate::model::Session;
use crate::sessions::SessionRegistry;
use crate::store::{Store, StoreRead, REMEMBER_MAX_AGE_MS, REMEMBER_MAX_COUNT};

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
    let key = request
        .message
        .headers
        .as_ref()
        .and_then(|h| h.get(api::IDEMPOTENCY_KEY_HEADER))
        .map(|v| v.as_str().to_string());
    let (reply, kicks, queued) = match remembered(api, key.as_deref()).await {
        Ok(Some(reply)) => (reply, vec![], vec![]),
        Ok(None) => apply(api, &request.message.payload, key).await,
        Err(reply) => (reply, vec![], vec![]),
    };
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

/// The answer remembered for a request with idempotency key `key`, if one with that key was
/// applied already; an error reply for a malformed key. Requests are handled one at a time, so
/// no second attempt can run between this check and the first attempt's commit.
async fn remembered(api: &AdminApi, key: Option<&str>) -> Result<Option<Reply>, Reply> {
    let Some(key) = key else { return Ok(None) };
    api::check_idempotency_key(key).map_err(|e| Reply::from(&e))?;
    let owned = key.to_string();
    let hit = api.store.read_async(move |tx| tx.remembered(&owned)).await;
    match hit {
        Ok(None) => Ok(None),
        Ok(Some(r)) => {
            info!(key, "admin request retried; answering with its first result");
            Ok(Some(replay(key, &r)))
        }
        Err(e) => Err(Reply::error(ErrorClass::Other, format!("cannot read the store: {e}"))),
    }
}

/// The reply for a request applied before: its recorded answer, or, when that was not
/// recorded (the service stopped in between) or held a secret, a note saying it was applied.
fn replay(key: &str, r: &crate::store::Remembered) -> Reply {
    match Reply::parse(&r.result) {
        Ok(reply) => reply,
        Err(_) => Reply::Ok(Box::new(Response::Done {
            message: format!(
                "the request with idempotency key {key} was already applied (at unix ms {}); \
                 its answer was not kept (it held a secret, or the service stopped before \
                 recording it): check the result with `show` or `list`",
                r.at_ms
            ),
        })),
    }
}

/// The answer kept for a retry: none for a failure (nothing was applied, a retry runs again),
/// nor for one holding a secret (creds, a token), which is never stored.
fn answer_to_keep(reply: &Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Ok(resp) => match **resp {
            Response::Creds { .. } | Response::Token { .. } => None,
            _ => Some(reply.to_bytes()),
        },
        Reply::Error(_) => None,
    }
}

/// Decodes and runs one request; returns the reply, the sessions to close and the accounts
/// whose push it queued. With an idempotency `key`, the change's transaction records the key,
/// and the answer is recorded after it (see [`answer_to_keep`]).
async fn apply(
    api: &AdminApi,
    payload: &[u8],
    key: Option<String>,
) -> (Reply, Vec<Session>, Vec<AccountPublicKey>) {
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
        let ctx = Context::now();
        match key {
            Some(key) => {
                let now_ms = ctx.now_ms;
                let applied = store.with_idempotency_key(&key, now_ms, || {
                    lifecycle::apply(&store, &sessions, &req, &ctx)
                });
                let reply = Reply::from_result(&applied.result);
                keep_answer(&store, &key, now_ms, &reply);
                (applied, reply)
            }
            None => {
                let applied = lifecycle::apply(&store, &sessions, &req, &ctx);
                let reply = Reply::from_result(&applied.result);
                (applied, reply)
            }
        }
    })
    .await;
    match done {
        Ok((applied, reply)) => {
            match &applied.result {
                Ok(_) => info!(op, "admin request done"),
                Err(e) => info!(op, error = %e, "admin request failed"),
            }
            (reply, applied.kicks, applied.queued)
        }
        Err(e) => {
            warn!(op, error = %e, "admin request task failed");
            let reply = Reply::error(ErrorClass::Other, format!("admin request {op} failed"));
            (reply, vec![], vec![])
        }
    }
}

/// Records the answer of an applied request under its key, if it was applied (the key was
/// committed with the change) and may be kept. Blocking. A failure is logged: a retry then
/// gets the "already applied" note instead of the answer.
fn keep_answer(store: &Store, key: &str, now_ms: i64, reply: &Reply) {
    let Some(answer) = answer_to_keep(reply) else { return };
    let kept = store.write(|tx| match tx.remembered(key)? {
        Some(_) => tx.remember(key, now_ms, &answer, REMEMBER_MAX_AGE_MS, REMEMBER_MAX_COUNT),
        None => Ok(()),
    });
    if let Err(e) = kept {
        warn!(error = %e, "cannot record the answer of an admin request");
    }
}
