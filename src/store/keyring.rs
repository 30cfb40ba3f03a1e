//! The store key of an open encrypted store, and the records already opened under it.
//!
//! Opening a sealed record costs a JSON round trip and one AEAD open per seed; the callout
//! path reads the same account records on every login. [`Keyring`] keeps the opened form of
//! each sealed record beside the key, keyed by the record's raw bytes, so a record is opened
//! once per version and later reads clone it. The opened records hold their seeds in zeroized
//! memory, like any record read from the store, and go when the key is replaced (rekey).
//!
//! [`KeySlot`] is the store's current keyring. A rekey holds the slot's write lock from just
//! before its commit until the swap. A read begins its snapshot while holding the slot's read
//! lock ([`KeySlot::begin_read`]), and a write takes the keyring once it has begun (writes are
//! serialized with the rekey's own write, and never hold the slot while waiting for theirs),
//! so no transaction pairs new bytes with the old key or old bytes with the new one.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use serde::de::DeserializeOwned;

use super::codec::{decode, decode_sealed};
use super::sealing::{holds_sealed, Sealer};
use super::StoreError;
use crate::seal::StoreKey;

/// How many opened records are kept. Sealed records are the operator and the accounts (users
/// and roles hold no seeds); 4,096 covers every account of the largest deployments we test
/// while bounding the memory (a few KiB per account) whatever the store holds. When full, the
/// cache starts over: a miss only costs the open it saves.
const MAX_OPENED: usize = 4_096;

/// What a record type must be for its opened form to be kept: every record type is.
pub(crate) trait Record: DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> Record for T {}

/// One opened record: the raw bytes it was opened from and the record.
struct Opened {
    raw: Vec<u8>,
    record: Arc<dyn Any + Send + Sync>,
}

/// A store key with the records opened under it.
pub struct Keyring {
    key: StoreKey,
    opened: Mutex<HashMap<String, Opened>>,
}

impl Keyring {
    pub(crate) fn new(key: StoreKey) -> Self {
        Keyring { key, opened: Mutex::new(HashMap::new()) }
    }

    /// The store key.
    pub(crate) fn key(&self) -> &StoreKey {
        &self.key
    }

    /// Decodes the record `bytes` of `table`/`record`, opening its sealed seeds. A record with
    /// no sealed seed is decoded directly; one with seeds is opened once per version of its
    /// bytes and cloned afterwards.
    pub(crate) fn decode<T: Record>(
        &self,
        table: &str,
        record: &str,
        bytes: &[u8],
    ) -> Result<T, StoreError> {
        if !holds_sealed(bytes) {
            return decode(table, &record, bytes);
        }
        // A NUL cannot occur in a table name, so the slot names one record.
        let slot = format!("{table}\0{record}");
        if let Some(hit) = self.cached::<T>(&slot, bytes) {
            return Ok(hit);
        }
        let opened: T = decode_sealed(Sealer { key: &self.key, table, record }, bytes)?;
        let mut map = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_OPENED {
            map.clear();
        }
        let entry = Opened { raw: bytes.to_vec(), record: Arc::new(opened.clone()) };
        map.insert(slot, entry);
        Ok(opened)
    }

    fn cached<T: Record>(&self, slot: &str, bytes: &[u8]) -> Option<T> {
        let map = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(slot).filter(|e| e.raw == bytes)?;
        entry.record.downcast_ref::<T>().cloned()
    }

    #[cfg(test)]
    fn opened_count(&self) -> usize {
        self.opened.lock().unwrap().len()
    }
}

/// The keyring of an open store: none for a plain store.
#[derive(Default)]
pub(crate) struct KeySlot(RwLock<Option<Arc<Keyring>>>);

impl KeySlot {
    /// The current keyring, for a write transaction that has begun (or a store being opened).
    pub(crate) fn current(&self) -> Option<Arc<Keyring>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Begins a read with `begin` and returns it with the keyring its snapshot is sealed under.
    /// `begin` must not block (a read transaction does not).
    pub(crate) fn begin_read<T>(&self, begin: impl FnOnce() -> T) -> (T, Option<Arc<Keyring>>) {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        (begin(), slot.clone())
    }

    /// Sets the keyring of a store being opened.
    pub(crate) fn set(&self, key: StoreKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Keyring::new(key)));
    }

    /// Holds the slot against new transactions until the returned guard replaces the key.
    pub(crate) fn hold(&self) -> KeySwap<'_> {
        KeySwap(self.0.write().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The slot held by a rekey between its commit and the swap (see the module docs).
pub(crate) struct KeySwap<'a>(RwLockWriteGuard<'a, Option<Arc<Keyring>>>);

impl KeySwap<'_> {
    /// Replaces the key; transactions beginning from now on use it.
    pub(crate) fn replace(mut self, key: StoreKey) {
        *self.0 = Some(Arc::new(Keyring::new(key)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, AccountKind, Name};
    use crate::store::codec::encode_sealed;

    fn sealed_account(ring: &Keyring) -> (Account, Vec<u8>) {
        let acc = Account::generate(Name::parse("APP").unwrap(), AccountKind::Managed, 1);
        let sealer = Sealer { key: ring.key(), table: "accounts", record: "APP" };
        let bytes = encode_sealed(&acc, sealer).unwrap();
        (acc, bytes)
    }

    #[test]
    fn a_sealed_record_is_opened_once_per_version() {
        let ring = Keyring::new(StoreKey::generate());
        let (acc, bytes) = sealed_account(&ring);
        assert!(holds_sealed(&bytes));
        let first: Account = ring.decode("accounts", "APP", &bytes).unwrap();
        let second: Account = ring.decode("accounts", "APP", &bytes).unwrap();
        assert_eq!(first, acc);
        assert_eq!(second, acc);
        assert_eq!(ring.opened_count(), 1);
        let (other, new_bytes) = sealed_account(&ring);
        let third: Account = ring.decode("accounts", "APP", &new_bytes).unwrap();
        assert_eq!(third, other, "new bytes under the same name are opened again");
    }

    #[test]
    fn a_cached_record_moved_to_another_slot_is_still_refused() {
        let ring = Keyring::new(StoreKey::generate());
        let (_, bytes) = sealed_account(&ring);
        let _: Account = ring.decode("accounts", "APP", &bytes).unwrap();
        let moved = ring.decode::<Account>("accounts", "OTHER", &bytes);
        assert!(matches!(moved, Err(StoreError::Unseal { .. })), "{moved:?}");
    }

    #[test]
    fn records_without_seeds_are_not_cached() {
        let ring = Keyring::new(StoreKey::generate());
        let role = crate::model::Role::new(Name::parse("r").unwrap(), 5);
        let bytes = crate::store::codec::encode(&role).unwrap();
        let back: crate::model::Role = ring.decode("roles", "r", &bytes).unwrap();
        assert_eq!(back, role);
        assert_eq!(ring.opened_count(), 0);
    }
}
