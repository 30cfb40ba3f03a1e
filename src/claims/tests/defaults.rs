//! Go's default semantics: missing means zero; constructors write Go's -1 defaults.

use serde_json::{json, Value};

use super::super::{
    decode, AccountClaims, Claims, ClaimsError, Export, ExportType, SamplingRate, ServiceLatency,
    SigningKey, UserClaims,
};
use super::{key, payload_bytes, sign_payload, vectors};
use crate::keys::KeyKind;

fn encoded_json<T: super::super::ClaimBody>(
    mut claims: Claims<T>,
    signer: &crate::keys::KeyPair,
) -> Value {
    let token = claims.encode(signer).expect("encodes");
    serde_json::from_slice(&payload_bytes(&token)).expect("json")
}

#[test]
fn missing_user_fields_decode_to_go_zero_values() {
    let acc = key(KeyKind::Account);
    let user = key(KeyKind::User);
    let payload = json!({"iss": acc.public_key(), "sub": user.public_key(),
        "nats": {"pub": {}, "sub": {}, "type": "user", "version": 2}});
    let claims: Claims<UserClaims> = decode(&sign_payload(&payload, &acc)).expect("decodes");
    let l = &claims.nats.limits;
    assert!(!l.bearer_token, "missing bearer_token is false");
    assert_eq!((l.subs, l.data, l.payload), (0, 0, 0), "missing limits are 0, not -1");
    assert!(l.resp.is_none() && l.src.is_empty() && l.allowed_connection_types.is_empty());
    assert_eq!(UserClaims::default().limits.subs, 0);
}

#[test]
fn missing_account_limits_decode_to_zero() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let payload = json!({"iss": op.public_key(), "sub": acc.public_key(),
        "nats": {"type": "account", "version": 2}});
    let claims: Claims<AccountClaims> = decode(&sign_payload(&payload, &op)).expect("decodes");
    assert!(claims.nats.limits.is_empty());
    assert!(!claims.nats.limits.wildcards);
    assert!(!claims.nats.limits.is_jetstream_enabled());
}

#[test]
fn new_account_writes_go_defaults_and_no_jetstream() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let json = encoded_json(Claims::new(acc.public_key(), AccountClaims::new()), &op);
    assert_eq!(
        json["nats"],
        json!({"limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
            "wildcards": true, "conn": -1, "leaf": -1},
            "default_permissions": {"pub": {}, "sub": {}}, "authorization": {},
            "type": "account", "version": 2})
    );
}

#[test]
fn new_user_writes_go_defaults_and_scoped_user_writes_nothing() {
    let acc = key(KeyKind::Account);
    let user = key(KeyKind::User);
    let json = encoded_json(Claims::new(user.public_key(), UserClaims::new()), &acc);
    assert_eq!(
        json["nats"],
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2})
    );
    let scoped = UserClaims::scoped().with_issuer_account(acc.public_key());
    let json = encoded_json(Claims::new(user.public_key(), scoped), &key(KeyKind::Account));
    assert_eq!(
        json["nats"],
        json!({"issuer_account": acc.public_key(), "type": "user", "version": 2})
    );
}

#[test]
fn v1_user_is_migrated_like_go() {
    let v = vectors();
    let vector = v["jwts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == "natsgo_v1_user_nstsUJWT")
        .unwrap();
    let claims: Claims<UserClaims> = decode(vector["jwt"].as_str().unwrap()).expect("v1 decodes");
    assert_eq!(claims.nats.version, 1);
    assert_eq!(claims.nats.claim_type, "user");
    assert_eq!(
        (claims.nats.limits.subs, claims.nats.limits.payload),
        (-1, -1),
        "v1 users are unlimited"
    );
}

#[test]
fn scope_template_and_src_decode_like_go() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let sk = key(KeyKind::Account);
    let user = key(KeyKind::User);
    let payload = json!({"iss": op.public_key(), "sub": acc.public_key(), "nats": {
        "signing_keys": [{"kind": "user_scope", "key": sk.public_key(), "role": "r",
            "template": {"sub": {"allow": ["a"]}}, "description": ""}],
        "type": "account", "version": 2}});
    let claims: Claims<AccountClaims> = decode(&sign_payload(&payload, &op)).expect("decodes");
    let SigningKey::Scoped(scope) = &claims.nats.signing_keys[0] else { panic!("not scoped") };
    assert_eq!((scope.template.subs, scope.template.data, scope.template.payload), (-1, -1, -1));
    assert_eq!(scope.template.subscribe.allow, ["a"]);

    let bad = json!({"iss": op.public_key(), "sub": acc.public_key(), "nats": {
        "signing_keys": [{"kind": "other_scope", "key": sk.public_key()}], "type": "account", "version": 2}});
    assert!(matches!(
        decode::<AccountClaims>(&sign_payload(&bad, &op)),
        Err(ClaimsError::Payload { .. })
    ));

    let payload = json!({"iss": acc.public_key(), "sub": user.public_key(), "nats": {
        "src": "10.0.0.0/8, 192.168.0.0/16,,10.0.0.0/8", "type": "user", "version": 2}});
    let claims: Claims<UserClaims> = decode(&sign_payload(&payload, &acc)).expect("decodes");
    assert_eq!(claims.nats.limits.src, ["10.0.0.0/8", "192.168.0.0/16"]);
}

#[test]
fn tiers_zero_flat_jetstream_on_decode() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let payload = json!({"iss": op.public_key(), "sub": acc.public_key(), "nats": {
        "limits": {"mem_storage": 5, "tiered_limits": {"R1": {"disk_storage": 7}}},
        "type": "account", "version": 2}});
    let claims: Claims<AccountClaims> = decode(&sign_payload(&payload, &op)).expect("decodes");
    assert_eq!(claims.nats.limits.jetstream.mem_storage, 0);
    assert_eq!(claims.nats.limits.tiered_limits["R1"].disk_storage, 7);
    assert!(claims.nats.limits.is_jetstream_enabled());
}

#[test]
fn sampling_reads_headers_or_percent_and_refuses_to_write_nonsense() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let export = |sampling: Value| {
        json!({"subject": "s", "type": "service",
        "service_latency": {"sampling": sampling, "results": "r"}})
    };
    let payload = json!({"iss": op.public_key(), "sub": acc.public_key(), "nats": {
        "exports": [export(json!("Headers")), export(json!(20))], "type": "account", "version": 2}});
    let claims: Claims<AccountClaims> = decode(&sign_payload(&payload, &op)).expect("decodes");
    let rates: Vec<SamplingRate> =
        claims.nats.exports.iter().map(|e| e.latency.as_ref().unwrap().sampling).collect();
    assert_eq!(rates, [SamplingRate::Headers, SamplingRate::Percent(20)]);

    let mut body = AccountClaims::new();
    body.exports.push(Export {
        subject: "s".into(),
        export_type: ExportType::Service,
        latency: Some(ServiceLatency { sampling: SamplingRate::Percent(101), results: "r".into() }),
        ..Default::default()
    });
    let err = Claims::new(acc.public_key(), body).encode(&op).unwrap_err();
    assert!(matches!(err, ClaimsError::Serialize { .. }), "{err}");
}
