//! Every rejection reason has its own error variant.

use serde_json::json;

use super::super::{
    decode, peek, AccountClaims, ClaimType, Claims, ClaimsError, GenericClaims, OperatorClaims,
    TokenPart, UserClaims, MAX_TOKEN_SIZE,
};
use super::{b64, key, sign_payload, sign_raw};
use crate::keys::{KeyKind, KeyPair};

fn user_token() -> (String, KeyPair) {
    let acc = key(KeyKind::Account);
    let mut claims = Claims::new(key(KeyKind::User).public_key(), UserClaims::new());
    (claims.encode(&acc).expect("encodes"), acc)
}

fn user_payload(iss: &str, nats: serde_json::Value) -> serde_json::Value {
    json!({"iss": iss, "sub": key(KeyKind::User).public_key(), "nats": nats})
}

#[test]
fn tampered_signature_is_bad_signature() {
    let (token, _) = user_token();
    let (head, sig) = token.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &sig[1..]);
    assert!(matches!(decode::<UserClaims>(&tampered), Err(ClaimsError::BadSignature { .. })));
    // A changed payload under the old signature fails the same way.
    let parts: Vec<&str> = token.split('.').collect();
    let other = user_token().0;
    let swapped = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
    assert!(matches!(decode::<UserClaims>(&swapped), Err(ClaimsError::BadSignature { .. })));
}

#[test]
fn wrong_issuer_kind_is_refused() {
    let op = key(KeyKind::Operator);
    let token =
        sign_payload(&user_payload(op.public_key(), json!({"type": "user", "version": 2})), &op);
    assert!(matches!(
        decode::<UserClaims>(&token),
        Err(ClaimsError::IssuerKind { claim_type: ClaimType::User, .. })
    ));
    let bogus = sign_payload(&user_payload("NOTAKEY", json!({"type": "user", "version": 2})), &op);
    assert!(matches!(decode::<UserClaims>(&bogus), Err(ClaimsError::InvalidIssuer { .. })));
}

#[test]
fn header_problems_are_refused() {
    let acc = key(KeyKind::Account);
    let payload = user_payload(acc.public_key(), json!({"type": "user", "version": 2})).to_string();
    let alg = sign_raw(r#"{"typ":"JWT","alg":"HS256"}"#, &payload, &acc);
    assert!(matches!(decode::<UserClaims>(&alg), Err(ClaimsError::Algorithm { .. })));
    let typ = sign_raw(r#"{"typ":"JWS","alg":"ed25519-nkey"}"#, &payload, &acc);
    assert!(matches!(decode::<UserClaims>(&typ), Err(ClaimsError::TokenType { .. })));
    let junk = sign_raw("not json", &payload, &acc);
    assert!(matches!(decode::<UserClaims>(&junk), Err(ClaimsError::Header { .. })));
    // Case-insensitive typ and alg are accepted, as in Go.
    let lower = sign_raw(r#"{"typ":"jwt","alg":"ED25519-NKEY"}"#, &payload, &acc);
    assert!(decode::<UserClaims>(&lower).is_ok());
}

#[test]
fn part_count_size_and_encoding_are_checked() {
    let (token, _) = user_token();
    assert!(matches!(decode::<UserClaims>("a.b"), Err(ClaimsError::PartCount { found: 2 })));
    assert!(matches!(
        decode::<UserClaims>(&format!("{token}.x")),
        Err(ClaimsError::PartCount { found: 4 })
    ));
    let huge = "a".repeat(MAX_TOKEN_SIZE + 1);
    assert!(matches!(decode::<UserClaims>(&huge), Err(ClaimsError::TooLarge { .. })));
    let parts: Vec<&str> = token.split('.').collect();
    let bad_payload = format!("{}.{}=.{}", parts[0], parts[1], parts[2]);
    assert!(matches!(
        decode::<UserClaims>(&bad_payload),
        Err(ClaimsError::Base64 { part: TokenPart::Payload })
    ));
    let bad_sig = format!("{}.{}.!!", parts[0], parts[1]);
    assert!(matches!(
        decode::<UserClaims>(&bad_sig),
        Err(ClaimsError::Base64 { part: TokenPart::Signature })
    ));
    let not_json = format!("{}.{}.{}", parts[0], b64("[1,2"), parts[2]);
    assert!(matches!(decode::<UserClaims>(&not_json), Err(ClaimsError::Payload { .. })));
}

#[test]
fn wrong_type_and_versions_are_refused() {
    let (token, acc) = user_token();
    assert!(matches!(
        decode::<AccountClaims>(&token),
        Err(ClaimsError::WrongType { expected: ClaimType::Account, found: ClaimType::User })
    ));
    assert!(matches!(decode::<OperatorClaims>(&token), Err(ClaimsError::WrongType { .. })));
    let v3 =
        sign_payload(&user_payload(acc.public_key(), json!({"type": "user", "version": 3})), &acc);
    assert!(matches!(
        decode::<UserClaims>(&v3),
        Err(ClaimsError::UnsupportedVersion { version: 3 })
    ));
    let v0 = sign_payload(&user_payload(acc.public_key(), json!({"type": "user"})), &acc);
    assert!(matches!(decode::<UserClaims>(&v0), Err(ClaimsError::MissingVersion { .. })));
    let cluster = sign_payload(
        &user_payload(acc.public_key(), json!({"type": "cluster", "version": 2})),
        &acc,
    );
    assert!(matches!(peek(&cluster), Err(ClaimsError::UnsupportedType { .. })));
    assert!(matches!(decode::<GenericClaims>(&cluster), Err(ClaimsError::UnsupportedType { .. })));
}

#[test]
fn encode_refuses_bad_subjects_and_signers() {
    let acc = key(KeyKind::Account);
    let op = key(KeyKind::Operator);
    let mut no_sub = Claims::new("", UserClaims::new());
    assert!(matches!(no_sub.encode(&acc), Err(ClaimsError::MissingSubject { .. })));
    let mut wrong_sub = Claims::new(acc.public_key(), UserClaims::new());
    assert!(matches!(
        wrong_sub.encode(&acc),
        Err(ClaimsError::SubjectKind { expected: KeyKind::User, .. })
    ));
    let mut user = Claims::new(key(KeyKind::User).public_key(), UserClaims::new());
    assert!(matches!(
        user.encode(&op),
        Err(ClaimsError::SignerKind { kind: KeyKind::Operator, claim_type: ClaimType::User, .. })
    ));
    assert!(user.iss.is_empty() && user.jti.is_empty(), "refused claims are not stamped");
    let mut body = OperatorClaims::new();
    body.account_server_url = "example.com/jwt".into();
    let mut operator = Claims::new(op.public_key(), body);
    assert!(matches!(operator.encode(&op), Err(ClaimsError::AccountServerUrl { .. })));
}
