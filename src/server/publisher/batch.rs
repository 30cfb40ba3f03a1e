//! Pushing many outbox entries at once: the store work of a batch in one transaction before
//! the network and one after it, the network work of its accounts concurrently.
//!
//! Each entry still completes or fails on its own: its result is recorded with the same
//! revision checks as a single push, and its waiters are woken (`PushWatch::settled`) once its
//! result is in the store. Entries of one batch are distinct accounts (the outbox holds one
//! entry per account, coalescing repeated changes), so their pushes are independent.

use std::time::Instant;

use futures::stream::{self, StreamExt};
use tracing::{debug, error, info, warn};

use super::outbox::{self, FailureOutcome, Reserved};
use super::{nats, Link, Publisher, PublisherError, Pushed};
use crate::model::{OutboxAction, OutboxEntry};

/// Entries taken per batch: one write transaction reserves their `iat`s and one records their
/// results, so the commit cost is shared; a bounded batch keeps its JWTs (up to 1 MiB each for
/// huge accounts, a few KiB typically) and results in memory a bounded while.
pub const BATCH: usize = 256;

/// Accounts pushed (and read back) at once. Each push in flight holds one reply subscription
/// and one JWT; 32 fills a loopback or LAN round trip many times over while the servers'
/// resolvers, which write each JWT to disk, answer well inside the request timeout.
pub const PUSH_CONCURRENCY: usize = 32;

/// What one push came to.
struct Pushing {
    entry: OutboxEntry,
    result: Result<Pushed, PublisherError>,
    started: Instant,
    /// Servers that answered the update (0 for a delete).
    answered: usize,
}

/// An entry ready for the network: its upsert JWT reserved in the store, or a delete.
enum Work {
    Upsert(OutboxEntry, String),
    Delete(OutboxEntry),
}

impl Publisher {
    /// Pushes `entries` (distinct accounts): reserve, push concurrently, record, notify.
    pub(super) async fn process_batch(&self, s: &mut Link, entries: Vec<OutboxEntry>) {
        let (work, settled) = match self.reserve_batch(entries).await {
            Ok(reserved) => reserved,
            Err((entries, e)) => {
                // The reserve transaction failed: every upsert of the batch failed with it.
                let failed = entries.into_iter().map(|en| (en, Err(e.to_string()))).collect();
                return self.record_batch(failed).await;
            }
        };
        let link: &Link = s;
        let results: Vec<Pushing> = stream::iter(work)
            .map(|w| self.push_one(link, w))
            .buffer_unordered(PUSH_CONCURRENCY)
            .collect()
            .await;
        let mut outcomes: Vec<(OutboxEntry, Result<Pushed, String>)> = settled;
        for Pushing { entry, result, started, answered } in results {
            s.servers = s.servers.max(answered);
            match result {
                // Batches never produce it (stale entries settle in `reserve_batch`).
                Ok(Pushed::Stale) => self.pushes.settled(&entry.account),
                Ok(Pushed::Done) => {
                    self.metrics.pushed(true, started.elapsed());
                    self.pushes.attempted(true);
                    outcomes.push((entry, Ok(Pushed::Done)));
                }
                // Losing the connection is not the entry's fault: it is retried on the next one.
                Err(e) if !s.connected() => {
                    debug!(account = %entry.account_name, error = %e, "push interrupted by a disconnect");
                    self.pushes.settled(&entry.account);
                }
                Err(e) => {
                    self.metrics.pushed(false, started.elapsed());
                    self.pushes.attempted(false);
                    outcomes.push((entry, Err(e.to_string())));
                }
            }
        }
        self.record_batch(outcomes).await;
    }

