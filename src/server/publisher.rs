//! The claims publisher: keeps every nats-server's account JWTs equal to the store.
//!
//! Admin operations write an outbox entry (one per account, coalesced: the latest action wins) in
//! the same transaction as every change that alters an account JWT. [`Publisher::run`] is the one
//! task that drains it through the system user's managed connection:
//!
//! - **Debounce.** The outbox is polled every `debounce`; an entry is pushed once it has been
//!   quiet for `debounce` (every enqueue moves its `next_attempt` to "now", as the enqueuing
//!   code's clock reads it), so a burst of edits to one account ends in one push. A change of
//!   connection triggers a poll at once.
//! - **No lock or transaction across network I/O.** An upsert runs as: a write transaction that
//!   reserves the next strictly increasing `iat` of the account and builds its JWT from the
//!   store, then the network, then a write transaction that records the result with
//!   revision-checked `complete_outbox` / `update_outbox`, so a change made during a push is
//!   never lost (its entry survives and is pushed next).
//! - **Verified pushes.** `$SYS.REQ.CLAIMS.UPDATE` is answered by every full resolver; all replies
//!   are read and any `error` fails the push. A 200 is not proof (the resolver also answers 200
//!   to JWTs it then refuses to apply), so each push is read back with
//!   `$SYS.REQ.ACCOUNT.<acc>.CLAIMS.LOOKUP`: every server must hold exactly our JWT.
//! - **Deletes** send an operator-signed generic claim on `$SYS.REQ.CLAIMS.DELETE`. When a server
//!   refuses (`delete must be enabled in server config`, or any other failure) a disabled account
//!   JWT is pushed instead: no connections, every user revoked, no signing keys (which closes
//!   every connection whose JWT a signing key issued at once).
//! - **Retries.** A failed attempt is retried after an exponential backoff per entry; after
//!   `max_attempts` the entry is marked failed with its last error (`pbn admin outbox list`),
//!   kept for `retention`, then removed by the cleanup pass that runs every `cleanup_interval`.
//!   Failed deletes are never dropped: each cleanup pass re-queues them.
//!   Losing the connection during a push costs no attempt.
//! - **Reconcile.** On every new connection (startup, reconnection, failover, failback) every
//!   account in the store (SYS, AUTH and managed) is looked up on the servers; the ones that
//!   differ from the store, or are missing, are queued.
//! - **Bootstrap.** While the connection has no client the publisher only waits; it flushes as
//!   soon as one appears.
//!
//! `publisher` never imports `callout`: the two share nothing but the store.

mod batch;
mod lease;
mod nats;
mod outbox;
mod push_watch;
mod reconcile;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::Client;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{debug, error, info, warn};

use crate::claims::ClaimsError;
use crate::config::PublisherSettings;
use crate::issue::IssueError;
use crate::keys::{AccountPublicKey, KeyError};
use crate::model::{OutboxAction, OutboxEntry};
use crate::server::metrics::Metrics;
use crate::store::{Store, StoreError, StoreRead};
use outbox::FailureOutcome;

pub use lease::pending_jwt;
pub use nats::{CLAIMS_UPDATE, SERVER_PING};
pub use outbox::disabled_account_jwt;
pub use push_watch::PushWatch;

