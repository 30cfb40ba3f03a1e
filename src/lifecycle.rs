//! Live effects of admin operations: which callout sessions an operation invalidates, and
//! closing them at once.
//!
//! A pushed account JWT closes some connections by itself (signing key removed, creds revoked,
//! account disabled), but only once the publisher has pushed it, and a user deactivated, moved
//! or given another role keeps a valid JWT until it expires. So after a successful request the
//! service kicks (`$SYS.REQ.SERVER.<id>.KICK {"cid":N}`) every live session the change affects,
//! as recorded by the callout in the [`SessionRegistry`]; clients reconnect through the callout
//! and get the new permissions, or are refused.
//!
//! [`apply`] runs one request: it notes what the request may affect from the records as they
//! were ([`Impact`]), executes it, and resolves the impact against the records as they are now.
//! Requests must be applied one at a time (the admin API does) for the two reads to bracket the
//! write. Sessions admitted by another `pbn serve` replica are not in this registry; the pushed
//! account JWT still reaches those where the server enforces it.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use serde::Deserialize;

use crate::admin::{self, AdminError, Context, Request, Response};
use crate::keys::AccountPublicKey;
use crate::model::{Role, Session};
use crate::sessions::SessionRegistry;
use crate::store::{Store, StoreError, StoreRead};

/// How long one kick may take before it counts as failed.
pub const KICK_TIMEOUT: Duration = Duration::from_secs(2);
/// Kick requests in flight at once (an account may have thousands of sessions).
const KICKS_IN_FLIGHT: usize = 64;

/// Errors of kicking a session.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The kick request could not be sent or was not answered.
    #[error("kick of client {cid} on server {server} failed: {reason}")]
    Request {
        /// Server id.
        server: String,
        /// Client id.
        cid: u64,
        /// Why.
        reason: String,
    },
    /// The server answered with an error other than "no such client".
    #[error("server {server} refused to kick client {cid}: {description}")]
    Refused {
        /// Server id.
        server: String,
        /// Client id.
        cid: u64,
        /// The server's error description.
        description: String,
    },
}

/// What a request may invalidate, noted before it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Impact {
    /// Nothing live.
    None,
    /// Every session of these users (deactivated, deleted, moved or given another role).
    Users(Vec<String>),
    /// Every session of the role's users, if what the role grants changed.
    Role(Box<Role>),
    /// Every session in the account (deactivated).
    Account(AccountPublicKey),
    /// Sessions of the account signed by a signing key that is then gone (as far as issue times
    /// tell, see [`signed_by_removed`]); the keys the account had before, as (public key,
    /// created) in stored order.
    Keys {
        /// Account name.
        name: String,
        /// Account key.
        account: AccountPublicKey,
        /// Signing keys before the change.
        before: Vec<(String, i64)>,
    },
}

/// Notes what `req` may affect, from the records as they are before it runs. A record that does
/// not exist affects nothing (the request will fail on it).
pub fn impact(tx: &impl StoreRead, req: &Request) -> Result<Impact, StoreError> {
    Ok(match req {
        Request::UserDelete { name } => Impact::Users(vec![name.clone()]),
        Request::UserEdit { name, account, role, active, .. } => match tx.get_user(name)? {
            Some(u) => {
                let moves = account.as_deref().is_some_and(|a| a != u.account.as_str());
                let new_role = role.as_deref().is_some_and(|r| r != u.role.as_str());
                let deactivates = *active == Some(false) && u.active;
                if moves || new_role || deactivates {
                    Impact::Users(vec![name.clone()])
                } else {
                    Impact::None
                }
            }
            None => Impact::None,
        },
        Request::RoleEdit { name, .. } => {
            tx.get_role(name)?.map_or(Impact::None, |r| Impact::Role(Box::new(r)))
        }
        Request::AccountEdit { name, active: Some(false), .. } => match tx.get_account(name)? {
            Some(acc) if acc.active => Impact::Account(acc.public_key),
            _ => Impact::None,
        },
        Request::AccountRotateKeys { name } | Request::AccountSigningKeyRemove { name, .. } => {
            match tx.get_account(name)? {
                Some(acc) => Impact::Keys {
                    name: name.clone(),
                    before: acc
                        .signing_keys
                        .iter()
                        .map(|k| (k.public().to_string(), k.created))
                        .collect(),
                    account: acc.public_key,
                },
                None => Impact::None,
            }
        }
        _ => Impact::None,
    })
}

