//! Typed admin requests and responses: the one vocabulary of local and remote administration.
//!
//! Requests carry raw user input (names, subjects, limits as given); [`super::execute`] validates
//! them into model values inside the store transaction. Passwords never travel: the client hashes
//! them (argon2id) and sends the PHC string. Secrets created by the service (creds, API tokens) are
//! in the response once and never stored.

use serde::{Deserialize, Serialize};

/// Account limits as given; `None` keeps the current value (or the default on create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitPatch {
    /// Max client connections.
    pub max_connections: Option<i64>,
    /// Max subscriptions.
    pub max_subscriptions: Option<i64>,
    /// Max data bytes.
    pub max_data: Option<i64>,
    /// Max payload bytes.
    pub max_payload: Option<i64>,
    /// Max leafnode connections.
    pub max_leafnodes: Option<i64>,
    /// Max imports.
    pub max_imports: Option<i64>,
    /// Max exports.
    pub max_exports: Option<i64>,
    /// JetStream disk bytes.
    pub js_disk: Option<i64>,
    /// JetStream memory bytes.
    pub js_memory: Option<i64>,
    /// JetStream streams.
    pub js_streams: Option<i64>,
    /// JetStream consumers.
    pub js_consumers: Option<i64>,
}

/// A permission list change: keep, set (possibly to explicitly nothing), or back to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListPatch {
    /// Leave as it is.
    #[default]
    Keep,
    /// Replace with these subjects (empty = nothing allowed).
    Set(Vec<String>),
    /// Unset: the configured default applies.
    Default,
}

/// Role fields as given; `None`/`Keep` leaves a field alone on edit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolePatch {
    /// Description.
    pub description: Option<String>,
    /// Publish allow list.
    pub pub_allow: ListPatch,
    /// Publish deny list.
    pub pub_deny: ListPatch,
    /// Subscribe allow list.
    pub sub_allow: ListPatch,
    /// Subscribe deny list.
    pub sub_deny: ListPatch,
    /// Reply permission: max messages per request.
    pub allow_responses: Option<i64>,
    /// Reply permission lifetime in milliseconds.
    pub response_ttl_ms: Option<u64>,
    /// Max subscriptions per connection.
    pub max_subscriptions: Option<i64>,
    /// Max data per connection.
    pub max_data: Option<i64>,
    /// Max payload per message.
    pub max_payload: Option<i64>,
    /// Max simultaneous connections per user.
    pub max_connections: Option<i64>,
    /// Minted JWT lifetime in seconds.
    pub jwt_ttl_secs: Option<u64>,
    /// Allowed source networks (replaces the list when `Some`).
    pub source_cidrs: Option<Vec<String>>,
    /// Allowed connection types (replaces the list when `Some`).
    pub connection_types: Option<Vec<String>>,
}

/// Stream or service, for exports and imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// A message stream.
    Stream,
    /// A request/reply service.
    Service,
}

