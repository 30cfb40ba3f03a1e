//! Named administrators: who may call the admin API, over what, until when.
//!
//! An admin is a user of the system account whose creds pbn minted; the record keeps only its
//! public key (the seed exists only in the creds file handed out), its scope, whether it may
//! only read, and its lifetime. Revoking keeps the record (for the audit trail) and revokes
//! the key in the system account's JWT.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{ModelError, Name};
use crate::keys::UserPublicKey;

/// What an admin may manage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminScope {
    /// Everything: the operator, every account, signing keys, the outbox, other admins.
    Operator,
    /// Users, roles, tokens and creds of this one account.
    Account(Name),
}

impl AdminScope {
    /// Parses `operator` or `account:NAME`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text.split_once(':') {
            None if text == "operator" => Ok(AdminScope::Operator),
            Some(("account", name)) => Ok(AdminScope::Account(Name::parse(name)?)),
            _ => Err(ModelError::AdminScope(super::clip(text))),
        }
    }

    /// The account of an `account:NAME` scope.
    pub fn account(&self) -> Option<&Name> {
        match self {
            AdminScope::Operator => None,
            AdminScope::Account(name) => Some(name),
        }
    }
}

impl fmt::Display for AdminScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminScope::Operator => f.write_str("operator"),
            AdminScope::Account(name) => write!(f, "account:{}", name.as_str()),
        }
    }
}

/// One named admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// Unique name.
    pub name: Name,
    /// Public key of its creds (`U…`): admin requests are signed with its seed.
    pub public_key: UserPublicKey,
    /// What it may manage.
    pub scope: AdminScope,
    /// May it only read.
    pub read_only: bool,
    /// Created (unix seconds).
    pub created: i64,
    /// Expires (unix seconds); `0` never. Its creds' JWT expires at the same time.
    pub expires: i64,
    /// When it was revoked (unix seconds), if it was.
    pub revoked: Option<i64>,
}

impl AdminRecord {
    /// Whether it has expired at `now` (unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires != 0 && now >= self.expires
    }

    /// Checks what spans fields: an expiry after creation.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.expires != 0 && self.expires <= self.created {
            return Err(ModelError::AdminExpiry(self.expires));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_as_written() {
        assert_eq!(AdminScope::parse("operator").unwrap(), AdminScope::Operator);
        let app = AdminScope::parse("account:APP").unwrap();
        assert_eq!(app.account().map(Name::as_str), Some("APP"));
        assert_eq!(app.to_string(), "account:APP");
        for bad in ["", "Operator", "account:", "account:a b", "user:x", "account"] {
            assert!(AdminScope::parse(bad).is_err(), "{bad}");
        }
    }
}

/// One entry of the audit trail: an admin change (or a refused request) as it was asked and
/// how it ended. Secrets are redacted before an entry is made (see `admin::audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (unix milliseconds).
    pub at_ms: i64,
    /// The admin's name; [`LOCAL_OWNER`] for `pbn admin` on the store file.
    pub admin: String,
    /// The admin's public key (none for the local owner).
    pub admin_key: Option<String>,
    /// The command (`op` of the request, e.g. `user_add`).
    pub verb: String,
    /// What it was about (names of the records it names).
    pub target: String,
    /// The request as JSON, secrets redacted.
    pub request: String,
    /// `ok`, or why it failed or was refused.
    pub result: String,
}

/// The admin name the audit trail gives `pbn admin` run on the store file itself (no
/// `--server`): whoever can open the file owns the store.
pub const LOCAL_OWNER: &str = "(local store owner)";
