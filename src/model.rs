//! Plain records of pbn (operator, accounts, roles, users, tokens, sessions, outbox entries) and
//! their validation. Pure: no I/O, no clock (callers pass `now`), no async.
//!
//! Rules that hold for every record here:
//! - limits default to `-1` (unlimited), never `0`; JetStream is off unless asked for;
//! - a permission list that is unset takes the configured default, one that is explicitly empty
//!   means nothing (see [`permissions`](Permissions));
//! - no user seed is a field of any record; seeds and hashes never show in `Debug` output;
//! - field types validate on construction and deserialization (names, subjects, keys, limits);
//!   `validate()` checks what spans fields (keys match seeds, token hashes, connection types…)
//!   and is run by the store on every write, not on reads.

mod account;
mod admin;
mod effects;
mod idp;
mod limits;
mod names;
mod permissions;
mod runtime;
pub mod template;
mod user;

pub use account::{
    Account, AccountKind, CalloutConfig, Export, ExportKind, Import, Operator, SigningKey,
};
pub use admin::{AdminRecord, AdminScope, AuditRecord, LOCAL_OWNER};
pub use effects::{CloseSessions, Effects, QueuedPush};
pub use idp::{
    ClaimMapping, IdentityProvider, KeySource, MappingTarget, DEFAULT_LEEWAY_SECS,
    DEFAULT_USERNAME_CLAIM, MAX_IDPS, MAX_LEEWAY_SECS, MAX_MAPPINGS,
};
pub use limits::{AccountLimits, Limit};
pub use names::{is_reserved, Name, SubSubject, Subject, AUTH_ACCOUNT, NAME_MAX_LEN, SYS_ACCOUNT};
pub use permissions::{PermissionDefaults, Permissions, ResponsePermission};
pub use runtime::{OutboxAction, OutboxEntry, Session};
pub use user::{ApiToken, IssuedCreds, Role, User, MIN_JWT_TTL_SECS};

use crate::keys::{KeyError, KeyKind};

/// Longest description or label, in characters.
pub const DESCRIPTION_MAX_LEN: usize = 1024;

