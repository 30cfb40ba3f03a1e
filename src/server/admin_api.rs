//! The admin API of `pbn serve`: a NATS micro service ([`api::SERVICE_NAME`]) on the system
//! connection, one endpoint ([`api::REQUEST_SUBJECT`]) taking a JSON admin request.
//!
//! It runs on the system connection because only system-account users can reach it there: users
//! placed by the callout live in managed accounts, and the server enforces which system users
//! may publish to `pbn.admin.>` (the admin creds carry the `pbn-admin` role's permissions).
//! Requests are handled concurrently (at most [`ADMIN_IN_FLIGHT`]): each runs
//! [`admin::execute`] on the blocking pool (one store transaction, which also decides the
//! change's effects; writes serialize in the store); then its task waits (bounded) for the
//! publisher to push what it queued, kicks the sessions it invalidated, and only then replies,
//! so when `pbn admin` returns the live effect has happened. A request waiting for its push
//! holds up no other. A bad request gets an error reply and
//! changes nothing; the service keeps serving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::service::ServiceExt;
use async_nats::HeaderMap;
use futures::StreamExt;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use crate::admin::admins::envelope::Signed;
use crate::admin::admins::guard::{self, AuthzError, Denied, NonceCache};
use crate::admin::api::{self, Reply};
use crate::admin::audit::{self, Actor};
use crate::admin::{self, AdminError, Context, ErrorClass, Outcome, Response};
use crate::model::AdminRecord;
use crate::model::Effects;
use crate::replica::{Replica, ReplicaError};
use crate::server::lifecycle;
use crate::server::publisher::PushWatch;
use crate::server::sessions::{self, SessionRegistry};
use crate::store::{Store, StoreError, StoreRead, REMEMBER_MAX_AGE_MS, REMEMBER_MAX_COUNT};

/// Admin requests handled at once. Writes serialize in the store anyway; what runs in parallel
/// is waiting for pushes and kicks, which hold little (a reply subject, the effects). 32 covers
/// any number of operators and scripts at once, and bounds the tasks a flood of requests can
/// start: beyond it the endpoint is not read, and requests wait in its bounded buffer.
const ADMIN_IN_FLIGHT: usize = 32;

/// What the admin API needs: the shared store handle, the callout's session registry and the
/// publisher's push notifications.
#[derive(Debug, Clone)]
pub(crate) struct AdminApi {
    /// The store (shared with the callout).
    pub store: Store,
    /// Live callout sessions, for kicks.
    pub sessions: Arc<SessionRegistry>,
    /// Settled outbox entries, for the push wait.
    pub pushes: Arc<PushWatch>,
    /// Requests in flight per idempotency key, so a retry waits for its first attempt.
    pub keys: Arc<KeyLocks>,
    /// Nonces of recent signed requests, so none runs twice.
    pub nonces: Arc<NonceCache>,
    /// How long audit entries are kept.
    pub audit_retention: std::time::Duration,
    /// Requests by command and result.
    pub metrics: Arc<crate::server::metrics::Metrics>,
    /// Where committed changes are published, when audit events are on.
    pub audit: Option<crate::server::audit::Audit>,
    /// Replicated mode: every request runs through the log (`Replica::write`).
    pub replica: Option<Replica>,
}

/// One async lock per idempotency key in flight: a retry that arrives while its first attempt
/// still runs waits for it, then finds its remembered answer.
#[derive(Debug, Default)]
pub(crate) struct KeyLocks {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            held.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Forgets `key` once nobody holds or waits for it.
    fn release(&self, key: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            held.remove(key);
        }
    }
}

/// Serves the admin API on the current system connection, restarting on every new client, until
/// `shutdown`.
pub(super) async fn serve(
    clients: watch::Receiver<Option<async_nats::Client>>,
    api: AdminApi,
    shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(ADMIN_IN_FLIGHT));
    super::on_each_client("admin API", clients, shutdown, |client, stop| {
        serve_on(client, api.clone(), permits.clone(), stop)
    })
    .await;
    // Every permit back means every request in flight was answered (each is bounded by the
    // push wait and the kick timeout), so a shutdown loses no reply.
    let _ = permits.acquire_many(ADMIN_IN_FLIGHT as u32).await;
}

