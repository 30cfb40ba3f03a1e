//! Named admins and the audit trail: their writes, and the audit entry a write transaction
//! records for the admin change it commits.
//!
//! An audit entry is written by the same transaction as the change it reports (see
//! [`Store::with_audit`]), so the trail holds an entry exactly for every committed change.
//! The trail is pruned by age whenever an entry is appended.

use std::cell::RefCell;

use redb::ReadableTable;

use super::codec::{decode, encode};
use super::read::sealed::Source;
use super::tables;
use super::{backend, RecordKind, Store, StoreError, WriteTx};
use crate::model::{AdminRecord, AuditRecord};

/// An audit entry waiting for the write transaction of its change.
struct Pending {
    record: AuditRecord,
    retention_ms: i64,
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

impl Store {
    /// Runs `f` (on this thread) so that the first write transaction it commits also appends
    /// `record` to the audit trail (pruning entries older than `retention_ms`). Returns `f`'s
    /// value and whether the entry was committed: `false` when `f` committed no write (then
    /// the caller records the outcome itself).
    pub fn with_audit<T>(
        &self,
        record: AuditRecord,
        retention_ms: i64,
        f: impl FnOnce() -> T,
    ) -> (T, bool) {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                PENDING.with(|p| p.borrow_mut().take());
            }
        }
        PENDING.with(|p| *p.borrow_mut() = Some(Pending { record, retention_ms }));
        let _reset = Reset;
        let value = f();
        let left = PENDING.with(|p| p.borrow().is_some());
        (value, !left)
    }
}

/// Appends this thread's pending audit entry (if any) in `tx`, just before it commits. The
/// entry is taken: a command's later writes are not recorded twice.
pub(super) fn record_pending_audit(tx: &mut WriteTx) -> Result<(), StoreError> {
    match PENDING.with(|p| p.borrow_mut().take()) {
        Some(p) => tx.append_audit(&p.record, p.retention_ms),
        None => Ok(()),
    }
}

impl WriteTx {
    /// Stores a new admin; `Conflict` if its name or key is taken.
    pub fn insert_admin(&mut self, admin: &AdminRecord) -> Result<(), StoreError> {
        admin.validate()?;
        let name = admin.name.as_str();
        if super::read::get_record::<_, AdminRecord>(self, tables::ADMINS, name)?.is_some() {
            return Err(StoreError::Conflict { kind: RecordKind::Admin, name: name.into() });
        }
        let key = admin.public_key.as_str();
        if admin_name_by_key(self, key)?.is_some() {
            return Err(StoreError::Conflict { kind: RecordKind::Admin, name: key.into() });
        }
        let mut keys = self.open(tables::ADMIN_KEYS)?;
        keys.insert(key, name).map_err(backend("writing admin keys"))?;
        drop(keys);
        self.put_record(tables::ADMINS, name, admin)
    }

    /// Replaces an existing admin (its key never changes); `NotFound` if missing.
    pub fn update_admin(&mut self, admin: &AdminRecord) -> Result<(), StoreError> {
        admin.validate()?;
        let name = admin.name.as_str();
        let old: Option<AdminRecord> = super::read::get_record(self, tables::ADMINS, name)?;
        match old {
            Some(old) if old.public_key == admin.public_key => {
                self.put_record(tables::ADMINS, name, admin)
            }
            Some(_) => Err(StoreError::Invalid(crate::model::ModelError::KeyMismatch(name.into()))),
            None => Err(StoreError::NotFound { kind: RecordKind::Admin, name: name.into() }),
        }
    }

    /// Removes an admin and returns it; `NotFound` if missing.
    pub fn delete_admin(&mut self, name: &str) -> Result<AdminRecord, StoreError> {
        let old: AdminRecord = super::read::get_record(self, tables::ADMINS, name)?
            .ok_or_else(|| StoreError::NotFound { kind: RecordKind::Admin, name: name.into() })?;
        let mut keys = self.open(tables::ADMIN_KEYS)?;
        keys.remove(old.public_key.as_str()).map_err(backend("writing admin keys"))?;
        drop(keys);
        self.remove_record(tables::ADMINS, name)?;
        Ok(old)
    }

    /// Appends `record` to the audit trail, first removing entries older than
    /// `retention_ms` before it.
    pub fn append_audit(
        &mut self,
        record: &AuditRecord,
        retention_ms: i64,
    ) -> Result<(), StoreError> {
        self.prune_audit(record.at_ms.saturating_sub(retention_ms))?;
        let bytes = encode(record)?;
        let mut table = self.open(tables::AUDIT)?;
        let last = table.last().map_err(backend("reading audit"))?.map(|(k, _)| k.value());
        // Keys grow strictly even if the clock steps back: never overwrite an entry.
        let key = match last {
            Some((at, seq)) if at >= record.at_ms => (at, seq + 1),
            _ => (record.at_ms, 0),
        };
        table.insert(key, bytes.as_slice()).map_err(backend("writing audit"))?;
        Ok(())
    }

    /// Removes audit entries recorded before `cutoff_ms`; returns how many.
    pub fn prune_audit(&mut self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let mut table = self.open(tables::AUDIT)?;
        let mut removed = 0;
        loop {
            let first = table.first().map_err(backend("reading audit"))?;
            let Some(key) = first.map(|(k, _)| k.value()) else { break };
            if key.0 >= cutoff_ms {
                break;
            }
            table.remove(key).map_err(backend("pruning audit"))?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// The name of the admin whose key is `key`.
pub(super) fn admin_name_by_key<S: Source + ?Sized>(
    src: &S,
    key: &str,
) -> Result<Option<String>, StoreError> {
    let table = src.table(tables::ADMIN_KEYS)?;
    let hit = table.get(key).map_err(backend("reading admin keys"))?;
    Ok(hit.map(|g| g.value().to_string()))
}

/// Audit entries recorded at or after `since_ms`, oldest first.
pub(super) fn audit_since<S: Source + ?Sized>(
    src: &S,
    since_ms: i64,
) -> Result<Vec<AuditRecord>, StoreError> {
    let table = src.table(tables::AUDIT)?;
    let mut out = Vec::new();
    for item in table.range((since_ms, 0)..).map_err(backend("reading audit"))? {
        let (k, v) = item.map_err(backend("reading audit"))?;
        let (at, seq) = k.value();
        out.push(decode("audit", &format!("{at}/{seq}"), v.value())?);
    }
    Ok(out)
}
