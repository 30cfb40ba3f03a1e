//! The token format: header, jti, encode + sign, decode + verify (Go's `claims.go` and
//! `decoder.go`).

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

use crate::keys::{self, public_key_kind, KeyError, KeyPair};

use super::json::{is_zero, write_go_json};
use super::{
    AccountClaims, ActivationClaims, AuthorizationRequestClaims, AuthorizationResponseClaims,
    ClaimBody, ClaimType, Claims, ClaimsError, GenericClaims, OperatorClaims, TokenPart,
    UserClaims, V1Fields,
};

/// Go's `MaxTokenSize`: longer tokens are refused before parsing.
pub const MAX_TOKEN_SIZE: usize = 1024 * 1024;

/// The header Go writes, byte for byte.
pub const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// [`JWT_HEADER`] in unpadded base64url.
const JWT_HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";

/// Length of an ed25519 signature in unpadded base64url.
const SIGNATURE_B64_LEN: usize = 86;

/// Go's `ClaimsData` with an empty `jti`: what the jti hashes.
#[derive(Serialize)]
struct StdClaims<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    aud: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    exp: i64,
    #[serde(skip_serializing_if = "is_zero")]
    iat: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    iss: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    nbf: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    sub: &'a str,
}

/// Go's jti: unpadded standard base32 of SHA-512/256 over the JSON of the standard claims
/// (`aud, exp, iat, iss, name, nbf, sub`, empty ones omitted, `jti` itself empty). The `nats`
/// body is not hashed.
pub fn compute_jti<T>(claims: &Claims<T>) -> Result<String, ClaimsError> {
    let std = StdClaims {
        aud: &claims.aud,
        exp: claims.exp,
        iat: claims.iat,
        iss: &claims.iss,
        name: &claims.name,
        nbf: claims.nbf,
        sub: &claims.sub,
    };
    let mut buf = Vec::with_capacity(256);
    write_go_json(&mut buf, &std).map_err(|source| ClaimsError::Serialize { source })?;
    Ok(BASE32_NOPAD.encode(&Sha512_256::digest(&buf)))
}

fn check_subject<T: ClaimBody>(sub: &str) -> Result<(), ClaimsError> {
    if sub.is_empty() {
        return Err(ClaimsError::MissingSubject { claim_type: T::TYPE });
    }
    if let Some(&expected) = T::SUBJECT_KINDS.first() {
        let ok = public_key_kind(sub).is_ok_and(|k| T::SUBJECT_KINDS.contains(&k));
        if !ok {
            return Err(ClaimsError::SubjectKind {
                subject: sub.to_string(),
                expected,
                claim_type: T::TYPE,
            });
        }
    }
    Ok(())
}

/// Signs `claims` with `signer` and returns the token, as Go's `Encode` does.
///
/// Refuses an empty or wrong-kind `sub` and a signer whose kind may not issue this claim type.
/// Sets `iss`, `iat` (now, unless already non-zero), `jti`, `nats.type` (except for generic
/// claims) and `nats.version = 2`; sorts imports, exports and signing keys like Go. The header
/// is exactly [`JWT_HEADER`]; the signature covers `header.payload`.
pub fn encode<T: ClaimBody>(
    claims: &mut Claims<T>,
    signer: &KeyPair,
) -> Result<String, ClaimsError> {
    check_subject::<T>(&claims.sub)?;
    if !T::ISSUER_KINDS.is_empty() && !T::ISSUER_KINDS.contains(&signer.kind()) {
        return Err(ClaimsError::SignerKind {
            key: signer.public_key().to_string(),
            kind: signer.kind(),
            claim_type: T::TYPE,
        });
    }
    claims.nats.check_encode()?;
    claims.nats.prepare();
    let generic = claims.nats.generic_mut();
    if T::TYPE != ClaimType::Generic {
        generic.claim_type.clear();
        generic.claim_type.push_str(T::TYPE.as_str());
    }
    *generic.version = 2;
    claims.iss.clear();
    claims.iss.push_str(signer.public_key());
    if claims.iat == 0 {
        claims.iat = crate::clock::unix_now();
    }
    claims.jti = compute_jti(claims)?;

    let mut payload = Vec::with_capacity(1024);
    write_go_json(&mut payload, claims).map_err(|source| ClaimsError::Serialize { source })?;
    let b64_len = (payload.len() * 4).div_ceil(3);
    let mut token = String::with_capacity(JWT_HEADER_B64.len() + b64_len + SIGNATURE_B64_LEN + 2);
    token.push_str(JWT_HEADER_B64);
    token.push('.');
    BASE64URL_NOPAD.encode_append(&payload, &mut token);
    let signature = signer.sign(token.as_bytes());
    token.push('.');
    BASE64URL_NOPAD.encode_append(&signature, &mut token);
    Ok(token)
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: String,
    #[serde(default)]
    alg: String,
}

