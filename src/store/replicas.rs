//! Replicas: their records (who may join the log), and what joining needs from a store: its
//! key as a bundle carries it, every replicated row at one log position (a snapshot), and
//! restoring such rows into a new replica.
//!
//! A snapshot is read in one read transaction, so its rows and its log position agree. The
//! position itself (`applied_seq` in `meta`) is not one of its rows: [`Store::restore`] writes
//! the rows and records the snapshot's position in one write transaction, so the new replica
//! continues the log right after it.

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value};
use serde::{Deserialize, Serialize};

use super::read::{get_record, list_records};
use super::replicate::Rows;
use super::tables::{self, REPLICATED};
use super::{backend, Db, JournalError, Store, StoreError, StoreRead, WriteTx};
use crate::keys::UserPublicKey;
use crate::model::Name;
use crate::seal::KeySource;

/// Writes many raw rows of a table (see `tables::Replicated`).
pub(crate) type RestoreFn = fn(&redb::WriteTransaction, &Rows) -> Result<(), StoreError>;

/// Writes `rows` into `def`, opening it once, after checking each encodes the table's types.
pub(crate) fn restore_rows<K: Key + 'static, V: Value + 'static>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<'static, K, V>,
    rows: &Rows,
) -> Result<(), StoreError> {
    use super::replicate::valid;
    let mut table = txn.open_table(def).map_err(backend("opening a table"))?;
    for (key, value) in rows {
        let bad = |what| JournalError::BadBytes { table: def.name().to_string(), what };
        if !valid::<K>(key) {
            return Err(bad("key").into());
        }
        if !valid::<V>(value) {
            return Err(bad("value").into());
        }
        table
            .insert(K::from_bytes(key), V::from_bytes(value))
            .map_err(backend("restoring a snapshot"))?;
    }
    Ok(())
}

/// A replica allowed to join the log: a user of the AUTH account whose key is listed in its
/// `auth_users` while the record exists, and revoked when it is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    /// Name.
    pub name: Name,
    /// Public key of its NATS creds.
    pub public_key: UserPublicKey,
    /// Created (unix seconds).
    pub created: i64,
    /// When its creds expire (unix seconds); `0` never.
    pub expires: i64,
}

impl ReplicaRecord {
    /// Whether `journal` writes a replica's record (`pbn admin replica add`): a replica is
    /// about to join the log.
    pub fn written_by(journal: &super::Journal) -> bool {
        let table = tables::REPLICAS.name();
        journal.ops.iter().any(|op| op.table == table && op.value.is_some())
    }
}

/// How the store key travels in a join bundle.
pub enum BundleKey {
    /// The store holds plain seeds: no key.
    Plain,
    /// The store key file's text.
    Key(zeroize::Zeroizing<String>),
    /// The key comes from a passphrase, which never travels: the joiner must be given it.
    Passphrase,
}

impl std::fmt::Debug for BundleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BundleKey::Plain => "BundleKey::Plain",
            BundleKey::Key(_) => "BundleKey::Key(<redacted>)",
            BundleKey::Passphrase => "BundleKey::Passphrase",
        })
    }
}

/// Every replicated row of a store at one log position: `(table name, rows)` per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRows {
    /// The log position the rows are the state after (0: before the first entry).
    pub seq: u64,
    /// The store schema the rows are written under.
    pub schema: u64,
    /// Rows by table, in the registry's order.
    pub tables: Vec<(String, Rows)>,
}

impl WriteTx {
    /// Stores a new replica; `false` (nothing written) if the name is taken.
    pub fn insert_replica(&mut self, replica: &ReplicaRecord) -> Result<bool, StoreError> {
        let name = replica.name.as_str();
        if get_record::<_, ReplicaRecord>(self, tables::REPLICAS, name)?.is_some() {
            return Ok(false);
        }
        self.put_record(tables::REPLICAS, name, replica)?;
        Ok(true)
    }

    /// Removes a replica and returns it, `None` if there was none.
    pub fn delete_replica(&mut self, name: &str) -> Result<Option<ReplicaRecord>, StoreError> {
        let old = get_record::<_, ReplicaRecord>(self, tables::REPLICAS, name)?;
        if old.is_some() {
            self.remove_record(tables::REPLICAS, name)?;
        }
        Ok(old)
    }
}

