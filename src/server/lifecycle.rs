//! Applying the live effects of an admin change: waiting for its pushes, closing the sessions
//! it invalidates.
//!
//! A pushed account JWT closes some connections by itself (signing key removed, creds revoked,
//! account disabled), but only once the publisher has pushed it, and a user deactivated, moved
//! or given another role keeps a valid JWT until it expires. So after a successful change the
//! service kicks (`$SYS.REQ.SERVER.<id>.KICK {"cid":N}`) every live session its [`Effects`]
//! name, as recorded by the callout in the [`SessionRegistry`]; clients reconnect through the
//! callout and get the new permissions, or are refused.
//!
//! The effects were decided by the change itself, inside its transaction; nothing here reads
//! the records or knows which command ran, so changes can be applied concurrently. The registry
//! holds the sessions of every replica (it is built from the servers' events), and each kick goes
//! to the server that holds the connection, so the replica that ran the change closes them all.

use std::time::Duration;

use futures::future::join_all;
use serde::Deserialize;

use crate::model::{CloseSessions, Effects, QueuedPush, Session};
use crate::server::publisher::PushWatch;
use crate::server::sessions::SessionRegistry;
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

/// The live sessions `effects` close, each once.
pub fn sessions_to_close(effects: &Effects, registry: &SessionRegistry) -> Vec<Session> {
    let mut found: Vec<Session> = Vec::new();
    for close in &effects.close {
        let candidates = match close {
            CloseSessions::User(name) => registry.of_user(name.as_str()),
            CloseSessions::Provider(name) => registry.of_provider(name.as_str()),
            CloseSessions::Account(key) | CloseSessions::SignedBy { account: key, .. } => {
                registry.of_account(key.as_str())
            }
        };
        for s in candidates.into_iter().filter(|s| close.matches(s)) {
            if !found.iter().any(|f| f.server_id == s.server_id && f.client_id == s.client_id) {
                found.push(s);
            }
        }
    }
    found
}

/// How long the admin API waits for the publisher to push what a request queued.
pub const PUSH_WAIT: Duration = Duration::from_secs(5);

/// Where a queued push stands in the store.
enum PushState {
    /// The entry is gone: pushed (or superseded by a delete that went through).
    Done,
    /// The publisher gave up on it (marked failed).
    Failed,
    /// Still queued (this revision or a later one).
    Pending,
}

async fn push_state(store: &Store, push: &QueuedPush) -> Result<PushState, StoreError> {
    let key = push.account.clone();
    store
        .read_async(move |tx| {
            Ok(match tx.get_outbox(&key)? {
                None => PushState::Done,
                Some(e) if e.failed_at.is_some() => PushState::Failed,
                Some(_) => PushState::Pending,
            })
        })
        .await
}

/// Waits until the publisher has pushed every entry of `pushes` (their outbox entries are gone)
/// or given up on one (marked failed), at most `timeout`. Returns whether all were pushed.
/// Woken by the publisher's [`PushWatch`] each time it settles an entry of the account, so it
/// reads the store only when something happened.
///
/// The admin API replies only after this, so that when `pbn admin` returns the servers hold the
/// new account JWTs: kicked clients reconnect with JWTs the servers can verify (a new signing
/// key), and revocations are in force.
#[cfg(test)]
pub async fn wait_pushed(
    store: &Store,
    watch: &PushWatch,
    pushes: &[QueuedPush],
    timeout: Duration,
) -> bool {
    wait_settled(store, watch, pushes, timeout, None).await
}

/// [`wait_pushed`] for [`PUSH_WAIT`], also woken in replicated mode by every log position
/// `applied` here: another replica may push the entry, and its completion arrives through
/// the log, not through this replica's publisher.
pub async fn wait_pushed_or_applied(
    store: &Store,
    watch: &PushWatch,
    pushes: &[QueuedPush],
    applied: Option<tokio::sync::watch::Receiver<u64>>,
) -> bool {
    wait_settled(store, watch, pushes, PUSH_WAIT, applied).await
}

async fn wait_settled(
    store: &Store,
    watch: &PushWatch,
    pushes: &[QueuedPush],
    timeout: Duration,
    mut applied: Option<tokio::sync::watch::Receiver<u64>>,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    for push in pushes {
        // Subscribed before the store is read, so a push settled in between still wakes us.
        let mut settled = watch.subscribe(&push.account);
        loop {
            match push_state(store, push).await {
                Ok(PushState::Done) => break,
                Ok(PushState::Failed) => return false,
                Ok(PushState::Pending) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox");
                    return false;
                }
            }
            let woken = async {
                match applied.as_mut() {
                    Some(applied) => tokio::select! {
                        r = settled.changed() => r.is_ok(),
                        r = applied.changed() => r.is_ok(),
                    },
                    None => settled.changed().await.is_ok(),
                }
            };
            match tokio::time::timeout_at(deadline, woken).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return false,
            }
        }
    }
    true
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
