use data_encoding::BASE64URL_NOPAD as B64;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;

const NOW: i64 = 1_800_000_000;

/// An ES256 key: its signing key and its public JWK with id `kid`.
fn es256(kid: &str) -> (EncodingKey, Value) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = kp.public_key_raw();
    let (x, y) = (&raw[1..33], &raw[33..65]);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y),
                     "kid": kid, "use": "sig", "alg": "ES256"});
    (EncodingKey::from_ec_der(&kp.serialize_der()), jwk)
}

fn ed25519(kid: &str) -> (EncodingKey, Value) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(kp.public_key_raw()), "kid": kid});
    (EncodingKey::from_ed_der(&kp.serialize_der()), jwk)
}

fn set(jwks: &[&Value]) -> KeySet {
    KeySet::parse(json!({ "keys": jwks }).to_string().as_bytes(), "test").unwrap()
}

fn claims() -> Value {
    json!({"iss": "https://idp", "aud": "nats", "sub": "alice", "exp": NOW + 60, "iat": NOW})
}

fn sign(key: &EncodingKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    encode(&h, claims, key).unwrap()
}

fn rules() -> Rules<'static> {
    Rules { provider: "idp", audience: "nats", leeway: 30, now: NOW }
}

fn check(token: &str, keys: &KeySet) -> Result<Value, OidcError> {
    let peeked = peek(token)?;
    verify(token, &peeked, keys, &rules())
}

#[test]
fn a_token_signed_by_a_provider_key_passes_with_its_claims() {
    let (es, es_jwk) = es256("k1");
    let (ed, ed_jwk) = ed25519("k2");
    let keys = set(&[&es_jwk, &ed_jwk]);
    let t = sign(&es, Algorithm::ES256, Some("k1"), &claims());
    assert_eq!(check(&t, &keys).unwrap()["sub"], "alice");
    let t = sign(&ed, Algorithm::EdDSA, Some("k2"), &claims());
    assert_eq!(check(&t, &keys).unwrap()["sub"], "alice");
    // Without a kid every fitting key is tried.
    let t = sign(&ed, Algorithm::EdDSA, None, &claims());
    assert!(check(&t, &keys).is_ok());
    let mut many = claims();
    many["aud"] = json!(["other", "nats"]);
    assert!(check(&sign(&es, Algorithm::ES256, Some("k1"), &many), &keys).is_ok());
}

#[test]
fn none_and_hmac_are_refused_before_any_key() {
    let (_, jwk) = es256("k1");
    let keys = set(&[&jwk]);
    let payload = B64.encode(claims().to_string().as_bytes());
    let none = format!("{}.{payload}.", B64.encode(br#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(check(&none, &keys), Err(OidcError::AlgorithmNotAllowed("none".into())));
    // HS256 keyed with the provider's public key (the classic confusion attack).
    let secret = jwk.to_string();
    let hs =
        sign(&EncodingKey::from_secret(secret.as_bytes()), Algorithm::HS256, Some("k1"), &claims());
    assert_eq!(check(&hs, &keys), Err(OidcError::AlgorithmNotAllowed("HS256".into())));
    // An `oct` key in a JWKS is never a verification key.
    let oct = json!({"kty": "oct", "k": B64.encode(secret.as_bytes()), "kid": "k1"});
    assert!(matches!(
        KeySet::parse(json!({"keys": [oct]}).to_string().as_bytes(), "t"),
        Err(OidcError::Document { .. })
    ));
}

#[test]
fn forged_tampered_and_unknown_keys_are_refused() {
    let (es, jwk) = es256("k1");
    let (other, _) = es256("k1");
    let keys = set(&[&jwk]);
    let forged = sign(&other, Algorithm::ES256, Some("k1"), &claims());
    assert_eq!(check(&forged, &keys), Err(OidcError::BadSignature("idp".into())));
    let good = sign(&es, Algorithm::ES256, Some("k1"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("mallory");
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(c.to_string().as_bytes()), parts[2]);
    assert_eq!(check(&tampered, &keys), Err(OidcError::BadSignature("idp".into())));
    let unknown = sign(&es, Algorithm::ES256, Some("k9"), &claims());
    assert!(
        matches!(check(&unknown, &keys), Err(OidcError::UnknownKey { kid, .. }) if kid == "k9")
    );
    // An EC key does not verify EdDSA: no key fits.
    let (ed, _) = ed25519("k1");
    let wrong_alg = sign(&ed, Algorithm::EdDSA, Some("k1"), &claims());
    assert!(matches!(check(&wrong_alg, &keys), Err(OidcError::UnknownKey { .. })));
    let big = "a".repeat(crate::auth::oidc::MAX_TOKEN_BYTES + 1);
    assert!(matches!(check(&big, &keys), Err(OidcError::TooLarge { .. })));
    assert!(matches!(check("eyJ.x", &keys), Err(OidcError::Malformed(_))));
}

#[test]
fn audience_and_times_are_checked_with_the_leeway_for_nbf_and_iat_only() {
    let (es, jwk) = es256("k1");
    let keys = set(&[&jwk]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        check(&sign(&es, Algorithm::ES256, Some("k1"), &c), &keys)
    };
    assert!(matches!(with(&|c| c["aud"] = json!("other")), Err(OidcError::WrongAudience { .. })));
    assert!(matches!(
        with(&|c| c["aud"] = json!(["a", "b"])),
        Err(OidcError::WrongAudience { .. })
    ));
    assert!(matches!(with(&|c| c["aud"] = Value::Null), Err(OidcError::WrongAudience { .. })));
    assert_eq!(with(&|c| c["exp"] = json!(NOW)), Err(OidcError::Expired { exp: NOW, now: NOW }));
    assert_eq!(with(&|c| c["exp"] = Value::Null), Err(OidcError::NoExpiry));
    assert!(with(&|c| c["nbf"] = json!(NOW + 30)).is_ok(), "within the leeway");
    assert!(matches!(with(&|c| c["nbf"] = json!(NOW + 31)), Err(OidcError::NotYetValid { .. })));
    assert!(with(&|c| c["iat"] = json!(NOW + 30)).is_ok(), "within the leeway");
    assert!(matches!(with(&|c| c["iat"] = json!(NOW + 31)), Err(OidcError::IssuedInFuture { .. })));
}
