//! Write access: [`WriteTx`] and the record mutators (operator, accounts, roles, users).
//!
//! Every mutator validates the record and checks all its preconditions (conflicts, references)
//! before it changes anything, so an error leaves the transaction as it was.

use redb::{Key, ReadableTable, TableDefinition, Value};
use serde::Serialize;

use std::sync::Arc;

use redb::TableHandle;

use super::codec::{encode, encode_sealed};
use super::journal::{Journal, JournaledTable, JournaledTxn};
use super::keyring::Keyring;
use super::read::{sealed::Source, StoreRead};
use super::sealing::Sealer;
use super::tables::{self, RecordTable};
use super::{backend, idempotency, write_admins, Db, RecordKind, Store, StoreError};
use crate::model::{Account, Operator, Role, User};

/// A write transaction, given to [`Store::write`](super::Store::write) closures. Reads through
/// [`StoreRead`] see the transaction's own writes.
pub struct WriteTx {
    txn: JournaledTxn,
    key: Option<Arc<Keyring>>,
}

impl Source for WriteTx {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        self.txn.read(def)
    }

    fn keyring(&self) -> Option<&Keyring> {
        self.key.as_deref()
    }
}

impl StoreRead for WriteTx {}

impl Store {
    /// Runs `f` in one write transaction, then commits (or with `commit` false, aborts) and
    /// returns the journal of its changes.
    pub(super) fn write_with<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
        commit: bool,
    ) -> Result<(T, Journal), E> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()).into());
        };
        let txn = db.begin_write().map_err(backend("starting a write"))?;
        if commit {
            super::replicate::refuse_if_replica(&txn, &self.inner.path)?;
        }
        let mut tx = WriteTx::new(txn, self.inner.key.current());
        let value = f(&mut tx)?;
        idempotency::record_tag(&mut tx)?;
        write_admins::record_pending_audit(&mut tx)?;
        Ok((value, tx.finish(commit)?))
    }
}

fn conflict(kind: RecordKind, name: &str) -> StoreError {
    StoreError::Conflict { kind, name: name.to_string() }
}

impl WriteTx {
    pub(super) fn new(txn: redb::WriteTransaction, key: Option<Arc<Keyring>>) -> Self {
        WriteTx { txn: JournaledTxn::new(txn), key }
    }