/// Errors of the publisher. A failed push is recorded on its outbox entry with this message.
#[derive(Debug, thiserror::Error)]
pub enum PublisherError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The replicated log refused or could not take a write (replicated mode).
    #[error(transparent)]
    Replica(#[from] crate::replica::ReplicaError),
    /// Building or signing a JWT failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// Encoding the delete request failed.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// The operator's identity seed is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Subscribing or publishing on the connection failed.
    #[error("nats request on {subject} failed: {reason}")]
    Nats {
        /// The request subject.
        subject: String,
        /// The client's error.
        reason: String,
    },
    /// No server answered a request in time.
    #[error("no reply on {subject} within {timeout:?}")]
    NoReply {
        /// The request subject.
        subject: String,
        /// How long the publisher waited.
        timeout: Duration,
    },
    /// Nothing subscribes to the subject (no full resolver, or no system account access).
    #[error("no responders on {subject} (is the server's resolver of type full?)")]
    NoResponders {
        /// The request subject.
        subject: String,
    },
    /// A server answered with an error.
    #[error("server refused account {account}: {description}")]
    Rejected {
        /// The account.
        account: AccountPublicKey,
        /// The server's `error.description`.
        description: String,
    },
    /// A reply that is not the JSON the resolver sends.
    #[error("unreadable reply on {subject}: {reason}")]
    BadReply {
        /// The request subject.
        subject: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A server does not hold the JWT just pushed (it answered 200 but did not store it).
    #[error("account {account} not applied: a server holds {found}")]
    NotApplied {
        /// The account.
        account: AccountPublicKey,
        /// `no jwt` or `another jwt (iat N)`.
        found: String,
    },
    /// A server still holds the account after a delete.
    #[error("account {account} still present on a server after the delete")]
    NotDeleted {
        /// The account.
        account: AccountPublicKey,
    },
}

/// The delay before retry number `attempts` (1 = after the first failure): `backoff_base`
/// doubled per further failure, capped at `backoff_max`. Exponential, so a server that is down
/// for a while costs few attempts, and capped, so a fixed server is used again soon.
pub fn backoff(settings: &PublisherSettings, attempts: u32) -> Duration {
    crate::backoff::exponential(settings.backoff_base, settings.backoff_max, attempts)
}

/// Shortest poll and cleanup period, whatever the settings say: a zero period would spin (and
/// tokio's interval refuses it), and 10 ms is already far below any useful debounce.
const MIN_TICK: Duration = Duration::from_millis(10);

/// What one push attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pushed {
    /// The servers hold the account as the store says.
    Done,
    /// The entry changed or vanished before the push: nothing was sent, nothing to record.
    Stale,
}

/// The publisher's view of one connection (one client of the managed connection).
struct Link {
    client: Client,
    /// Replies a request waits for before returning early: the servers seen answering.
    servers: usize,
    /// Whether the reconcile of this connection has run.
    reconciled: bool,
    /// Failed reconcile attempts in a row, for backoff and for logging once.
    reconcile_failures: u32,
    /// Earliest time of the next reconcile attempt.
    next_reconcile: Instant,
}

impl Link {
    fn new(client: Client) -> Self {
        Link {
            client,
            servers: 0,
            reconciled: false,
            reconcile_failures: 0,
            next_reconcile: Instant::now(),
        }
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

/// The outbox worker; see the module documentation.
#[derive(Debug, Clone)]
pub struct Publisher {
    store: Store,
    settings: PublisherSettings,
    pushes: Arc<PushWatch>,
    metrics: Arc<Metrics>,
    /// Replicated mode: leases and writes through the log (see `lease`).
    leases: Option<lease::Leases>,
}

impl Publisher {
    /// A publisher draining the outbox of `store` with `settings`.
    pub fn new(store: Store, settings: PublisherSettings) -> Self {
        let (pushes, metrics) = (Arc::new(PushWatch::new()), Arc::new(Metrics::new()));
        Publisher { store, settings, pushes, metrics, leases: None }
    }

    /// This publisher on a replica (replicated mode, `Some`): it pushes an entry only while it
    /// holds the entry's lease, and writes through the log.
    pub(crate) fn with_replica(self, replica: Option<crate::replica::Replica>) -> Self {
        Publisher { leases: replica.map(lease::Leases::new), ..self }
    }

    /// This publisher counting its pushes and reconciles in `metrics`.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        Publisher { metrics, ..self }
    }

    /// Where this publisher announces every outbox entry it settles.
    pub fn push_watch(&self) -> Arc<PushWatch> {
        self.pushes.clone()
    }

    /// Runs until `shutdown`, pushing through whichever client `clients` holds (the system
    /// user's managed connection); waits while it holds none.
    ///
    /// A pass runs on every poll tick, as soon as a write changes the outbox (an entry written
    /// due at once is pushed without waiting for the tick), and when the earliest entry that
    /// was not yet due becomes due (its debounce or backoff ended).
    pub async fn run(
        self,
        mut clients: watch::Receiver<Option<Client>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(self.settings.debounce.max(MIN_TICK));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut cleanup = tokio::time::interval(self.settings.cleanup_interval.max(MIN_TICK));
        cleanup.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut outbox = self.store.outbox_changes();
        let mut next_due = None;
        let mut link = new_link(&mut clients);
        loop {
            let changed = tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => return,
                r = clients.changed() => match r {
                    Ok(()) => true,
                    Err(_) => return,
                },
                _ = cleanup.tick() => { self.cleanup().await; false }
                _ = next_pass(&mut poll, &mut outbox, next_due) => match link.as_mut() {
                    None => false,
                    Some(s) => tokio::select! {
                        at = self.pass(s) => { next_due = at; false }
                        r = clients.changed() => match r {
                            Ok(()) => true,
                            Err(_) => return,
                        },
                        _ = crate::shutdown::requested(&mut shutdown) => return,
                    },
                },
            };
            if changed {
                link = new_link(&mut clients);
                poll.reset_immediately();
            }
        }
    }