/// Whether user JWTs minted for `after` differ from those for `before`, or the callout would now
/// judge a login differently (sources, types). The description and the per-user connection cap
/// change nothing for a live session.
fn role_grants_changed(before: &Role, after: &Role) -> bool {
    let mut same = before.clone();
    same.description.clone_from(&after.description);
    same.max_connections = after.max_connections;
    same.updated = after.updated;
    same != *after
}

/// Whether a user JWT issued at `issued` was certainly signed by one of `removed`. `keys` are
/// the account's keys before the change as (public key, created) in stored order: the newest
/// signs (the later entry on a tie), so key `k` signed from its creation until the next newer
/// key was created. A JWT issued in the very second a key was added may come from either key:
/// it is not counted, and is left to the pushed account JWT, on which the server closes exactly
/// the connections of removed keys.
pub fn signed_by_removed(keys: &[(String, i64)], removed: &[String], issued: i64) -> bool {
    let mut order: Vec<(usize, &(String, i64))> = keys.iter().enumerate().collect();
    order.sort_by_key(|(i, (_, created))| (*created, *i));
    order.iter().enumerate().any(|(pos, (_, (key, created)))| {
        // The oldest key also stands for anything older (keys removed earlier, clock skew).
        let after_start = pos == 0 || *created < issued;
        let before_next = order.get(pos + 1).is_none_or(|(_, (_, next))| issued < *next);
        removed.contains(key) && after_start && before_next
    })
}

/// The live sessions `impact` invalidates, judged against the records as they are after the
/// request succeeded at `now`.
pub fn sessions_to_kick(
    impact: &Impact,
    tx: &impl StoreRead,
    registry: &SessionRegistry,
    now: i64,
) -> Result<Vec<Session>, StoreError> {
    Ok(match impact {
        Impact::None => vec![],
        Impact::Users(names) => names.iter().flat_map(|n| registry.of_user(n)).collect(),
        Impact::Role(before) => match tx.get_role(before.name.as_str())? {
            Some(after) if role_grants_changed(before, &after) => tx
                .list_user_names_of_role(after.name.as_str())?
                .iter()
                .flat_map(|n| registry.of_user(n))
                .collect(),
            _ => vec![],
        },
        Impact::Account(key) => registry.of_account(key.as_str()),
        Impact::Keys { name, account, before } => {
            let after: Vec<String> = tx
                .get_account(name)?
                .map(|a| a.signing_keys.iter().map(|k| k.public().to_string()).collect())
                .unwrap_or_default();
            let removed: Vec<String> =
                before.iter().map(|(k, _)| k.clone()).filter(|k| !after.contains(k)).collect();
            registry
                .of_account(account.as_str())
                .into_iter()
                .filter(|s| s.issued < now && signed_by_removed(before, &removed, s.issued))
                .collect()
        }
    })
}

/// What applying one request did.
#[derive(Debug)]
pub struct Applied {
    /// The outcome of the request.
    pub result: Result<Response, AdminError>,
    /// Live sessions it invalidated (none when it failed).
    pub kicks: Vec<Session>,
    /// Accounts whose push it queued (new or re-enqueued outbox entries).
    pub queued: Vec<AccountPublicKey>,
}

/// Executes `req` (one store transaction) and works out what it invalidated and queued.
/// Blocking: run it off the async runtime.
pub fn apply(store: &Store, registry: &SessionRegistry, req: &Request, ctx: &Context) -> Applied {
    let before = store.read(|tx| Ok::<_, StoreError>((impact(tx, req)?, outbox_revisions(tx)?)));
    let (noted, revisions) = before.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read what an admin request affects; no kicks");
        (Impact::None, HashMap::new())
    });
    let result = admin::execute(store, req, ctx);
    if result.is_err() {
        return Applied { result, kicks: vec![], queued: vec![] };
    }
    let after = store.read(|tx| {
        let kicks = sessions_to_kick(&noted, tx, registry, ctx.now)?;
        let queued = tx
            .list_outbox()?
            .into_iter()
            .filter(|e| revisions.get(e.account.as_str()) != Some(&e.revision))
            .map(|e| e.account)
            .collect();
        Ok::<_, StoreError>((kicks, queued))
    });
    let (kicks, queued) = after.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read what an admin request changed; no kicks");
        (vec![], vec![])
    });
    Applied { result, kicks, queued }
}