    /// Opens `def` for writing: the only way to change a table, and every change is journaled.
    pub(super) fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<JournaledTable<'_, K, V>, StoreError> {
        self.txn.open(def)
    }

    /// Commits (or, with `commit` false, aborts) and returns the journal of the changes.
    pub(super) fn finish(self, commit: bool) -> Result<Journal, StoreError> {
        if commit {
            self.txn.commit()
        } else {
            self.txn.abort()
        }
    }

    pub(super) fn put_record<T: Serialize>(
        &self,
        def: RecordTable,
        key: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        let bytes = match self.key.as_deref() {
            Some(ring) => {
                encode_sealed(record, Sealer { key: ring.key(), table: def.name(), record: key })?
            }
            None => encode(record)?,
        };
        let mut table = self.open(def)?;
        table.insert(key, bytes.as_slice()).map_err(backend("writing a record"))?;
        Ok(())
    }

    pub(super) fn remove_record(&self, def: RecordTable, key: &str) -> Result<bool, StoreError> {
        let mut table = self.open(def)?;
        let old = table.remove(key).map_err(backend("removing a record"))?;
        Ok(old.is_some())
    }

    fn record_exists(&self, def: RecordTable, key: &str) -> Result<bool, StoreError> {
        let table = self.table(def)?;
        let hit = table.get(key).map_err(backend("reading a record"))?;
        Ok(hit.is_some())
    }

    fn set_pair(
        &self,
        def: TableDefinition<'static, (&'static str, &'static str), ()>,
        a: &str,
        b: &str,
        present: bool,
    ) -> Result<(), StoreError> {
        let mut table = self.open(def)?;
        if present {
            table.insert((a, b), ()).map_err(backend("writing an index"))?;
        } else {
            table.remove((a, b)).map_err(backend("writing an index"))?;
        }
        Ok(())
    }

    // ---- operator ------------------------------------------------------------------------

    /// Stores the operator; `Conflict` if one exists already.
    pub fn insert_operator(&mut self, operator: &Operator) -> Result<(), StoreError> {
        operator.validate()?;
        if self.record_exists(tables::OPERATOR, tables::OPERATOR_KEY)? {
            return Err(conflict(RecordKind::Operator, tables::OPERATOR_KEY));
        }
        self.put_record(tables::OPERATOR, tables::OPERATOR_KEY, operator)
    }

    // ---- accounts ------------------------------------------------------------------------

    fn account_key_owner(&self, key: &str) -> Result<Option<String>, StoreError> {
        let table = self.table(tables::ACCOUNT_KEYS)?;
        let hit = table.get(key).map_err(backend("reading account keys"))?;
        Ok(hit.map(|g| g.value().to_string()))
    }

    fn set_account_key(&self, key: &str, name: Option<&str>) -> Result<(), StoreError> {
        let mut table = self.open(tables::ACCOUNT_KEYS)?;
        match name {
            Some(name) => table.insert(key, name).map_err(backend("writing account keys"))?,
            None => table.remove(key).map_err(backend("writing account keys"))?,
        };
        Ok(())
    }

    /// Stores a new account; `Conflict` if its name or its public key is taken.
    pub fn insert_account(&mut self, account: &Account) -> Result<(), StoreError> {
        account.validate()?;
        let name = account.name.as_str();
        if self.record_exists(tables::ACCOUNTS, name)? {
            return Err(conflict(RecordKind::Account, name));
        }
        if self.account_key_owner(account.public_key.as_str())?.is_some() {
            return Err(conflict(RecordKind::Account, account.public_key.as_str()));
        }
        self.set_account_key(account.public_key.as_str(), Some(name))?;
        self.put_record(tables::ACCOUNTS, name, account)
    }

    /// Replaces an existing account (found by name); `NotFound` if missing, `Conflict` if its
    /// public key changed to one another account has.
    pub fn update_account(&mut self, account: &Account) -> Result<(), StoreError> {
        account.validate()?;
        let name = account.name.as_str();
        let old = self.require_account(name)?;
        let new_key = account.public_key.as_str();
        if old.public_key != account.public_key {
            if self.account_key_owner(new_key)?.is_some_and(|owner| owner != name) {
                return Err(conflict(RecordKind::Account, new_key));
            }
            self.set_account_key(old.public_key.as_str(), None)?;
            self.set_account_key(new_key, Some(name))?;
        }
        self.put_record(tables::ACCOUNTS, name, account)
    }

    /// Removes an account and returns it; `NotFound` if missing, `InUse` while it has users.
    /// Enqueue an outbox delete in the same transaction to remove it from the servers.
    pub fn delete_account(&mut self, name: &str) -> Result<Account, StoreError> {
        let old = self.require_account(name)?;
        let users = self.count_users_of_account(name)?;
        if users > 0 {
            return Err(StoreError::InUse {
                kind: RecordKind::Account,
                name: name.to_string(),
                users,
            });
        }
        self.set_account_key(old.public_key.as_str(), None)?;
        self.remove_record(tables::ACCOUNTS, name)?;
        Ok(old)
    }

    // ---- roles ---------------------------------------------------------------------------

    /// Stores a new role; `Conflict` if the name is taken.
    pub fn insert_role(&mut self, role: &Role) -> Result<(), StoreError> {
        role.validate()?;
        let name = role.name.as_str();
        if self.record_exists(tables::ROLES, name)? {
            return Err(conflict(RecordKind::Role, name));
        }
        self.put_record(tables::ROLES, name, role)
    }

    /// Replaces an existing role; `NotFound` if missing.
    pub fn update_role(&mut self, role: &Role) -> Result<(), StoreError> {
        role.validate()?;
        let name = role.name.as_str();
        if !self.record_exists(tables::ROLES, name)? {
            return Err(StoreError::NotFound { kind: RecordKind::Role, name: name.to_string() });
        }
        self.put_record(tables::ROLES, name, role)
    }

    /// Removes a role and returns it; `NotFound` if missing, `InUse` while users hold it.
    pub fn delete_role(&mut self, name: &str) -> Result<Role, StoreError> {
        let old = self.require_role(name)?;
        let users = self.count_users_of_role(name)?;
        if users > 0 {
            return Err(StoreError::InUse {
                kind: RecordKind::Role,
                name: name.to_string(),
                users,
            });
        }
        self.remove_record(tables::ROLES, name)?;
        Ok(old)
    }

    // ---- users ---------------------------------------------------------------------------

    /// Checks that the user's account and role exist and that no other user has its tokens.
    fn check_user_refs(&self, user: &User) -> Result<(), StoreError> {
        if !self.record_exists(tables::ACCOUNTS, user.account.as_str())? {
            return Err(StoreError::NotFound {
                kind: RecordKind::Account,
                name: user.account.to_string(),
            });
        }
        if !self.record_exists(tables::ROLES, user.role.as_str())? {
            return Err(StoreError::NotFound {
                kind: RecordKind::Role,
                name: user.role.to_string(),
            });
        }
        for token in &user.tokens {
            if self.lookup_token(&token.hash)?.is_some_and(|r| r.user != user.name.as_str()) {
                return Err(conflict(RecordKind::Token, &token.id));
            }
        }
        if let Some(key) = &user.nkey {
            if self.user_by_nkey_name(key.as_str())?.is_some_and(|n| n != user.name.as_str()) {
                return Err(conflict(RecordKind::User, key.as_str()));
            }
        }
        Ok(())
    }

    /// Adds (or removes) the index entries of `user`: account, role and token hashes.
    fn index_user(&self, user: &User, present: bool) -> Result<(), StoreError> {
        let name = user.name.as_str();
        self.set_pair(tables::USERS_BY_ACCOUNT, user.account.as_str(), name, present)?;
        self.set_pair(tables::USERS_BY_ROLE, user.role.as_str(), name, present)?;
        let mut tokens = self.open(tables::TOKENS)?;
        for token in &user.tokens {
            if present {
                tokens
                    .insert(token.hash.as_str(), (name, token.id.as_str()))
                    .map_err(backend("writing tokens"))?;
            } else {
                tokens.remove(token.hash.as_str()).map_err(backend("writing tokens"))?;
            }
        }
        if let Some(key) = &user.nkey {
            let mut nkeys = self.open(tables::USER_NKEYS)?;
            if present {
                nkeys.insert(key.as_str(), name).map_err(backend("writing user nkeys"))?;
            } else {
                nkeys.remove(key.as_str()).map_err(backend("writing user nkeys"))?;
            }
        }
        Ok(())
    }

    /// Stores a new user; `Conflict` if the name (or a token) is taken, `NotFound` if its
    /// account or role does not exist.
    pub fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        user.validate()?;
        let name = user.name.as_str();
        if self.record_exists(tables::USERS, name)? {
            return Err(conflict(RecordKind::User, name));
        }
        self.check_user_refs(user)?;
        self.index_user(user, true)?;
        self.put_record(tables::USERS, name, user)
    }

    /// Replaces an existing user (found by name), keeping the indexes in step; `NotFound` if
    /// the user, its account or its role is missing, `Conflict` if another user has a token.
    pub fn update_user(&mut self, user: &User) -> Result<(), StoreError> {
        user.validate()?;
        let old = self.require_user(user.name.as_str())?;
        self.check_user_refs(user)?;
        self.index_user(&old, false)?;
        self.index_user(user, true)?;
        self.put_record(tables::USERS, user.name.as_str(), user)
    }

    /// Removes a user with its index entries and returns it; `NotFound` if missing.
    pub fn delete_user(&mut self, name: &str) -> Result<User, StoreError> {
        let old = self.require_user(name)?;
        self.index_user(&old, false)?;
        self.remove_record(tables::USERS, name)?;
        Ok(old)
    }
}
