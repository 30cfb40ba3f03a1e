//! NATS JWT v2: typed claims, encode + sign, decode + verify, validate, creds files, xkey boxes.
//!
//! Wire-compatible with Go's `nats-io/jwt` v2 (the library nats-server uses):
//! - [`Claims<T>`] holds the standard claims (`aud, exp, jti, iat, iss, name, nbf, sub`, in Go's
//!   order, omitted when empty) and the `nats` body `T`: [`OperatorClaims`], [`AccountClaims`],
//!   [`UserClaims`], [`ActivationClaims`], [`AuthorizationRequestClaims`],
//!   [`AuthorizationResponseClaims`] or [`GenericClaims`]. Bodies declare their fields in Go's
//!   order and end with Go's generic fields `tags`, `type`, `version`.
//! - Missing fields decode to Go's zero values (0, false, empty), never to -1 or `true`; the
//!   constructors ([`AccountClaims::new`], [`UserClaims::new`]) write the -1 limits Go's
//!   constructors write, because nats-server reads a missing or 0 limit as "nothing allowed".
//! - [`encode`] signs with a [`KeyPair`](crate::keys::KeyPair) and computes Go's `jti`;
//!   [`decode`] verifies the signature and the issuer kind but does no time checks;
//!   [`Claims::validate`] mirrors Go's `Validate` (errors, warnings, time checks).
//! - [`format_user_creds`] / [`parse_creds`] read and write Go's creds layout; [`seal`] /
//!   [`open`] are the auth-callout xkey boxes.

mod account;
mod activation;
mod authorization;
mod creds;
mod error;
mod exports;
mod generic;
mod json;
mod jwt;
mod operator;
mod request;
mod signing_keys;
mod types;
mod user;
mod validate;
mod xkey;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::keys::KeyKind;

pub use account::{
    AccountClaims, ExternalAuthorization, JetStreamLimits, MsgTrace, OperatorLimits,
    WeightedMapping, ANY_ACCOUNT, NO_LIMIT,
};
pub use activation::ActivationClaims;
pub use authorization::{
    AuthorizationRequestClaims, AuthorizationResponseClaims, ClientInfo, ClientTls, ConnectOptions,
    ServerId, AUTH_REQUEST_AUDIENCE,
};
pub use creds::{format_user_creds, parse_creds, Creds};
pub use error::{ClaimsError, TokenPart};
pub use exports::{Export, ExportType, Import, SamplingRate, ServiceLatency};
pub use generic::GenericClaims;
pub use jwt::{
    compute_jti, decode, decode_any, encode, peek, AnyClaims, JWT_HEADER, MAX_TOKEN_SIZE,
};
pub use operator::OperatorClaims;
pub use request::decode_request;
pub use signing_keys::{ScopeKind, SigningKey, UserScope};
pub use types::{Permission, Permissions, ResponsePermission, TimeRange, UserPermissionLimits};
pub use user::UserClaims;
pub use validate::{Finding, FindingKind, Validation};
pub use xkey::{is_sealed, open, seal, XKEY_BOX_PREFIX};

/// The claim types of NATS JWT v2 (Go's `ClaimType`), as written in `nats.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimType {
    /// `operator`.
    Operator,
    /// `account`.
    Account,
    /// `user`.
    User,
    /// `activation` (import tokens).
    Activation,
    /// `authorization_request` (sent by nats-server to the callout).
    AuthorizationRequest,
    /// `authorization_response` (the callout's answer).
    AuthorizationResponse,
    /// Anything else, including no type at all (e.g. `$SYS.REQ.CLAIMS.DELETE` payloads).
    Generic,
}

