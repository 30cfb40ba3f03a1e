//! Every redb table of the store, in one place.
//!
//! Record tables map a text key to a versioned record (see [`super::codec`]). Index tables hold
//! plain redb keys and values derived from the records and are maintained by the same write
//! transaction that writes the record, so they can never disagree with it after a commit.

use redb::TableDefinition;

/// The schema this build reads and writes.
pub(crate) const SCHEMA_VERSION: u64 = 4;

/// The key of the schema version in [`META`].
pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";

/// The key of the single row of [`OPERATOR`].
pub(crate) const OPERATOR_KEY: &str = "operator";

/// A table of versioned records keyed by text.
pub(crate) type RecordTable = TableDefinition<'static, &'static str, &'static [u8]>;

/// Store metadata: `schema_version → 1`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Sealing metadata of an encrypted store: [`KEY_CHECK_KEY`] → the key check value
/// (`seal::seal_key_check`). A store without it holds plain seeds.
pub(crate) const SEAL: TableDefinition<&str, &[u8]> = TableDefinition::new("seal");

/// The key of the key check value in [`SEAL`].
pub(crate) const KEY_CHECK_KEY: &str = "key_check";

/// The key of the argon2id salt in [`SEAL`] (present when the key comes from a passphrase).
pub(crate) const PASSPHRASE_SALT_KEY: &str = "passphrase_salt";

/// The operator, a singleton under [`OPERATOR_KEY`].
pub(crate) const OPERATOR: RecordTable = TableDefinition::new("operator");

/// Accounts by name.
pub(crate) const ACCOUNTS: RecordTable = TableDefinition::new("accounts");

/// Index: account public key → account name.
pub(crate) const ACCOUNT_KEYS: TableDefinition<&str, &str> = TableDefinition::new("account_keys");

/// Roles by name.
pub(crate) const ROLES: RecordTable = TableDefinition::new("roles");

/// Users by name.
pub(crate) const USERS: RecordTable = TableDefinition::new("users");

/// Index: (account name, user name) for listing and counting the users of an account.
pub(crate) const USERS_BY_ACCOUNT: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("users_by_account");

/// Index: (role name, user name) for listing and counting the users of a role.
pub(crate) const USERS_BY_ROLE: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("users_by_role");

/// Index: token hash (hex sha-256) → (user name, token id).
pub(crate) const TOKENS: TableDefinition<&str, (&str, &str)> = TableDefinition::new("tokens");

/// User name by registered nkey (`U…`): nkey logins look the user up here, and a key can
/// belong to one user only.
pub(crate) const USER_NKEYS: TableDefinition<&str, &str> = TableDefinition::new("user_nkeys");

/// Outbox entries by account public key (one per account: coalesced).
pub(crate) const OUTBOX: RecordTable = TableDefinition::new("outbox");

/// Callout sessions of schema 1 (unused: sessions live in memory); dropped by the migration
/// to schema 2.
pub(crate) const V1_SESSIONS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("sessions");

/// Remembered admin requests by idempotency key: (unix ms when applied, encoded result).
pub(crate) const IDEMPOTENCY: TableDefinition<&str, (i64, &[u8])> =
    TableDefinition::new("idempotency");

/// Index: (unix ms when applied, idempotency key), oldest first, for pruning.
pub(crate) const IDEMPOTENCY_BY_TIME: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("idempotency_by_time");

/// Named admins by name (schema 3).
pub(crate) const ADMINS: RecordTable = TableDefinition::new("admins");

/// Index: admin public key → admin name (a key belongs to one admin).
pub(crate) const ADMIN_KEYS: TableDefinition<&str, &str> = TableDefinition::new("admin_keys");

/// Replicas allowed to join the log, by name (schema 4; see `store::replicas`).
pub(crate) const REPLICAS: RecordTable = TableDefinition::new("replicas");

/// The audit trail: (unix ms, sequence within that ms) → encoded audit record, oldest first.
pub(crate) const AUDIT: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("audit");