/// Runs the micro service on `client` until its subscription closes or `stop`; each request is
/// handled in its own task holding one of `permits`.
async fn serve_on(
    client: async_nats::Client,
    api: AdminApi,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), async_nats::Error> {
    let service = client
        .service_builder()
        .description("pbn administration: JSON admin requests, see `pbn admin --server`")
        .start(api::SERVICE_NAME, api::SERVICE_VERSION)
        .await?;
    let mut endpoint = service.endpoint(api::REQUEST_SUBJECT).await?;
    info!(subject = api::REQUEST_SUBJECT, "admin API serving");
    loop {
        let request = tokio::select! {
            request = endpoint.next() => request,
            _ = crate::shutdown::requested(&mut stop) => None,
        };
        let Some(request) = request else { break };
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let (client, api) = (client.clone(), api.clone());
        tokio::spawn(async move {
            handle(&client, &api, request).await;
            drop(permit);
        });
    }
    service.stop().await?;
    Ok(())
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
    let admin = match authenticate(api, &request.message, key.as_deref()).await {
        Ok(admin) => admin,
        Err(reply) => return respond(request, &reply, &[]).await,
    };
    let payload = request.message.payload.clone();
    let (reply, warnings) = run_request(Some(client), api, &payload, key, admin).await;
    respond(request, &reply, &warnings).await;
}

/// Runs one request of an authenticated `admin` (from the NATS endpoint or the HTTP API):
/// its idempotency `key` honoured, the change applied within the admin's scope, then its
/// effects (pushes waited for, sessions kicked through `client`). Returns the reply and the
/// warnings about effects not confirmed.
pub(crate) async fn run_request(
    client: Option<&async_nats::Client>,
    api: &AdminApi,
    payload: &[u8],
    key: Option<String>,
    admin: AdminRecord,
) -> (Reply, Vec<String>) {
    // Session commands are answered from the registry, not the store.
    if let Some(client) = client {
        let scope = sessions::admin::Scope {
            store: &api.store,
            registry: &api.sessions,
            replica: api.replica.as_ref(),
            retention: api.audit_retention,
        };
        if let Some(reply) = sessions::admin::answer(client, scope, &admin, payload).await {
            return (reply, Vec::new());
        }
    }
    let guard = match &key {
        Some(k) => Some(api.keys.lock(k).await),
        None => None,
    };
    let (reply, effects) = match remembered(api, key.as_deref()).await {
        Ok(Some(reply)) => (reply, Effects::default()),
        Ok(None) => apply(api, payload, key.clone(), admin).await,
        Err(reply) => (reply, Effects::default()),
    };
    drop(guard);
    if let Some(k) = &key {
        api.keys.release(k);
    }
    let warnings = apply_effects(client, api, &effects).await;
    (reply, warnings)
}

/// Runs `req`, a change or read an end user makes on their own records in self-service
/// (console or `/api/v1/me`), as the admin API runs a request, without an admin: the request
/// is built by the service for the signed-in `user`, never taken from the client, so there is
/// no scope to check. Changes are in the audit trail with the actor `user NAME`; effects
/// (kicks) go out through `client` as for an admin request.
pub(crate) async fn run_for_user(
    client: Option<&async_nats::Client>,
    api: &AdminApi,
    user: &str,
    req: admin::Request,
) -> (Reply, Vec<String>) {
    let op = req.name();
    let actor = Actor { name: format!("user {user}"), key: None };
    let (ctx, retention) = (Context::now(), api.audit_retention);
    let go = move |store: &Store| {
        let result = audit::audited_execute(store, &req, &ctx, &actor, retention);
        (Reply::from_result(&result), result)
    };
    let done = match &api.replica {
        Some(replica) => replica.write(go).await.map_err(|e| replica_reply(&e)),
        None => {
            let store = api.store.clone();
            tokio::task::spawn_blocking(move || go(&store)).await.map_err(|e| {
                warn!(error = %e, "self-service request task failed");
                Reply::error(ErrorClass::Other, "self-service request failed".to_string())
            })
        }
    };
    api.metrics.admin_request(op, matches!(done, Ok((_, Ok(_)))));
    let (reply, effects) = match done {
        Ok((reply, Ok(outcome))) => {
            info!(op, user, "self-service request done");
            (reply, outcome.effects)
        }
        Ok((reply, Err(_))) | Err(reply) => (reply, Effects::default()),
    };
    let warnings = apply_effects(client, api, &effects).await;
    (reply, warnings)
}

