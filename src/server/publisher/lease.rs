//! The publisher in replicated mode: one replica pushes each outbox entry, every write goes
//! through the log.
//!
//! - **A lease per outbox entry** (one per account: entries are coalesced) in the JetStream KV
//!   bucket `PBN_LEASES` of the AUTH account (see `replica::leases`): the key `$KV.PBN_LEASES.<account>` is
//!   created only if it does not exist (`Nats-Expected-Last-Subject-Sequence: 0`), so of the
//!   replicas that find the entry due exactly one takes it; the holder deletes it when done,
//!   and the bucket's `max_age` (`LEASE_TTL`) frees it when the holder died.
//! - **The JWT is the change's.** Before pushing, the holder applies everything the log holds
//!   (so it sees the last push's completion), then builds the JWT from the replicated state
//!   alone, with nothing written first: `iat` is the entry's last enqueue time in seconds, or
//!   one more than the account's last pushed `iat` ([`iat_for`]), and signing is
//!   deterministic. A replica that takes the lease after the holder crashed mid-push builds the
//!   same bytes; the completion then records that `iat` on the account and removes the entry,
//!   through the log.
//! - **Every write through the log** ([`write`]): failures, cleanup and reconcile's re-queues
//!   are prepared, appended and applied like admin changes, so every replica's tables stay
//!   equal.

use serde_json::json;
use tracing::debug;

use super::outbox::Reserved;
use super::PublisherError;
use crate::issue;
use crate::keys::AccountPublicKey;
use crate::model::{Account, OutboxAction, OutboxEntry};
use crate::replica::leases::{ensure_bucket, release, take};
use crate::replica::{Log, Replica, ReplicaError};
use crate::store::{Store, StoreError, StoreRead, WriteTx};

/// The leases of one replica's publisher.
#[derive(Debug, Clone)]
pub(super) struct Leases {
    replica: Replica,
    log_replicas: u32,
    /// Whether the bucket was made (or found) through some connection already.
    bucket: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A lease held: the bucket's sequence of its key.
#[derive(Debug)]
pub(super) struct Lease {
    log: Log,
    seq: u64,
}

impl Leases {
    /// Leases through `replica`'s connection, the bucket kept in as many copies as the log.
    pub(super) fn new(replica: Replica) -> Leases {
        let log_replicas = replica.log_replicas();
        Leases { replica, log_replicas, bucket: Default::default() }
    }