/// API tokens of named admins by token hash (schema 4; see `store::admin_tokens`).
pub(crate) const ADMIN_TOKENS: RecordTable = TableDefinition::new("admin_tokens");

/// Console passwords of named admins by admin name (schema 4; see `store::admin_tokens`).
pub(crate) const ADMIN_PASSWORDS: RecordTable = TableDefinition::new("admin_passwords");

/// Identity providers by name (schema 4).
pub(crate) const IDPS: RecordTable = TableDefinition::new("idps");

/// Users a provider's logins created (`--provision`): user name → provider name. A user
/// record without an entry here is a local user, which no provider's login may take over.
pub(crate) const IDP_USERS: TableDefinition<&str, &str> = TableDefinition::new("idp_users");

/// Opens (creating) every table, so read transactions find them all.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(META)?;
    txn.open_table(SEAL)?;
    for table in [
        OPERATOR,
        ACCOUNTS,
        ROLES,
        USERS,
        OUTBOX,
        ADMINS,
        REPLICAS,
        ADMIN_TOKENS,
        ADMIN_PASSWORDS,
        IDPS,
    ] {
        txn.open_table(table)?;
    }
    txn.open_table(ACCOUNT_KEYS)?;
    txn.open_table(USERS_BY_ACCOUNT)?;
    txn.open_table(USERS_BY_ROLE)?;
    txn.open_table(TOKENS)?;
    txn.open_table(USER_NKEYS)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(IDEMPOTENCY_BY_TIME)?;
    txn.open_table(ADMIN_KEYS)?;
    txn.open_table(AUDIT)?;
    txn.open_table(IDP_USERS)?;
    Ok(())
}

/// The key of the last applied log position in [`META`] (absent: nothing applied, 0).
pub(crate) const APPLIED_SEQ_KEY: &str = "applied_seq";

/// A table every replica holds: how to replay one raw journal operation on it with its own
/// key and value types, and how to list its raw rows (for comparing replicas and snapshots).
pub(crate) struct Replicated {
    /// The table's name.
    pub(crate) name: fn() -> &'static str,
    /// Writes (`Some`) or removes (`None`) one raw row.
    pub(crate) apply: super::replicate::ApplyFn,
    /// Every raw row, in key order.
    pub(crate) rows: super::replicate::RowsFn,
    /// Writes many raw rows, opening the table once (restoring a snapshot).
    pub(crate) restore: super::replicas::RestoreFn,
}

/// Lists the replicated tables: each entry replays and lists its table through the table's
/// own types, so a table left out here cannot be replayed (a unit test compares this list
/// with the tables a new store has).
macro_rules! replicated {
    ($($def:ident),+ $(,)?) => {
        /// Every table of the store, with its typed replay (see [`Replicated`]).
        pub(crate) static REPLICATED: &[Replicated] = &[$(Replicated {
            name: || {
                let def: &'static _ = &$def;
                redb::TableHandle::name(def)
            },
            apply: |txn, key, value| super::replicate::apply_row(txn, $def, key, value),
            rows: |txn| super::replicate::rows(txn, $def),
            restore: |txn, rows| super::replicas::restore_rows(txn, $def, rows),
        }),+];
    };
}

replicated!(
    META,
    SEAL,
    OPERATOR,
    ACCOUNTS,
    ACCOUNT_KEYS,
    ROLES,
    USERS,
    USERS_BY_ACCOUNT,
    USERS_BY_ROLE,
    TOKENS,
    USER_NKEYS,
    OUTBOX,
    IDEMPOTENCY,
    IDEMPOTENCY_BY_TIME,
    ADMINS,
    ADMIN_KEYS,
    AUDIT,
    REPLICAS,
    ADMIN_TOKENS,
    ADMIN_PASSWORDS,
    IDPS,
    IDP_USERS,
);

/// The replicated table named `name`.
pub(crate) fn replicated(name: &str) -> Option<&'static Replicated> {
    REPLICATED.iter().find(|r| (r.name)() == name)
}
