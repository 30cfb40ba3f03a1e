//! One replica at run time: its store as a view of the log, kept current by a follower, and the
//! only way a replica's store is changed, [`Replica::write`].
//!
//! - **Start** ([`Replica::follow_on`], on every new connection of the AUTH service user): the
//!   stream is created unless it exists; an empty log is started with this store's full state
//!   (`Store::full_state`), appended with expected last position 0, so of two replicas
//!   starting at once one starts it and the other follows. Until the log answers, the replica
//!   serves logins from its view and reports itself not in sync ([`Replica::in_sync`]).
//! - **Follow**: every append on the log's subject wakes the follower (the message itself is
//!   not trusted: a refused append is seen too), which reads and applies each next position
//!   (`Store::apply`, the position recorded in the same transaction) and announces it on a
//!   `watch` channel ([`Replica::applied`]). A poll every [`POLL`] covers a missed wake-up.
//!   The subscription buffers wake-ups only (coalesced), never entries: the follower holds one
//!   entry at a time.
//! - **Behind the compaction point**: an entry the log no longer holds (compacted after a
//!   snapshot, while this replica was stopped or cut off) is seen as a gap
//!   ([`ReplicaError::Compacted`]); the replica then restores the newest snapshot in place
//!   (`Store::resync`, one transaction) and follows on from its position. Without a snapshot
//!   that covers the gap it stops following, reports itself not in sync and says to join again.
//! - **Compaction**: beside the follower, `compact::run` (one writer at a time, by lease).
//! - **Write**: see [`Replica::write`].

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use tokio::sync::{watch, Mutex};
use tracing::{info, warn};

use super::{Log, ReplicaError};
use crate::config::ReplicaSettings;
use crate::store::{start_entries, Journal, ReplicaRecord, Store, StoreError, START_ENTRY_BYTES};

/// Attempts of one write that meets changes of other replicas. Each conflict means another
/// replica's change went in, and the loser catches up to the log's end before it runs again,
/// so it loses again only to a change appended in that short window: a replica whose own
/// queue keeps it appending back to back. Sixteen rounds (and [`CONFLICT_BUDGET`]) let such a
/// queue drain; past them the caller hears of it ([`ReplicaError::Conflicts`]).
pub(crate) const MAX_ATTEMPTS: u32 = 16;
/// How long one write may keep meeting conflicts before it gives up: well inside the admin
/// client's 10 s request timeout, which must also cover the push wait (5 s) after the write.
pub(crate) const CONFLICT_BUDGET: Duration = Duration::from_secs(3);
/// How long an append may wait for JetStream's acknowledgement: a log without quorum does not
/// answer, and an admin write must fail fast rather than hang (a few seconds at most).
pub(crate) const APPEND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a writer waits for its own change (or the one it conflicted with) to be applied.
pub(crate) const APPLY_WAIT: Duration = Duration::from_secs(5);
/// How often the follower looks at the log without a wake-up (a missed one after a reconnect).
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// How long a replica that finds itself removed goes on before it stops: the admin request
/// that removed it may be running on it, and is answered after at most the push wait
/// (`lifecycle::PUSH_WAIT`, 5 s) and its kicks; it takes no push lease meanwhile.
const REMOVAL_GRACE: Duration = Duration::from_secs(7);
/// Pause before setting the log up again after a failure (JetStream starting, no quorum).
const RETRY: Duration = Duration::from_secs(1);

/// A replica's store and its place in the log. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    log_replicas: u32,
    snapshot_entries: u64,
    /// The AUTH service user's connection: the log is reached through its current client.
    client: watch::Receiver<Option<Client>>,
    /// The last position applied to the store.
    applied: watch::Sender<u64>,
    /// Whether the last look at the log succeeded and everything in it was applied.
    in_sync: watch::Sender<bool>,
    /// One write of this replica at a time: concurrent writes of one replica would only
    /// conflict with each other. Waiters queue here; the admin API bounds how many.
    turn: Mutex<()>,
    /// This replica's name when it joined with a bundle (its record in `replicas`).
    name: std::sync::OnceLock<String>,
}

