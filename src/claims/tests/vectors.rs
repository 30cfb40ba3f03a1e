//! Compatibility with Go-produced vectors (`tests/data`).

use serde_json::Value;

use super::super::{
    compute_jti, decode, format_user_creds, open, parse_creds, AccountClaims, ClaimBody, Claims,
    OperatorClaims, UserClaims,
};
use super::{at, data, payload_bytes, unb64, vectors};
use crate::keys::{CurvePublicKey, KeyPair, Seed, XKeyPair};

/// Decodes a vector with the body type its kind names; returns our re-serialized payload JSON,
/// the jti we compute, and the version.
fn decode_vector(kind: &str, token: &str) -> (Vec<u8>, String, String, i64) {
    fn go<T: ClaimBody>(token: &str) -> (Vec<u8>, String, String, i64) {
        let claims: Claims<T> = decode(token).unwrap_or_else(|e| panic!("decode failed: {e}"));
        let json = claims.to_json().expect("serializes");
        let jti = compute_jti(&claims).expect("hashes");
        (json, jti, claims.jti.clone(), claims.nats.version())
    }
    match kind.split(' ').next() {
        Some("operator") => go::<OperatorClaims>(token),
        Some("account") => go::<AccountClaims>(token),
        Some("user") => go::<UserClaims>(token),
        other => panic!("unexpected vector kind {other:?}"),
    }
}

#[test]
fn every_vector_decodes_verifies_and_matches_expectations() {
    let v = vectors();
    let jwts = v["jwts"].as_array().expect("jwts array");
    assert_eq!(jwts.len(), 14);
    for vector in jwts {
        let id = vector["id"].as_str().expect("id");
        let token = vector["jwt"].as_str().expect("jwt");
        let (ours, _, _, version) = decode_vector(vector["kind"].as_str().expect("kind"), token);
        let ours: Value = serde_json::from_slice(&ours).expect("our json parses");
        let v1 = vector["kind"].as_str().is_some_and(|k| k.contains("v1"));
        assert_eq!(version, if v1 { 1 } else { 2 }, "{id}");
        for (path, expected) in vector["expect"].as_object().expect("expect map") {
            // v1 moved the top-level type into nats.type.
            let path = if path == "type" { "nats.type" } else { path.as_str() };
            assert_eq!(at(&ours, path), Some(expected), "{id}: {path}");
        }
    }
}