/// Every admin operation. `Debug` shows the JSON form with password hashes redacted, so a
/// logged request never carries one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Show the operator.
    OperatorShow,
    /// Mint admin creds (a system user with the `pbn-admin` role's permissions).
    OperatorAdminCreds,
    /// Create an account.
    AccountAdd {
        /// Name.
        name: String,
        /// Description.
        description: Option<String>,
        /// Limits (unset ones default to unlimited, JetStream off).
        limits: LimitPatch,
        /// Refuse bearer users.
        disallow_bearer: bool,
    },
    /// List accounts.
    AccountList,
    /// Show an account.
    AccountShow {
        /// Name.
        name: String,
    },
    /// Change an account.
    AccountEdit {
        /// Name.
        name: String,
        /// Description.
        description: Option<String>,
        /// Limits to change.
        limits: LimitPatch,
        /// Activate or deactivate.
        active: Option<bool>,
        /// Refuse bearer users.
        disallow_bearer: Option<bool>,
    },
    /// Delete an account with no users.
    AccountDelete {
        /// Name.
        name: String,
    },
    /// Add an export.
    ExportAdd {
        /// Exporting account.
        account: String,
        /// Subject.
        subject: String,
        /// Stream or service.
        kind: ExportKind,
        /// Export name.
        name: Option<String>,
        /// Activation token required.
        token_req: bool,
    },
    /// Remove an export.
    ExportRemove {
        /// Exporting account.
        account: String,
        /// Subject.
        subject: String,
    },
    /// Add an import.
    ImportAdd {
        /// Importing account.
        account: String,
        /// Subject as exported.
        subject: String,
        /// Exporting account: a managed account's name or an `A…` key.
        from: String,
        /// Stream or service.
        kind: ExportKind,
        /// Local subject.
        local_subject: Option<String>,
        /// Import name.
        name: Option<String>,
    },
    /// Remove an import.
    ImportRemove {
        /// Importing account.
        account: String,
        /// Subject.
        subject: String,
    },
    /// Emergency key rotation: a new signing key, every old one removed (connections and creds
    /// signed by an old key stop working once the account is pushed).
    AccountRotateKeys {
        /// Account name.
        name: String,
    },
    /// Graceful rotation, step 1: add a signing key, which signs from now on.
    AccountSigningKeyAdd {
        /// Account name.
        name: String,
    },
    /// Graceful rotation, step 2: remove a signing key (never the last one).
    AccountSigningKeyRemove {
        /// Account name.
        name: String,
        /// The signing key's public key (`A…`).
        key: String,
    },
    /// Create a role.
    RoleAdd {
        /// Name.
        name: String,
        /// Fields.
        role: RolePatch,
    },
    /// List roles.
    RoleList,
    /// Show a role.
    RoleShow {
        /// Name.
        name: String,
    },
    /// Change a role.
    RoleEdit {
        /// Name.
        name: String,
        /// Fields to change.
        role: RolePatch,
    },
    /// Delete a role nobody has.
    RoleDelete {
        /// Name.
        name: String,
    },
    /// Create a user.
    UserAdd {
        /// Name.
        name: String,
        /// Account name.
        account: String,
        /// Role name.
        role: String,
        /// E-mail.
        email: Option<String>,
        /// Description.
        description: Option<String>,
        /// argon2id PHC string of the password (hashed by the client).
        password_hash: Option<String>,
    },
    /// List users.
    UserList {
        /// Only this account's users.
        account: Option<String>,
    },
    /// Show a user.
    UserShow {
        /// Name.
        name: String,
    },
    /// Change a user.
    UserEdit {
        /// Name.
        name: String,
        /// New account.
        account: Option<String>,
        /// New role.
        role: Option<String>,
        /// Activate or deactivate.
        active: Option<bool>,
        /// E-mail.
        email: Option<String>,
        /// Description.
        description: Option<String>,
        /// Registered nkey.
        nkey: Option<String>,
    },
    /// Delete a user.
    UserDelete {
        /// Name.
        name: String,
    },
    /// Set a password.
    UserPasswd {
        /// Name.
        name: String,
        /// argon2id PHC string.
        password_hash: String,
    },
    /// Mint creds.
    UserCreds {
        /// Name.
        name: String,
        /// Keep previous creds valid.
        keep_previous: bool,
    },
    /// Create an API token.
    TokenAdd {
        /// User name.
        name: String,
        /// Label.
        label: Option<String>,
        /// Lifetime in seconds.
        expires_secs: Option<u64>,
    },
    /// List tokens.
    TokenList {
        /// User name.
        name: String,
    },
    /// Revoke a token.
    TokenRevoke {
        /// User name.
        name: String,
        /// Token id.
        id: String,
    },
    /// List the claims outbox: pending and failed pushes with their last error.
    OutboxList,
    /// What `pbn nats-conf` renders from: the operator JWT, the system account and the account
    /// JWTs to preload, and the sentinel JWT (public data only). Changes no record; it reserves
    /// fresh `iat`s so the preloaded JWTs are newer than any pushed before.
    NatsConfTrust,
    /// Re-queue an outbox entry (a failed one, typically) for an immediate push.
    OutboxRetry {
        /// The account's name or public key.
        id: String,
    },
}

impl Request {
    /// True for requests that only read.
    pub fn is_read_only(&self) -> bool {
        matches!(
            self,
            Request::OperatorShow
                | Request::AccountList
                | Request::AccountShow { .. }
                | Request::RoleList
                | Request::RoleShow { .. }
                | Request::UserList { .. }
                | Request::UserShow { .. }
                | Request::TokenList { .. }
                | Request::OutboxList
        )
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(hash) = v.get_mut("password_hash").filter(|h| !h.is_null()) {
            *hash = serde_json::Value::String("<redacted>".into());
        }
        write!(f, "Request({v})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password_hashes() {
        let phc = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
        let req = Request::UserPasswd { name: "alice".into(), password_hash: phc.into() };
        let shown = format!("{req:?}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("alice") && shown.contains("<redacted>"), "{shown}");
        let req = Request::AccountShow { name: "APP".into() };
        assert!(format!("{req:?}").contains("account_show"));
    }
}
