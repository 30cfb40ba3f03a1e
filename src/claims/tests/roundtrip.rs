//! Encode → decode round trips of every claim type.

use std::time::Duration;

use serde_json::Value;

use super::super::{
    decode, decode_any, encode, peek, AccountClaims, ActivationClaims, AnyClaims,
    AuthorizationRequestClaims, AuthorizationResponseClaims, ClaimBody, ClaimType, Claims, Export,
    ExportType, ExternalAuthorization, GenericClaims, Import, JetStreamLimits, MsgTrace,
    OperatorClaims, ResponsePermission, SamplingRate, ServiceLatency, UserClaims, UserScope,
    WeightedMapping, AUTH_REQUEST_AUDIENCE,
};
use super::{data, key, payload_bytes};
use crate::keys::{KeyKind, XKeyPair};

/// Encodes, decodes, and checks the decoded claims equal the (encode-completed) input.
fn round_trip<T: ClaimBody + PartialEq>(
    mut claims: Claims<T>,
    signer: &crate::keys::KeyPair,
) -> Claims<T> {
    let token = claims.encode(signer).expect("encodes");
    let decoded: Claims<T> = decode(&token).expect("decodes");
    assert_eq!(decoded, claims);
    assert_eq!(decoded.iss, signer.public_key());
    assert_eq!(decoded.nats.version(), 2);
    assert_eq!(
        decoded.nats.type_name(),
        if T::TYPE == ClaimType::Generic { "" } else { T::TYPE.as_str() }
    );
    assert_eq!(peek(&token).expect("peeks"), T::TYPE);
    decoded
}

fn full_user(account: &str) -> UserClaims {
    let mut user = UserClaims::new()
        .allow_pub("orders.>")
        .deny_pub("orders.secret")
        .allow_sub("replies.* workers")
        .deny_sub("_INBOX.x")
        .with_resp(3, Duration::from_secs(5))
        .allow_src("10.0.0.0/8")
        .allow_times("08:00:00", "17:00:00")
        .with_limits(100, 2048, 1024)
        .with_bearer_token(true)
        .allow_connection_type("STANDARD")
        .with_issuer_account(account);
    user.limits.times_location = "Europe/Berlin".into();
    user.limits.proxy_required = true;
    user.tags = vec!["team:a".into()];
    user
}

#[test]
fn operator_round_trips_self_signed() {
    let op = key(KeyKind::Operator);
    let sk = key(KeyKind::Operator);
    let sys = key(KeyKind::Account);
    let mut body = OperatorClaims::new()
        .with_system_account(sys.public_key())
        .with_signing_key(sk.public_key());
    body.account_server_url = "https://example.com/jwt/v1".into();
    body.operator_service_urls = vec!["nats://localhost:4222".into()];
    body.assert_server_version = "2.10.0".into();
    body.strict_signing_key_usage = true;
    let decoded = round_trip(Claims::new(op.public_key(), body).with_name("op"), &op);
    assert!(decoded.validate(decoded.iat).is_empty(), "{}", decoded.validate(decoded.iat));
}