/// The `nats` part of [`Identifier`].
#[derive(Deserialize, Default)]
#[serde(default)]
struct NatsIdentifier {
    #[serde(rename = "type")]
    claim_type: String,
    version: i64,
}

/// Go's `identifier` plus the v1 fields that moved into `nats` in v2.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Identifier {
    #[serde(rename = "type")]
    legacy_type: String,
    tags: Vec<String>,
    issuer_account: String,
    nats: NatsIdentifier,
}

/// A token split and its header and identifier checked; the body is not parsed yet.
struct RawToken<'a> {
    /// `header.payload`, what v2 signatures cover.
    signed: &'a str,
    /// The payload segment, what v1 signatures cover.
    payload_b64: &'a str,
    signature_b64: &'a str,
    /// The header's `alg` is the v1 `ed25519`.
    v1_alg: bool,
    payload: Vec<u8>,
    id: Identifier,
}

fn base64(part: &str, which: TokenPart) -> Result<Vec<u8>, ClaimsError> {
    BASE64URL_NOPAD.decode(part.as_bytes()).map_err(|_| ClaimsError::Base64 { part: which })
}

/// Checks the header; returns true for the v1 algorithm.
fn check_header(header_b64: &str) -> Result<bool, ClaimsError> {
    if header_b64 == JWT_HEADER_B64 {
        return Ok(false);
    }
    let bytes = base64(header_b64, TokenPart::Header)?;
    let header: Header =
        serde_json::from_slice(&bytes).map_err(|source| ClaimsError::Header { source })?;
    if !header.typ.eq_ignore_ascii_case("JWT") {
        return Err(ClaimsError::TokenType { typ: header.typ });
    }
    match header.alg.to_ascii_lowercase().as_str() {
        "ed25519" => Ok(true),
        "ed25519-nkey" => Ok(false),
        _ => Err(ClaimsError::Algorithm { alg: header.alg }),
    }
}

impl<'a> RawToken<'a> {
    fn parse(token: &'a str) -> Result<Self, ClaimsError> {
        if token.len() > MAX_TOKEN_SIZE {
            return Err(ClaimsError::TooLarge { size: token.len(), max: MAX_TOKEN_SIZE });
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ClaimsError::PartCount { found: token.split('.').count() });
        };
        let v1_alg = check_header(header)?;
        let payload = base64(payload_b64, TokenPart::Payload)?;
        let id: Identifier =
            serde_json::from_slice(&payload).map_err(|source| ClaimsError::Payload { source })?;
        let signed = &token[..header.len() + 1 + payload_b64.len()];
        Ok(RawToken { signed, payload_b64, signature_b64, v1_alg, payload, id })
    }

    /// v1 token (Go: a top-level `type`, or `nats.version` 1).
    fn is_v1(&self) -> bool {
        !self.id.legacy_type.is_empty() || self.id.nats.version == 1
    }

    fn version(&self) -> i64 {
        if self.id.legacy_type.is_empty() {
            self.id.nats.version
        } else {
            1
        }
    }

    fn type_name(&self) -> &str {
        if self.id.legacy_type.is_empty() {
            &self.id.nats.claim_type
        } else {
            &self.id.legacy_type
        }
    }

    fn claim_type(&self) -> Result<ClaimType, ClaimsError> {
        match self.type_name() {
            "cluster" | "server" => {
                Err(ClaimsError::UnsupportedType { found: self.type_name().to_string() })
            }
            name => Ok(ClaimType::from_wire(name)),
        }
    }

    fn take_v1_fields(&mut self) -> V1Fields {
        let claim_type = if self.id.legacy_type.is_empty() {
            std::mem::take(&mut self.id.nats.claim_type)
        } else {
            std::mem::take(&mut self.id.legacy_type)
        };
        V1Fields {
            claim_type,
            tags: std::mem::take(&mut self.id.tags),
            issuer_account: std::mem::take(&mut self.id.issuer_account),
        }
    }
}

fn check_version(claim_type: ClaimType, version: i64) -> Result<(), ClaimsError> {
    match version {
        0 => Err(ClaimsError::MissingVersion { claim_type }),
        1 | 2 => Ok(()),
        _ => Err(ClaimsError::UnsupportedVersion { version }),
    }
}

fn verify(issuer: &str, signed: &[u8], signature: &[u8]) -> Result<(), ClaimsError> {
    keys::verify(issuer, signed, signature).map_err(|e| match e {
        KeyError::BadSignature(_) => ClaimsError::BadSignature { issuer: issuer.to_string() },
        _ => ClaimsError::InvalidIssuer { issuer: issuer.to_string() },
    })
}