fn outbox_revisions(tx: &impl StoreRead) -> Result<HashMap<String, u64>, StoreError> {
    Ok(tx.list_outbox()?.into_iter().map(|e| (e.account.to_string(), e.revision)).collect())
}

/// How long the admin API waits for the publisher to push what a request queued.
pub const PUSH_WAIT: Duration = Duration::from_secs(5);
/// How often that wait looks at the outbox.
const PUSH_POLL: Duration = Duration::from_millis(25);

/// Waits until the publisher has pushed the accounts in `queued` (their outbox entries are gone)
/// or given up on them (marked failed), at most `timeout`. Returns whether all were pushed.
///
/// The admin API replies only after this, so that when `pbn admin` returns the servers hold the
/// new account JWTs: kicked clients reconnect with JWTs the servers can verify (a new signing
/// key), and revocations are in force.
pub async fn wait_pushed(store: &Store, queued: &[AccountPublicKey], timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let keys = queued.to_vec();
        let pending = store
            .read_async(move |tx| {
                let mut pending = 0;
                let mut failed = 0;
                for key in &keys {
                    match tx.get_outbox(key)? {
                        Some(e) if e.failed_at.is_some() => failed += 1,
                        Some(_) => pending += 1,
                        None => {}
                    }
                }
                Ok::<_, StoreError>((pending, failed))
            })
            .await;
        match pending {
            Ok((0, 0)) => return true,
            Ok((0, _)) => return false,
            Ok(_) if tokio::time::Instant::now() >= deadline => return false,
            Ok(_) => tokio::time::sleep(PUSH_POLL).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox");
                return false;
            }
        }
    }
}

/// What became of a batch of kicks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KickReport {
    /// Sessions the servers closed.
    pub kicked: usize,
    /// Sessions whose connection was already gone (or whose server is).
    pub gone: usize,
    /// Kicks that failed (logged).
    pub failed: usize,
}

/// The part of a server's kick reply pbn reads: `{"server":{...}}` or with an `error`.
#[derive(Deserialize)]
struct KickReply {
    error: Option<KickError>,
}

#[derive(Deserialize)]
struct KickError {
    #[serde(default)]
    description: String,
}

/// The subject that kicks a client off server `server_id` (system account only).
pub fn kick_subject(server_id: &str) -> String {
    format!("$SYS.REQ.SERVER.{server_id}.KICK")
}

/// Whether the kick closed a connection (`true`) or it was already gone (`false`).
async fn kick_one(client: &async_nats::Client, s: &Session) -> Result<bool, LifecycleError> {
    let server = s.server_id.to_string();
    let payload = serde_json::json!({ "cid": s.client_id }).to_string();
    let fail = |reason: String| LifecycleError::Request {
        server: server.clone(),
        cid: s.client_id,
        reason,
    };
    let reply =
        tokio::time::timeout(KICK_TIMEOUT, client.request(kick_subject(&server), payload.into()))
            .await
            .map_err(|_| fail(format!("no answer within {KICK_TIMEOUT:?}")))?;
    let msg = match reply {
        Ok(msg) => msg,
        // No server with that id any more: its connections went with it.
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => return Ok(false),
        Err(e) => return Err(fail(e.to_string())),
    };
    let reply: KickReply =
        serde_json::from_slice(&msg.payload).map_err(|e| fail(format!("bad reply: {e}")))?;
    match reply.error {
        None => Ok(true),
        Some(e) if e.description.contains("no such client") => Ok(false),
        Some(e) => {
            Err(LifecycleError::Refused { server, cid: s.client_id, description: e.description })
        }
    }
}

/// Kicks every session in `sessions` (up to [`KICKS_IN_FLIGHT`] at a time) on the system connection
/// `client`, and forgets the ones that are closed or gone.
pub async fn kick(
    client: &async_nats::Client,
    sessions: &[Session],
    registry: &SessionRegistry,
) -> KickReport {
    let mut results = Vec::with_capacity(sessions.len());
    for batch in sessions.chunks(KICKS_IN_FLIGHT) {
        results.extend(join_all(batch.iter().map(|s| kick_one(client, s))).await);
    }
    let mut report = KickReport::default();
    for (s, r) in sessions.iter().zip(results) {
        match r {
            Ok(closed) => {
                registry.remove(s.server_id.as_str(), s.client_id);
                if closed {
                    report.kicked += 1;
                } else {
                    report.gone += 1;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %s.user, "cannot close a session");
                report.failed += 1;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests;
