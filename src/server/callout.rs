//! The auth callout: nats-server asks on `$SYS.REQ.USER.AUTH`, pbn answers with a user JWT.
//!
//! [`Pipeline`] is the heart, one (async) call per request; only the argon2 verification leaves
//! the caller's task (it waits for a permit, then runs on the blocking pool):
//! open (xkey) → decode + verify → check (issuer, audience, expiry, account, user nkey) →
//! authenticate (password, API token, nkey) → authorize (user and account active, source
//! CIDRs, per-user connection cap) → mint (user JWT signed by the account's newest signing key) →
//! respond (signed by AUTH, sealed when the request was).
//!
//! A request that fails verification gets no reply at all (we cannot answer a forgery with
//! anything useful, and silence costs an attacker the full auth timeout). A verified request
//! whose credentials fail gets an error response, which nats-server logs and publishes in the
//! `$SYS.ACCOUNT.CLIENT.AUTH.ERR` advisory. [`service`] runs the pipeline on a NATS
//! subscription with bounded concurrency.

mod argon;
mod authn;
pub mod listener;
mod pipeline;

pub use pipeline::{Handled, LoginClient, Pipeline, PipelineOptions};

use crate::auth::oidc::OidcError;
use crate::auth::AuthError;
use crate::claims::ClaimsError;
use crate::issue::IssueError;
use crate::keys::KeyError;
use crate::store::StoreError;

