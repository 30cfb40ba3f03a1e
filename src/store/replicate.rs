//! Replaying journals: how a replica's store follows the log of changes.
//!
//! [`Store::apply`] replays a [`Journal`] in one write transaction and records its log position
//! (`applied_seq` in `meta`) in the same transaction, so a crash never leaves a change applied
//! without its position or the reverse. Positions are consecutive: a journal that is not the
//! next one is refused with [`JournalError::OutOfOrder`] and changes nothing. Each operation is
//! replayed through the table's own types from the registry in `tables.rs`, after checking its
//! bytes are a valid encoding of them.
//!
//! Capturing: [`Store::write_journaled`] commits a write and returns its journal;
//! [`Store::prepare`] runs a write, returns its journal and commits nothing (a replica
//! prepares a change, appends it to the log and applies it at the position the log gave).
//! [`Store::journaled`] and [`Store::prepared`] do the same for every [`Store::write`] made on
//! this thread while they run, so a whole admin command (`pbn::execute`) can be captured.
//!
//! A joining replica starts from [`Store::create_replica`]: a new file whose seal metadata
//! (key check value, passphrase salt) is a byte copy of the first replica's
//! ([`Store::genesis`]), so the same store key opens both and sealed records copied from
//! the log open under it; then it applies the log from position 1.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value};

use super::journal::{Journal, JournalError, Op};
use super::tables::{self, REPLICATED};
use super::{backend, Db, Store, StoreError, WriteTx};
use crate::seal::KeySource;

mod bootstrap;
mod full_state;

pub use bootstrap::{start_entries, START_ENTRY_BYTES};
pub(crate) use full_state::refuse_if_replica;

/// Replays one raw row on a table (see `tables::Replicated`).
pub(crate) type ApplyFn =
    fn(&redb::WriteTransaction, &[u8], Option<&[u8]>) -> Result<(), StoreError>;

/// Every raw row of a table, in key order.
pub(crate) type RowsFn = fn(&redb::ReadTransaction) -> Result<Rows, StoreError>;

/// Raw rows: (key bytes, value bytes).
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Whether `bytes` is an encoding `T` reads back to the same bytes. redb's decoders assume
/// valid input and may panic on anything else; a panic here is caught and means "invalid".
pub(crate) fn valid<T: Value>(bytes: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| T::as_bytes(&T::from_bytes(bytes)).as_ref() == bytes))
        .unwrap_or(false)
}

/// Writes (or removes) one raw row of `def`, after checking it encodes the table's types.
pub(crate) fn apply_row<K: Key + 'static, V: Value + 'static>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<'static, K, V>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    let bad = |what| JournalError::BadBytes { table: def.name().to_string(), what };
    if !valid::<K>(key) {
        return Err(bad("key").into());
    }
    if value.is_some_and(|v| !valid::<V>(v)) {
        return Err(bad("value").into());
    }
    let mut table = txn.open_table(def).map_err(backend("opening a table"))?;
    match value {
        Some(v) => table.insert(K::from_bytes(key), V::from_bytes(v)).map(drop),
        None => table.remove(K::from_bytes(key)).map(drop),
    }
    .map_err(backend("applying a journal"))
}

/// Every raw row of `def`.
pub(crate) fn rows<K: Key + 'static, V: Value + 'static>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<Rows, StoreError> {
    let table = txn.open_table(def).map_err(backend("opening a table"))?;
    let mut out = Vec::new();
    for item in table.iter().map_err(backend("listing rows"))? {
        let (k, v) = item.map_err(backend("listing rows"))?;
        out.push((
            K::as_bytes(&k.value()).as_ref().to_vec(),
            V::as_bytes(&v.value()).as_ref().to_vec(),
        ));
    }
    Ok(out)
}

/// Replays `ops` in `txn`; an operation on a table outside the registry is refused.
pub(super) fn replay(txn: &redb::WriteTransaction, ops: &[Op]) -> Result<(), StoreError> {
    for op in ops {
        let table = tables::replicated(&op.table)
            .ok_or_else(|| JournalError::UnknownTable(op.table.clone()))?;
        (table.apply)(txn, &op.key, op.value.as_deref())?;
    }
    Ok(())
}

/// What [`Store::write`] does with the journals of the writes on this thread.
struct Capture {
    commit: bool,
    journals: Vec<Journal>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Runs `f` with `capture` active on this thread; returns what it captured.
fn capturing<T>(capture: Capture, f: impl FnOnce() -> T) -> (T, Vec<Journal>) {
    struct Restore(Option<Capture>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAPTURE.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(capture));
    let restore = Restore(outer);
    let value = f();
    let journals = CAPTURE.with(|c| c.borrow_mut().take()).map(|c| c.journals);
    drop(restore);
    (value, journals.unwrap_or_default())
}

impl Store {
    /// Runs `f` in one write transaction like [`Store::write`], commits on `Ok` and returns
    /// the journal of what it changed.
    pub fn write_journaled<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<(T, Journal), E> {
        self.write_with(f, true)
    }

    /// Runs `f` in one write transaction and returns what it would change, committing
    /// nothing: what a replica does before the log accepts the change.
    pub fn prepare<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<(T, Journal), E> {
        self.write_with(f, false)
    }

    /// Runs `f` (on this thread); every [`Store::write`] it commits is journaled, in order.
    /// Capture is per thread, not per store: `f` should write one store only.
    pub fn journaled<T>(f: impl FnOnce() -> T) -> (T, Vec<Journal>) {
        capturing(Capture { commit: true, journals: Vec::new() }, f)
    }

