//! Read access: [`ReadTx`] and the [`StoreRead`] accessors shared by reads and writes.

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value};

use std::sync::Arc;

use super::codec::decode;
use super::keyring::{Keyring, Record};
use super::tables::{self, RecordTable};
use super::{backend, RecordKind, StoreError};
use crate::keys::AccountPublicKey;
use crate::model::{
    Account, AccountKind, AdminRecord, ApiToken, AuditRecord, Operator, OutboxEntry, Role, User,
};

/// What the token index says about a token hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    /// The user owning the token.
    pub user: String,
    /// The token's id within that user.
    pub token_id: String,
}

/// A read-only snapshot of the store, given to [`Store::read`](super::Store::read) closures.
pub struct ReadTx {
    txn: redb::ReadTransaction,
    key: Option<Arc<Keyring>>,
}

impl ReadTx {
    pub(super) fn new(txn: redb::ReadTransaction, key: Option<Arc<Keyring>>) -> Self {
        ReadTx { txn, key }
    }
}

pub(crate) mod sealed {
    use super::*;

    /// Table access common to read and write transactions. Not nameable outside the store, so
    /// [`StoreRead`] cannot be implemented elsewhere.
    pub trait Source {
        /// Opens `def` for reading.
        fn table<K: Key + 'static, V: Value + 'static>(
            &self,
            def: TableDefinition<'static, K, V>,
        ) -> Result<impl ReadableTable<K, V> + '_, StoreError>;

        /// The keyring of an encrypted store; records' seeds are sealed under its key.
        fn keyring(&self) -> Option<&Keyring>;
    }
}

use sealed::Source;

impl Source for ReadTx {
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        self.txn.open_table(def).map_err(|e| match e {
            redb::TableError::TableDoesNotExist(name) => {
                StoreError::Corrupt { table: name, key: String::new() }
            }
            other => backend("opening a table")(other),
        })
    }

    fn keyring(&self) -> Option<&Keyring> {
        self.key.as_deref()
    }
}

impl StoreRead for ReadTx {}

/// Reads one record.
pub(super) fn get_record<S: Source + ?Sized, T: Record>(
    src: &S,
    def: RecordTable,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let table = src.table(def)?;
    let guard = table.get(key).map_err(backend("reading a record"))?;
    guard.map(|g| decode_record(src, def.name(), key, g.value())).transpose()
}

/// Reads every record of a table, in key order.
fn list_records<S: Source + ?Sized, T: Record>(
    src: &S,
    def: RecordTable,
) -> Result<Vec<T>, StoreError> {
    let table = src.table(def)?;
    let mut out = Vec::new();
    for item in table.iter().map_err(backend("listing records"))? {
        let (k, v) = item.map_err(backend("listing records"))?;
        out.push(decode_record(src, def.name(), k.value(), v.value())?);
    }
    Ok(out)
}

/// Decodes a record, opening its sealed seeds on an encrypted store.
pub(super) fn decode_record<S: Source + ?Sized, T: Record>(
    src: &S,
    table: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    match src.keyring() {
        Some(ring) => ring.decode(table, key, bytes),
        None => decode(table, &key, bytes),
    }
}

/// The second components of the index entries whose first component is `first`.
pub(super) fn index_members<S: Source + ?Sized>(
    src: &S,
    def: TableDefinition<'static, (&'static str, &'static str), ()>,
    first: &str,
) -> Result<Vec<String>, StoreError> {
    let table = src.table(def)?;
    let mut out = Vec::new();
    for item in table.range((first, "")..).map_err(backend("reading an index"))? {
        let (k, _) = item.map_err(backend("reading an index"))?;
        let (a, b) = k.value();
        if a != first {
            break;
        }
        out.push(b.to_string());
    }
    Ok(out)
}

fn not_found(kind: RecordKind, name: &str) -> StoreError {
    StoreError::NotFound { kind, name: name.to_string() }
}

/// Typed reads, available on [`ReadTx`] and [`WriteTx`](super::WriteTx) alike.
///
/// `get_*` returns `Ok(None)` for a missing record; `require_*` returns
/// [`StoreError::NotFound`] instead.
pub trait StoreRead: Source {
    /// The schema version of the store.
    fn schema_version(&self) -> Result<u64, StoreError> {
        let table = self.table(tables::META)?;
        let v = table.get(tables::SCHEMA_VERSION_KEY).map_err(backend("reading meta"))?;
        v.map(|g| g.value()).ok_or_else(|| StoreError::Corrupt {
            table: "meta".into(),
            key: tables::SCHEMA_VERSION_KEY.into(),
        })
    }