    async fn ensure_bucket(&self, log: &Log) -> Result<(), ReplicaError> {
        use std::sync::atomic::Ordering;
        if self.bucket.load(Ordering::Relaxed) {
            return Ok(());
        }
        ensure_bucket(log, self.log_replicas).await?;
        self.bucket.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the lease on `entry` and brings the store up to the log: `None` when another
    /// replica holds it, or when the entry changed meanwhile (the lease is then given back).
    pub(super) async fn take(&self, entry: &OutboxEntry) -> Option<Lease> {
        let lease = match self.create(entry).await {
            Ok(lease) => lease?,
            Err(e) => {
                debug!(account = %entry.account_name, error = %e, "cannot take the push lease");
                return None;
            }
        };
        let current = match self.replica.sync().await {
            // A replica removed meanwhile stops at once: it must not die holding the lease.
            Ok(()) if matches!(self.replica.is_removed().await, Ok(true) | Err(_)) => false,
            Ok(()) => current(self.replica.store(), entry).await,
            Err(e) => {
                debug!(account = %entry.account_name, error = %e, "cannot catch up to push");
                false
            }
        };
        if current {
            return Some(lease);
        }
        self.release(lease).await;
        None
    }

    async fn create(&self, entry: &OutboxEntry) -> Result<Option<Lease>, ReplicaError> {
        let log = &self.replica.log()?;
        self.ensure_bucket(log).await?;
        let owner = json!({ "revision": entry.revision }).to_string().into_bytes();
        Ok(take(log, entry.account.as_ref(), owner)
            .await?
            .map(|seq| Lease { log: log.clone(), seq }))
    }

    /// Gives the lease back (its key deleted); a failure leaves it to expire.
    pub(super) async fn release(&self, lease: Lease) {
        release(&lease.log, lease.seq).await;
    }

    /// The replicated store's writer.
    pub(super) fn replica(&self) -> &Replica {
        &self.replica
    }
}

/// Whether `entry` is still the store's entry of its account, due.
async fn current(store: &Store, entry: &OutboxEntry) -> bool {
    let (key, revision) = (entry.account.clone(), entry.revision);
    let found = store.read_async(move |tx| tx.get_outbox(&key)).await;
    matches!(found, Ok(Some(e)) if e.revision == revision && e.failed_at.is_none())
}

/// The `iat` of the JWT pushed for `entry`: its last enqueue time, or one more than the last
/// pushed `iat` of the account; from replicated state only, so every replica computes it alike.
pub(super) fn iat_for(entry: &OutboxEntry, acc: &Account) -> i64 {
    (entry.updated / 1000).max(acc.last_jwt_iat.saturating_add(1))
}

/// The JWT to push for `entry`, built from the store without writing (see the module docs).
pub(super) async fn reserved(
    store: &Store,
    entry: &OutboxEntry,
) -> Result<Reserved, PublisherError> {
    let entry = entry.clone();
    store
        .read_async(move |tx| {
            match tx.get_outbox(&entry.account)? {
                Some(c) if c.revision == entry.revision && c.failed_at.is_none() => {}
                _ => return Ok(Reserved::Stale),
            }
            let Some(acc) = tx.get_account_by_key(&entry.account)? else {
                return Ok(Reserved::AccountGone);
            };
            let (op, allowed) = (tx.require_operator()?, tx.allowed_accounts()?);
            Ok(Reserved::Jwt(issue::account_jwt(&op, &acc, &allowed, iat_for(&entry, &acc))?))
        })
        .await
}

/// The account JWT replicated mode pushes for the outbox entry of `account` (a public key),
/// built from the store's replicated state alone as the lease holder builds it: `None` when
/// the account has no due entry. Every replica at the same log position gets the same bytes.
pub async fn pending_jwt(
    store: &Store,
    account: &AccountPublicKey,
) -> Result<Option<String>, PublisherError> {
    let key = account.clone();
    let entry = store.read_async(move |tx| tx.get_outbox(&key)).await?;
    let Some(entry) = entry.filter(|e| e.failed_at.is_none()) else { return Ok(None) };
    Ok(match reserved(store, &entry).await? {
        Reserved::Jwt(jwt) => Some(jwt),
        Reserved::Stale | Reserved::AccountGone => None,
    })
}

/// Completes `entry` after its push: the account's last `iat` raised to the pushed one, and the
/// entry removed if nobody re-queued it. Returns whether it was removed.
fn complete(tx: &mut WriteTx, entry: &OutboxEntry) -> Result<bool, StoreError> {
    if entry.action == OutboxAction::Upsert {
        if let Some(mut acc) = tx.get_account_by_key(&entry.account)? {
            let iat = iat_for(entry, &acc);
            if acc.last_jwt_iat < iat {
                acc.last_jwt_iat = iat;
                tx.update_account(&acc)?;
            }
        }
    }
    tx.complete_outbox(&entry.account, entry.revision)
}

/// Records the push of `entry` as done: locally, or through the log in replicated mode.
pub(super) async fn record_pushed(
    store: &Store,
    leases: Option<&Leases>,
    entry: &OutboxEntry,
) -> Result<bool, PublisherError> {
    match leases {
        None => {
            let (key, revision) = (entry.account.clone(), entry.revision);
            Ok(store.write_async(move |tx| tx.complete_outbox(&key, revision)).await?)
        }
        Some(_) => {
            let entry = entry.clone();
            write(store, leases, move |tx| Ok::<_, PublisherError>(complete(tx, &entry)?)).await
        }
    }
}

/// Runs the write `f` on the store, or in replicated mode through the log (prepared, appended,
/// applied: see `Replica::write`).
pub(super) async fn write<T, E, F>(store: &Store, leases: Option<&Leases>, f: F) -> Result<T, E>
where
    F: Fn(&mut WriteTx) -> Result<T, E> + Send + Sync + 'static,
    T: Send + 'static,
    E: From<StoreError> + From<ReplicaError> + Send + 'static,
{
    match leases {
        None => store.write_async(f).await,
        Some(l) => l.replica().write(move |store| store.write(&f)).await?,
    }
}
