//! The records of pbn's import/export format, and their conversion to and from the model.
//!
//! A record is one JSON object naming its kind: `{"account": {...}}`, `{"role": {...}}` or
//! `{"user": {...}}`. Secrets (account seeds, password hashes, token hashes) are optional
//! fields: an export writes them only with `--with-secrets`, and an import without them makes
//! fresh account keys and users without credentials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BulkError, Location};
use crate::keys::{AccountPublicKey, KeyKind, KeyPair, Seed, UserPublicKey};
use crate::model::{
    Account, AccountKind, AccountLimits, ApiToken, Export, Import, IssuedCreds, ModelError, Name,
    Role, SigningKey, User,
};

/// The format version this build writes and reads.
pub const BULK_VERSION: u32 = 1;

/// One record of an import or export file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// A managed account.
    Account(Box<AccountRecord>),
    /// A role (the same fields `role show --json` is built from).
    Role(Box<Role>),
    /// A user.
    User(Box<UserRecord>),
}

impl Record {
    /// `account`, `role` or `user`.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Account(_) => "account",
            Record::Role(_) => "role",
            Record::User(_) => "user",
        }
    }
}

/// A managed account. Without `identity` the import generates its keys (like `account add`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRecord {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Inactive accounts are deleted from the servers.
    #[serde(default = "yes")]
    pub active: bool,
    /// Refuse bearer user JWTs.
    #[serde(default)]
    pub disallow_bearer: bool,
    /// Limits (default: unlimited, JetStream off).
    #[serde(default, skip_serializing_if = "unlimited")]
    pub limits: AccountLimits,
    /// Exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    /// Imports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    /// Revoked user keys → unix seconds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// Unix seconds of creation (default: the import's time).
    pub created: Option<i64>,
    /// Unix seconds of the last change (default: the import's time).
    pub updated: Option<i64>,
    /// Secret: the identity public key, with `identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Secret: the identity seed (`SA…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Seed>,
    /// Secret: the signing keys with their seeds (required with `identity`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    /// With `identity`: the `iat` of the last account JWT issued, so later ones are newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_jwt_iat: Option<i64>,
}

fn yes() -> bool {
    true
}

/// Whether `limits` are the defaults an import fills in (left out of written records, which
/// keeps a record of a plain account small: a remote import sends records in 64 KiB requests).
fn unlimited(limits: &AccountLimits) -> bool {
    *limits == AccountLimits::default()
}

/// A user. Without `password_hash` and `tokens` it has no credentials yet.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Account.
    pub account: String,
    /// Role.
    pub role: String,
    /// Contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Inactive users cannot log in.
    #[serde(default = "yes")]
    pub active: bool,
    /// A registered nkey (`U…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<UserPublicKey>,
    /// Creds issued (public keys only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creds: Vec<IssuedCreds>,
    /// Unix seconds of creation (default: the import's time).
    pub created: Option<i64>,
    /// Unix seconds of the last change (default: the import's time).
    pub updated: Option<i64>,
    /// Secret: the argon2id PHC string of the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Secret: API tokens by their SHA-256 hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<ApiToken>,
}

/// Password and token hashes are shown as redacted.
impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("account", &self.account)
            .field("role", &self.role)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

/// A field error at `at`.
fn field(at: Location, field: &str, e: impl std::fmt::Display) -> BulkError {
    BulkError::Field { at, field: field.to_string(), detail: e.to_string() }
}

fn name(at: Location, f: &str, text: &str) -> Result<Name, BulkError> {
    Name::parse(text).map_err(|e| field(at, f, e))
}

/// The field a user's model error is about.
fn user_field(e: &ModelError) -> &'static str {
    match e {
        ModelError::Email(_) => "email",
        ModelError::PasswordNotHashed(_) => "password_hash",
        ModelError::TokenId(_) | ModelError::TokenHash(_) | ModelError::DuplicateToken(_) => {
            "tokens"
        }
        _ => "description",
    }
}

