//! Decoding callout requests in one pass over the payload.
//!
//! [`decode`](super::decode) parses a payload twice (once for the claim type and version, once
//! for the claims). Every request nats-server sends is a v2 token with the standard header, so
//! [`decode_request`] parses such a token once, into the claims and the few fields that tell a
//! v1 token apart, and hands anything else to [`decode`](super::decode): whatever it accepts,
//! and every error it gives, is [`decode`](super::decode)'s.

use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;

use crate::keys::{self, public_key_kind, KeyError, KeyKind};

use super::{AuthorizationRequestClaims, Claims, ClaimsError, MAX_TOKEN_SIZE};

/// [`JWT_HEADER`](super::JWT_HEADER) in unpadded base64url: the header every v2 token has.
const STANDARD_HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";

/// The wire form of a request: [`Claims`] plus the top-level fields of Go's `identifier` that
/// [`decode`](super::decode) also reads (a v1 token has a top-level `type`), with their types,
/// so a payload this parses is one `decode` parses too.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RequestWire {
    aud: String,
    exp: i64,
    jti: String,
    iat: i64,
    iss: String,
    name: String,
    nbf: i64,
    sub: String,
    #[serde(rename = "type")]
    legacy_type: String,
    #[allow(dead_code)]
    tags: Vec<String>,
    #[allow(dead_code)]
    issuer_account: String,
    nats: AuthorizationRequestClaims,
}

/// Decodes and verifies a callout request: the same result as
/// `decode::<AuthorizationRequestClaims>(token)` (accepted tokens, claims and errors), with one
/// JSON pass instead of two for a v2 token with the standard header.
pub fn decode_request(token: &str) -> Result<Claims<AuthorizationRequestClaims>, ClaimsError> {
    match one_pass(token) {
        Some(parsed) => parsed,
        None => super::decode(token),
    }
}