/// The replica named `name`.
pub fn get_replica<S: StoreRead + ?Sized>(
    tx: &S,
    name: &str,
) -> Result<Option<ReplicaRecord>, StoreError> {
    get_record(tx, tables::REPLICAS, name)
}

/// Every replica, by name.
pub fn list_replicas<S: StoreRead + ?Sized>(tx: &S) -> Result<Vec<ReplicaRecord>, StoreError> {
    list_records(tx, tables::REPLICAS)
}

impl Store {
    /// The store key as a join bundle carries it: the key file's text, or the word that a
    /// passphrase opens the store (the passphrase itself never leaves its holder).
    pub fn bundle_key(&self) -> Result<BundleKey, StoreError> {
        let Some(ring) = self.inner.key.current() else { return Ok(BundleKey::Plain) };
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let seal = txn.open_table(tables::SEAL).map_err(backend("opening seal"))?;
        let salt = seal.get(tables::PASSPHRASE_SALT_KEY).map_err(backend("reading seal"))?;
        Ok(match salt {
            Some(_) => BundleKey::Passphrase,
            None => BundleKey::Key(ring.key().to_file_text()),
        })
    }

    /// Every replicated row and the log position they are the state after, read in one
    /// transaction. The position row of `meta` is left out (see the module docs).
    pub fn snapshot_rows(&self) -> Result<SnapshotRows, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
        let applied = meta.get(tables::APPLIED_SEQ_KEY).map_err(backend("reading meta"))?;
        let seq = applied.map_or(0, |g| g.value());
        let position = tables::APPLIED_SEQ_KEY.as_bytes();
        let mut out = Vec::with_capacity(REPLICATED.len());
        for table in REPLICATED {
            let name = (table.name)();
            let mut rows = (table.rows)(&txn)?;
            if name == tables::META.name() {
                rows.retain(|(key, _)| key.as_slice() != position);
            }
            out.push((name.to_string(), rows));
        }
        Ok(SnapshotRows { seq, schema: tables::SCHEMA_VERSION, tables: out })
    }

    /// Writes every row of `snapshot` into this new replica and records its position, in one
    /// write transaction. Refused (changing nothing) when the replica has applied anything,
    /// for another schema, a table outside the registry or bytes its types do not read.
    pub fn restore(&self, snapshot: &SnapshotRows) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        if snapshot.schema != tables::SCHEMA_VERSION {
            let current = tables::SCHEMA_VERSION;
            return Err(JournalError::Schema { found: snapshot.schema, current }.into());
        }
        let txn = db.begin_write().map_err(backend("starting a restore"))?;
        {
            let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
            let applied = meta.get(tables::APPLIED_SEQ_KEY).map_err(backend("reading meta"))?;
            let applied = applied.map_or(0, |g| g.value());
            if applied != 0 {
                return Err(JournalError::OutOfOrder { expected: applied + 1, got: 0 }.into());
            }
            if snapshot.seq > 0 {
                meta.insert(tables::APPLIED_SEQ_KEY, snapshot.seq)
                    .map_err(backend("writing meta"))?;
            }
        }
        for (name, rows) in &snapshot.tables {
            let table =
                tables::replicated(name).ok_or_else(|| JournalError::UnknownTable(name.clone()))?;
            (table.restore)(&txn, rows)?;
        }
        txn.commit().map_err(backend("committing a restore"))
    }

    /// Replaces the rows of this replica, which has applied a position before the snapshot's,
    /// with the snapshot's, and records its position, in one write transaction: how a replica
    /// that fell behind the log's compaction point catches up. Every row of every replicated
    /// table is replaced but `meta`'s (the snapshot's are written over, this store's own marks
    /// kept) and `seal`'s, which must be the snapshot's ([`JournalError::KeyMismatch`]: the
    /// replica could not open the sealed seeds otherwise). Refused, changing nothing, for a
    /// snapshot not past the applied position ([`JournalError::OutOfOrder`]) or of another
    /// schema.
    pub fn resync(&self, snapshot: &SnapshotRows) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        if snapshot.schema != tables::SCHEMA_VERSION {
            let current = tables::SCHEMA_VERSION;
            return Err(JournalError::Schema { found: snapshot.schema, current }.into());
        }
        let (meta, seal) = (tables::META.name(), tables::SEAL.name());
        let theirs = snapshot.tables.iter().find(|(name, _)| name == seal).map(|(_, r)| r);
        let mut removals = Vec::new();
        for (name, rows) in self.raw_rows()? {
            if name == seal {
                let (mut mine, mut theirs) = (rows, theirs.cloned().unwrap_or_default());
                mine.sort();
                theirs.sort();
                if mine != theirs {
                    return Err(JournalError::KeyMismatch(self.inner.path.clone()).into());
                }
            } else if name != meta {
                let remove = |(key, _)| super::Op { table: name.to_string(), key, value: None };
                removals.extend(rows.into_iter().map(remove));
            }
        }
        let txn = db.begin_write().map_err(backend("starting a resync"))?;
        {
            let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
            let applied = meta.get(tables::APPLIED_SEQ_KEY).map_err(backend("reading meta"))?;
            let applied = applied.map_or(0, |g| g.value());
            if snapshot.seq <= applied {
                return Err(
                    JournalError::OutOfOrder { expected: applied + 1, got: snapshot.seq }.into()
                );
            }
            meta.insert(tables::APPLIED_SEQ_KEY, snapshot.seq).map_err(backend("writing meta"))?;
        }
        super::replicate::replay(&txn, &removals)?;
        for (name, rows) in snapshot.tables.iter().filter(|(name, _)| name != seal) {
            let table =
                tables::replicated(name).ok_or_else(|| JournalError::UnknownTable(name.clone()))?;
            (table.restore)(&txn, rows)?;
        }
        txn.commit().map_err(backend("committing a resync"))
    }

    /// Creates a new replica at `path` from a snapshot (its seal rows make the genesis), opened
    /// with `key`; removed again if the snapshot cannot be restored.
    pub fn create_from_snapshot(
        path: &std::path::Path,
        snapshot: &SnapshotRows,
        key: Option<KeySource>,
    ) -> Result<Store, StoreError> {
        let seal = tables::SEAL.name();
        let ops = snapshot
            .tables
            .iter()
            .filter(|(name, _)| name == seal)
            .flat_map(|(_, rows)| rows.iter())
            .map(|(k, v)| super::Op { table: seal.into(), key: k.clone(), value: Some(v.clone()) })
            .collect();
        let genesis = super::Journal { schema: snapshot.schema, ops };
        let store = Store::create_replica(path, &genesis, key)?;
        if let Err(e) = store.restore(snapshot) {
            drop(store);
            // Created exclusively by `create_replica` above, so it is ours to remove.
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        Ok(store)
    }
}

