//! The key of an encrypted store: made when the store is created, checked when it is opened.
//!
//! The `seal` table holds the key check value (and, for a passphrase, the argon2id salt). A
//! store is usable only after [`Store::unlock`] accepted its key, so no handle on an encrypted
//! store exists without the key.

use redb::{ReadableTable, TableHandle};
use zeroize::Zeroizing;

use super::codec::{decode, decode_sealed, encode_sealed};
use super::sealing::{self, Sealer};
use super::tables::{self, RecordTable};
use super::{backend, Db, Store, StoreError};
use crate::seal::{self, KeySource, StoreKey};

impl Store {
    /// Turns `source` into the store key and checks it against the key check value (see
    /// [`Store::open_for_with`]); on success the store uses the key from then on.
    pub(super) fn unlock(&self, source: Option<KeySource>) -> Result<(), StoreError> {
        let path = || self.inner.path.clone();
        let meta = |txn: &redb::ReadTransaction, name: &str| -> Result<_, StoreError> {
            match txn.open_table(tables::SEAL) {
                Ok(table) => Ok(table
                    .get(name)
                    .map_err(backend("reading seal metadata"))?
                    .map(|g| g.value().to_vec())),
                // Stores written before encryption existed have no seal table: plain.
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(backend("opening seal")(e)),
            }
        };
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let check = meta(&txn, tables::KEY_CHECK_KEY)?;
        let salt = meta(&txn, tables::PASSPHRASE_SALT_KEY)?;
        let (check, source) = match (check, source) {
            (None, None) => return Ok(()),
            (None, Some(source)) => {
                drop(txn);
                return self.seal_plain(source);
            }
            (Some(_), None) => return Err(StoreError::KeyRequired(path())),
            (Some(check), Some(source)) => (check, source),
        };
        let key = match (source, salt) {
            (KeySource::Key(key), _) => key,
            (KeySource::Passphrase(pass), Some(salt)) => {
                let salt: [u8; seal::SALT_LEN] =
                    salt.as_slice().try_into().map_err(|_| self.corrupt("bad passphrase salt"))?;
                StoreKey::from_passphrase(pass.as_bytes(), &salt)
                    .map_err(|e| self.corrupt(&e.to_string()))?
            }
            // A store sealed under a key file has no salt: no passphrase opens it.
            (KeySource::Passphrase(_), None) => return Err(StoreError::WrongKey(path())),
        };
        seal::open_key_check(&key, &check).map_err(|_| StoreError::WrongKey(path()))?;
        self.inner.key.set(key);
        Ok(())
    }

    /// Seals a plain store the first time it is opened (for writing) with a key: in one write
    /// transaction, every record is re-written with its seeds sealed and the seal metadata is
    /// added, so a failure leaves the store plain. A read-only open cannot, and is refused with
    /// [`StoreError::NotSealed`].
    ///
    /// The engine does not wipe the pages the plain records leave behind; they are reused by
    /// later writes, but until then the file may still hold the old plain seeds.
    fn seal_plain(&self, source: KeySource) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::NotSealed(self.inner.path.clone()));
        };
        let txn = db.begin_write().map_err(backend("starting the sealing"))?;
        super::replicate::refuse_if_replica(&txn, &self.inner.path)?;
        let key = seal_new(&txn, source)?;
        for def in SEALED_TABLES {
            seal_table(&txn, def, &key)?;
        }
        txn.commit().map_err(backend("committing the sealing"))?;
        tracing::info!(store = %self.inner.path.display(), "store sealed under its key");
        self.inner.key.set(key);
        Ok(())
    }

    /// Re-seals every seed of the store under the key from `source`, in one write transaction:
    /// a failure (or a crash) leaves the store sealed under its old key. Transactions begun
    /// after the commit use the new key; the old key no longer opens the store.
    ///
    /// [`StoreError::NotSealed`] for a plain store (open it with a key to seal it), and
    /// [`StoreError::ReadOnly`] for a read-only handle.
    pub fn rekey(&self, source: KeySource) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        let txn = db.begin_write().map_err(backend("starting the rekey"))?;
        super::replicate::refuse_if_replica(&txn, &self.inner.path)?;
        // Taken after the write began: no other rekey can commit until this one has.
        let old = self
            .inner
            .key
            .current()
            .ok_or_else(|| StoreError::NotSealed(self.inner.path.clone()))?;
        {
            let mut meta = txn.open_table(tables::SEAL).map_err(backend("opening seal"))?;
            meta.remove(tables::PASSPHRASE_SALT_KEY).map_err(backend("removing the salt"))?;
            meta.remove(tables::KEY_CHECK_KEY).map_err(backend("removing the key check"))?;
        }
        let new = seal_new(&txn, source)?;
        for def in SEALED_TABLES {
            reseal_table(&txn, def, old.key(), &new)?;
        }
        let swap = self.inner.key.hold();
        txn.commit().map_err(backend("committing the rekey"))?;
        swap.replace(new);
        tracing::info!(store = %self.inner.path.display(), "store re-sealed under a new key");
        Ok(())
    }

    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::CorruptFile { path: self.inner.path.clone(), detail: detail.to_string() }
    }
}