/// The verified claims of a standard v2 request, or the verification error; `None` for anything
/// else (which [`decode`](super::decode) then judges).
fn one_pass(token: &str) -> Option<Result<Claims<AuthorizationRequestClaims>, ClaimsError>> {
    if token.len() > MAX_TOKEN_SIZE {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if header != STANDARD_HEADER_B64 {
        return None;
    }
    let payload = BASE64URL_NOPAD.decode(payload_b64.as_bytes()).ok()?;
    let signature = BASE64URL_NOPAD.decode(signature_b64.as_bytes()).ok()?;
    let wire: RequestWire = serde_json::from_slice(&payload).ok()?;
    let v2_request = wire.legacy_type.is_empty()
        && wire.nats.version == 2
        && wire.nats.claim_type == super::ClaimType::AuthorizationRequest.as_str();
    if !v2_request {
        return None;
    }
    let claims = Claims {
        aud: wire.aud,
        exp: wire.exp,
        jti: wire.jti,
        iat: wire.iat,
        iss: wire.iss,
        name: wire.name,
        nbf: wire.nbf,
        sub: wire.sub,
        nats: wire.nats,
    };
    let signed = &token[..header.len() + 1 + payload_b64.len()];
    Some(verified(claims, signed.as_bytes(), &signature))
}

/// `claims` when `signature` over `signed` verifies with `iss`, a server key (checked in
/// [`decode`](super::decode)'s order, with its errors).
fn verified(
    claims: Claims<AuthorizationRequestClaims>,
    signed: &[u8],
    signature: &[u8],
) -> Result<Claims<AuthorizationRequestClaims>, ClaimsError> {
    let issuer = || claims.iss.clone();
    keys::verify(&claims.iss, signed, signature).map_err(|e| match e {
        KeyError::BadSignature(_) => ClaimsError::BadSignature { issuer: issuer() },
        _ => ClaimsError::InvalidIssuer { issuer: issuer() },
    })?;
    let kind = public_key_kind(&claims.iss)
        .map_err(|_| ClaimsError::InvalidIssuer { issuer: issuer() })?;
    if kind != KeyKind::Server {
        return Err(ClaimsError::IssuerKind {
            issuer: issuer(),
            claim_type: super::ClaimType::AuthorizationRequest,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{
        decode, encode, ClientInfo, ConnectOptions, ServerId, AUTH_REQUEST_AUDIENCE, JWT_HEADER,
    };
    use crate::keys::KeyPair;

    fn request() -> (KeyPair, Claims<AuthorizationRequestClaims>) {
        let server = KeyPair::generate(KeyKind::Server);
        let account = KeyPair::generate(KeyKind::Account);
        let user = KeyPair::generate(KeyKind::User);
        let body = AuthorizationRequestClaims {
            server: ServerId {
                name: "s<1>".into(),
                host: "127.0.0.1".into(),
                id: server.public_key().into(),
                ..Default::default()
            },
            user_nkey: user.public_key().into(),
            client: ClientInfo { host: "10.0.0.1".into(), id: 7, ..Default::default() },
            connect_opts: ConnectOptions {
                token: "t\"o\\k\u{2028}".into(),
                protocol: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let claims = Claims::new(account.public_key(), body)
            .with_audience(AUTH_REQUEST_AUDIENCE)
            .with_expires(4_000_000_000);
        (server, claims)
    }

    #[test]
    fn header_constant_is_the_standard_header() {
        assert_eq!(STANDARD_HEADER_B64, BASE64URL_NOPAD.encode(JWT_HEADER.as_bytes()));
    }

    #[test]
    fn standard_request_decodes_in_one_pass_like_decode() {
        let (server, mut claims) = request();
        let token = encode(&mut claims, &server).unwrap();
        assert!(one_pass(&token).is_some(), "a standard request takes the one-pass path");
        let fast = decode_request(&token).unwrap();
        assert_eq!(fast, decode::<AuthorizationRequestClaims>(&token).unwrap());
        assert_eq!(fast, claims);
    }

    /// Re-signs `payload` (JSON) under the standard header with `key`.
    fn forge(payload: &serde_json::Value, key: &KeyPair) -> String {
        let mut token = format!(
            "{STANDARD_HEADER_B64}.{}",
            BASE64URL_NOPAD.encode(payload.to_string().as_bytes())
        );
        let sig = key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&BASE64URL_NOPAD.encode(&sig));
        token
    }

    fn same_error(token: &str) -> ClaimsError {
        let fast = decode_request(token).unwrap_err();
        let slow = decode::<AuthorizationRequestClaims>(token).unwrap_err();
        assert_eq!(fast.to_string(), slow.to_string());
        fast
    }

    #[test]
    fn refusals_are_decodes() {
        let (server, mut claims) = request();
        let token = encode(&mut claims, &server).unwrap();
        let json: serde_json::Value = serde_json::to_value(&claims).unwrap();

        // A bad signature, from the one-pass path.
        // A character inside the signature (the last one also holds padding bits).
        let mut bad = token.clone();
        let at = bad.len() - 10;
        let other = if &bad[at..at + 1] == "A" { "B" } else { "A" };
        bad.replace_range(at..at + 1, other);
        assert!(matches!(same_error(&bad), ClaimsError::BadSignature { .. }));

        // Signed by an account key: issuer kind.
        let account = KeyPair::generate(KeyKind::Account);
        let mut wrong = json.clone();
        wrong["iss"] = account.public_key().into();
        assert!(matches!(same_error(&forge(&wrong, &account)), ClaimsError::IssuerKind { .. }));

        // Another claim type, a missing version, a v1 top-level type, a mistyped v1 field.
        let mut user = json.clone();
        user["nats"]["type"] = "user".into();
        assert!(matches!(same_error(&forge(&user, &server)), ClaimsError::WrongType { .. }));
        let mut unversioned = json.clone();
        unversioned["nats"]["version"] = 0.into();
        let e = same_error(&forge(&unversioned, &server));
        assert!(matches!(e, ClaimsError::MissingVersion { .. }));
        let mut v1 = json.clone();
        v1["type"] = "authorization_request".into();
        same_error(&forge(&v1, &server));
        let mut mistyped = json.clone();
        mistyped["tags"] = 5.into();
        assert!(matches!(same_error(&forge(&mistyped, &server)), ClaimsError::Payload { .. }));

        // Not a token at all.
        assert!(matches!(same_error("a.b"), ClaimsError::PartCount { .. }));
    }
}
