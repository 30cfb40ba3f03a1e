//! API tokens and console passwords of named admins (schema 4): how admins sign in to the
//! HTTP API (bearer tokens) and the web console (a password).
//!
//! A token is stored only as its SHA-256 hash ([`crate::auth::token_hash`]), which is also its
//! key, so authenticating a request is one lookup. Each record names its admin by name and by
//! public key: a token outlives neither, because a later admin of the same name has another
//! key and the token then authenticates nobody.

use serde::{Deserialize, Serialize};

use super::read::sealed::Source;
use super::read::{get_record, list_records};
use super::{tables, RecordKind, StoreError, StoreRead, WriteTx};

/// Most tokens one admin may hold: listing and revoking scan them all, and an admin needs a
/// few (one per script or machine), not thousands.
pub const MAX_ADMIN_TOKENS: usize = 64;

/// One admin API token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenRecord {
    /// Its id, shown by `list` and named by `revoke` (`tok_…`).
    pub id: String,
    /// The admin it belongs to.
    pub admin: String,
    /// That admin's public key when the token was made.
    pub admin_key: String,
    /// A free-form label.
    pub label: String,
    /// Lower-case hex SHA-256 of the token.
    pub hash: String,
    /// Created (unix seconds).
    pub created: i64,
    /// Expires (unix seconds); `None` never.
    pub expires: Option<i64>,
}

impl AdminTokenRecord {
    /// Whether it has expired at `now` (unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// An admin's console password (argon2id PHC string), tied to the admin's key as tokens are.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPasswordRecord {
    /// The admin's public key when the password was set.
    pub admin_key: String,
    /// The argon2id PHC string.
    pub hash: String,
}

impl std::fmt::Debug for AdminPasswordRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminPasswordRecord({}, <redacted>)", self.admin_key)
    }
}

/// Reads of admin tokens and passwords, on read and write transactions.
pub trait AdminTokenRead: StoreRead {
    /// The token whose hash is `hash`.
    fn admin_token_by_hash(&self, hash: &str) -> Result<Option<AdminTokenRecord>, StoreError> {
        get_record(self, tables::ADMIN_TOKENS, hash)
    }

    /// The tokens of admin `admin`, oldest first.
    fn admin_tokens_of(&self, admin: &str) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let mut all: Vec<AdminTokenRecord> = list_records(self, tables::ADMIN_TOKENS)?;
        all.retain(|t| t.admin == admin);
        all.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(all)
    }

    /// The console password of admin `admin`, if one was set.
    fn admin_password(&self, admin: &str) -> Result<Option<AdminPasswordRecord>, StoreError> {
        get_record(self, tables::ADMIN_PASSWORDS, admin)
    }
}

impl<T: StoreRead + Source + ?Sized> AdminTokenRead for T {}

impl WriteTx {
    /// Stores a new token; `Conflict` when its admin holds [`MAX_ADMIN_TOKENS`] already or the
    /// hash exists (a 256-bit collision: never in practice).
    pub fn insert_admin_token(&mut self, token: &AdminTokenRecord) -> Result<(), StoreError> {
        if self.admin_tokens_of(&token.admin)?.len() >= MAX_ADMIN_TOKENS {
            let name = format!("{} (at most {MAX_ADMIN_TOKENS} tokens)", token.admin);
            return Err(StoreError::Conflict { kind: RecordKind::Token, name });
        }
        if self.admin_token_by_hash(&token.hash)?.is_some() {
            return Err(StoreError::Conflict { kind: RecordKind::Token, name: token.id.clone() });
        }
        self.put_record(tables::ADMIN_TOKENS, &token.hash, token)
    }

    /// Sets (replacing) the console password of admin `admin`.
    pub fn set_admin_password(
        &mut self,
        admin: &str,
        record: &AdminPasswordRecord,
    ) -> Result<(), StoreError> {
        self.put_record(tables::ADMIN_PASSWORDS, admin, record)
    }

    /// Removes token `id` of admin `admin`; `NotFound` when it has no such token.
    pub fn remove_admin_token(
        &mut self,
        admin: &str,
        id: &str,
    ) -> Result<AdminTokenRecord, StoreError> {
        let token = self
            .admin_tokens_of(admin)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| StoreError::NotFound { kind: RecordKind::Token, name: id.into() })?;
        self.remove_record(tables::ADMIN_TOKENS, &token.hash)?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn token(admin: &str, id: &str, hash: &str) -> AdminTokenRecord {
        AdminTokenRecord {
            id: id.into(),
            admin: admin.into(),
            admin_key: "UKEY".into(),
            label: String::new(),
            hash: hash.into(),
            created: 1,
            expires: None,
        }
    }

    #[test]
    fn tokens_are_found_by_hash_listed_by_admin_and_removed_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("pbn.redb")).unwrap();
        store
            .write(|tx| {
                tx.insert_admin_token(&token("ops", "tok_a", "h1"))?;
                tx.insert_admin_token(&token("ops", "tok_b", "h2"))?;
                tx.insert_admin_token(&token("other", "tok_c", "h3"))
            })
            .unwrap();
        let found = store.read(|tx| tx.admin_token_by_hash("h2")).unwrap().unwrap();
        assert_eq!(found.id, "tok_b");
        let ids: Vec<String> =
            store.read(|tx| tx.admin_tokens_of("ops")).unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["tok_a", "tok_b"]);
        let err = store.write(|tx| tx.remove_admin_token("other", "tok_a")).unwrap_err();
        assert!(matches!(err, StoreError::NotFound { kind: RecordKind::Token, .. }), "{err:?}");
        store.write(|tx| tx.remove_admin_token("ops", "tok_a")).unwrap();
        assert!(store.read(|tx| tx.admin_token_by_hash("h1")).unwrap().is_none());
        let dup = store.write(|tx| tx.insert_admin_token(&token("x", "tok_d", "h3")));
        assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    }

    #[test]
    fn an_admin_holds_a_bounded_number_of_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("pbn.redb")).unwrap();
        store
            .write(|tx| {
                for i in 0..MAX_ADMIN_TOKENS {
                    tx.insert_admin_token(&token("ops", &format!("t{i}"), &format!("h{i}")))?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let over = store.write(|tx| tx.insert_admin_token(&token("ops", "more", "hx")));
        assert!(matches!(over, Err(StoreError::Conflict { .. })), "{over:?}");
    }

    #[test]
    fn a_schema_3_store_is_migrated_to_hold_admin_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pbn.redb");
        drop(Store::create(&path).unwrap());
        // Make it the file a schema-3 build wrote: version 3, no admin token table.
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(tables::META).unwrap().insert(tables::SCHEMA_VERSION_KEY, 3).unwrap();
            assert!(txn.delete_table(tables::ADMIN_TOKENS).unwrap());
            assert!(txn.delete_table(tables::ADMIN_PASSWORDS).unwrap());
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.read(|tx| tx.schema_version()).unwrap(), 4);
        assert!(store.read(|tx| tx.admin_tokens_of("ops")).unwrap().is_empty());
        store.write(|tx| tx.insert_admin_token(&token("ops", "tok_a", "h1"))).unwrap();
        assert!(store.read(|tx| tx.admin_password("ops")).unwrap().is_none());
    }
}
