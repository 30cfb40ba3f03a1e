//! Paged reads of record tables, in key order: exports read a million users without holding
//! them all.

use redb::{ReadableTable, TableHandle};

use super::read::{decode_record, sealed::Source, ReadTx};
use super::tables::{self, RecordTable};
use super::{backend, StoreError};
use crate::model::{Account, Role, User};

impl ReadTx {
    /// Up to `limit` accounts whose names sort after `after` (from the first when `None`).
    pub fn accounts_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Account>, StoreError> {
        page(self, tables::ACCOUNTS, after, limit)
    }

    /// Up to `limit` roles whose names sort after `after`.
    pub fn roles_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Role>, StoreError> {
        page(self, tables::ROLES, after, limit)
    }

    /// Up to `limit` users whose names sort after `after`.
    pub fn users_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<User>, StoreError> {
        page(self, tables::USERS, after, limit)
    }
}

fn page<T: super::keyring::Record>(
    tx: &ReadTx,
    def: RecordTable,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    let table = tx.table(def)?;
    let range = match after {
        Some(after) => {
            table.range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        }
        None => table.range::<&str>(..),
    };
    let mut out = Vec::new();
    for item in range.map_err(backend("listing records"))?.take(limit) {
        let (k, v) = item.map_err(backend("listing records"))?;
        out.push(decode_record(tx, def.name(), k.value(), v.value())?);
    }
    Ok(out)
}