    /// One poll: reconcile when due, then push every due entry. Returns when the earliest
    /// entry left waiting becomes due.
    async fn pass(&self, s: &mut Link) -> Option<tokio::time::Instant> {
        if !s.reconciled && Instant::now() >= s.next_reconcile {
            self.try_reconcile(s).await;
        }
        self.flush(s).await
    }

    async fn try_reconcile(&self, s: &mut Link) {
        if s.servers == 0 {
            match nats::Wire::new(&s.client, self.settings.request_timeout, 0).count_servers().await
            {
                Ok(n) => s.servers = n,
                Err(e) => debug!(error = %e, "cannot count servers; waiting for every reply"),
            }
        }
        let result = self.reconcile(s).await;
        self.metrics.reconciled(result.as_ref().map(|q| *q).map_err(|_| ()));
        match result {
            Ok(queued) => {
                s.reconciled = true;
                info!(queued, servers = s.servers, "reconciled account JWTs with the servers");
            }
            Err(e) => {
                s.reconcile_failures += 1;
                if s.reconcile_failures == 1 {
                    warn!(error = %e, "reconcile with the servers failed; retrying with backoff");
                }
                s.next_reconcile = Instant::now() + backoff(&self.settings, s.reconcile_failures);
            }
        }
    }

    /// Pushes every entry that is due and has been quiet for `debounce`, earliest first, in
    /// batches (see `batch`); in replicated mode one at a time under its lease. Returns when
    /// the earliest entry it left (not yet quiet, or backing off) becomes due.
    async fn flush(&self, s: &mut Link) -> Option<tokio::time::Instant> {
        let debounce_ms = self.settings.debounce.as_millis() as i64;
        let now_ms = crate::clock::unix_now_ms();
        let quiet_since = now_ms.saturating_sub(debounce_ms);
        let entries = self.store.read_async(move |tx| tx.list_outbox()).await;
        let (due, waiting) = match entries {
            Ok(entries) => split_due(entries, quiet_since),
            Err(e) => {
                error!(error = %e, "cannot read the outbox");
                return None;
            }
        };
        let mut due = due.into_iter().peekable();
        while due.peek().is_some() {
            if !s.connected() {
                return None;
            }
            // In replicated mode each entry goes alone: it needs its lease, and its results
            // go through the log.
            if self.leases.is_some() {
                let entry = due.next().expect("peeked");
                self.process(s, entry).await;
                continue;
            }
            let batch: Vec<OutboxEntry> = due.by_ref().take(batch::BATCH).collect();
            self.process_batch(s, batch).await;
        }
        let wait = waiting?.saturating_add(debounce_ms).saturating_sub(now_ms).max(0);
        Some(tokio::time::Instant::now() + Duration::from_millis(wait as u64))
    }