/// Waits (bounded) for the pushes `effects` queued, then closes the sessions they invalidate
/// (through `client`; without one, a warning says they stay open); returns warnings for the
/// reply.
async fn apply_effects(
    client: Option<&async_nats::Client>,
    api: &AdminApi,
    effects: &Effects,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let pushes = &effects.pushes;
    let applied = api.replica.as_ref().map(Replica::applied);
    let waited = lifecycle::wait_pushed_or_applied(&api.store, &api.pushes, pushes, applied);
    if !pushes.is_empty() && !waited.await {
        warn!(accounts = pushes.len(), "account JWTs not pushed yet; see `pbn admin outbox list`");
        warnings.push(format!(
            "{} account JWT(s) not confirmed on the servers yet; `pbn admin outbox list` shows them",
            pushes.len()
        ));
    }
    let kicks = lifecycle::sessions_to_close(effects, &api.sessions);
    match (client, kicks.is_empty()) {
        (_, true) => {}
        (None, false) => {
            warn!(sessions = kicks.len(), "no system connection: sessions not closed");
            warnings.push(format!(
                "{} live session(s) could not be closed: no connection to the servers",
                kicks.len()
            ));
        }
        (Some(client), false) => warnings.extend(kick(client, api, &kicks).await),
    }
    warnings
}

/// Closes `kicks`; returns a warning when some could not be closed.
async fn kick(
    client: &async_nats::Client,
    api: &AdminApi,
    kicks: &[crate::model::Session],
) -> Option<String> {
    let report = lifecycle::kick(client, kicks, &api.sessions).await;
    info!(kicked = report.kicked, gone = report.gone, failed = report.failed, "sessions closed");
    (report.failed > 0).then(|| format!("{} live session(s) could not be closed", report.failed))
}

/// Sends `reply` with its headers: warnings, and for an error the micro-service error headers.
async fn respond(request: async_nats::service::Request, reply: &Reply, warnings: &[String]) {
    let mut headers = HeaderMap::new();
    if !warnings.is_empty() {
        headers.insert(api::WARNING_HEADER, warnings.join("; ").as_str());
    }
    if let (Some(code), Reply::Error(e)) = (reply.error_code(), reply) {
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
/// applied already; an error reply for a malformed key. The caller holds the key's lock, so no
/// second attempt can run between this check and the first attempt's commit.
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
            Response::Creds { .. } | Response::Token { .. } | Response::Replica { .. } => None,
            _ => Some(reply.to_bytes()),
        },
        Reply::Error(_) => None,
    }
}

/// The admin who signed `msg` (see `admin::admins::guard::check_signed`), or the refusal.
/// Checked before anything else, the idempotency lookup included, so an unknown sender
/// learns nothing.
async fn authenticate(
    api: &AdminApi,
    msg: &async_nats::Message,
    idem: Option<&str>,
) -> Result<AdminRecord, Reply> {
    let headers = msg.headers.as_ref();
    let signed = Signed::from_headers(|n| headers.and_then(|h| h.get(n)).map(|v| v.as_str()))
        .map_err(|e| denied(Denied::from(e)))?;
    let key = signed.key.clone();
    let record = api
        .store
        .read_async(move |tx| tx.admin_by_key(&key))
        .await
        .map_err(|e| Reply::error(ErrorClass::Other, format!("cannot read the store: {e}")))?;
    let now_ms = crate::clock::unix_now_ms();
    let idem = idem.unwrap_or_default();
    guard::check_signed(record, &signed, idem, &msg.payload, &api.nonces, now_ms).map_err(denied)
}

fn denied(d: Denied) -> Reply {
    warn!(reason = %d, "admin request refused");
    Reply::from_result(&Err(AdminError::Denied(d)))
}

/// Decodes and runs one request of `admin`, within its scope; returns the reply and the
/// effects of its change. With an idempotency `key`, the change's transaction records the key,
/// and the answer is recorded after it (see [`answer_to_keep`]). Every change, and every
/// refusal for scope, is in the audit trail. In replicated mode the change is in the log and
/// applied here before this returns.
async fn apply(
    api: &AdminApi,
    payload: &[u8],
    key: Option<String>,
    admin: AdminRecord,
) -> (Reply, Effects) {
    let req = match api::decode_request(payload) {
        Ok(req) => guard::scoped(&admin, req),
        Err(e) => {
            warn!(error = %e, "admin request refused");
            api.metrics.admin_request("invalid", false);
            return (Reply::from(&e), Effects::default());
        }
    };
    let op = req.name();
    let read_only = req.is_read_only();
    let ctx = Context::now();
    let run = Run { admin, req, key: key.clone(), retention: api.audit_retention, ctx };
    let done = run_locally_or_logged(api, run.clone()).await;
    api.metrics.admin_request(op, matches!(done, Ok((_, Ok(_)))));
    match done {
        Ok((reply, Ok(outcome))) => {
            info!(op, "admin request done");
            if let Some(audit) = api.audit.as_ref().filter(|_| !read_only) {
                audit.admin(op);
            }
            if let Some(key) = key {
                keep(api, key, run.ctx.now_ms, &reply).await;
            }
            (reply, outcome.effects)
        }
        Ok((reply, Err(e))) => {
            info!(op, error = %e, "admin request failed");
            (reply, Effects::default())
        }
        Err(reply) => {
            warn!(op, "admin request not done");
            (reply, Effects::default())
        }
    }
}