impl ClaimType {
    /// The wire name (`"generic"` for generic claims, which Go does not write).
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimType::Operator => "operator",
            ClaimType::Account => "account",
            ClaimType::User => "user",
            ClaimType::Activation => "activation",
            ClaimType::AuthorizationRequest => "authorization_request",
            ClaimType::AuthorizationResponse => "authorization_response",
            ClaimType::Generic => "generic",
        }
    }

    /// Maps a wire name to a type; unknown names are [`ClaimType::Generic`], as in Go.
    pub fn from_wire(name: &str) -> ClaimType {
        match name {
            "operator" => ClaimType::Operator,
            "account" => ClaimType::Account,
            "user" => ClaimType::User,
            "activation" => ClaimType::Activation,
            "authorization_request" => ClaimType::AuthorizationRequest,
            "authorization_response" => ClaimType::AuthorizationResponse,
            _ => ClaimType::Generic,
        }
    }
}

impl fmt::Display for ClaimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JWT's claims: the standard claims of Go's `ClaimsData` plus the typed `nats` body.
///
/// Field order is Go's (it fixes the JSON and the `jti`); empty strings and zero times are not
/// written. `iss`, `jti` and (when 0) `iat` are filled in by [`encode`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, bound(deserialize = "T: Deserialize<'de> + Default"))]
pub struct Claims<T> {
    /// Audience: the server id for callout responses, `nats-authorization-request` for requests.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub aud: String,
    /// Expiry in unix seconds; 0 means never.
    #[serde(skip_serializing_if = "json::is_zero")]
    pub exp: i64,
    /// Go's token id: a hash of the standard claims (see [`compute_jti`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// Issue time in unix seconds.
    #[serde(skip_serializing_if = "json::is_zero")]
    pub iat: i64,
    /// The signer's public key.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub iss: String,
    /// Free-text name; for callout users it replaces the connection's user name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Not-before time in unix seconds; 0 means no restriction.
    #[serde(skip_serializing_if = "json::is_zero")]
    pub nbf: i64,
    /// The subject: the public key of the operator, account or user described.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub: String,
    /// The claim-type specific body.
    pub nats: T,
}

impl<T: ClaimBody> Claims<T> {
    /// Claims about `sub` with body `nats`; everything else empty.
    pub fn new(sub: impl Into<String>, nats: T) -> Self {
        Claims {
            aud: String::new(),
            exp: 0,
            jti: String::new(),
            iat: 0,
            iss: String::new(),
            name: String::new(),
            nbf: 0,
            sub: sub.into(),
            nats,
        }
    }

    /// Sets `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets `aud`.
    pub fn with_audience(mut self, aud: impl Into<String>) -> Self {
        self.aud = aud.into();
        self
    }

    /// Sets `exp` (unix seconds; 0 = never).
    pub fn with_expires(mut self, exp: i64) -> Self {
        self.exp = exp;
        self
    }

    /// Sets `nbf` (unix seconds; 0 = no restriction).
    pub fn with_not_before(mut self, nbf: i64) -> Self {
        self.nbf = nbf;
        self
    }

    /// Sets `iat`; [`encode`] keeps a non-zero `iat` (account JWTs need strictly increasing ones).
    pub fn with_issued_at(mut self, iat: i64) -> Self {
        self.iat = iat;
        self
    }

    /// Signs these claims; see [`encode`].
    pub fn encode(&mut self, signer: &crate::keys::KeyPair) -> Result<String, ClaimsError> {
        encode(self, signer)
    }

    /// The payload JSON exactly as [`encode`] would write it (Go field order and escaping).
    pub fn to_json(&self) -> Result<Vec<u8>, ClaimsError> {
        let mut buf = Vec::with_capacity(512);
        json::write_go_json(&mut buf, self).map_err(|source| ClaimsError::Serialize { source })?;
        Ok(buf)
    }

    /// Go's checks for this claim type at time `now` (unix seconds); see [`Validation`].
    pub fn validate(&self, now: i64) -> Validation {
        let mut v = Validation::default();
        if self.exp > 0 && now > self.exp {
            v.time(FindingKind::Expired, format!("claims expired at {} (now {now})", self.exp));
        }
        if self.nbf > 0 && self.nbf > now {
            v.time(
                FindingKind::NotYetValid,
                format!("claims not valid before {} (now {now})", self.nbf),
            );
        }
        T::validate_body(self, &mut v);
        v
    }
}

