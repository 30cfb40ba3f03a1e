//! Logins with OpenID Connect tokens: a provider's signed JWT (an access or ID token) is
//! checked against the provider's published keys and its claims mapped to an account and a
//! role.
//!
//! - [`validate`]: the pure checks (size, shape, allowed algorithm, signature by a key of the
//!   provider, `aud`, `exp`, `nbf`, `iat`), over a [`KeySet`].
//! - [`mapping`]: claim paths, the ordered mapping rules, the NATS user name from a claim.
//! - [`cache`]: the providers' keys, fetched over HTTP (discovery or a JWKS URL) or given
//!   inline, cached, refreshed on a schedule and on an unknown `kid` (rate-limited).
//! - [`login`]: the whole login, as the callout runs it: it reads the provider and the user
//!   records from the store (unlike the rest of `auth`, which works on plain values).
//!
//! Only asymmetric algorithms are accepted (RS256/384/512, PS256/384/512, ES256/384,
//! EdDSA): `none` and every HMAC algorithm are refused before any key is looked at, and
//! symmetric (`oct`) keys in a JWKS are ignored, so a public key can never be used as an HMAC
//! secret. The cryptography is `jsonwebtoken`'s (ring).

pub mod cache;
pub mod login;
pub mod mapping;
pub mod validate;

use std::time::Duration;

pub use cache::{KeyCache, KeySet};
pub use login::{login, OidcLogin};

/// Largest token accepted, in bytes: provider tokens are 1 to 4 KiB; far larger is an attack
/// on the parser (nats-server bounds the CONNECT line too, but more loosely).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Largest JWKS or discovery document read, in bytes (real ones are a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Most keys kept of one JWKS: each is tried for a token without `kid`.
pub const MAX_KEYS: usize = 32;

/// How long one HTTP request to a provider may take: a login waiting for an unknown-`kid`
/// refresh waits at most this, well inside nats-server's auth timeout.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Least time between two fetches of one provider's keys for unknown `kid`s: a stream of
/// forged tokens with random key ids costs the provider one request per this interval.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(5);

/// How often the service refreshes every provider's keys (and notices one unreachable).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// The user name of the password convention: a client that can only send a user and a
/// password (MQTT, some websocket clients) sends this user and the token as the password.
/// `$` is not allowed in pbn user names, so no local user can be confused with it.
pub const TOKEN_USER: &str = "$oidc";