/// An account body using every field, all valid.
fn full_account() -> AccountClaims {
    let (sk1, sk2, other, user) =
        (key(KeyKind::Account), key(KeyKind::Account), key(KeyKind::Account), key(KeyKind::User));
    let mut body = AccountClaims::new();
    body.limits.conn = 10;
    body.limits.tiered_limits.insert(
        "R1".into(),
        JetStreamLimits { mem_storage: -1, disk_storage: 1 << 30, ..Default::default() },
    );
    body.exports.push(Export {
        name: "svc".into(),
        subject: "svc.*".into(),
        export_type: ExportType::Service,
        token_req: true,
        response_type: "Stream".into(),
        response_threshold: 2_000_000_000,
        latency: Some(ServiceLatency {
            sampling: SamplingRate::Percent(50),
            results: "lat.svc".into(),
        }),
        account_token_position: 2,
        description: "a service".into(),
        info_url: "https://example.com/svc".into(),
        ..Default::default()
    });
    body.exports.push(Export {
        subject: "events.>".into(),
        export_type: ExportType::Stream,
        ..Default::default()
    });
    body.imports.push(Import {
        name: "remote".into(),
        subject: "remote.*".into(),
        account: other.public_key().into(),
        local_subject: "local.$1".into(),
        import_type: ExportType::Stream,
        ..Default::default()
    });
    body.add_signing_key(sk1.public_key());
    let mut scope = UserScope::new(sk2.public_key(), "reader");
    scope.template.subscribe.allow.push("read.>".into());
    scope.description = "read only".into();
    body.add_scoped_signing_key(scope);
    body.revoke(user.public_key(), 1_700_000_000);
    body.default_permissions.publish.deny.push(">".into());
    body.default_permissions.resp = Some(ResponsePermission::new(1, Duration::from_secs(60)));
    body.mappings.insert(
        "old".into(),
        vec![WeightedMapping { subject: "new".into(), weight: 100, cluster: String::new() }],
    );
    body.authorization = ExternalAuthorization {
        auth_users: vec![user.public_key().into()],
        allowed_accounts: vec![other.public_key().into()],
        xkey: XKeyPair::generate().public_key().into(),
    };
    body.trace = Some(MsgTrace { destination: "trace.acc".into(), sampling: 50 });
    body.cluster_traffic = "owner".into();
    body.description = "everything".into();
    body.info_url = "https://example.com".into();
    body
}

#[test]
fn account_with_every_field_round_trips() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let body = full_account();
    let claims = Claims::new(acc.public_key(), body).with_name("ACC").with_issued_at(1_700_000_001);
    let decoded = round_trip(claims, &op);
    assert_eq!(decoded.iat, 1_700_000_001, "a set iat is kept");
    let v = decoded.validate(decoded.iat);
    assert!(v.is_empty(), "{v}");
}

#[test]
fn users_round_trip_full_default_and_scoped() {
    let acc = key(KeyKind::Account);
    let sk = key(KeyKind::Account);
    let user = key(KeyKind::User);
    let full = round_trip(
        Claims::new(user.public_key(), full_user(acc.public_key()))
            .with_name("u")
            .with_expires(4_000_000_000),
        &sk,
    );
    assert_eq!(full.nats.limits.resp.map(|r| r.ttl_duration()), Some(Duration::from_secs(5)));
    round_trip(Claims::new(user.public_key(), UserClaims::new()), &acc);
    let scoped = round_trip(
        Claims::new(user.public_key(), UserClaims::scoped().with_issuer_account(acc.public_key())),
        &sk,
    );
    assert!(scoped.nats.is_scoped());
}

#[test]
fn activation_response_and_generic_round_trip() {
    let exporter = key(KeyKind::Account);
    let importer = key(KeyKind::Account);
    round_trip(
        Claims::new(importer.public_key(), ActivationClaims::new("svc.x", ExportType::Service)),
        &exporter,
    );

    let callout = key(KeyKind::Account);
    let server = key(KeyKind::Server);
    let user = key(KeyKind::User);
    let ok = Claims::new(user.public_key(), AuthorizationResponseClaims::success("eyJ.x.y"))
        .with_audience(server.public_key());
    round_trip(ok, &callout);
    let refused =
        Claims::new(user.public_key(), AuthorizationResponseClaims::failure("bad password"))
            .with_audience(server.public_key());
    round_trip(refused, &callout);

    let op = key(KeyKind::Operator);
    let delete =
        Claims::new(op.public_key(), GenericClaims::delete_accounts([exporter.public_key()]));
    let decoded = round_trip(delete, &op);
    assert_eq!(decoded.nats.accounts, vec![exporter.public_key().to_string()]);
    let json: Value = serde_json::from_slice(&decoded.to_json().unwrap()).unwrap();
    assert_eq!(
        json["nats"],
        serde_json::json!({"accounts": [exporter.public_key()], "version": 2})
    );
}

