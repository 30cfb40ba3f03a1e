//! Compaction at run time: snapshots of the log written by one replica at a time, and the
//! entries they cover purged from the log.
//!
//! Every replica looks every [`TICK`] (one message get: the newest manifest); when its store
//! has applied `snapshot_entries` positions past the newest snapshot (or there is none yet and
//! it has applied that many), it takes the lease `snapshot` in the lease bucket (see
//! [`super::leases`]): the one holder writes a snapshot of its own store ([`Snapshots::write`])
//! and then purges the log below the *previous* snapshot's position. So the log always holds
//! every entry since the snapshot before the newest one: a joiner that read the older manifest
//! just before it was replaced, or a follower a little behind, still finds its next entry.
//! A follower further behind finds a gap ([`ReplicaError::Compacted`]) and restores the newest
//! snapshot in place (`node.rs`).
//!
//! A replica added (`pbn admin replica add`) is about to join: the replica that made the change
//! writes a snapshot at once ([`snapshot_for_join`]) unless a fresh one exists, so the joiner
//! restores it and applies a short tail instead of the whole log. It takes the same lease and
//! purges nothing (the next periodic round does).

use std::time::Duration;

use tracing::{info, warn};

use super::leases;
use super::snapshot::{Manifest, SnapshotError, Snapshots};
use super::{Log, ReplicaError};
use crate::store::Store;

/// How often a replica checks whether a snapshot is due: one small request per tick, and a
/// snapshot due is at most this late.
pub const TICK: Duration = Duration::from_secs(2);

/// The key of the snapshot writer's lease.
const LEASE_KEY: &str = "snapshot";

/// How far the newest snapshot may be behind the log and still serve a joiner without a new
/// one: a tail this short is applied in a few milliseconds.
pub const FRESH_ENTRIES: u64 = 64;

/// How long the answer to `replica add` waits for the joiner's snapshot: a few MiB per 10,000
/// users take well under a second to write, and the admin client gives up after 10 s. A
/// slower snapshot is finished in the background (one at a time, by the lease), and a joiner
/// that starts before it is stored replays more of the log.
pub const JOIN_SNAPSHOT_WAIT: Duration = Duration::from_secs(4);

/// What a round of compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// The snapshot written.
    pub manifest: Manifest,
    /// Log entries purged (those before the previous snapshot's position, plus one).
    pub purged: u64,
}

/// One round: a snapshot and a purge when `store` is `min_entries` past the newest snapshot
/// and this replica takes the lease; `None` otherwise (not due, or another replica holds it).
pub async fn compact_once(
    store: &Store,
    log: &Log,
    log_replicas: u32,
    min_entries: u64,
) -> Result<Option<Compaction>, ReplicaError> {
    let snapshots = Snapshots::new(log.client().clone());
    let applied = store.applied_seq()?;
    let newest = newest_manifest(&snapshots).await?;
    let base = newest.as_ref().map_or(0, |m| m.seq);
    if applied < base.saturating_add(min_entries.max(1)) {
        return Ok(None);
    }
    leases::ensure_bucket(log, log_replicas).await?;
    let owner = serde_json::json!({ "applied": applied }).to_string().into_bytes();
    let Some(lease) = leases::take(log, LEASE_KEY, owner).await? else { return Ok(None) };
    let done = write_and_purge(store, log, &snapshots, log_replicas, newest).await;
    leases::release(log, lease).await;
    done.map(Some)
}

async fn write_and_purge(
    store: &Store,
    log: &Log,
    snapshots: &Snapshots,
    log_replicas: u32,
    previous: Option<Manifest>,
) -> Result<Compaction, ReplicaError> {
    snapshots.ensure_stream(log_replicas).await?;
    let manifest = snapshots.write(store).await?;
    // Entries since the previous snapshot stay (see the module docs).
    let purged = match previous.filter(|p| p.seq > 0 && p.seq < manifest.seq) {
        Some(p) => log.purge_before(p.seq + 1).await?,
        None => 0,
    };
    info!(snapshot = manifest.seq, purged, "log compacted");
    Ok(Compaction { manifest, purged })
}

/// Writes a snapshot of `store` for a replica about to join unless the newest snapshot is at
/// most [`FRESH_ENTRIES`] behind `store`, or another replica holds the snapshot lease (it is
/// writing one). Waits at most [`JOIN_SNAPSHOT_WAIT`] for it (see there); returns it when
/// written in that time. A failure is logged only: the joiner then replays the log. The task
/// left running past the wait is one per replica added, and of several at once only the
/// lease holder writes (the others end after one manifest read and one lease request).
pub(crate) async fn snapshot_for_join(
    store: &Store,
    log: &Log,
    log_replicas: u32,
) -> Option<Manifest> {
    let (store, log) = (store.clone(), log.clone());
    let round = tokio::spawn(async move {
        let written = snapshot_unless_fresh(&store, &log, log_replicas).await;
        match &written {
            Ok(Some(m)) => info!(snapshot = m.seq, "snapshot written for a joining replica"),
            Ok(None) => {}
            Err(e) => warn!(error = %e, "no snapshot for a joining replica: it replays the log"),
        }
        written
    });
    match tokio::time::timeout(JOIN_SNAPSHOT_WAIT, round).await {
        Ok(Ok(Ok(written))) => written,
        Ok(_) => None,
        Err(_) => {
            info!(wait = ?JOIN_SNAPSHOT_WAIT, "the joiner's snapshot is finished in the background");
            None
        }
    }
}

/// The newest snapshot's manifest; an unreadable one counts as none (the next snapshot
/// replaces it with a good one).
async fn newest_manifest(snapshots: &Snapshots) -> Result<Option<Manifest>, ReplicaError> {
    match snapshots.manifest().await {
        Ok(m) => Ok(m),
        Err(SnapshotError::Corrupt { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn snapshot_unless_fresh(
    store: &Store,
    log: &Log,
    log_replicas: u32,
) -> Result<Option<Manifest>, ReplicaError> {
    let snapshots = Snapshots::new(log.client().clone());
    let applied = store.applied_seq()?;
    let newest = newest_manifest(&snapshots).await?;
    if newest.is_some_and(|m| m.seq.saturating_add(FRESH_ENTRIES) >= applied) {
        return Ok(None);
    }
    leases::ensure_bucket(log, log_replicas).await?;
    let owner = serde_json::json!({ "applied": applied, "for": "join" }).to_string().into_bytes();
    let Some(lease) = leases::take(log, LEASE_KEY, owner).await? else { return Ok(None) };
    let written = match snapshots.ensure_stream(log_replicas).await {
        Ok(()) => snapshots.write(store).await,
        Err(e) => Err(e),
    };
    leases::release(log, lease).await;
    Ok(Some(written?))
}

/// Runs [`compact_once`] every [`TICK`] until `stop`; a failed round is logged and tried
/// again (the log keeps its entries meanwhile: joins still work, only slower).
pub(crate) async fn run(
    store: Store,
    log: Log,
    log_replicas: u32,
    min_entries: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = crate::shutdown::requested(&mut stop) => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        match compact_once(&store, &log, log_replicas, min_entries).await {
            Ok(_) => {}
            Err(ReplicaError::Snapshot(SnapshotError::Superseded(_))) => {}
            Err(e) => warn!(error = %e, "no snapshot of the log this round"),
        }
    }
}