    async fn process(&self, s: &mut Link, entry: OutboxEntry) {
        let lease = match &self.leases {
            Some(leases) => match leases.take(&entry).await {
                Some(lease) => Some((leases, lease)),
                None => return,
            },
            None => None,
        };
        let started = Instant::now();
        let result = match entry.action {
            OutboxAction::Upsert => self.upsert(s, &entry).await,
            OutboxAction::Delete => self.delete(s, &entry).await,
        };
        match result {
            Ok(Pushed::Stale) => {}
            Ok(Pushed::Done) => {
                self.metrics.pushed(true, started.elapsed());
                self.pushes.attempted(true);
                self.record_success(&entry).await
            }
            // Losing the connection is not the entry's fault: it is retried on the next one.
            Err(e) if !s.connected() => {
                debug!(account = %entry.account_name, error = %e, "push interrupted by a disconnect")
            }
            Err(e) => {
                self.metrics.pushed(false, started.elapsed());
                self.pushes.attempted(false);
                self.record_failure(&entry, &e).await
            }
        }
        self.pushes.settled(&entry.account);
        if let Some((leases, lease)) = lease {
            leases.release(lease).await;
        }
    }

    async fn upsert(&self, s: &mut Link, entry: &OutboxEntry) -> Result<Pushed, PublisherError> {
        // Only replicated mode pushes one entry at a time (see `flush`): the JWT comes from
        // replicated state alone, so a retry by another replica pushes the same bytes.
        let reserved = lease::reserved(&self.store, entry).await?;
        let jwt = match reserved {
            outbox::Reserved::Jwt(jwt) => jwt,
            outbox::Reserved::Stale => return Ok(Pushed::Stale),
            outbox::Reserved::AccountGone => {
                warn!(account = %entry.account_name, "account to push is gone; dropping the entry");
                return Ok(Pushed::Done);
            }
        };
        let wire = nats::Wire::new(&s.client, self.settings.request_timeout, s.servers);
        let answered = wire.update(&entry.account, &jwt).await?;
        s.servers = s.servers.max(answered);
        wire.verify(&entry.account, &jwt).await?;
        Ok(Pushed::Done)
    }

    async fn delete(&self, s: &Link, entry: &OutboxEntry) -> Result<Pushed, PublisherError> {
        let op =
            self.store.read_async(|tx| Ok::<_, PublisherError>(tx.require_operator()?)).await?;
        let claim = outbox::delete_claim(&op, &entry.account)?;
        let wire = nats::Wire::new(&s.client, self.settings.request_timeout, s.servers);
        let deleted = match wire.delete(&entry.account, &claim).await {
            Ok(()) => wire.verify_absent(&entry.account).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(()) => return Ok(Pushed::Done),
            Err(e) if !s.connected() => return Err(e),
            Err(e) if entry.attempts == 0 => info!(
                account = %entry.account_name, reason = %e,
                "delete not done by every server; pushing a disabled account JWT instead"
            ),
            Err(e) => debug!(account = %entry.account_name, reason = %e, "delete refused again"),
        }
        let floor =
            wire.lookup(&entry.account).await?.iter().flatten().filter_map(|j| iat_of(j)).max();
        let iat = crate::clock::unix_now().max(floor.map_or(0, |f| f.saturating_add(1)));
        let jwt = disabled_account_jwt(&op, entry, iat)?;
        wire.update(&entry.account, &jwt).await?;
        wire.verify(&entry.account, &jwt).await?;
        Ok(Pushed::Done)
    }

    async fn record_success(&self, entry: &OutboxEntry) {
        let done = lease::record_pushed(&self.store, self.leases.as_ref(), entry).await;
        let name = &entry.account_name;
        let action = entry.action;
        match done {
            Ok(_) if entry.attempts > 0 => {
                info!(account = %name, ?action, failed_before = entry.attempts, "account pushed")
            }
            Ok(_) => info!(account = %name, ?action, "account pushed"),
            Err(e) => error!(account = %name, error = %e, "cannot complete the outbox entry"),
        }
    }