#[test]
fn auth_request_sample_signs_decodes_and_compares() {
    let sample: Value = serde_json::from_str(&data("auth_request_payload_sample.json")).unwrap();
    let body: AuthorizationRequestClaims =
        serde_json::from_value(sample["nats"].clone()).expect("sample body");
    assert_eq!(body.client.id, 21);
    assert_eq!(body.client.user, "UCB7G4JWCLUIJE7552IRU3EUCPYHSDGIEBANNQ2DLPS4GHKNFOQZORUA");
    assert_eq!(body.server.xkey, "XAVESR4X4YVIJJ7VHJWAIQYRU7TMIZCYD36HYSYBYWJWB5GKHDFHETUU");
    assert_eq!(body.connect_opts.token, "test");
    assert_eq!(body.connect_opts.protocol, 1);
    assert!(body.tls.is_none());
    let server = key(KeyKind::Server);
    let mut claims = Claims::new(sample["sub"].as_str().unwrap(), body)
        .with_audience(AUTH_REQUEST_AUDIENCE)
        .with_expires(sample["exp"].as_i64().unwrap())
        .with_issued_at(sample["iat"].as_i64().unwrap());
    let token = encode(&mut claims, &server).expect("encodes");
    let decoded: Claims<AuthorizationRequestClaims> = decode(&token).expect("decodes");
    assert_eq!(decoded, claims);
    // Same body JSON as the server wrote, apart from key order.
    let ours: Value = serde_json::from_slice(&payload_bytes(&token)).unwrap();
    assert_eq!(ours["nats"], sample["nats"]);
    assert!(!format!("{decoded:?}").contains("\"test\""), "token redacted in Debug");
    match decode_any(&token).expect("decode_any") {
        AnyClaims::AuthorizationRequest(c) => assert_eq!(c, decoded),
        other => panic!("wrong variant {:?}", other.claim_type()),
    }
}

#[test]
fn encode_sorts_like_go_and_dedups_signing_keys() {
    let op = key(KeyKind::Operator);
    let acc = key(KeyKind::Account);
    let mut keys: Vec<String> =
        (0..3).map(|_| key(KeyKind::Account).public_key().to_string()).collect();
    let mut body = AccountClaims::new();
    for k in keys.iter().rev() {
        body.add_signing_key(k.clone());
    }
    body.add_signing_key(keys[0].clone());
    for s in ["b", "c", "a"] {
        body.exports.push(Export {
            subject: s.into(),
            export_type: ExportType::Stream,
            ..Default::default()
        });
    }
    let mut claims = Claims::new(acc.public_key(), body);
    let decoded: Claims<AccountClaims> = decode(&claims.encode(&op).unwrap()).unwrap();
    keys.sort();
    let got: Vec<&str> = decoded.nats.signing_keys.iter().map(|k| k.key()).collect();
    assert_eq!(got, keys);
    let subjects: Vec<&str> = decoded.nats.exports.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["a", "b", "c"]);
}

#[test]
fn decode_any_dispatches_on_type() {
    let acc = key(KeyKind::Account);
    let user = key(KeyKind::User);
    let mut claims = Claims::new(user.public_key(), UserClaims::new());
    let token = claims.encode(&acc).unwrap();
    let any = decode_any(&token).expect("decodes");
    assert_eq!(any.claim_type(), ClaimType::User);
    assert!(matches!(any, AnyClaims::User(c) if c == claims));
    // A generic view reads any token.
    let generic: Claims<GenericClaims> = decode(&token).expect("generic decode");
    assert_eq!(generic.nats.claim_type, "user");
    assert_eq!(generic.nats.extra["subs"], Value::from(-1));
}