/// Why a provider's token was refused, or its keys could not be had. No variant carries a
/// token; they name the provider, the claim, or the offending header value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("token of {size} bytes is larger than the maximum of {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// Not a compact JWS with a JSON header and payload.
    #[error("token is malformed: {0}")]
    Malformed(String),
    /// `alg` is not one of the allowed asymmetric algorithms (`none`, HS256, ...).
    #[error("token algorithm {0:?} is not allowed (only RS*, PS*, ES256, ES384, EdDSA)")]
    AlgorithmNotAllowed(String),
    /// No provider has the token's `iss`.
    #[error("unknown issuer {0:?}")]
    UnknownIssuer(String),
    /// No key of the provider matches the token's `kid` and algorithm.
    #[error("no key {kid:?} for {alg} at identity provider {provider}")]
    UnknownKey {
        /// The provider.
        provider: String,
        /// The token's `kid` (empty when it has none).
        kid: String,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify with the provider's keys.
    #[error("bad signature: the token is not signed by identity provider {0}")]
    BadSignature(String),
    /// `aud` does not name the provider's audience.
    #[error("wrong audience {found:?}: identity provider {provider} expects {expected:?}")]
    WrongAudience {
        /// The provider.
        provider: String,
        /// The token's audiences.
        found: Vec<String>,
        /// The configured audience.
        expected: String,
    },
    /// The token has no `exp`.
    #[error("token has no expiry (exp)")]
    NoExpiry,
    /// `exp` has passed.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// Its expiry.
        exp: i64,
        /// The time of the check.
        now: i64,
    },
    /// `nbf` is in the future beyond the leeway.
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// Its `nbf`.
        nbf: i64,
        /// The time of the check.
        now: i64,
    },
    /// `iat` is in the future beyond the leeway.
    #[error("token issued in the future at {iat} (now {now})")]
    IssuedInFuture {
        /// Its `iat`.
        iat: i64,
        /// The time of the check.
        now: i64,
    },
    /// The user-name claim is missing or not a string.
    #[error("claim {claim:?} naming the user is missing or not a string")]
    NoUserName {
        /// The configured claim.
        claim: String,
    },
    /// No mapping rule matched and the provider has no default.
    #[error("no mapping of identity provider {provider} matched user {user:?}")]
    NoMapping {
        /// The provider.
        provider: String,
        /// The user name.
        user: String,
    },
    /// The account or role a mapping names does not exist.
    #[error("{what} {name:?} of identity provider {provider}'s mapping does not exist")]
    MissingTarget {
        /// The provider.
        provider: String,
        /// `account` or `role`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The user name is a local user's, or a user another provider created.
    #[error("user name {0:?} belongs to a user not created by this identity provider")]
    NameTaken(String),
    /// The provider's keys could not be fetched and none are cached.
    #[error("keys of identity provider {provider} are unavailable: {reason}")]
    KeysUnavailable {
        /// The provider.
        provider: String,
        /// Why.
        reason: String,
    },
    /// A document could not be fetched.
    #[error("cannot fetch {url}: {reason}")]
    Fetch {
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A JWKS or discovery document that is not usable.
    #[error("invalid document from {source_name}: {reason}")]
    Document {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the store failed.
    #[error("store error: {0}")]
    Store(String),
}

impl OidcError {
    /// A short stable name of the refusal, for metrics labels and events.
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::TooLarge { .. } => "oidc_too_large",
            OidcError::Malformed(_) => "oidc_malformed",
            OidcError::AlgorithmNotAllowed(_) => "oidc_algorithm",
            OidcError::UnknownIssuer(_) => "oidc_unknown_issuer",
            OidcError::UnknownKey { .. } => "oidc_unknown_key",
            OidcError::BadSignature(_) => "oidc_bad_signature",
            OidcError::WrongAudience { .. } => "oidc_wrong_audience",
            OidcError::NoExpiry => "oidc_no_expiry",
            OidcError::Expired { .. } => "oidc_expired",
            OidcError::NotYetValid { .. } => "oidc_not_yet_valid",
            OidcError::IssuedInFuture { .. } => "oidc_issued_in_future",
            OidcError::NoUserName { .. } => "oidc_no_user_name",
            OidcError::NoMapping { .. } => "oidc_no_mapping",
            OidcError::MissingTarget { .. } => "oidc_missing_target",
            OidcError::NameTaken(_) => "oidc_name_taken",
            OidcError::KeysUnavailable { .. } => "oidc_keys_unavailable",
            OidcError::Fetch { .. } => "oidc_fetch",
            OidcError::Document { .. } => "oidc_document",
            OidcError::Store(_) => "store",
        }
    }

    /// Whether the token itself was bad (counts towards the failed-login throttle). A
    /// provider that cannot be reached or a store failure says nothing about the client, and
    /// a key id not published yet is most likely a rotation the rate-limited refresh has not
    /// seen: its clients retry and must not be locked out meanwhile (no key, no admission).
    pub fn is_credential_failure(&self) -> bool {
        !matches!(
            self,
            OidcError::UnknownKey { .. }
                | OidcError::KeysUnavailable { .. }
                | OidcError::Fetch { .. }
                | OidcError::Document { .. }
                | OidcError::Store(_)
                | OidcError::MissingTarget { .. }
        )
    }
}

/// Whether `token` has the shape of a compact JWS (three base64url parts, a JSON header): such
/// a NATS `token` is a provider's token, anything else an API token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}