/// Errors of the model: a value that breaks a record rule. Each names the offending value
/// (never a secret).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A limit below `-1`.
    #[error("limit {0} is below -1 (use -1 for unlimited, 0 for disabled)")]
    LimitBelowMinusOne(i64),
    /// A limit that is not a number nor `unlimited`/`disabled`.
    #[error("limit {0:?} is not a number, \"unlimited\" or \"disabled\"")]
    LimitNotANumber(String),
    /// A name that is empty or longer than [`NAME_MAX_LEN`].
    #[error("name {0:?} must be 1 to 64 characters long")]
    NameLength(String),
    /// A name that does not start with an ASCII letter or digit.
    #[error("name {0:?} must start with an ASCII letter (a-z, A-Z) or digit")]
    NameStart(String),
    /// A name with a character outside `[A-Za-z0-9_-]`.
    #[error("name {name:?} contains {ch:?}; only ASCII letters, digits, '_' and '-' are allowed")]
    NameChar {
        /// The offending name.
        name: String,
        /// The first character that is not allowed.
        ch: char,
    },
    /// An empty subject.
    #[error("subject is empty")]
    SubjectEmpty,
    /// A subject with whitespace or control characters.
    #[error("subject {0:?} contains whitespace or control characters")]
    SubjectWhitespace(String),
    /// A subject with an empty token (leading, trailing or double dot).
    #[error("subject {0:?} has an empty token")]
    SubjectEmptyToken(String),
    /// A subject with `*` or `>` inside a token, or `>` before the last token.
    #[error("subject {0:?} misuses a wildcard ('*' and '>' must be whole tokens, '>' the last)")]
    SubjectWildcard(String),
    /// A subscribe entry whose queue part is not valid.
    #[error("subscribe entry {0:?} has an invalid queue (expected \"subject queue\")")]
    QueueInvalid(String),
    /// A response permission with `max` below `-1`.
    #[error("response permission max {0} is below -1")]
    ResponseMaxBelowMinusOne(i64),
    /// A role JWT lifetime below [`MIN_JWT_TTL_SECS`].
    #[error("role {0:?} has a JWT lifetime below the minimum of {MIN_JWT_TTL_SECS} s")]
    JwtTtlTooShort(String),
    /// A connection type NATS does not know.
    #[error("unknown connection type {0:?}")]
    ConnectionType(String),
    /// A text field over its maximum length.
    #[error("{field} is longer than {max} characters")]
    TextTooLong {
        /// Which field.
        field: &'static str,
        /// Its maximum length.
        max: usize,
    },
    /// A name reserved for a record pbn creates itself (see [`RESERVED_NAMES`]).
    #[error("name {0:?} is reserved (SYS and AUTH, in any letter case)")]
    ReservedName(String),
    /// A record whose JWT (or the callout response carrying it) would exceed the servers'
    /// max payload: nats-server would drop the message, and logins or pushes would hang.
    #[error(
        "{what} {name:?} would need a message of {size} bytes; nats-server's max payload is \
         {max} bytes"
    )]
    JwtTooLarge {
        /// `role` or `account`.
        what: &'static str,
        /// The record's name.
        name: String,
        /// The message size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A free-text field with a control character (escape sequences, line breaks, NUL).
    #[error("{field} {text:?} contains the control character {ch:?}")]
    ControlChar {
        /// Which field.
        field: &'static str,
        /// The text (cut, see [`clip`]).
        text: String,
        /// The first control character.
        ch: char,
    },
    /// An operator name that is empty, too long or has control characters.
    #[error("operator name {0:?} must be 1 to 128 printable characters")]
    OperatorName(String),
    /// A key error (bad or wrong-kind seed or public key).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A stored public key that does not belong to its seed.
    #[error("public key {0} does not match its seed")]
    KeyMismatch(String),
    /// An operator or account without signing keys.
    #[error("{0:?} has no signing key")]
    NoSigningKey(String),
    /// A revocation key that is neither a user key nor `*`.
    #[error("revocation key {0:?} is neither a user public key nor \"*\"")]
    RevocationKey(String),
    /// A response type on a stream export.
    #[error("export {0:?} is a stream and cannot have a response type")]
    ResponseTypeOnStream(String),
    /// An account token position that does not point at a `*` token of the subject.
    #[error("export {export:?}: account token position {position} is not a '*' token")]
    TokenPosition {
        /// The export name.
        export: String,
        /// The offending position.
        position: u32,
    },
    /// Callout settings on an account that is not the auth-callout account.
    #[error("account {0:?} is not the auth-callout account but has callout settings")]
    CalloutOnNonAuthAccount(String),
    /// A callout xkey seed that is not a curve seed.
    #[error("callout xkey seed is a {0} seed, not a curve seed")]
    XkeyKind(KeyKind),
    /// An email address that does not look like one.
    #[error("email {0:?} is not a valid address")]
    Email(String),
    /// A password field that is not an argon2id PHC string (the value is not echoed).
    #[error("password of user {0:?} is not an argon2id hash")]
    PasswordNotHashed(String),
    /// An API token id outside `[A-Za-z0-9_-]{1,64}`.
    #[error("token id {0:?} must be 1 to 64 letters, digits, '_' or '-'")]
    TokenId(String),
    /// An API token hash that is not 64 lower-case hex digits (the hash is not echoed).
    #[error("token {0:?} has a hash that is not a hex sha-256 digest")]
    TokenHash(String),
    /// Two tokens of one user with the same id or the same hash.
    #[error("token {0:?} is duplicated (same id or same secret)")]
    DuplicateToken(String),
    /// An admin scope that is not `operator` nor `account:NAME`.
    #[error("admin scope {0:?} must be \"operator\" or \"account:NAME\"")]
    AdminScope(String),
    /// A user with more than [`template::MAX_TAGS`] tags.
    #[error("a user may have at most {max} tags, not {0}", max = template::MAX_TAGS)]
    TooManyTags(usize),
    /// A tag key outside `[A-Za-z0-9_-]{1,64}`.
    #[error("tag key {0:?} must be 1 to 64 letters, digits, '_' or '-'")]
    TagKey(String),
    /// A tag value that is empty, too long or has control characters.
    #[error("tag {0:?} has a value that is empty, longer than 256 characters or not printable")]
    TagValue(String),
    /// A permission entry that is not a valid subject template.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// An admin expiry not after its creation.
    #[error("admin expiry {0} is not after its creation")]
    AdminExpiry(i64),
}

/// Longest piece of user input an error message quotes, in characters.
pub const QUOTE_MAX_CHARS: usize = 64;

/// `text` cut to [`QUOTE_MAX_CHARS`] characters (with `…` when cut): what error messages quote,
/// so a 10,000-character value does not flood the terminal or a log line.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Checks that `text` has at most `max` characters and no control characters (a description
/// is printed on terminals: an escape sequence in it would drive them).
pub(crate) fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), ModelError> {
    if text.chars().count() > max {
        return Err(ModelError::TextTooLong { field, max });
    }
    if let Some(ch) = text.chars().find(|c| c.is_control()) {
        return Err(ModelError::ControlChar { field, text: clip(text), ch });
    }
    Ok(())
}
