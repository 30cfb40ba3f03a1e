//! Schema migrations: how a store written by an older build is brought to [`SCHEMA_VERSION`].
//!
//! [`MIGRATIONS`] is an ordered list of steps `(from_version, step)`; step `i` turns a store of
//! version `from_version` into one of `from_version + 1`. Opening a store whose version is older
//! than [`SCHEMA_VERSION`] runs every step from its version on, then creates any table the
//! current schema has and the old one lacked, then records the new version, all in one write
//! transaction: a failing step leaves the file exactly as it was. A new schema change appends
//! a step and raises [`SCHEMA_VERSION`] by one (a unit test checks the list is gapless).
//!
//! Steps must be idempotent in effect (running one on a store it already fits changes nothing
//! that matters), because a version number alone cannot tell every earlier build apart.

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::codec::decode;
use super::tables::{self, SCHEMA_VERSION};
use super::{backend, StoreError};
use crate::model::User;

/// One migration step: changes a store of its `from_version` into the next version.
pub(crate) type Step = fn(&WriteTransaction) -> Result<(), StoreError>;

/// Every migration step, in order of `from_version`.
pub(crate) const MIGRATIONS: &[(u64, Step)] = &[(1, to_v2), (2, to_v3), (3, to_v4)];

/// Brings a store of version `found` (older than [`SCHEMA_VERSION`]) up to date inside `txn`.
pub(crate) fn run(txn: &WriteTransaction, found: u64) -> Result<(), StoreError> {
    for (from, step) in MIGRATIONS.iter().filter(|(from, _)| *from >= found) {
        step(txn)?;
        tracing::info!(from, to = from + 1, "store schema migrated");
    }
    tables::create_all(txn).map_err(backend("creating tables"))?;
    let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
    meta.insert(tables::SCHEMA_VERSION_KEY, SCHEMA_VERSION)
        .map_err(backend("writing the schema version"))?;
    Ok(())
}

/// Version 1 → 2: rebuilds the nkey index and drops the unused sessions table.
fn to_v2(txn: &WriteTransaction) -> Result<(), StoreError> {
    rebuild_user_nkeys(txn)?;
    txn.delete_table(tables::V1_SESSIONS).map_err(backend("dropping the sessions table"))?;
    Ok(())
}

/// Version 2 → 3: named admins and the audit trail. Their tables start empty (`run` creates
/// them); creds minted before have no admin record, so the admin API refuses them until
/// `pbn admin admin add` (run on the store file) mints named ones.
fn to_v3(_: &WriteTransaction) -> Result<(), StoreError> {
    Ok(())
}

/// Version 3 → 4: replica records, API tokens and console passwords of named admins,
/// identity providers and the users their logins created. Their tables start empty (`run`
/// creates them).
fn to_v4(_: &WriteTransaction) -> Result<(), StoreError> {
    Ok(())
}

/// Rebuilds the nkey index (`user_nkeys`) from the users table.
///
/// Version-1 stores were written both before the index existed (their index is missing or
/// empty although users have nkeys) and after (their index is complete). Rebuilding from the
/// records fits both, so no guess about which build wrote the file is needed. Before the index
/// existed nothing kept nkeys unique; when two users share one, the first by name keeps it
/// (the other is logged and can no longer log in with it until an admin gives it another).
fn rebuild_user_nkeys(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut index = txn.open_table(tables::USER_NKEYS).map_err(backend("opening user nkeys"))?;
    index.retain(|_, _| false).map_err(backend("clearing user nkeys"))?;
    let users = txn.open_table(tables::USERS).map_err(backend("opening users"))?;
    for item in users.iter().map_err(backend("listing users"))? {
        let (k, v) = item.map_err(backend("listing users"))?;
        let user: User = decode(tables::USERS.name(), &k.value(), v.value())?;
        let Some(key) = &user.nkey else { continue };
        let taken = index.get(key.as_str()).map_err(backend("reading user nkeys"))?;
        if let Some(owner) = taken.map(|g| g.value().to_string()) {
            tracing::warn!(
                nkey = key.as_str(),
                kept_by = owner.as_str(),
                dropped_for = user.name.as_str(),
                "two users registered the same nkey; only the first keeps it"
            );
            continue;
        }
        index.insert(key.as_str(), user.name.as_str()).map_err(backend("writing user nkeys"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_reach_the_schema_version() {
        for (i, (from, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*from, i as u64 + 1, "step {i} must start at version {}", i + 1);
        }
        assert_eq!(MIGRATIONS.len() as u64 + 1, SCHEMA_VERSION);
    }
}