/// Decodes and verifies a token holding claims of type `T`, as Go's `Decode` does.
///
/// Refuses tokens over [`MAX_TOKEN_SIZE`], without exactly three parts, with a header other
/// than `typ: JWT` / `alg: ed25519-nkey|ed25519`, with a version above 2 (or none, for typed
/// claims), of another claim type than `T`, whose signature does not verify with `iss`, or
/// whose `iss` kind may not issue `T`. v1 tokens (a top-level `type`) are verified over the
/// payload segment and migrated like Go does. [`GenericClaims`] accepts any claim type.
/// No time checks are made: use [`Claims::validate`].
pub fn decode<T: ClaimBody>(token: &str) -> Result<Claims<T>, ClaimsError> {
    let mut raw = RawToken::parse(token)?;
    let found = raw.claim_type()?;
    let generic = T::TYPE == ClaimType::Generic;
    if !generic {
        if found != T::TYPE {
            return Err(ClaimsError::WrongType { expected: T::TYPE, found });
        }
        check_version(found, raw.version())?;
    }
    let signature = base64(raw.signature_b64, TokenPart::Signature)?;
    let mut claims: Claims<T> =
        serde_json::from_slice(&raw.payload).map_err(|source| ClaimsError::Payload { source })?;
    let v1 = raw.is_v1();
    if v1 && !generic {
        claims.nats.migrate_v1(raw.take_v1_fields());
        *claims.nats.generic_mut().version = 1;
    } else if generic && !raw.id.legacy_type.is_empty() {
        claims.nats.migrate_v1(raw.take_v1_fields());
    }
    claims.nats.after_decode();
    let payload_only = if generic { raw.v1_alg } else { v1 };
    let signed = if payload_only { raw.payload_b64 } else { raw.signed };
    verify(&claims.iss, signed.as_bytes(), &signature)?;
    if !T::ISSUER_KINDS.is_empty() {
        let kind = public_key_kind(&claims.iss)
            .map_err(|_| ClaimsError::InvalidIssuer { issuer: claims.iss.clone() })?;
        if !T::ISSUER_KINDS.contains(&kind) {
            return Err(ClaimsError::IssuerKind {
                issuer: claims.iss.clone(),
                claim_type: T::TYPE,
            });
        }
    }
    Ok(claims)
}

/// The claim type of a token, from its header and payload only: no signature check.
pub fn peek(token: &str) -> Result<ClaimType, ClaimsError> {
    RawToken::parse(token)?.claim_type()
}

/// Claims of any type, from [`decode_any`].
#[derive(Debug, Clone, PartialEq)]
pub enum AnyClaims {
    /// An operator JWT.
    Operator(Claims<OperatorClaims>),
    /// An account JWT.
    Account(Claims<AccountClaims>),
    /// A user JWT.
    User(Claims<UserClaims>),
    /// An activation JWT.
    Activation(Claims<ActivationClaims>),
    /// A callout request.
    AuthorizationRequest(Claims<AuthorizationRequestClaims>),
    /// A callout response.
    AuthorizationResponse(Claims<AuthorizationResponseClaims>),
    /// Anything else.
    Generic(Claims<GenericClaims>),
}

impl AnyClaims {
    /// The claim type.
    pub fn claim_type(&self) -> ClaimType {
        match self {
            AnyClaims::Operator(_) => ClaimType::Operator,
            AnyClaims::Account(_) => ClaimType::Account,
            AnyClaims::User(_) => ClaimType::User,
            AnyClaims::Activation(_) => ClaimType::Activation,
            AnyClaims::AuthorizationRequest(_) => ClaimType::AuthorizationRequest,
            AnyClaims::AuthorizationResponse(_) => ClaimType::AuthorizationResponse,
            AnyClaims::Generic(_) => ClaimType::Generic,
        }
    }
}

/// Decodes and verifies a token of whatever claim type it holds (see [`decode`]).
pub fn decode_any(token: &str) -> Result<AnyClaims, ClaimsError> {
    Ok(match peek(token)? {
        ClaimType::Operator => AnyClaims::Operator(decode(token)?),
        ClaimType::Account => AnyClaims::Account(decode(token)?),
        ClaimType::User => AnyClaims::User(decode(token)?),
        ClaimType::Activation => AnyClaims::Activation(decode(token)?),
        ClaimType::AuthorizationRequest => AnyClaims::AuthorizationRequest(decode(token)?),
        ClaimType::AuthorizationResponse => AnyClaims::AuthorizationResponse(decode(token)?),
        ClaimType::Generic => AnyClaims::Generic(decode(token)?),
    })
}
