//! The error type of the claims module.

use std::fmt;

use crate::keys::{KeyError, KeyKind};

use super::{ClaimType, Validation};

/// The three dot-separated parts of a JWT, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    /// The JOSE header.
    Header,
    /// The claims payload.
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenPart::Header => "header",
            TokenPart::Payload => "payload",
            TokenPart::Signature => "signature",
        })
    }
}

/// Errors of the claims module: encoding, decoding, verification, creds files and xkey boxes.
///
/// Every reason a token is refused has its own variant, so callers (and tests) can tell them
/// apart without reading messages. No variant carries a seed or a password.
#[derive(Debug, thiserror::Error)]
pub enum ClaimsError {
    /// The token is longer than Go's `MaxTokenSize` (1 MiB); it is refused before any parsing.
    #[error("token of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Length of the token in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The token does not have exactly three dot-separated parts.
    #[error("token has {found} dot-separated parts, expected 3")]
    PartCount {
        /// How many parts the token has.
        found: usize,
    },
    /// A part of the token is not unpadded base64url.
    #[error("token {part} is not valid unpadded base64url")]
    Base64 {
        /// Which part.
        part: TokenPart,
    },
    /// The header is not the JSON object `{"typ":…,"alg":…}`.
    #[error("token header is not valid json: {source}")]
    Header {
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The header's `typ` is not `JWT` (compared case-insensitively).
    #[error("token type {typ:?} is not jwt")]
    TokenType {
        /// The `typ` found.
        typ: String,
    },
    /// The header's `alg` is neither `ed25519-nkey` (v2) nor `ed25519` (v1).
    #[error("algorithm {alg:?} is not ed25519-nkey or ed25519")]
    Algorithm {
        /// The `alg` found.
        alg: String,
    },
    /// The payload is not JSON of the expected claims shape.
    #[error("token payload is not valid claims json: {source}")]
    Payload {
        /// The JSON error.
        source: serde_json::Error,
    },
    /// `nats.version` is newer than this library (above 2) or negative.
    #[error("claims version {version} is not supported (at most 2)")]
    UnsupportedVersion {
        /// The version found.
        version: i64,
    },
    /// A typed v2 claim without `nats.version` (Go refuses these too).
    #[error("claims of type {claim_type} carry no nats.version")]
    MissingVersion {
        /// The claim type found.
        claim_type: ClaimType,
    },
    /// The claim type is one Go refuses outright (`cluster`, `server`).
    #[error("claim type {found:?} is not supported")]
    UnsupportedType {
        /// The type found.
        found: String,
    },
    /// The token holds another claim type than the one asked for.
    #[error("token holds {found} claims where {expected} claims were expected")]
    WrongType {
        /// The type the caller asked for.
        expected: ClaimType,
        /// The type in the token.
        found: ClaimType,
    },
    /// `iss` is not a valid public key, so the signature cannot be checked.
    #[error("issuer {issuer:?} is not a valid public key")]
    InvalidIssuer {
        /// The `iss` found.
        issuer: String,
    },
    /// The signature does not verify with the key in `iss`.
    #[error("signature does not verify for issuer {issuer}")]
    BadSignature {
        /// The `iss` of the token.
        issuer: String,
    },
    /// The issuer's key kind may not issue this claim type (e.g. a user JWT signed by an operator).
    #[error("issuer {issuer} may not sign {claim_type} claims")]
    IssuerKind {
        /// The `iss` of the token.
        issuer: String,
        /// The claim type.
        claim_type: ClaimType,
    },
    /// Encode was asked to sign claims without `sub`.
    #[error("{claim_type} claims have no subject")]
    MissingSubject {
        /// The claim type.
        claim_type: ClaimType,
    },
    /// Encode was asked to sign claims whose `sub` is not a key of the required kind.
    #[error("subject {subject:?} is not a valid {expected} key as {claim_type} claims require")]
    SubjectKind {
        /// The `sub` found.
        subject: String,
        /// The first kind the claim type accepts.
        expected: KeyKind,
        /// The claim type.
        claim_type: ClaimType,
    },
    /// Encode was given a signing key whose kind may not issue this claim type.
    #[error("{kind} key {key} may not sign {claim_type} claims")]
    SignerKind {
        /// The signer's public key.
        key: String,
        /// The signer's kind.
        kind: KeyKind,
        /// The claim type.
        claim_type: ClaimType,
    },
    /// An operator's `account_server_url` has no scheme (Go checks this at encode).
    #[error("account server url {url:?} requires a scheme")]
    AccountServerUrl {
        /// The offending URL.
        url: String,
    },
    /// The claims could not be serialized (e.g. a service latency sampling outside 1..=100).
    #[error("claims could not be serialized: {source}")]
    Serialize {
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Claims failed [`Validation`] (see [`Validation::ensure_clean`]).
    #[error("claims are invalid: {0}")]
    Invalid(Box<Validation>),
    /// A creds file lacks the named block (`jwt` or `seed`).
    #[error("creds file has no {0} block")]
    CredsMissing(&'static str),
    /// The seed of a creds file is not a valid seed.
    #[error("creds seed is invalid: {0}")]
    CredsSeed(#[source] KeyError),
    /// Sealing or opening an xkey box failed, or a key was unusable for it.
    #[error("xkey box: {0}")]
    Xkey(#[source] KeyError),
}