#[test]
fn jti_and_payload_of_every_v2_vector_are_reproduced() {
    let v = vectors();
    let mut checked = 0;
    for vector in v["jwts"].as_array().expect("jwts") {
        let kind = vector["kind"].as_str().expect("kind");
        if kind.contains("v1") {
            continue;
        }
        let token = vector["jwt"].as_str().expect("jwt");
        let (ours, jti, stored, _) = decode_vector(kind, token);
        assert_eq!(jti, stored, "{}", vector["id"]);
        // Field order, omitempty and Go's escaping give the very same bytes. The vectors
        // predate Go's `authorization` block (v2.4.0), which is always written now.
        let ours = String::from_utf8(ours).expect("utf8");
        assert_eq!(
            ours.replace(r#","authorization":{}"#, ""),
            String::from_utf8(payload_bytes(token)).expect("utf8"),
            "{}",
            vector["id"]
        );
        checked += 1;
    }
    assert_eq!(checked, 11);
}

#[test]
fn v1_vectors_re_sign_to_identical_signatures() {
    let v = vectors();
    let mut checked = 0;
    for vector in v["jwts"].as_array().expect("jwts") {
        let Some(seed) = vector["signer_seed"].as_str() else { continue };
        let token = vector["jwt"].as_str().expect("jwt");
        let parts: Vec<&str> = token.split('.').collect();
        let kp = KeyPair::from_seed(&Seed::new(seed).expect("seed")).expect("key pair");
        let payload: Value = serde_json::from_slice(&unb64(parts[1])).expect("payload");
        assert_eq!(payload["iss"].as_str(), Some(kp.public_key()));
        assert_eq!(kp.sign(parts[1].as_bytes()), unb64(parts[2]), "{}", vector["id"]);
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn go_sealed_xkey_box_opens() {
    let v = vectors();
    let b = &v["xkey_boxes"][0];
    let receiver = XKeyPair::from_seed(&Seed::new(b["receiver_seed"].as_str().unwrap()).unwrap())
        .expect("receiver xkey");
    let sender = CurvePublicKey::parse(b["sender_public"].as_str().unwrap()).expect("sender key");
    let sealed: Vec<u8> = (0..b["sealed_hex"].as_str().unwrap().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&b["sealed_hex"].as_str().unwrap()[i..i + 2], 16).unwrap())
        .collect();
    assert!(super::super::is_sealed(&sealed));
    let plain = open(&receiver, &sealed, &sender).expect("opens");
    assert_eq!(plain, b["plaintext"].as_str().unwrap().as_bytes());
}

#[test]
fn every_seed_derives_its_public_key() {
    let v = vectors();
    let seeds = v["seeds"].as_array().expect("seeds");
    assert_eq!(seeds.len(), 7);
    for s in seeds {
        let seed = Seed::new(s["seed"].as_str().unwrap()).expect("seed parses");
        let public = if seed.expose().starts_with("SX") {
            XKeyPair::from_seed(&seed).expect("xkey").public_key().to_string()
        } else {
            KeyPair::from_seed(&seed).expect("key pair").public_key().to_string()
        };
        assert_eq!(public, s["public"].as_str().unwrap(), "{}", s["id"]);
    }
}

#[test]
fn go_creds_files_parse_and_format_identically() {
    for name in ["natsrs_TestUser.creds", "natsserver_one.creds"] {
        let text = data(name);
        let creds = parse_creds(&text).expect("creds parse");
        let user: Claims<UserClaims> = decode(&creds.jwt).expect("creds jwt decodes");
        let kp = creds.key_pair().expect("seed loads");
        assert_eq!(user.sub, kp.public_key(), "{name}");
        assert_eq!(*format_user_creds(&creds.jwt, &creds.seed), text, "{name}");
        assert!(!format!("{creds:?}").contains(creds.seed.expose()));
    }
}

#[test]
fn creds_format_parse_round_trip_and_missing_blocks() {
    let acc = KeyPair::generate(crate::keys::KeyKind::Account);
    let user = KeyPair::generate(crate::keys::KeyKind::User);
    let jwt = Claims::new(user.public_key(), UserClaims::new()).encode(&acc).expect("encodes");
    let text = format_user_creds(&jwt, &user.seed());
    let creds = parse_creds(&text).expect("parses");
    assert_eq!(creds.jwt, jwt);
    assert_eq!(creds.seed, user.seed());
    assert!(matches!(
        parse_creds("nothing here"),
        Err(super::super::ClaimsError::CredsMissing("jwt"))
    ));
    let jwt_only = format!("-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n");
    assert!(matches!(parse_creds(&jwt_only), Err(super::super::ClaimsError::CredsMissing("seed"))));
}

#[test]
fn xkey_helpers_seal_and_open() {
    let ours = XKeyPair::generate();
    let theirs = XKeyPair::generate();
    let their_pub = CurvePublicKey::parse(theirs.public_key()).unwrap();
    let our_pub = CurvePublicKey::parse(ours.public_key()).unwrap();
    let sealed = super::super::seal(&ours, b"eyJ.response", &their_pub).expect("seals");
    assert!(super::super::is_sealed(&sealed) && !super::super::is_sealed(b"eyJ.response"));
    assert_eq!(open(&theirs, &sealed, &our_pub).expect("opens"), b"eyJ.response");
    let stranger = XKeyPair::generate();
    assert!(matches!(open(&stranger, &sealed, &our_pub), Err(super::super::ClaimsError::Xkey(_))));
}

#[test]
fn connect_options_debug_redacts_secrets() {
    let opts = super::super::ConnectOptions {
        username: "alice".into(),
        password: "hunter2-secret".into(),
        token: "tok-secret".into(),
        ..Default::default()
    };
    let shown = format!("{opts:?}");
    assert!(shown.contains("alice") && shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("hunter2-secret") && !shown.contains("tok-secret"), "{shown}");
}