impl UserRecord {
    /// The user it describes, checked; `now` fills missing times.
    pub fn to_model(&self, at: Location, now: i64) -> Result<User, BulkError> {
        let mut user = User::new(
            name(at, "name", &self.name)?,
            name(at, "account", &self.account)?,
            name(at, "role", &self.role)?,
            self.created.unwrap_or(now),
        );
        user.updated = self.updated.unwrap_or(user.created);
        user.email = self.email.clone();
        user.description = self.description.clone();
        user.active = self.active;
        user.nkey = self.nkey.clone();
        user.creds = self.creds.clone();
        user.password_hash = self.password_hash.clone();
        user.tokens = self.tokens.clone();
        user.validate().map_err(|e| field(at, user_field(&e), e))?;
        Ok(user)
    }

    /// The record of `user`, with its password and token hashes only when `secrets`.
    pub fn from_model(user: &User, secrets: bool) -> Self {
        UserRecord {
            name: user.name.to_string(),
            account: user.account.to_string(),
            role: user.role.to_string(),
            email: user.email.clone(),
            description: user.description.clone(),
            active: user.active,
            nkey: user.nkey.clone(),
            creds: user.creds.clone(),
            created: Some(user.created),
            updated: Some(user.updated),
            password_hash: user.password_hash.clone().filter(|_| secrets),
            tokens: if secrets { user.tokens.clone() } else { vec![] },
        }
    }
}

impl AccountRecord {
    /// The managed account it describes, checked: its own keys when `identity` is given, else
    /// fresh ones. `now` fills missing times.
    pub fn to_model(&self, at: Location, now: i64) -> Result<Account, BulkError> {
        if crate::model::is_reserved(&self.name) {
            return Err(field(
                at,
                "name",
                ModelError::ReservedName(crate::model::clip(&self.name)),
            ));
        }
        let created = self.created.unwrap_or(now);
        let mut acc =
            Account::generate(name(at, "name", &self.name)?, AccountKind::Managed, created);
        if let Some(identity) = &self.identity {
            let kp = KeyPair::from_seed_of(identity, KeyKind::Account)
                .map_err(|e| field(at, "identity", e))?;
            let public = kp.public_key();
            if self.public_key.as_ref().is_some_and(|p| p != public) {
                return Err(field(at, "public_key", ModelError::KeyMismatch(public.to_string())));
            }
            acc.identity = identity.clone();
            acc.public_key =
                AccountPublicKey::parse(public).map_err(|e| field(at, "identity", e))?;
            acc.signing_keys = self.signing_keys.clone();
            acc.last_jwt_iat = self.last_jwt_iat.unwrap_or(0);
            for (i, k) in acc.signing_keys.iter().enumerate() {
                k.validate(KeyKind::Account)
                    .map_err(|e| field(at, &format!("signing_keys[{i}]"), e))?;
            }
        } else if self.public_key.is_some() || !self.signing_keys.is_empty() {
            let e = "keys are imported with the identity seed only";
            return Err(field(at, "identity", e));
        }
        acc.description = self.description.clone();
        acc.active = self.active;
        acc.disallow_bearer = self.disallow_bearer;
        acc.limits = self.limits;
        acc.exports = self.exports.clone();
        acc.imports = self.imports.clone();
        acc.revocations = self.revocations.clone();
        acc.updated = self.updated.unwrap_or(created);
        acc.validate().map_err(|e| field(at, "account", e))?;
        Ok(acc)
    }

    /// The record of `acc`, with its keys and seeds only when `secrets`.
    pub fn from_model(acc: &Account, secrets: bool) -> Self {
        AccountRecord {
            name: acc.name.to_string(),
            description: acc.description.clone(),
            active: acc.active,
            disallow_bearer: acc.disallow_bearer,
            limits: acc.limits,
            exports: acc.exports.clone(),
            imports: acc.imports.clone(),
            revocations: acc.revocations.clone(),
            created: Some(acc.created),
            updated: Some(acc.updated),
            public_key: secrets.then(|| acc.public_key.to_string()),
            identity: secrets.then(|| acc.identity.clone()),
            signing_keys: if secrets { acc.signing_keys.clone() } else { vec![] },
            last_jwt_iat: secrets.then_some(acc.last_jwt_iat),
        }
    }
}

/// Checks a role record.
pub fn check_role(at: Location, role: &Role) -> Result<(), BulkError> {
    role.validate().map_err(|e| field(at, "role", e))
}