impl Replica {
    /// Makes `store` a replica (marked in its `meta`: local writes refused from now on) whose
    /// log is reached through `client`.
    pub(crate) fn new(
        store: Store,
        settings: &ReplicaSettings,
        client: watch::Receiver<Option<Client>>,
    ) -> Result<Replica, ReplicaError> {
        store.mark_replica()?;
        let applied = store.applied_seq()?;
        let inner = Inner {
            store,
            log_replicas: settings.log_replicas,
            snapshot_entries: settings.snapshot_entries,
            client,
            applied: watch::Sender::new(applied),
            in_sync: watch::Sender::new(false),
            turn: Mutex::new(()),
            name: std::sync::OnceLock::new(),
        };
        Ok(Replica { inner: Arc::new(inner) })
    }

    /// The last position applied, announced after each apply.
    pub(crate) fn applied(&self) -> watch::Receiver<u64> {
        self.inner.applied.subscribe()
    }

    /// Whether the replica has applied everything the log held when it last looked.
    pub(crate) fn in_sync(&self) -> watch::Receiver<bool> {
        self.inner.in_sync.subscribe()
    }

    /// The store this replica keeps.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Copies of the log JetStream keeps.
    pub(crate) fn log_replicas(&self) -> u32 {
        self.inner.log_replicas
    }

    /// The log through the current connection.
    pub(crate) fn log(&self) -> Result<Log, ReplicaError> {
        let client = self.inner.client.borrow().clone();
        client
            .map(Log::new)
            .ok_or_else(|| ReplicaError::Unavailable("no connection to a nats server".into()))
    }

