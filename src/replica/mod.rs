//! Several replicas on one log: a JetStream stream of store journals.
//!
//! Each replica keeps its own redb file as a view of the log. A change is prepared on the
//! local store ([`Store::prepare`](crate::Store::prepare)), appended to the stream with
//! `Nats-Expected-Last-Sequence` set to the last position the replica applied, so a replica
//! that missed a change cannot append over it ([`ReplicaError::Conflict`]: catch up and run
//! the command again), and then applied like every other entry, in order, by
//! [`catch_up`]. Journals hold sealed seeds only (see `store::journal`).
//!
//! - `node`: one replica at run time. No write goes into the log before the replica has
//!   started or joined it (it waits up to 5 s), so the log's first position is always its
//!   start. A write the log cannot take fails as [`ReplicaError::Unavailable`], whose message
//!   says whether the change may still be applied (an append without an answer) or is not.
//! - `log`: the stream and the follower's wake-ups; `compact`: snapshots and compaction, and
//!   the snapshot written when a replica is added, for it to join from; `snapshot`: their
//!   format in JetStream; `leases`: one holder at a time for pushes and snapshots.
//! - `join` and `bundle`: a new replica built from a bundle; `identity`: a joined replica's
//!   creds re-issued at start when an older build minted them with fewer permissions;
//!   `revoked`: a removed replica noticing its revocation.

pub mod bundle;
pub mod compact;
mod identity;
pub mod join;
pub(crate) mod leases;
mod log;
mod node;
mod revoked;
pub mod snapshot;

pub use bundle::{Bundle, BundleError};
pub use compact::{compact_once, Compaction};
pub(crate) use identity::with_current_permissions;
pub use join::{join, JoinError, Joined};
pub use log::{catch_up, follow, Log, LOG_STREAM, LOG_SUBJECT};
pub(crate) use node::Replica;
pub use snapshot::{Manifest, SnapshotError, Snapshots};

/// Errors of the replicated log.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The log moved past the position the append expected: another replica appended first.
    #[error("log conflict: the append expected log position {expected}: {detail}")]
    Conflict {
        /// The last position the appender had applied.
        expected: u64,
        /// The log's last position when it refused the append, when the server said it.
        last: Option<u64>,
        /// The server's words.
        detail: String,
    },
    /// A JetStream API request that failed or was refused.
    #[error("jetstream request {subject} failed: {detail}")]
    Request {
        /// The API subject.
        subject: String,
        /// What went wrong.
        detail: String,
    },
    /// An answer of JetStream that pbn cannot read.
    #[error("jetstream answer on {subject} is not understood: {detail}")]
    BadAnswer {
        /// The API subject.
        subject: String,
        /// What was wrong.
        detail: String,
    },
    /// The log cannot take the change now (no JetStream quorum, no connection, no answer in
    /// time): the change is not applied here (the message says whether it may still be).
    #[error("the log is unavailable (writes need jetstream quorum): {0}")]
    Unavailable(String),
    /// A JetStream request that got no answer within the client's request timeout: whether
    /// JetStream carried it out is unknown (a stream leader without quorum holds a publish).
    #[error("no answer from jetstream to {subject} within the request timeout")]
    NoAnswer {
        /// The subject of the request.
        subject: String,
    },
    /// A position the log no longer holds: it was compacted after a snapshot (a replica this
    /// far behind restores the newest snapshot instead, see `node.rs`).
    #[error(
        "log position {wanted} was compacted away (the log now starts at {first}) and no \
         snapshot covers it: stop this replica and join it again with pbn serve --join"
    )]
    Compacted {
        /// The position asked for.
        wanted: u64,
        /// The first position the log holds.
        first: u64,
    },
    /// This replica's record was removed (`pbn admin replica remove`): its creds are revoked,
    /// and it stops.
    #[error(
        "replica {name} was removed from the log (pbn admin replica remove) and its creds \
         revoked; it stops serving"
    )]
    Removed {
        /// The replica's name.
        name: String,
    },
    /// This replica's key is revoked in the AUTH account's JWT the servers hold: it was
    /// removed while it could not read the log, and it stops.
    #[error(
        "replica {name} was removed (its key is revoked in the AUTH account's JWT the servers \
         hold) and can no longer connect; it stops serving"
    )]
    Revoked {
        /// The replica's name.
        name: String,
    },
    /// A change that met a change of another replica at every attempt (a record written
    /// through other replicas without pause for longer than the conflict budget).
    #[error(
        "the change conflicted with changes made through other replicas {0} times in a row \
         and was not made; run it again"
    )]
    Conflicts(u32),
    /// A store whose position does not fit the log (the log was reset, or is another one).
    #[error("store has applied log position {applied} but the log ends at {last}")]
    Diverged {
        /// The store's applied position.
        applied: u64,
        /// The log's last position.
        last: u64,
    },
    /// A log whose start was cut short by another store than this one: its first entry is not
    /// the one this store makes, so it cannot resume it.
    #[error(
        "the log holds {last} of the {announced} entries of its start, and they were not made \
         from this store; delete stream PBN_LOG and start again"
    )]
    ForeignStart {
        /// Entries in the log.
        last: u64,
        /// Entries its first entry announces.
        announced: u64,
    },
    /// A snapshot could not be written or read.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A journal that cannot be encoded, decoded or applied.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
