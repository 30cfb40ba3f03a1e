//! Credential checks for the callout: argon2id passwords, API tokens, nkey signatures, a cache of
//! recently verified passwords, failure throttling and source-address checks.
//!
//! This module works on plain strings, bytes and small types of its own; it does not know the
//! store or the model. The callout glues it to store records: it looks a user up, hands the stored
//! PHC string (or token hash, or registered nkey) to the functions here, and maps the result to an
//! authorization response.
//!
//! Cost model: [`verify_password`] runs argon2id on purpose (tens of milliseconds with the
//! production [`PasswordParams`]) and must run off the async runtime; everything else here is
//! cheap. [`VerifiedCache`] is what keeps a reconnect storm of password users from paying argon2
//! once per connection.

use std::time::Duration;

mod cache;
mod login_throttle;
mod nkey;
pub mod oidc;
mod password;
mod source;
mod throttle;
mod token;

pub use cache::VerifiedCache;
pub use login_throttle::LoginThrottle;
pub use nkey::verify_nkey_signature;
pub use password::{
    default_verify_blocks, hash_password, hash_password_with, verify_password_in, PasswordParams,
    Secret, VerifyMemory,
};
pub use source::{parse_client_host, source_allowed};
pub use throttle::ThrottleConfig;
pub use token::{token_hash, ApiTokenSecret};

/// Errors of the auth module.
///
/// No variant ever carries a password, token, seed or PHC string: they name the offending value
/// only where that value is not a secret (a username, a public key, a host string, a length).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// An empty password was offered for hashing.
    #[error("password is empty")]
    EmptyPassword,
    /// A password longer than [`MAX_PASSWORD_LEN`] was offered for hashing.
    #[error("password is {len} bytes, more than the limit of {max}")]
    PasswordTooLong {
        /// Length of the offered password in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters m={m_cost_kib} KiB t={t_cost} p={p_cost}: {reason}")]
    InvalidParams {
        /// Memory cost in KiB.
        m_cost_kib: u32,
        /// Number of passes.
        t_cost: u32,
        /// Degree of parallelism.
        p_cost: u32,
        /// Why argon2 refused them.
        reason: String,
    },
    /// Hashing failed inside argon2 (not caused by the password's content).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The stored password hash is not a usable PHC string.
    #[error("malformed password hash: {reason}")]
    MalformedHash {
        /// What is wrong with it (the hash itself is never echoed).
        reason: String,
    },
    /// The stored password hash is a valid PHC string of another algorithm than argon2id.
    #[error("password hash algorithm {algorithm:?} is not argon2id")]
    UnsupportedAlgorithm {
        /// The PHC algorithm identifier found.
        algorithm: String,
    },
    /// An nkey login without the server nonce (`client_info.nonce`) to check it against.
    #[error("no server nonce to check the nkey signature of {key} against")]
    MissingNonce {
        /// The user public key that was to be checked.
        key: String,
    },
    /// An nkey login without a signature (`connect_opts.sig`).
    #[error("no nonce signature from {key}")]
    MissingSignature {
        /// The user public key that was to be checked.
        key: String,
    },
    /// The signature is neither base64url without padding nor standard base64 with padding.
    #[error("nonce signature of {len} characters is not base64")]
    SignatureEncoding {
        /// Length of the offered text.
        len: usize,
    },
    /// The nonce signature does not verify for the public key.
    #[error("nonce signature does not verify for {key}")]
    BadSignature {
        /// The user public key.
        key: String,
    },
    /// Too many recent failed logins for this user or host.
    #[error("too many failed logins for {key}; retry in {retry_after:?}")]
    Throttled {
        /// The throttled username or host.
        key: String,
        /// How long until the oldest counted failure leaves the window.
        retry_after: Duration,
    },
    /// A throttle configuration that cannot work.
    #[error("invalid throttle config: {0}")]
    InvalidThrottleConfig(&'static str),
    /// `client_info.host` is not an IP address.
    #[error("client host {0:?} is not an ip address")]
    InvalidHost(String),
}
