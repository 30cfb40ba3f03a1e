//! The full state of a store as one journal (the first entry of a log), and the replica mark.
//!
//! A log starts with a full-state entry: a marker row in `meta` ([`FULL_STATE_KEY`]) and
//! every row of every replicated table but `meta`. Applying it (position 1 only) replaces the
//! store's rows with the entry's, after checking the entry's `seal` rows are the store's: a
//! store under another key could not open the sealed seeds it carries.
//!
//! A store serving as a replica carries [`REPLICA_KEY`] in `meta`: its writes must reach it
//! through the log, so a local write that would commit is refused
//! ([`JournalError::ReplicaStore`]), and so is sealing it on open or rekeying it.

use std::path::Path;

use redb::{ReadableTable, TableHandle};

use super::super::journal::{Journal, JournalError, Op};
use super::super::tables::{self, REPLICATED};
use super::super::{backend, Db, Rows, Store, StoreError};

/// The `meta` row that marks a full-state entry (its first operation).
pub(crate) const FULL_STATE_KEY: &str = "log_full_state";
/// The `meta` row that marks a store serving as a replica of the log.
pub(crate) const REPLICA_KEY: &str = "replica";

/// Whether `journal` is a full-state entry.
pub(crate) fn is_full_state(journal: &Journal) -> bool {
    journal
        .ops
        .first()
        .is_some_and(|op| op.table == tables::META.name() && op.key == FULL_STATE_KEY.as_bytes())
}

/// Refuses a committing write on a store marked as a replica (see the module docs).
pub(crate) fn refuse_if_replica(
    txn: &redb::WriteTransaction,
    path: &Path,
) -> Result<(), StoreError> {
    let meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
    if meta.get(REPLICA_KEY).map_err(backend("reading meta"))?.is_some() {
        return Err(JournalError::ReplicaStore(path.to_path_buf()).into());
    }
    Ok(())
}

/// The rows of the seal table among `ops`.
fn seal_rows(ops: &[Op]) -> Rows {
    let seal = tables::SEAL.name();
    let mut rows: Rows = ops
        .iter()
        .filter(|op| op.table == seal)
        .filter_map(|op| Some((op.key.clone(), op.value.clone()?)))
        .collect();
    rows.sort();
    rows
}

impl Store {
    /// Marks the store as a replica of the log (a local transaction, not journaled): from now
    /// on only the log changes it. Idempotent.
    pub fn mark_replica(&self) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        let txn = db.begin_write().map_err(backend("starting a write"))?;
        {
            let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
            meta.insert(REPLICA_KEY, 1).map_err(backend("writing meta"))?;
        }
        txn.commit().map_err(backend("committing"))
    }

    /// Whether the store is marked as a replica of the log.
    pub fn is_replica(&self) -> Result<bool, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
        Ok(meta.get(REPLICA_KEY).map_err(backend("reading meta"))?.is_some())
    }

    /// Refuses with [`JournalError::ReplicaStore`] when the store is a replica (for the local
    /// operations that write outside the journal: sealing, rekeying).
    pub fn refuse_on_replica(&self) -> Result<(), StoreError> {
        if self.is_replica()? {
            return Err(JournalError::ReplicaStore(self.inner.path.clone()).into());
        }
        Ok(())
    }

    /// The whole store as one journal: the full-state marker, then every row of every
    /// replicated table but `meta`, in key order (the first entry of a new log).
    pub fn full_state(&self) -> Result<Journal, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let marker = Op {
            table: tables::META.name().to_string(),
            key: FULL_STATE_KEY.as_bytes().to_vec(),
            value: Some(1u64.to_le_bytes().to_vec()),
        };
        let mut ops = vec![marker];
        for table in REPLICATED.iter().filter(|t| (t.name)() != tables::META.name()) {
            let name = (table.name)().to_string();
            for (key, value) in (table.rows)(&txn)? {
                ops.push(Op { table: name.clone(), key, value: Some(value) });
            }
        }
        Ok(Journal { schema: tables::SCHEMA_VERSION, ops })
    }

    /// For a full-state entry at `seq`: checks it may be applied here and returns the
    /// removals that clear the store's replicated rows (all but `meta` and `seal`) first.
    pub(super) fn full_state_removals(
        &self,
        journal: &Journal,
        seq: u64,
    ) -> Result<Vec<Op>, StoreError> {
        if seq != 1 {
            return Err(JournalError::FullStateMisplaced(seq).into());
        }
        let seal = tables::SEAL.name();
        let mut removals = Vec::new();
        let mut local_seal = Rows::new();
        for (name, rows) in self.raw_rows()? {
            if name == seal {
                local_seal = rows;
            } else if name != tables::META.name() {
                let remove = |(key, _)| Op { table: name.to_string(), key, value: None };
                removals.extend(rows.into_iter().map(remove));
            }
        }
        local_seal.sort();
        if seal_rows(&journal.ops) != local_seal {
            return Err(JournalError::KeyMismatch(self.inner.path.clone()).into());
        }
        Ok(removals)
    }
}

#[cfg(test)]
#[path = "full_state_tests.rs"]
mod tests;
