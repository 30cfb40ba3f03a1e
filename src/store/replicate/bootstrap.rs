//! Starting a log from a store larger than one log entry.
//!
//! The full state is cut into entries of at most a byte budget each: the first is a
//! full-state entry (its marker, then the `seal` rows, then rows in key order) and the rest
//! add the remaining rows. The marker's value is the number of entries, so a replica that
//! applies position 1 knows how many positions the start spans. Applied in order at
//! positions 1.. on a replica they leave it with the store's rows.
//!
//! The store the entries came from never applies them (position 1 would first remove every
//! row the first entry lacks): once all are in the log, [`Store::mark_log_started`] records
//! them as applied. Until then nothing can change the store (it is a replica, and the log has
//! no position it could append after), so the entries can be cut again, identically, to
//! resume a start cut short by a crash.

use redb::TableHandle;

use super::super::journal::{Journal, Op, MAX_JOURNAL_BYTES};
use super::super::tables::{self, REPLICATED};
use super::super::{backend, Db, Store, StoreError};
use super::full_state::FULL_STATE_KEY;

/// The byte budget of one start entry: the journal limit less room for its header and checksum.
pub const START_ENTRY_BYTES: usize = MAX_JOURNAL_BYTES - 4096;

/// Encoded size of one operation (name and lengths included; an upper bound).
fn op_size(op: &Op) -> usize {
    op.table.len() + op.key.len() + op.value.as_ref().map_or(0, Vec::len) + 16
}

/// The number of entries a start spans, from the full-state marker of `first` (1 for a
/// single-entry start); `None` when `first` is not a full-state entry.
pub fn start_entries(first: &Journal) -> Option<u64> {
    if !super::full_state::is_full_state(first) {
        return None;
    }
    let value = first.ops[0].value.as_deref()?;
    Some(u64::from_le_bytes(value.try_into().ok()?).max(1))
}

impl Store {
    /// The store's full state as log entries of at most `budget` encoded bytes each (see the
    /// module docs). An operation larger than `budget` gets an entry of its own, which the
    /// log refuses if it exceeds the journal limit.
    pub fn full_state_entries(&self, budget: usize) -> Result<Vec<Journal>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let seal = tables::SEAL.name();
        let mut ops = Vec::new();
        let mut rest = Vec::new();
        for table in REPLICATED.iter().filter(|t| (t.name)() != tables::META.name()) {
            let name = (table.name)().to_string();
            let into = if name == seal { &mut ops } else { &mut rest };
            for (key, value) in (table.rows)(&txn)? {
                into.push(Op { table: name.clone(), key, value: Some(value) });
            }
        }
        ops.extend(rest);
        let marker = Op {
            table: tables::META.name().to_string(),
            key: FULL_STATE_KEY.as_bytes().to_vec(),
            value: Some(1u64.to_le_bytes().to_vec()),
        };
        let mut entries = vec![vec![marker]];
        let mut size = op_size(&entries[0][0]);
        for op in ops {
            let len = op_size(&op);
            if size + len > budget && entries.last().is_some_and(|e| e.len() > 1) {
                entries.push(Vec::new());
                size = 0;
            }
            size += len;
            entries.last_mut().expect("one entry at least").push(op);
        }
        let count = entries.len() as u64;
        entries[0][0].value = Some(count.to_le_bytes().to_vec());
        let schema = tables::SCHEMA_VERSION;
        Ok(entries.into_iter().map(|ops| Journal { schema, ops }).collect())
    }

    /// Records that this store is the source of the log's first `count` positions (see the
    /// module docs): the full-state marker and `count` as the applied position, in one local
    /// transaction. Only for a store that has applied nothing.
    pub fn mark_log_started(&self, count: u64) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        let txn = db.begin_write().map_err(backend("starting a write"))?;
        {
            let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
            meta.insert(FULL_STATE_KEY, count).map_err(backend("writing meta"))?;
            meta.insert(tables::APPLIED_SEQ_KEY, count).map_err(backend("writing meta"))?;
        }
        txn.commit().map_err(backend("committing the log start"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{execute, AccountAdd, Context, Request};
    use crate::seal::{KeySource, StoreKey};

    #[test]
    fn a_start_cut_into_many_entries_gives_a_replica_the_sources_rows() {
        let dir = tempfile::tempdir().unwrap();
        let text = StoreKey::generate().to_file_text();
        let key = || Some(KeySource::Key(StoreKey::from_file_text(&text).unwrap()));
        let path = dir.path().join("src.redb");
        let ctx = Context::now();
        let src = crate::admin::init::init_store_with(&path, "t", false, &ctx, key()).unwrap().0;
        for i in 0..20 {
            let add = AccountAdd { name: format!("ACC{i}"), ..AccountAdd::default() };
            execute(&src, &Request::AccountAdd(add), &ctx).unwrap();
        }
        let entries = src.full_state_entries(8192).unwrap();
        assert!(entries.len() > 3, "the small budget cuts the start: {}", entries.len());
        assert_eq!(start_entries(&entries[0]), Some(entries.len() as u64));
        assert!(entries[1..].iter().all(|e| start_entries(e).is_none()));
        for e in &entries {
            assert!(e.encode().unwrap().len() <= 8192 + 64, "an entry within the budget");
        }
        assert_eq!(entries, src.full_state_entries(8192).unwrap(), "cut the same way again");
        let genesis = src.genesis().unwrap();
        let replica = Store::create_replica(dir.path().join("r.redb"), &genesis, key()).unwrap();
        for (i, e) in entries.iter().enumerate() {
            replica.apply(e, i as u64 + 1).unwrap();
        }
        src.mark_log_started(entries.len() as u64).unwrap();
        assert_eq!(replica.applied_seq().unwrap(), entries.len() as u64);
        assert_eq!(replica.raw_rows().unwrap(), src.raw_rows().unwrap());
    }
}