/// Why a callout request was refused. Variants up to [`CalloutError::UserNkey`] are request
/// failures (no reply); the rest are answered with an error response.
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    /// The payload is sealed but no xkey is configured.
    #[error("encrypted request but no xkey is configured")]
    UnexpectedSealed,
    /// The payload is plaintext but an xkey is configured.
    #[error("plaintext request but an xkey is configured")]
    ExpectedSealed,
    /// A sealed request without the `Nats-Server-Xkey` header.
    #[error("encrypted request without a Nats-Server-Xkey header")]
    MissingXkeyHeader,
    /// The box did not open.
    #[error("cannot open the encrypted request: {0}")]
    Open(KeyError),
    /// The (opened) payload is not text.
    #[error("request payload is not utf-8")]
    NotUtf8,
    /// The JWT did not decode or verify.
    #[error("invalid request jwt: {0}")]
    Decode(#[from] ClaimsError),
    /// `iss` is not `server_id.id`.
    #[error("request issuer {iss} is not the server {server}")]
    IssuerMismatch {
        /// The token's issuer.
        iss: String,
        /// `server_id.id`.
        server: String,
    },
    /// The xkey header does not match `server_id.xkey`.
    #[error("xkey header {header} does not match the server xkey {server:?}")]
    XkeyMismatch {
        /// The header value.
        header: String,
        /// `server_id.xkey`.
        server: String,
    },
    /// `aud` is not `nats-authorization-request`.
    #[error("request audience {0:?} is not nats-authorization-request")]
    Audience(String),
    /// The request's `exp` has passed.
    #[error("request expired at {exp} (now {now})")]
    Expired {
        /// Its expiry.
        exp: i64,
        /// The time of the check.
        now: i64,
    },
    /// `sub` is not our AUTH account.
    #[error("request for account {0} which is not our callout account")]
    WrongAccount(String),
    /// `user_nkey` is not a user public key.
    #[error("request user_nkey {0:?} is not a user public key")]
    UserNkey(String),
    /// The client sent nothing we can check.
    #[error("no credentials (user and password, token or nkey)")]
    NoCredentials,
    /// No such user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The password did not verify.
    #[error("bad password for user {0:?}")]
    BadPassword(String),
    /// No user holds this token.
    #[error("unknown api token")]
    UnknownToken,
    /// The token has expired.
    #[error("api token {id} of user {user:?} has expired")]
    TokenExpired {
        /// The user.
        user: String,
        /// The token id.
        id: String,
    },
    /// No user registered this nkey.
    #[error("no user registered nkey {0}")]
    UnknownNkey(String),
    /// The nonce signature did not verify.
    #[error("nkey signature of user {user:?} does not verify: {source}")]
    NkeySignature {
        /// The user.
        user: String,
        /// Why.
        source: AuthError,
    },
    /// Too many recent failures.
    #[error("login throttled: {0}")]
    Throttled(AuthError),
    /// The user is deactivated.
    #[error("user {0:?} is inactive")]
    InactiveUser(String),
    /// The user's account is deactivated.
    #[error("account {0:?} is inactive")]
    InactiveAccount(String),
    /// The user's account is not one the callout places users in.
    #[error("account {0:?} is not a managed account")]
    UnmanagedAccount(String),
    /// The client's address is outside the role's source networks.
    #[error("source {host} of user {user:?} is not allowed by its role")]
    SourceNotAllowed {
        /// The user.
        user: String,
        /// The client address.
        host: String,
    },
    /// The user is at its role's connection cap.
    #[error("user {user:?} is at its connection limit of {max}")]
    ConnectionLimit {
        /// The user.
        user: String,
        /// The cap.
        max: i64,
    },
    /// The user, its account or its role changed while the login was checked; the client
    /// retries against the new state.
    #[error("user {0:?} changed during login")]
    ChangedDuringLogin(String),
    /// Too many password checks already wait for argon2: refused at once rather than queued
    /// past the auth timeout.
    #[error(
        "server busy: {waiting} password checks already waiting (at most {max}); retry shortly"
    )]
    Busy {
        /// Checks waiting when this one arrived.
        waiting: usize,
        /// The bound.
        max: usize,
    },
    /// The response with the minted JWT would not fit the server's max payload.
    #[error("response for user {user:?} is {size} bytes, over the server's max payload of {max}")]
    ResponseTooLarge {
        /// The user.
        user: String,
        /// Size of the response.
        size: usize,
        /// The server's max payload.
        max: usize,
    },
    /// The user's role has subject templates that cannot be filled in for it (a missing tag,
    /// a value that is not one subject token): refused, never widened.
    #[error("user {user:?} refused: {source}")]
    Subjects {
        /// The user.
        user: String,
        /// Why.
        source: crate::model::template::RenderError,
    },
    /// Reading the store failed.
    #[error("store error: {0}")]
    Store(#[from] StoreError),
    /// Minting failed.
    #[error("cannot mint: {0}")]
    Issue(#[from] IssueError),
    /// A credential check failed internally.
    #[error("credential check failed: {0}")]
    Auth(AuthError),
    /// An identity provider's token was refused (the reason is in the message).
    #[error("identity provider login refused: {0}")]
    Oidc(#[from] OidcError),
}

impl CalloutError {
    /// A short stable name of the refusal, for metrics labels and events (never a value).
    pub fn reason(&self) -> &'static str {
        match self {
            CalloutError::UnexpectedSealed => "unexpected_sealed",
            CalloutError::ExpectedSealed => "expected_sealed",
            CalloutError::MissingXkeyHeader => "missing_xkey_header",
            CalloutError::Open(_) => "open",
            CalloutError::NotUtf8 => "not_utf8",
            CalloutError::Decode(_) => "decode",
            CalloutError::IssuerMismatch { .. } => "issuer_mismatch",
            CalloutError::XkeyMismatch { .. } => "xkey_mismatch",
            CalloutError::Audience(_) => "audience",
            CalloutError::Expired { .. } => "expired",
            CalloutError::WrongAccount(_) => "wrong_account",
            CalloutError::UserNkey(_) => "user_nkey",
            CalloutError::NoCredentials => "no_credentials",
            CalloutError::UnknownUser(_) => "unknown_user",
            CalloutError::Subjects { .. } => "subjects",
            CalloutError::BadPassword(_) => "bad_password",
            CalloutError::UnknownToken => "unknown_token",
            CalloutError::TokenExpired { .. } => "token_expired",
            CalloutError::UnknownNkey(_) => "unknown_nkey",
            CalloutError::NkeySignature { .. } => "nkey_signature",
            CalloutError::Throttled(_) => "throttled",
            CalloutError::InactiveUser(_) => "inactive_user",
            CalloutError::InactiveAccount(_) => "inactive_account",
            CalloutError::UnmanagedAccount(_) => "unmanaged_account",
            CalloutError::SourceNotAllowed { .. } => "source_not_allowed",
            CalloutError::ConnectionLimit { .. } => "connection_limit",
            CalloutError::ChangedDuringLogin(_) => "changed_during_login",
            CalloutError::Busy { .. } => "busy",
            CalloutError::ResponseTooLarge { .. } => "response_too_large",
            CalloutError::Store(_) => "store",
            CalloutError::Issue(_) => "issue",
            CalloutError::Auth(_) => "auth",
            CalloutError::Oidc(e) => e.reason(),
        }
    }
}

impl CalloutError {
    /// Whether the request itself was bad (answered with silence, not an error response).
    pub fn is_request_failure(&self) -> bool {
        matches!(
            self,
            CalloutError::UnexpectedSealed
                | CalloutError::ExpectedSealed
                | CalloutError::MissingXkeyHeader
                | CalloutError::Open(_)
                | CalloutError::NotUtf8
                | CalloutError::Decode(_)
                | CalloutError::IssuerMismatch { .. }
                | CalloutError::XkeyMismatch { .. }
                | CalloutError::Audience(_)
                | CalloutError::Expired { .. }
                | CalloutError::WrongAccount(_)
                | CalloutError::UserNkey(_)
        )
    }

    /// Whether this is a failed credential (counts towards throttling).
    pub fn is_credential_failure(&self) -> bool {
        matches!(
            self,
            CalloutError::UnknownUser(_)
                | CalloutError::BadPassword(_)
                | CalloutError::UnknownToken
                | CalloutError::UnknownNkey(_)
                | CalloutError::NkeySignature { .. }
        ) || matches!(self, CalloutError::Oidc(e) if e.is_credential_failure())
    }
}