/// Makes the key of a new encrypted store from `source` and writes its seal metadata (the key
/// check value, and the salt for a passphrase) in the store's first transaction.
pub(super) fn seal_new(
    txn: &redb::WriteTransaction,
    source: KeySource,
) -> Result<StoreKey, StoreError> {
    let mut table = txn.open_table(tables::SEAL).map_err(backend("opening seal"))?;
    let key = match source {
        KeySource::Key(key) => key,
        KeySource::Passphrase(pass) => {
            let salt = StoreKey::generate_salt();
            table
                .insert(tables::PASSPHRASE_SALT_KEY, salt.as_slice())
                .map_err(backend("writing the passphrase salt"))?;
            StoreKey::from_passphrase(pass.as_bytes(), &salt)
                .map_err(|e| StoreError::Encode(e.to_string()))?
        }
    };
    table
        .insert(tables::KEY_CHECK_KEY, seal::seal_key_check(&key).as_slice())
        .map_err(backend("writing the key check"))?;
    Ok(key)
}

/// The tables whose records may hold seeds.
const SEALED_TABLES: [RecordTable; 5] =
    [tables::OPERATOR, tables::ACCOUNTS, tables::ROLES, tables::USERS, tables::OUTBOX];

/// Re-writes every record of `def` that holds sealed seeds with them sealed under `new`.
fn reseal_table(
    txn: &redb::WriteTransaction,
    def: RecordTable,
    old: &StoreKey,
    new: &StoreKey,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(def).map_err(backend("opening a table"))?;
    let mut records = Vec::new();
    for item in table.iter().map_err(backend("listing records"))? {
        let (k, v) = item.map_err(backend("listing records"))?;
        if sealing::holds_sealed(v.value()) {
            records.push((k.value().to_string(), v.value().to_vec()));
        }
    }
    for (name, bytes) in records {
        let opened: serde_json::Value =
            decode_sealed(Sealer { key: old, table: def.name(), record: &name }, &bytes)?;
        let sealed = encode_sealed(&opened, Sealer { key: new, table: def.name(), record: &name });
        sealing::wipe(opened);
        table.insert(name.as_str(), sealed?.as_slice()).map_err(backend("writing a record"))?;
    }
    Ok(())
}

/// Re-writes every record of `def` with its seeds sealed under `key`.
fn seal_table(
    txn: &redb::WriteTransaction,
    def: RecordTable,
    key: &StoreKey,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(def).map_err(backend("opening a table"))?;
    let mut records = Vec::new();
    for item in table.iter().map_err(backend("listing records"))? {
        let (k, v) = item.map_err(backend("listing records"))?;
        records.push((k.value().to_string(), Zeroizing::new(v.value().to_vec())));
    }
    for (name, bytes) in records {
        let value: serde_json::Value = decode(def.name(), &name, &bytes)?;
        let sealer = Sealer { key, table: def.name(), record: &name };
        let sealed = encode_sealed(&value, sealer);
        sealing::wipe(value);
        table.insert(name.as_str(), sealed?.as_slice()).map_err(backend("writing a record"))?;
    }
    Ok(())
}