    /// One transaction reserving the next `iat` and building the JWT of every upsert. Returns
    /// the work for the network and the entries already settled (stale, or their account gone).
    #[allow(clippy::type_complexity)]
    async fn reserve_batch(
        &self,
        entries: Vec<OutboxEntry>,
    ) -> Result<
        (Vec<Work>, Vec<(OutboxEntry, Result<Pushed, String>)>),
        (Vec<OutboxEntry>, PublisherError),
    > {
        let now = crate::clock::unix_now();
        let reserve = entries.clone();
        let reserved = self
            .store
            .write_async(move |tx| outbox::reserve_all(tx, &reserve, now))
            .await
            .map_err(|e: PublisherError| (entries.clone(), e))?;
        let mut work = Vec::new();
        let mut settled = Vec::new();
        for (entry, r) in entries.into_iter().zip(reserved) {
            match (entry.action, r) {
                (OutboxAction::Delete, _) => work.push(Work::Delete(entry)),
                (_, Some(Reserved::Jwt(jwt))) => work.push(Work::Upsert(entry, jwt)),
                (_, Some(Reserved::AccountGone)) => {
                    warn!(account = %entry.account_name, "account to push is gone; dropping the entry");
                    settled.push((entry, Ok(Pushed::Done)));
                }
                (_, _) => self.pushes.settled(&entry.account),
            }
        }
        Ok((work, settled))
    }

    /// Pushes one account and reads it back.
    async fn push_one(&self, s: &Link, work: Work) -> Pushing {
        let started = Instant::now();
        match work {
            Work::Upsert(entry, jwt) => {
                let wire = nats::Wire::new(&s.client, self.settings.request_timeout, s.servers);
                let mut answered = 0;
                let result = async {
                    answered = wire.update(&entry.account, &jwt).await?;
                    wire.verify(&entry.account, &jwt).await?;
                    Ok(Pushed::Done)
                }
                .await;
                Pushing { entry, result, started, answered }
            }
            Work::Delete(entry) => {
                let result = self.delete(s, &entry).await;
                Pushing { entry, result, started, answered: 0 }
            }
        }
    }

    /// One transaction recording every result (completions and failures, each revision
    /// checked), then the waiters of each entry woken.
    async fn record_batch(&self, outcomes: Vec<(OutboxEntry, Result<Pushed, String>)>) {
        if outcomes.is_empty() {
            return;
        }
        let settings = self.settings.clone();
        let record = outcomes.clone();
        let written = self
            .store
            .write_async(move |tx| {
                let now_ms = crate::clock::unix_now_ms();
                record
                    .iter()
                    .map(|(entry, result)| match result {
                        Ok(_) => {
                            tx.complete_outbox(&entry.account, entry.revision)?;
                            Ok(None)
                        }
                        Err(message) => {
                            outbox::record_failure(tx, entry, message, &settings, now_ms).map(Some)
                        }
                    })
                    .collect::<Result<Vec<_>, PublisherError>>()
            })
            .await;
        match written {
            Ok(done) => {
                for ((entry, result), outcome) in outcomes.iter().zip(done) {
                    log_result(entry, result, outcome);
                }
            }
            Err(e) => error!(error = %e, entries = outcomes.len(), "cannot record push results"),
        }
        for (entry, _) in &outcomes {
            self.pushes.settled(&entry.account);
        }
    }
}

fn log_result(
    entry: &OutboxEntry,
    result: &Result<Pushed, String>,
    outcome: Option<FailureOutcome>,
) {
    let (name, action) = (&entry.account_name, entry.action);
    match (result, outcome) {
        (Ok(_), _) if entry.attempts > 0 => {
            info!(account = %name, ?action, failed_before = entry.attempts, "account pushed")
        }
        (Ok(_), _) => info!(account = %name, ?action, "account pushed"),
        (Err(e), Some(FailureOutcome::Retry { attempts: 1, .. })) => {
            warn!(account = %name, error = %e, "push failed; retrying with backoff")
        }
        (Err(e), Some(FailureOutcome::Retry { attempts, .. })) => {
            debug!(account = %name, attempts, error = %e, "push failed again")
        }
        (Err(e), Some(FailureOutcome::Failed { attempts })) => error!(
            account = %name, attempts, error = %e,
            "push failed too often; entry marked failed (pbn admin outbox retry)"
        ),
        (Err(_), _) => {}
    }
}