    /// Runs `f` (on this thread) with its [`Store::write`] prepared, not committed: returns
    /// the journal of its write, if it made one. A second write inside `f` fails with
    /// [`JournalError::PreparedTwice`], since it would not see the first one's changes.
    pub fn prepared<T>(f: impl FnOnce() -> T) -> (T, Option<Journal>) {
        let (value, mut journals) = capturing(Capture { commit: false, journals: Vec::new() }, f);
        (value, journals.pop())
    }

    /// Whether writes on this thread commit (no capture, or [`Store::journaled`]).
    pub(super) fn capture_commits() -> bool {
        CAPTURE.with(|c| c.borrow().as_ref().is_none_or(|c| c.commit))
    }

    /// Hands the journal of a finished write to the capture active on this thread, if any.
    pub(super) fn captured(journal: Journal) -> Result<(), StoreError> {
        CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(c) if !c.commit && !c.journals.is_empty() => {
                Err(JournalError::PreparedTwice.into())
            }
            Some(c) => {
                c.journals.push(journal);
                Ok(())
            }
            None => Ok(()),
        })
    }

    /// Applies `journal` as log position `seq` in one write transaction that also records
    /// `seq` as applied. A full-state entry (position 1 only) replaces every replicated row
    /// but `meta` and `seal`, whose rows must be the store's ([`JournalError::KeyMismatch`]). Refuses (changing nothing) a position other than the next one
    /// ([`JournalError::OutOfOrder`]), another schema, an unknown table or invalid bytes.
    pub fn apply(&self, journal: &Journal, seq: u64) -> Result<(), StoreError> {
        self.apply_at(journal, seq, false)
    }

    /// Applies a full-state entry (`Store::full_state` of a replica that had applied up to
    /// `seq`: a snapshot of the log) to a store that has applied nothing yet, recording `seq`
    /// as applied: the next entry it takes is `seq + 1`. How a replica joins a log whose first
    /// entries are gone.
    pub fn restore_full_state(&self, journal: &Journal, seq: u64) -> Result<(), StoreError> {
        if !full_state::is_full_state(journal) {
            let detail = "a restore takes a full-state entry";
            return Err(JournalError::Malformed { offset: 0, detail }.into());
        }
        self.apply_at(journal, seq, true)
    }

    fn apply_at(&self, journal: &Journal, seq: u64, restore: bool) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        if journal.schema != tables::SCHEMA_VERSION {
            let current = tables::SCHEMA_VERSION;
            return Err(JournalError::Schema { found: journal.schema, current }.into());
        }
        // Read before the write begins: in replicated mode the follower is the only writer
        // that commits, so nothing changes the rows in between.
        let removals = match full_state::is_full_state(journal) {
            true => self.full_state_removals(journal, if restore { 1 } else { seq })?,
            false => Vec::new(),
        };
        let txn = db.begin_write().map_err(backend("starting an apply"))?;
        {
            let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
            let applied = meta.get(tables::APPLIED_SEQ_KEY).map_err(backend("reading meta"))?;
            let expected = applied.map_or(0, |g| g.value()) + 1;
            if (restore && expected != 1) || (!restore && seq != expected) {
                return Err(JournalError::OutOfOrder { expected, got: seq }.into());
            }
            meta.insert(tables::APPLIED_SEQ_KEY, seq).map_err(backend("writing meta"))?;
        }
        replay(&txn, &removals)?;
        replay(&txn, &journal.ops)?;
        txn.commit().map_err(backend("committing an apply"))
    }

    /// The last log position applied to this store (0: none).
    pub fn applied_seq(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
        let applied = meta.get(tables::APPLIED_SEQ_KEY).map_err(backend("reading meta"))?;
        Ok(applied.map_or(0, |g| g.value()))
    }

    /// The seal metadata of this store as a journal: what [`Store::create_replica`] needs so
    /// that the same store key opens the new replica.
    pub fn genesis(&self) -> Result<Journal, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let table = tables::SEAL.name().to_string();
        let ops = rows(&txn, tables::SEAL)?
            .into_iter()
            .map(|(key, value)| Op { table: table.clone(), key, value: Some(value) })
            .collect();
        Ok(Journal { schema: tables::SCHEMA_VERSION, ops })
    }

    /// Creates a new, empty replica store at `path` from another store's [`Store::genesis`],
    /// opened with `key` (which must be that store's key). It has applied nothing yet.
    pub fn create_replica(
        path: impl AsRef<Path>,
        genesis: &Journal,
        key: Option<KeySource>,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref();
        if let Some(op) = genesis.ops.iter().find(|op| op.table != tables::SEAL.name()) {
            return Err(JournalError::UnknownTable(op.table.clone()).into());
        }
        let store = Store::create(path)?;
        match store.seed_replica(genesis, key) {
            Ok(()) => Ok(store),
            Err(e) => {
                drop(store);
                // Created exclusively by `Store::create` above, so it is ours to remove.
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    fn seed_replica(&self, genesis: &Journal, key: Option<KeySource>) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        let txn = db.begin_write().map_err(backend("starting a replica"))?;
        replay(&txn, &genesis.ops)?;
        txn.commit().map_err(backend("committing a replica"))?;
        self.unlock(key)
    }

    /// Every raw row of every replicated table, by table name: two stores with equal rows
    /// hold the same data byte for byte.
    pub fn raw_rows(&self) -> Result<Vec<(&'static str, Rows)>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        REPLICATED.iter().map(|t| Ok(((t.name)(), (t.rows)(&txn)?))).collect()
    }
}
