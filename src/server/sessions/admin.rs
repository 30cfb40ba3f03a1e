//! The session commands of the admin API (`session list`, `session kick`): answered from the
//! registry and the servers, not by a store transaction, so no record changes and a kicked
//! client may log in again at once.
//!
//! The same checks as for every admin request apply first (the sender was authenticated by the
//! caller; read-only admins may list but not kick), and an `account:` admin sees and ends its
//! account's sessions only (see [`crate::admin::sessions`]). A kick is in the audit trail; in
//! replicated mode its entry goes through the log like every write, so every replica has it.

use tracing::{info, warn};

use super::SessionRegistry;
use crate::admin::admins::guard::{self, AuthzError};
use crate::admin::api::{self, Reply};
use crate::admin::audit::{self, Actor};
use crate::admin::sessions::{list, to_kick};
use crate::admin::{AdminError, Request, Response};
use crate::model::{AdminRecord, AuditRecord};
use crate::replica::Replica;
use crate::server::lifecycle;
use crate::store::Store;

/// Where a session command runs: the store, the registry, the replica (replicated mode) and
/// how long audit entries are kept.
pub(crate) struct Scope<'a> {
    /// The store (a replica's view in replicated mode).
    pub(crate) store: &'a Store,
    /// The live sessions.
    pub(crate) registry: &'a SessionRegistry,
    /// The replica whose log takes the audit entry (replicated mode).
    pub(crate) replica: Option<&'a Replica>,
    /// Audit retention.
    pub(crate) retention: std::time::Duration,
}

/// The answer to `payload` when it is a session command of `admin`, else `None` (the caller
/// runs it as a store command). `client` is the system connection the kicks are sent on.
pub(crate) async fn answer(
    client: &async_nats::Client,
    scope: Scope<'_>,
    admin: &AdminRecord,
    payload: &[u8],
) -> Option<Reply> {
    let Scope { store, registry, replica, retention } = scope;
    let req = api::decode_request(payload).ok()?;
    if !matches!(req, Request::SessionList(_) | Request::SessionKick(_)) {
        return None;
    }
    let op = req.name();
    let result = run(client, store, registry, admin, &req).await;
    match &result {
        Ok(_) => info!(op, "admin request done"),
        Err(e) => info!(op, error = %e, "admin request failed"),
    }
    if matches!(req, Request::SessionKick(_)) {
        let actor = Actor { name: admin.name.to_string(), key: Some(admin.public_key.to_string()) };
        let outcome = match &result {
            Ok(Response::Done { message }) => message.clone(),
            Ok(_) => "ok".into(),
            Err(e) => format!("failed: {e}"),
        };
        let entry = audit::entry(&actor, &req, crate::clock::unix_now_ms(), outcome);
        record(store, replica, entry, retention).await;
    }
    Some(match result {
        Ok(resp) => Reply::Ok(Box::new(resp)),
        Err(e) => Reply::error(e.class(), e.to_string()),
    })
}

/// Records a kick's audit entry: on the store, or through the log on a replica (whose store
/// refuses local writes). A failure is logged; the kick itself stands.
async fn record(
    store: &Store,
    replica: Option<&Replica>,
    entry: AuditRecord,
    retention: std::time::Duration,
) {
    match replica {
        None => {
            let store = store.clone();
            let _ =
                tokio::task::spawn_blocking(move || audit::record(&store, entry, retention)).await;
        }
        Some(replica) => {
            let written =
                replica.write(move |store| audit::record(store, entry.clone(), retention)).await;
            if let Err(e) = written {
                warn!(error = %e, "the audit entry of a session kick is not in the log");
            }
        }
    }
}

async fn run(
    client: &async_nats::Client,
    store: &Store,
    registry: &SessionRegistry,
    admin: &AdminRecord,
    req: &Request,
) -> Result<Response, AdminError> {
    store.read(|tx| guard::authorize(tx, admin, req)).map_err(|e| match e {
        AuthzError::Denied(d) => AdminError::Denied(d),
        AuthzError::Store(s) => AdminError::Store(s),
    })?;
    let all = registry.all();
    match req {
        Request::SessionList(l) => store.read(|tx| list(tx, admin, l, all)),
        Request::SessionKick(k) => {
            let selected = store.read(|tx| to_kick(tx, admin, k, all))?;
            let report = lifecycle::kick(client, &selected, registry).await;
            info!(
                kicked = report.kicked,
                gone = report.gone,
                failed = report.failed,
                "sessions kicked"
            );
            if report.failed > 0 {
                return Err(AdminError::Invalid(format!(
                    "{} of {} session(s) could not be closed (see the service log)",
                    report.failed,
                    selected.len()
                )));
            }
            let message = format!(
                "{} session(s) closed, {} already gone; records unchanged",
                report.kicked, report.gone
            );
            Ok(Response::Done { message })
        }
        _ => Err(AdminError::Invalid(format!("{} is not a session command", req.name()))),
    }
}