    /// Follows the log through `client` until `stop` (see the module docs). Returns an error
    /// only for what needs an operator: an entry the store refuses, a store ahead of the log.
    pub(crate) async fn follow_on(
        &self,
        client: Client,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ReplicaError> {
        let log = Log::new(client);
        let mut failures = 0u32;
        loop {
            match self.start_log(&log).await {
                Ok(()) => break,
                Err(e @ (ReplicaError::Store(_) | ReplicaError::Diverged { .. })) => return Err(e),
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        warn!(error = %e, "the log cannot be set up; serving from the local view");
                    }
                }
            }
            tokio::select! {
                _ = crate::shutdown::requested(&mut stop) => return Ok(()),
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
        let (store, copies, every) =
            (self.inner.store.clone(), self.inner.log_replicas, self.inner.snapshot_entries);
        let compact = super::compact::run(store, log.clone(), copies, every, stop.clone());
        // The compactor ends only on `stop`; a follower that stops on an error ends it too.
        tokio::select! {
            biased;
            followed = self.follow(&log, &mut stop) => followed,
            () = compact => Ok(()),
        }
    }

    /// Applies the log as it grows (see the module docs) until `stop` or an error that needs
    /// an operator.
    async fn follow(
        &self,
        log: &Log,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ReplicaError> {
        let mut wakes = super::log::Wakes::subscribe(log.client()).await?;
        let mut reached = self.inner.store.applied_seq()?;
        loop {
            let before = reached;
            match self.catch_up(log).await {
                Ok(seq) => reached = seq,
                Err(e @ (ReplicaError::Store(_) | ReplicaError::Compacted { .. })) => {
                    self.inner.in_sync.send_replace(false);
                    return Err(e);
                }
                Err(e) => {
                    if self.inner.in_sync.send_replace(false) {
                        warn!(error = %e, "the log cannot be read; serving from the local view");
                    }
                }
            }
            if wakes.next(stop, POLL, reached > before).await? {
                return Ok(());
            }
        }
    }

    /// Creates the stream unless it exists and starts an empty log from this store: its full
    /// state cut into entries of at most [`START_ENTRY_BYTES`] (see `store::replicate`), each
    /// appended at its position, then recorded as applied here. A start cut short (this store
    /// has applied nothing and the log holds fewer entries than its first one announces) is
    /// resumed: nothing can change the store meanwhile, so it is cut the same way again.
    async fn start_log(&self, log: &Log) -> Result<(), ReplicaError> {
        log.ensure_stream(self.inner.log_replicas).await?;
        let last = log.last_seq().await?;
        let applied = self.inner.store.applied_seq()?;
        if applied > last {
            return Err(ReplicaError::Diverged { applied, last });
        }
        let first = match last {
            0 => None,
            // A compacted log was started long ago.
            _ => match log.get(1).await {
                Err(ReplicaError::Compacted { .. }) => return Ok(()),
                got => got?,
            },
        };
        let announced = first.as_ref().and_then(start_entries);
        let resume = applied == 0 && announced.is_some_and(|n| n > last);
        if last > 0 && !resume {
            return Ok(());
        }
        let store = self.inner.store.clone();
        let entries =
            tokio::task::spawn_blocking(move || store.full_state_entries(START_ENTRY_BYTES))
                .await
                .map_err(|e| StoreError::TaskFailed(e.to_string()))??;
        if resume && (announced != Some(entries.len() as u64) || first.as_ref() != entries.first())
        {
            let announced = announced.unwrap_or_default();
            return Err(ReplicaError::ForeignStart { last, announced });
        }
        for (at, entry) in entries.iter().enumerate().skip(last as usize) {
            match log.append(entry, at as u64).await {
                Ok(_) => {}
                Err(ReplicaError::Conflict { .. }) if at == 0 => {
                    info!("another replica started the log");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let (store, count) = (self.inner.store.clone(), entries.len() as u64);
        tokio::task::spawn_blocking(move || store.mark_log_started(count))
            .await
            .map_err(|e| StoreError::TaskFailed(e.to_string()))??;
        self.inner.applied.send_replace(count);
        let rows: usize = entries.iter().map(|e| e.ops.len()).sum();
        info!(rows, entries = count, "log started from this store's full state");
        Ok(())
    }

    /// Applies every entry after the store's position, announcing each; then in sync. A gap
    /// (compacted entries) is bridged by the newest snapshot (see the module docs).
    async fn catch_up(&self, log: &Log) -> Result<u64, ReplicaError> {
        let mut seq = self.inner.store.applied_seq()?;
        loop {
            let journal = match log.get(seq + 1).await {
                Ok(Some(journal)) => journal,
                Ok(None) => break,
                Err(ReplicaError::Compacted { wanted, first }) => {
                    seq = self.resync(log, wanted, first).await?;
                    self.inner.applied.send_replace(seq);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (store, next) = (self.inner.store.clone(), seq + 1);
            tokio::task::spawn_blocking(move || store.apply(&journal, next))
                .await
                .map_err(|e| StoreError::TaskFailed(e.to_string()))??;
            seq = next;
            self.inner.applied.send_replace(seq);
        }
        if !self.inner.in_sync.send_replace(true) {
            info!(applied = seq, "in sync with the log");
        }
        Ok(seq)
    }

    /// Restores the newest snapshot over this replica's rows when it covers the gap from
    /// `wanted` to the log's `first` position; returns the snapshot's position.
    async fn resync(&self, log: &Log, wanted: u64, first: u64) -> Result<u64, ReplicaError> {
        let snapshots = super::Snapshots::new(log.client().clone());
        let snap = match snapshots.latest().await? {
            Some(snap) if snap.seq + 1 >= first && snap.seq >= wanted => snap,
            _ => return Err(ReplicaError::Compacted { wanted, first }),
        };
        let (store, at) = (self.inner.store.clone(), snap.seq);
        tokio::task::spawn_blocking(move || store.resync(&snap))
            .await
            .map_err(|e| StoreError::TaskFailed(e.to_string()))??;
        warn!(
            applied = wanted - 1,
            log_starts_at = first,
            snapshot = at,
            "this replica was behind the log's compaction point; restored the newest snapshot"
        );
        Ok(at)
    }

    /// Waits [`REMOVAL_GRACE`] (or until `stop`) before a removed replica stops: the admin
    /// request that removed it may be running here, and is answered first.
    pub(crate) async fn removal_grace(&self, mut stop: watch::Receiver<bool>) {
        tokio::select! {
            _ = crate::shutdown::requested(&mut stop) => {}
            _ = tokio::time::sleep(REMOVAL_GRACE) => {}
        }
    }

    /// Whether this replica (joined as a named one) has been removed: its record is gone.
    pub(crate) async fn is_removed(&self) -> Result<bool, ReplicaError> {
        let Some(name) = self.inner.name.get().cloned() else { return Ok(false) };
        let found = self.inner.store.read_async(move |tx| crate::store::get_replica(tx, &name));
        Ok(found.await?.is_none())
    }

    /// Names this replica as the joined replica `name`, then returns
    /// [`ReplicaError::Removed`] once its record is gone from the store, looked at after every
    /// applied position; `Ok` on `stop`. A removed replica pushes nothing meanwhile (see
    /// `server/publisher/lease.rs`): the push of its own revocation is left to the others.
    pub(crate) async fn removed(
        &self,
        name: &str,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ReplicaError> {
        let _ = self.inner.name.set(name.to_string());
        let mut applied = self.applied();
        loop {
            if self.is_removed().await? {
                let e = ReplicaError::Removed { name: name.to_string() };
                tracing::error!(error = %e, grace = ?REMOVAL_GRACE, "stopping");
                return Err(e);
            }
            tokio::select! {
                _ = crate::shutdown::requested(&mut stop) => return Ok(()),
                changed = applied.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }

    /// Waits until position `seq` is applied here, at most [`APPLY_WAIT`]; whether it was.
    pub(crate) async fn wait_applied(&self, seq: u64) -> bool {
        let mut applied = self.applied();
        let reached = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|s| *s >= seq)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Waits (at most [`APPLY_WAIT`]) until this replica has started or joined the log: a
    /// change appended before the log's start (the publisher completing a push at start-up,
    /// say) would take the start's first position, and the start would then never be made.
    async fn wait_started(&self) -> Result<(), ReplicaError> {
        let mut applied = self.applied();
        let started = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|s| *s > 0)).await;
        if matches!(started, Ok(Ok(_))) {
            return Ok(());
        }
        Err(ReplicaError::Unavailable(format!(
            "this replica has not started or joined the log within {APPLY_WAIT:?}; the change \
             is not applied"
        )))
    }

    /// Waits until everything the log holds now is applied here.
    pub(crate) async fn sync(&self) -> Result<(), ReplicaError> {
        let log = self.log()?;
        let last = tokio::time::timeout(APPEND_TIMEOUT, log.last_seq())
            .await
            .map_err(|_| unanswered())?
            .map_err(unavailable)?;
        if self.wait_applied(last).await {
            Ok(())
        } else {
            Err(ReplicaError::Unavailable(format!("log position {last} not applied here yet")))
        }
    }

    /// Runs `run` against the store with its write prepared (committed nowhere), appends the
    /// change to the log after the last position applied here, and returns once this replica
    /// has applied it (at most [`APPLY_WAIT`]; later, the change is in the log and a warning
    /// says so). `run` makes at most one write; without one, its value is returned at once.
    ///
    /// When another replica appended first ([`ReplicaError::Conflict`]), waits until this
    /// replica has applied everything the log held at the refusal and runs `run` again on the
    /// new state, up to [`MAX_ATTEMPTS`] times within [`CONFLICT_BUDGET`]
    /// ([`ReplicaError::Conflicts`]). A log without quorum, or out of reach, fails at once or
    /// after [`APPEND_TIMEOUT`], always as [`ReplicaError::Unavailable`], whose message says
    /// whether the change may still be applied (an append JetStream did not answer) or is not
    /// (refused, never sent); the store is never changed except by the follower, so nothing is
    /// half-applied.
    ///
    /// A change that adds a replica is followed by a snapshot of the log unless a fresh one
    /// exists (see [`super::compact::snapshot_for_join`]), so the replica joins from it.
    pub(crate) async fn write<T, F>(&self, run: F) -> Result<T, ReplicaError>
    where
        F: Fn(&Store) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let (value, journal) = self.append_in_turn(Arc::new(run)).await?;
        if journal.as_ref().is_some_and(ReplicaRecord::written_by) {
            if let Ok(log) = self.log() {
                let copies = self.inner.log_replicas;
                super::compact::snapshot_for_join(&self.inner.store, &log, copies).await;
            }
        }
        Ok(value)
    }

    /// [`Replica::write`] up to its change applied here, in this replica's turn: the value and
    /// the journal appended (`None`: `run` changed nothing).
    async fn append_in_turn<T, F>(&self, run: Arc<F>) -> Result<(T, Option<Journal>), ReplicaError>
    where
        F: Fn(&Store) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let _turn = self.inner.turn.lock().await;
        self.wait_started().await?;
        let budget = tokio::time::Instant::now() + CONFLICT_BUDGET;
        for attempt in 0..MAX_ATTEMPTS {
            let expected = *self.inner.applied.borrow();
            let (store, run) = (self.inner.store.clone(), run.clone());
            let (value, journal) =
                tokio::task::spawn_blocking(move || Store::prepared(|| run(&store)))
                    .await
                    .map_err(|e| StoreError::TaskFailed(e.to_string()))?;
            let Some(journal) = journal.filter(|j| !j.is_empty()) else { return Ok((value, None)) };
            let log = self.log().map_err(not_applied)?;
            let appended = tokio::time::timeout(APPEND_TIMEOUT, log.append(&journal, expected))
                .await
                .map_err(|_| unanswered())?;
            match appended {
                Ok(seq) => {
                    if !self.wait_applied(seq).await {
                        warn!(seq, "change in the log but not applied here yet");
                    }
                    return Ok((value, Some(journal)));
                }
                Err(ReplicaError::Conflict { last, .. }) => {
                    let reached = last.unwrap_or(0).max(expected + 1);
                    if !self.wait_applied(reached).await {
                        return Err(ReplicaError::Unavailable(format!(
                            "the log reached position {reached} with a change made through \
                             another replica (or one left unanswered) that is not applied here \
                             yet; this change is not applied: run it again"
                        )));
                    }
                    if tokio::time::Instant::now() >= budget {
                        return Err(ReplicaError::Conflicts(attempt + 1));
                    }
                }
                Err(e) => return Err(not_applied(e)),
            }
        }
        Err(ReplicaError::Conflicts(MAX_ATTEMPTS))
    }
}

/// An append JetStream did not acknowledge in time: a stream leader that has not yet noticed
/// it lost quorum may hold it and commit it once quorum is back, so the caller hears that too.
fn unanswered() -> ReplicaError {
    ReplicaError::Unavailable(format!(
        "no answer from jetstream within {APPEND_TIMEOUT:?}; the change is not applied, but a \
         stream leader may still commit it once quorum is back: check with show or list \
         before running it again"
    ))
}

/// A write that failed on its way to the log, as [`Replica::write`] reports it: unavailable,
/// saying whether the change may still be applied.
fn not_applied(e: ReplicaError) -> ReplicaError {
    match e {
        ReplicaError::NoAnswer { .. } => unanswered(),
        ReplicaError::Unavailable(why) => {
            ReplicaError::Unavailable(format!("{why}; the change is not applied"))
        }
        ReplicaError::Request { detail, .. } => ReplicaError::Unavailable(format!(
            "the append was not taken: {detail}; the change is not applied"
        )),
        ReplicaError::BadAnswer { detail, .. } => ReplicaError::Unavailable(format!(
            "jetstream's answer to the append is not understood ({detail}); the change may \
             still be applied: check with show or list before running it again"
        )),
        e => e,
    }
}

/// A failed request to the log, as a reader that waits for the log reports it.
fn unavailable(e: ReplicaError) -> ReplicaError {
    match e {
        ReplicaError::Request { detail, .. } => ReplicaError::Unavailable(detail),
        e @ ReplicaError::NoAnswer { .. } => ReplicaError::Unavailable(e.to_string()),
        e => e,
    }
}

#[cfg(test)]
mod tests;