/// One request as [`run_as`] runs it.
#[derive(Clone)]
struct Run {
    admin: AdminRecord,
    req: admin::Request,
    key: Option<String>,
    retention: std::time::Duration,
    ctx: Context,
}

/// Runs `run` on the blocking pool, or in replicated mode through the log; a reply for a
/// request that could not run.
async fn run_locally_or_logged(
    api: &AdminApi,
    run: Run,
) -> Result<(Reply, Result<Outcome, AdminError>), Reply> {
    let go = move |store: &Store| {
        let Run { admin, req, key, retention, ctx } = &run;
        run_as(store, admin, req, key.clone(), *retention, ctx)
    };
    match &api.replica {
        Some(replica) => replica.write(go).await.map_err(|e| replica_reply(&e)),
        None => {
            let store = api.store.clone();
            tokio::task::spawn_blocking(move || go(&store)).await.map_err(|e| {
                warn!(error = %e, "admin request task failed");
                Reply::error(ErrorClass::Other, "admin request failed".to_string())
            })
        }
    }
}

/// The reply for a change the log did not take.
fn replica_reply(e: &ReplicaError) -> Reply {
    let class = match e {
        ReplicaError::Conflict { .. } | ReplicaError::Conflicts(_) => ErrorClass::LogConflict,
        ReplicaError::Unavailable(_) => ErrorClass::Unavailable,
        _ => ErrorClass::Other,
    };
    warn!(error = %e, "admin change not made");
    Reply::error(class, e.to_string())
}

/// Runs `req` for `admin` (blocking): refused outside its scope, else executed with the audit
/// trail and, with an idempotency `key`, recorded under it; lists narrowed to its scope. One
/// write transaction at most, so it can be prepared for the log.
fn run_as(
    store: &Store,
    admin: &AdminRecord,
    req: &admin::Request,
    key: Option<String>,
    retention: std::time::Duration,
    ctx: &Context,
) -> (Reply, Result<Outcome, AdminError>) {
    let actor = Actor { name: admin.name.to_string(), key: Some(admin.public_key.to_string()) };
    if let Err(e) = store.read(|tx| guard::authorize(tx, admin, req)) {
        let err = match e {
            AuthzError::Denied(d) => AdminError::Denied(d),
            AuthzError::Store(s) => AdminError::Store(s),
        };
        let refused = audit::entry(&actor, req, ctx.now_ms, format!("refused: {err}"));
        audit::record(store, refused, retention);
        let result = Err(err);
        return (Reply::from_result(&result), result);
    }
    let run = || {
        let result = audit::audited_execute(store, req, ctx, &actor, retention);
        result.map(|o| Outcome { response: guard::filtered(admin, o.response), ..o })
    };
    let result = match key {
        Some(key) => store.with_idempotency_key(&key, ctx.now_ms, run),
        None => run(),
    };
    (Reply::from_result(&result), result)
}

/// Records the answer of a request applied under idempotency key `key` (see [`keep_answer`]),
/// through the log in replicated mode.
async fn keep(api: &AdminApi, key: String, now_ms: i64, reply: &Reply) {
    let reply = reply.clone();
    let kept = match &api.replica {
        Some(replica) => replica.write(move |store| keep_answer(store, &key, now_ms, &reply)).await,
        None => {
            let store = api.store.clone();
            let task = move || keep_answer(&store, &key, now_ms, &reply);
            tokio::task::spawn_blocking(task)
                .await
                .map_err(|e| StoreError::TaskFailed(e.to_string()).into())
        }
    };
    if let Err(e) = kept {
        warn!(error = %e, "cannot record the answer of an admin request");
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