/// A `nats` body: one per claim type. Implemented by the body types of this module only.
pub trait ClaimBody:
    Serialize + DeserializeOwned + Default + Clone + fmt::Debug + sealed::Hooks
{
    /// The claim type this body is.
    const TYPE: ClaimType;
    /// Key kinds allowed to issue it (Go's `ExpectedPrefixes`); empty means any.
    const ISSUER_KINDS: &'static [KeyKind];
    /// Key kinds `sub` must have at encode; empty means any non-empty subject.
    const SUBJECT_KINDS: &'static [KeyKind];

    /// `nats.tags`.
    fn tags(&self) -> &[String];
    /// `nats.type` as decoded or encoded (may be empty before encoding).
    fn type_name(&self) -> &str;
    /// `nats.version` (2 after encoding; 1 for migrated v1 tokens).
    fn version(&self) -> i64;
}

pub(crate) use sealed::{GenericMut, V1Fields};

/// Crate-internal machinery of the bodies. Its items are `pub` only so that the public
/// [`ClaimBody`] trait can name them; the module itself is private.
pub(crate) mod sealed {
    use super::{Claims, ClaimsError, Validation};

    /// Fields of Go's v1 claims that moved into `nats` in v2; handed to a body when migrating.
    #[derive(Debug, Default)]
    pub struct V1Fields {
        /// The claim type.
        pub claim_type: String,
        /// Tags.
        pub tags: Vec<String>,
        /// Issuer account (users, activations).
        pub issuer_account: String,
    }

    /// Mutable access to Go's generic fields of a body.
    pub struct GenericMut<'a> {
        /// `tags`.
        pub tags: &'a mut Vec<String>,
        /// `type`.
        pub claim_type: &'a mut String,
        /// `version`.
        pub version: &'a mut i64,
    }

    /// Hooks every body implements.
    pub trait Hooks: Sized {
        /// The generic fields.
        fn generic_mut(&mut self) -> GenericMut<'_>;
        /// Normalises before encoding (Go sorts imports, exports and signing keys).
        fn prepare(&mut self) {}
        /// Checks Go makes at encode besides the subject kind.
        fn check_encode(&self) -> Result<(), ClaimsError> {
            Ok(())
        }
        /// Normalises after decoding (Go zeroes flat JetStream limits when tiers exist).
        fn after_decode(&mut self) {}
        /// Moves v1 top-level fields into the body, as Go's `migrateV1` does.
        fn migrate_v1(&mut self, v1: V1Fields) {
            let g = self.generic_mut();
            *g.claim_type = v1.claim_type;
            *g.tags = v1.tags;
        }
        /// Appends this type's validation issues.
        fn validate_body(claims: &Claims<Self>, v: &mut Validation);
    }
}

/// Implements [`ClaimBody`] and the generic-field accessor for a body with fields
/// `tags`, `claim_type` and `version`.
macro_rules! claim_body {
    ($ty:ty, $ct:expr, issuers: [$($i:expr),*], subjects: [$($s:expr),*]) => {
        impl $crate::claims::ClaimBody for $ty {
            const TYPE: $crate::claims::ClaimType = $ct;
            const ISSUER_KINDS: &'static [$crate::keys::KeyKind] = &[$($i),*];
            const SUBJECT_KINDS: &'static [$crate::keys::KeyKind] = &[$($s),*];
            fn tags(&self) -> &[String] {
                &self.tags
            }
            fn type_name(&self) -> &str {
                &self.claim_type
            }
            fn version(&self) -> i64 {
                self.version
            }
        }
    };
}
pub(crate) use claim_body;

/// The generic-field accessor of [`sealed::Hooks`] for bodies with the standard field names.
macro_rules! generic_mut {
    () => {
        fn generic_mut(&mut self) -> $crate::claims::GenericMut<'_> {
            $crate::claims::GenericMut {
                tags: &mut self.tags,
                claim_type: &mut self.claim_type,
                version: &mut self.version,
            }
        }
    };
}
pub(crate) use generic_mut;
