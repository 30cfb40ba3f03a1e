//! The store side of the publisher: each function is one transaction, run before or after the
//! network, never across it.

use super::{backoff, PublisherError};
use crate::claims::{Claims, GenericClaims};
use crate::config::PublisherSettings;
use crate::issue;
use crate::keys::{AccountPublicKey, KeyPair};
use crate::model::{Account, AccountKind, Operator, OutboxAction, OutboxEntry};
use crate::store::{StoreRead, WriteTx};

/// What [`reserve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reserved {
    /// The JWT to push, with an `iat` recorded on the account.
    Jwt(String),
    /// The entry is gone or was re-enqueued since it was read: skip it this pass.
    Stale,
    /// The entry is current but its account no longer exists (nothing to push).
    AccountGone,
}

/// Reserves the next `iat` of `entry`'s account (strictly greater than any issued before, and
/// stored in this transaction) and builds its JWT from the store as it is now. The AUTH
/// account's `allowed_accounts` is computed here too, so it matches the store at push time.
#[cfg(test)]
pub(super) fn reserve(
    tx: &mut WriteTx,
    entry: &OutboxEntry,
    now: i64,
) -> Result<Reserved, PublisherError> {
    let (op, allowed) = (tx.require_operator()?, tx.allowed_accounts()?);
    reserve_with(tx, entry, now, &op, &allowed)
}

/// [`reserve`] for every upsert of `entries` in one transaction (the operator and the allowed
/// accounts read once); `None` for a delete, which reserves nothing.
pub(super) fn reserve_all(
    tx: &mut WriteTx,
    entries: &[OutboxEntry],
    now: i64,
) -> Result<Vec<Option<Reserved>>, PublisherError> {
    let mut shared = None;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.action == OutboxAction::Delete {
            out.push(None);
            continue;
        }
        if shared.is_none() {
            shared = Some((tx.require_operator()?, tx.allowed_accounts()?));
        }
        let (op, allowed) = shared.as_ref().expect("set just above");
        out.push(Some(reserve_with(tx, entry, now, op, allowed)?));
    }
    Ok(out)
}

/// [`reserve`] with the operator and the allowed accounts already read.
fn reserve_with(
    tx: &mut WriteTx,
    entry: &OutboxEntry,
    now: i64,
    op: &Operator,
    allowed: &[AccountPublicKey],
) -> Result<Reserved, PublisherError> {
    match tx.get_outbox(&entry.account)? {
        Some(current) if current.revision == entry.revision && current.failed_at.is_none() => {}
        _ => return Ok(Reserved::Stale),
    }
    let Some(mut acc) = tx.get_account_by_key(&entry.account)? else {
        return Ok(Reserved::AccountGone);
    };
    let iat = acc.next_jwt_iat(now);
    tx.update_account(&acc)?;
    Ok(Reserved::Jwt(issue::account_jwt(op, &acc, allowed, iat)?))
}

/// The `$SYS.REQ.CLAIMS.DELETE` payload for `account`: a generic claim with `sub == iss ==` the
/// operator identity (the resolver requires a self-signed request from a trusted operator key).
pub(super) fn delete_claim(
    op: &Operator,
    account: &AccountPublicKey,
) -> Result<String, PublisherError> {
    let identity = KeyPair::from_seed(&op.identity)?;
    let body = GenericClaims::delete_accounts([account.as_str()]);
    Ok(Claims::new(op.public_key.as_str(), body).encode(&identity)?)
}

/// A disabled account JWT for a deleted account (whose record is gone), issued at `iat` and
/// signed by the operator: no connections or leafnodes, every user JWT issued up to `iat`
/// revoked, and no signing keys, so the servers at once close every connection a signing key of
/// the account issued. Used when a server refuses to delete.
pub fn disabled_account_jwt(
    op: &Operator,
    entry: &OutboxEntry,
    iat: i64,
) -> Result<String, PublisherError> {
    // A stand-in record, read only by `issue::account_claims` (identity seed unused, never
    // stored): the entry keeps the account's key and name, which is all a disabled JWT needs.
    let mut acc = Account::generate(entry.account_name.clone(), AccountKind::Managed, iat);
    acc.public_key = entry.account.clone();
    acc.signing_keys.clear();
    acc.active = false;
    Ok(issue::sign_account(op, &mut issue::account_claims(&acc, &[], iat))?)
}

/// What [`record_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureOutcome {
    /// Retry scheduled at `at` (unix ms) after `attempts` failures.
    Retry {
        /// Failures so far.
        attempts: u32,
        /// Next attempt (unix ms).
        at: i64,
    },
    /// Marked failed after `attempts` failures.
    Failed {
        /// Failures so far.
        attempts: u32,
    },
    /// The entry was re-enqueued (or removed) meanwhile; the newer state stands.
    Stale,
}

/// Records a failed attempt on `entry` (as it was read before the push): retry after the
/// backoff, or mark it failed once `max_attempts` attempts have failed. Writes nothing when the
/// entry changed meanwhile.
pub(super) fn record_failure(
    tx: &mut WriteTx,
    entry: &OutboxEntry,
    error: &str,
    settings: &PublisherSettings,
    now_ms: i64,
) -> Result<FailureOutcome, PublisherError> {
    let mut updated = entry.clone();
    let attempts = entry.attempts.saturating_add(1);
    let outcome = if attempts >= settings.max_attempts {
        updated.record_failure(error, None, now_ms);
        FailureOutcome::Failed { attempts }
    } else {
        let at = now_ms.saturating_add(backoff(settings, attempts).as_millis() as i64);
        updated.record_failure(error, Some(at), now_ms);
        FailureOutcome::Retry { attempts, at }
    };
    Ok(if tx.update_outbox(&updated)? { outcome } else { FailureOutcome::Stale })
}

/// What [`cleanup`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cleanup {
    /// Failed upserts removed after their retention.
    pub removed: usize,
    /// Failed deletes put back in the queue.
    pub revived: usize,
}

/// Removes failed upserts whose retention has passed (a later change or reconcile queues the
/// account again) and re-queues every failed delete: a delete that is dropped would leave a
/// deleted account usable on the servers.
pub(super) fn cleanup(
    tx: &mut WriteTx,
    now_ms: i64,
    retention_ms: i64,
) -> Result<Cleanup, PublisherError> {
    let mut done = Cleanup::default();
    for mut entry in tx.list_outbox()? {
        let Some(failed_at) = entry.failed_at else { continue };
        match entry.action {
            OutboxAction::Delete => {
                entry.failed_at = None;
                entry.attempts = 0;
                entry.next_attempt = now_ms;
                entry.updated = now_ms;
                tx.update_outbox(&entry)?;
                done.revived += 1;
            }
            OutboxAction::Upsert if failed_at.saturating_add(retention_ms) <= now_ms => {
                tx.delete_outbox(&entry.account)?;
                done.removed += 1;
            }
            OutboxAction::Upsert => {}
        }
    }
    Ok(done)
}
