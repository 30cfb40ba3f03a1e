//! Reconcile: compare what the servers hold with the store and queue what differs.
//!
//! The comparison needs no stored copy of past JWTs: signing is deterministic (ed25519, and the
//! `jti` is a hash of the claims), so a server's JWT is current exactly when re-issuing the
//! store's account at that JWT's `iat` reproduces it byte for byte. Any difference (limits,
//! keys, revocations, a newer operator signing key, a JWT nobody at pbn issued) or a missing JWT
//! queues an upsert.

use futures::stream::{self, StreamExt};
use tracing::debug;

use super::{nats, Link, Publisher, PublisherError};
use crate::claims::{self, AccountClaims};
use crate::issue;
use crate::keys::AccountPublicKey;
use crate::model::{Account, Operator, OutboxAction};
use crate::store::{StoreRead, WriteTx};

/// Lookups in flight at once. Each holds one reply subscription; 64 keeps a loopback or LAN
/// round trip busy (10,000 accounts reconcile in well under the 5 s target) while each server
/// answers lookups from its resolver's memory, so no request waits near the request timeout.
pub const LOOKUP_CONCURRENCY: usize = 64;

/// An account the servers do not hold as the store says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stale {
    /// The account.
    pub account: AccountPublicKey,
    /// The newest `iat` a server holds for it (0 if none): the next JWT must be newer.
    pub held_iat: i64,
}

impl Publisher {
    /// Looks up every account of the store on the servers and queues those that differ.
    /// Returns how many were queued.
    pub(super) async fn reconcile(&self, s: &Link) -> Result<usize, PublisherError> {
        let (op, allowed, accounts) = self
            .store
            .read_async(|tx| {
                Ok::<_, PublisherError>((
                    tx.require_operator()?,
                    tx.allowed_accounts()?,
                    tx.list_accounts()?,
                ))
            })
            .await?;
        let wire = nats::Wire::new(&s.client, self.settings.request_timeout, s.servers);
        let (op, allowed, wire) = (&op, &allowed, &wire);
        let looked_up: Vec<Result<Option<Stale>, PublisherError>> = stream::iter(accounts)
            .map(|acc| async move {
                let held = wire.lookup(&acc.public_key).await?;
                Ok(differs(op, &acc, allowed, &held).map(|held_iat| {
                    debug!(account = %acc.name, "servers differ from the store");
                    Stale { account: acc.public_key.clone(), held_iat }
                }))
            })
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .collect()
            .await;
        let stale =
            looked_up.into_iter().filter_map(Result::transpose).collect::<Result<Vec<_>, _>>()?;
        let now = crate::clock::unix_now_ms();
        let leases = self.leases.as_ref();
        super::lease::write(&self.store, leases, move |tx| requeue(tx, &stale, now)).await
    }
}

/// `Some(newest held iat)` when any server's JWT for `acc` is missing or differs from the store.
pub(super) fn differs(
    op: &Operator,
    acc: &Account,
    allowed: &[AccountPublicKey],
    held: &[Option<String>],
) -> Option<i64> {
    let mut stale = false;
    let mut newest = 0;
    for jwt in held {
        let Some(jwt) = jwt else {
            stale = true;
            continue;
        };
        match claims::decode::<AccountClaims>(jwt) {
            Ok(c) => {
                newest = newest.max(c.iat);
                // A JWT the store cannot reproduce (or cannot issue at all) is queued, so the
                // push, or its failure in `outbox list`, settles it.
                stale |= issue::account_jwt(op, acc, allowed, c.iat).ok().as_deref() != Some(jwt);
            }
            Err(_) => stale = true,
        }
    }
    stale.then_some(newest)
}

/// Queues an upsert of every stale account still in the store (one already pending is left to
/// run its course), and raises its last `iat` to what the servers hold, so the next JWT is newer
/// than theirs. Returns how many entries were queued.
pub(super) fn requeue(
    tx: &mut WriteTx,
    stale: &[Stale],
    now_ms: i64,
) -> Result<usize, PublisherError> {
    let mut queued = 0;
    for s in stale {
        let Some(mut acc) = tx.get_account_by_key(&s.account)? else { continue };
        if s.held_iat > acc.last_jwt_iat {
            acc.last_jwt_iat = s.held_iat;
            tx.update_account(&acc)?;
        }
        let pending = tx.get_outbox(&s.account)?.is_some_and(|e| e.failed_at.is_none());
        if !pending {
            tx.enqueue_outbox(&s.account, &acc.name, OutboxAction::Upsert, now_ms)?;
            queued += 1;
        }
    }
    Ok(queued)
}