#[path = "replicas/identity.rs"]
mod identity;
pub use identity::ReplicaIdentity;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};
    use crate::seal::StoreKey;

    fn record(name: &str) -> ReplicaRecord {
        let kp = KeyPair::generate(KeyKind::User);
        ReplicaRecord {
            name: Name::parse(name).unwrap(),
            public_key: UserPublicKey::parse(kp.public_key()).unwrap(),
            created: 1,
            expires: 0,
        }
    }

    #[test]
    fn replica_records_are_added_once_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s.redb")).unwrap();
        let r = record("r1");
        assert!(store.write(|tx| tx.insert_replica(&r)).unwrap());
        assert!(!store.write(|tx| tx.insert_replica(&record("r1"))).unwrap(), "name taken");
        assert_eq!(store.read(|tx| get_replica(tx, "r1")).unwrap(), Some(r.clone()));
        assert_eq!(store.read(list_replicas).unwrap(), vec![r.clone()]);
        assert_eq!(store.write(|tx| tx.delete_replica("r1")).unwrap(), Some(r));
        assert_eq!(store.write(|tx| tx.delete_replica("r1")).unwrap(), None);
    }

    #[test]
    fn a_v3_store_gains_the_replicas_table_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.redb");
        let store = Store::create(&path).unwrap();
        {
            // Made into what a schema-3 build wrote: no replicas table, version 3.
            let Db::ReadWrite(db) = &store.inner.db else { panic!("writable") };
            let txn = db.begin_write().unwrap();
            txn.delete_table(tables::REPLICAS).unwrap();
            txn.open_table(tables::META).unwrap().insert(tables::SCHEMA_VERSION_KEY, 3).unwrap();
            txn.commit().unwrap();
        }
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.read(|tx| tx.schema_version()).unwrap(), 4);
        assert!(store.read(list_replicas).unwrap().is_empty());
        assert!(store.write(|tx| tx.insert_replica(&record("r1"))).unwrap());
    }

    #[test]
    fn bundle_keys_say_key_file_passphrase_or_plain() {
        let dir = tempfile::tempdir().unwrap();
        let plain = Store::create(dir.path().join("p.redb")).unwrap();
        assert!(matches!(plain.bundle_key().unwrap(), BundleKey::Plain));
        let key = StoreKey::generate();
        let text = key.to_file_text();
        let sealed =
            Store::create_with(dir.path().join("k.redb"), Some(KeySource::Key(key))).unwrap();
        match sealed.bundle_key().unwrap() {
            BundleKey::Key(t) => assert_eq!(*t, *text),
            other => panic!("{other:?}"),
        }
        let pass = KeySource::Passphrase(zeroize::Zeroizing::new("correct horse".into()));
        let pw = Store::create_with(dir.path().join("w.redb"), Some(pass)).unwrap();
        assert!(matches!(pw.bundle_key().unwrap(), BundleKey::Passphrase));
        assert_eq!(format!("{:?}", sealed.bundle_key().unwrap()), "BundleKey::Key(<redacted>)");
    }

    #[test]
    fn a_replica_behind_is_resynced_from_a_later_snapshot_and_never_from_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let text = key.to_file_text();
        let source = || Some(KeySource::Key(StoreKey::from_file_text(&text).unwrap()));
        let a = Store::create_with(dir.path().join("a.redb"), source()).unwrap();
        a.write(|tx| tx.insert_replica(&record("r1"))).unwrap();
        let mut old = a.snapshot_rows().unwrap();
        old.seq = 3;
        let b = Store::create_from_snapshot(&dir.path().join("b.redb"), &old, source()).unwrap();
        // Later on the source: r1 gone, r2 added.
        a.write(|tx| tx.delete_replica("r1")).unwrap();
        a.write(|tx| tx.insert_replica(&record("r2"))).unwrap();
        let mut new = a.snapshot_rows().unwrap();
        new.seq = 9;
        b.resync(&new).unwrap();
        assert_eq!(b.applied_seq().unwrap(), 9);
        assert_eq!(b.snapshot_rows().unwrap().tables, new.tables, "r1 removed, r2 there");
        let err = b.resync(&old).unwrap_err();
        assert!(matches!(err, StoreError::Journal(JournalError::OutOfOrder { .. })), "{err:?}");
        // Another store key: refused, nothing changed.
        let other = Store::create_with(dir.path().join("c.redb"), None).unwrap();
        let mut foreign = other.snapshot_rows().unwrap();
        foreign.seq = 20;
        let err = b.resync(&foreign).unwrap_err();
        assert!(matches!(err, StoreError::Journal(JournalError::KeyMismatch(_))), "{err:?}");
        assert_eq!(b.applied_seq().unwrap(), 9);
    }

    #[test]
    fn a_snapshot_restores_into_a_replica_with_the_same_rows_and_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let text = key.to_file_text();
        let source = || Some(KeySource::Key(StoreKey::from_file_text(&text).unwrap()));
        let a = Store::create_with(dir.path().join("a.redb"), source()).unwrap();
        a.write(|tx| tx.insert_replica(&record("r1"))).unwrap();
        let mut snap = a.snapshot_rows().unwrap();
        assert_eq!(snap.seq, 0);
        snap.seq = 7;
        let b = Store::create_from_snapshot(&dir.path().join("b.redb"), &snap, source()).unwrap();
        assert_eq!(b.applied_seq().unwrap(), 7);
        assert_eq!(b.snapshot_rows().unwrap().tables, snap.tables);
        // A replica that applied something is not restored over.
        let err = b.restore(&snap).unwrap_err();
        assert!(matches!(err, StoreError::Journal(JournalError::OutOfOrder { .. })), "{err:?}");
        // An unknown table is refused and the half-made replica removed.
        snap.tables.push(("nope".into(), vec![(b"k".to_vec(), b"v".to_vec())]));
        let path = dir.path().join("c.redb");
        let err = Store::create_from_snapshot(&path, &snap, source()).unwrap_err();
        assert!(matches!(err, StoreError::Journal(JournalError::UnknownTable(_))), "{err:?}");
        assert!(!path.exists());
    }
}