    async fn record_failure(&self, entry: &OutboxEntry, err: &PublisherError) {
        let (failed, message) = (entry.clone(), err.to_string());
        let settings = self.settings.clone();
        let outcome = lease::write(&self.store, self.leases.as_ref(), move |tx| {
            outbox::record_failure(tx, &failed, &message, &settings, crate::clock::unix_now_ms())
        })
        .await;
        let name = &entry.account_name;
        match outcome {
            Ok(FailureOutcome::Retry { attempts: 1, .. }) => {
                warn!(account = %name, error = %err, "push failed; retrying with backoff")
            }
            Ok(FailureOutcome::Retry { attempts, .. }) => {
                debug!(account = %name, attempts, error = %err, "push failed again")
            }
            Ok(FailureOutcome::Failed { attempts }) => error!(
                account = %name, attempts, error = %err,
                "push failed too often; entry marked failed (pbn admin outbox retry)"
            ),
            Ok(FailureOutcome::Stale) => {}
            Err(e) => error!(account = %name, error = %e, "cannot record a failed push"),
        }
    }

    /// Removes failed upserts past retention and re-queues failed deletes.
    async fn cleanup(&self) {
        let retention_ms = self.settings.retention.as_millis() as i64;
        let result = lease::write(&self.store, self.leases.as_ref(), move |tx| {
            outbox::cleanup(tx, crate::clock::unix_now_ms(), retention_ms)
        })
        .await;
        match result {
            Ok(r) if r.removed + r.revived > 0 => info!(
                removed = r.removed,
                revived_deletes = r.revived,
                "outbox cleanup: failed entries removed, failed deletes re-queued"
            ),
            Ok(_) => {}
            Err(e) => error!(error = %e, "outbox cleanup failed"),
        }
    }
}

/// The `iat` of a JWT a server holds (signature checked, issuer not), if it decodes.
fn iat_of(jwt: &str) -> Option<i64> {
    crate::claims::decode::<crate::claims::GenericClaims>(jwt).ok().map(|c| c.iat)
}

/// The entries due at `quiet_since` (quiet since then, not failed), earliest first, and the
/// earliest `next_attempt` of the others that are not failed.
fn split_due(entries: Vec<OutboxEntry>, quiet_since: i64) -> (Vec<OutboxEntry>, Option<i64>) {
    let (mut due, waiting): (Vec<OutboxEntry>, Vec<OutboxEntry>) =
        entries.into_iter().filter(|e| e.failed_at.is_none()).partition(|e| e.is_due(quiet_since));
    due.sort_by_key(|e| e.next_attempt);
    (due, waiting.iter().map(|e| e.next_attempt).min())
}

/// Resolves at the next poll tick, when a write changed the outbox, or at `at` (when an entry
/// becomes due), whichever comes first.
async fn next_pass(
    poll: &mut tokio::time::Interval,
    outbox: &mut watch::Receiver<u64>,
    at: Option<tokio::time::Instant>,
) {
    let due = async {
        match at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let changed = async {
        if outbox.changed().await.is_err() {
            // The store outlives the publisher; should its sender go, the poll still ticks.
            std::future::pending::<()>().await
        }
    };
    tokio::select! {
        _ = poll.tick() => {}
        _ = changed => {}
        _ = due => {}
    }
}

/// The link for the client `clients` holds now, logging the change once.
fn new_link(clients: &mut watch::Receiver<Option<Client>>) -> Option<Link> {
    let client = clients.borrow_and_update().clone();
    match &client {
        Some(c) => info!(server = %c.server_info().server_name, "publisher connected; reconciling"),
        None => info!("publisher waiting for a nats connection"),
    }
    client.map(Link::new)
}