    /// The operator, if initialized.
    fn get_operator(&self) -> Result<Option<Operator>, StoreError> {
        get_record(self, tables::OPERATOR, tables::OPERATOR_KEY)
    }

    /// The operator, or `NotFound`.
    fn require_operator(&self) -> Result<Operator, StoreError> {
        self.get_operator()?.ok_or_else(|| not_found(RecordKind::Operator, tables::OPERATOR_KEY))
    }

    /// The account named `name`.
    fn get_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        get_record(self, tables::ACCOUNTS, name)
    }

    /// The account named `name`, or `NotFound`.
    fn require_account(&self, name: &str) -> Result<Account, StoreError> {
        self.get_account(name)?.ok_or_else(|| not_found(RecordKind::Account, name))
    }

    /// The account whose identity is `key`.
    fn get_account_by_key(&self, key: &AccountPublicKey) -> Result<Option<Account>, StoreError> {
        let name = {
            let index = self.table(tables::ACCOUNT_KEYS)?;
            let hit = index.get(key.as_str()).map_err(backend("reading account keys"))?;
            match hit {
                None => return Ok(None),
                Some(g) => g.value().to_string(),
            }
        };
        match self.get_account(&name)? {
            Some(acc) => Ok(Some(acc)),
            None => Err(StoreError::Corrupt { table: "account_keys".into(), key: key.to_string() }),
        }
    }

    /// The account whose identity is `key`, or `NotFound`.
    fn require_account_by_key(&self, key: &AccountPublicKey) -> Result<Account, StoreError> {
        self.get_account_by_key(key)?.ok_or_else(|| not_found(RecordKind::Account, key.as_str()))
    }

    /// Every account, by name.
    fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        list_records(self, tables::ACCOUNTS)
    }

    /// The accounts the callout may place users in (the AUTH account JWT's
    /// `allowed_accounts`): the active managed accounts.
    fn allowed_accounts(&self) -> Result<Vec<AccountPublicKey>, StoreError> {
        Ok(self
            .list_accounts()?
            .into_iter()
            .filter(|a| a.kind == AccountKind::Managed && a.active)
            .map(|a| a.public_key)
            .collect())
    }

    /// The role named `name`.
    fn get_role(&self, name: &str) -> Result<Option<Role>, StoreError> {
        get_record(self, tables::ROLES, name)
    }

    /// The role named `name`, or `NotFound`.
    fn require_role(&self, name: &str) -> Result<Role, StoreError> {
        self.get_role(name)?.ok_or_else(|| not_found(RecordKind::Role, name))
    }

    /// Every role, by name.
    fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        list_records(self, tables::ROLES)
    }

    /// The user named `name`.
    fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        get_record(self, tables::USERS, name)
    }

    /// The user named `name`, or `NotFound`.
    fn require_user(&self, name: &str) -> Result<User, StoreError> {
        self.get_user(name)?.ok_or_else(|| not_found(RecordKind::User, name))
    }

    /// Every user, by name.
    fn list_users(&self) -> Result<Vec<User>, StoreError> {
        list_records(self, tables::USERS)
    }

    /// The users of account `account`, by name.
    fn list_users_of_account(&self, account: &str) -> Result<Vec<User>, StoreError> {
        let names = index_members(self, tables::USERS_BY_ACCOUNT, account)?;
        names.iter().map(|n| self.require_user(n)).collect()
    }

    /// The users holding role `role`, by name.
    fn list_users_of_role(&self, role: &str) -> Result<Vec<User>, StoreError> {
        let names = index_members(self, tables::USERS_BY_ROLE, role)?;
        names.iter().map(|n| self.require_user(n)).collect()
    }

    /// The names of the users of account `account` (cheaper than loading the users).
    fn list_user_names_of_account(&self, account: &str) -> Result<Vec<String>, StoreError> {
        index_members(self, tables::USERS_BY_ACCOUNT, account)
    }

    /// The names of the users holding role `role` (cheaper than loading the users).
    fn list_user_names_of_role(&self, role: &str) -> Result<Vec<String>, StoreError> {
        index_members(self, tables::USERS_BY_ROLE, role)
    }

    /// How many users account `account` has.
    fn count_users_of_account(&self, account: &str) -> Result<u64, StoreError> {
        Ok(index_members(self, tables::USERS_BY_ACCOUNT, account)?.len() as u64)
    }

    /// How many users hold role `role`.
    fn count_users_of_role(&self, role: &str) -> Result<u64, StoreError> {
        Ok(index_members(self, tables::USERS_BY_ROLE, role)?.len() as u64)
    }

    /// Which user and token a token hash (see [`ApiToken::hash_secret`]) belongs to.
    fn lookup_token(&self, hash: &str) -> Result<Option<TokenRef>, StoreError> {
        let table = self.table(tables::TOKENS)?;
        let hit = table.get(hash).map_err(backend("reading tokens"))?;
        Ok(hit.map(|g| {
            let (user, token_id) = g.value();
            TokenRef { user: user.to_string(), token_id: token_id.to_string() }
        }))
    }

    /// The result remembered under idempotency key `key`, if any (see
    /// [`Store::with_idempotency_key`](super::Store::with_idempotency_key)).
    fn remembered(&self, key: &str) -> Result<Option<super::Remembered>, StoreError> {
        super::idempotency::remembered(self, key)
    }

    /// The name of the user who registered nkey `key`.
    fn user_by_nkey_name(&self, key: &str) -> Result<Option<String>, StoreError> {
        let table = self.table(tables::USER_NKEYS)?;
        let hit = table.get(key).map_err(backend("reading user nkeys"))?;
        Ok(hit.map(|g| g.value().to_string()))
    }

    /// The user who registered nkey `key` (the nkey login path).
    fn user_by_nkey(&self, key: &str) -> Result<Option<User>, StoreError> {
        match self.user_by_nkey_name(key)? {
            Some(name) => {
                let dangling =
                    || StoreError::Corrupt { table: "user_nkeys".into(), key: key.into() };
                Ok(Some(self.get_user(&name)?.ok_or_else(dangling)?))
            }
            None => Ok(None),
        }
    }

    /// The user and token for a token hash, in one call (the login path).
    fn user_by_token(&self, hash: &str) -> Result<Option<(User, ApiToken)>, StoreError> {
        let Some(r) = self.lookup_token(hash)? else { return Ok(None) };
        let dangling = || StoreError::Corrupt { table: "tokens".into(), key: r.token_id.clone() };
        let user = self.get_user(&r.user)?.ok_or_else(dangling)?;
        let token = user.token(&r.token_id).cloned().ok_or_else(dangling)?;
        Ok(Some((user, token)))
    }

    /// The outbox entry of `account`.
    fn get_outbox(&self, account: &AccountPublicKey) -> Result<Option<OutboxEntry>, StoreError> {
        get_record(self, tables::OUTBOX, account.as_str())
    }

    /// Every outbox entry, failed ones included.
    fn list_outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        list_records(self, tables::OUTBOX)
    }

    /// The entries due at `now_ms`, earliest `next_attempt` first.
    fn list_due_outbox(&self, now_ms: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut due: Vec<OutboxEntry> =
            self.list_outbox()?.into_iter().filter(|e| e.is_due(now_ms)).collect();
        due.sort_by_key(|e| e.next_attempt);
        Ok(due)
    }

    /// The admin named `name`.
    fn get_admin(&self, name: &str) -> Result<Option<AdminRecord>, StoreError> {
        get_record(self, tables::ADMINS, name)
    }

    /// The admin named `name`, or `NotFound`.
    fn require_admin(&self, name: &str) -> Result<AdminRecord, StoreError> {
        self.get_admin(name)?.ok_or_else(|| not_found(RecordKind::Admin, name))
    }

    /// The admin whose creds key is `key`.
    fn admin_by_key(&self, key: &str) -> Result<Option<AdminRecord>, StoreError> {
        match super::write_admins::admin_name_by_key(self, key)? {
            Some(name) => self.get_admin(&name),
            None => Ok(None),
        }
    }

    /// Every admin, by name.
    fn list_admins(&self) -> Result<Vec<AdminRecord>, StoreError> {
        list_records(self, tables::ADMINS)
    }

    /// Audit entries recorded at or after `since_ms` (unix ms), oldest first.
    fn list_audit(&self, since_ms: i64) -> Result<Vec<AuditRecord>, StoreError> {
        super::write_admins::audit_since(self, since_ms)
    }
}
