use super::*;
use crate::claims::{decode, Claims};
use crate::model::{
    AccountLimits, CalloutConfig, Limit, Name, Permissions, ResponsePermission as RolePerm,
};

const NOW: i64 = 1_800_000_000;

fn operator_and_sys() -> (Operator, Account) {
    let sys = Account::generate(Name::parse("SYS").unwrap(), AccountKind::System, NOW);
    let op = Operator::generate("test-op", sys.public_key.clone(), NOW);
    (op, sys)
}

fn managed(name: &str) -> Account {
    Account::generate(Name::parse(name).unwrap(), AccountKind::Managed, NOW)
}

fn role(perms: Permissions) -> Role {
    let mut r = Role::new(Name::parse("r").unwrap(), NOW);
    r.permissions = perms;
    r
}

fn user_key() -> UserPublicKey {
    let kp = KeyPair::generate(crate::keys::KeyKind::User);
    UserPublicKey::parse(kp.public_key()).unwrap()
}

#[test]
fn operator_jwt_is_self_signed_and_names_sys() {
    let (op, sys) = operator_and_sys();
    let jwt = operator_jwt(&op).unwrap();
    let c: Claims<OperatorClaims> = decode(&jwt).unwrap();
    assert_eq!(c.iss, op.public_key.as_str());
    assert_eq!(c.sub, op.public_key.as_str());
    assert_eq!(c.nats.system_account, sys.public_key.as_str());
    assert_eq!(c.nats.signing_keys, vec![op.signing_keys[0].public().to_string()]);
}

#[test]
fn account_jwt_has_explicit_unlimited_limits_and_operator_signer() {
    let (op, _) = operator_and_sys();
    let acc = managed("APP");
    let jwt = account_jwt(&op, &acc, &[], NOW + 5).unwrap();
    let c: Claims<AccountClaims> = decode(&jwt).unwrap();
    assert_eq!(c.iss, op.signing_keys[0].public());
    assert_eq!(c.iat, NOW + 5);
    assert_eq!((c.nats.limits.conn, c.nats.limits.subs, c.nats.limits.payload), (-1, -1, -1));
    assert_eq!(c.nats.limits.leaf, -1);
    assert!(!c.nats.limits.is_jetstream_enabled());
    assert!(c.nats.has_signing_key(acc.signing_keys[0].public()));
    assert!(!c.nats.authorization.is_enabled());
}

#[test]
fn limits_and_jetstream_map_through() {
    let (op, _) = operator_and_sys();
    let mut acc = managed("JS");
    acc.limits = AccountLimits {
        max_connections: Limit::try_from(4).unwrap(),
        js_disk: Limit::try_from(1 << 30).unwrap(),
        ..AccountLimits::default()
    };
    let c: Claims<AccountClaims> = decode(&account_jwt(&op, &acc, &[], NOW).unwrap()).unwrap();
    assert_eq!(c.nats.limits.conn, 4);
    assert_eq!(c.nats.limits.jetstream.disk_storage, 1 << 30);
    assert!(c.nats.limits.is_jetstream_enabled());
}

#[test]
fn inactive_account_is_disabled_not_omitted() {
    let (op, _) = operator_and_sys();
    let mut acc = managed("OFF");
    acc.active = false;
    let c: Claims<AccountClaims> = decode(&account_jwt(&op, &acc, &[], NOW).unwrap()).unwrap();
    assert_eq!(c.nats.limits.conn, 0);
    assert_eq!(c.nats.revocations.get("*"), Some(&NOW));
}

#[test]
fn system_account_gets_monitoring_exports_and_no_jetstream() {
    let (op, mut sys) = operator_and_sys();
    sys.limits.js_disk = Limit::try_from(100).unwrap();
    let c: Claims<AccountClaims> = decode(&account_jwt(&op, &sys, &[], NOW).unwrap()).unwrap();
    let subjects: Vec<_> = c.nats.exports.iter().map(|e| e.subject.as_str()).collect();
    assert!(subjects.contains(&"$SYS.ACCOUNT.*.>"));
    assert!(subjects.contains(&"$SYS.REQ.ACCOUNT.*.*"));
    assert!(!c.nats.limits.is_jetstream_enabled());
}

#[test]
fn auth_account_carries_authorization() {
    let (op, _) = operator_and_sys();
    let mut auth = Account::generate(Name::parse("AUTH").unwrap(), AccountKind::Auth, NOW);
    let svc = user_key();
    let x = crate::keys::XKeyPair::generate();
    auth.callout = Some(CalloutConfig {
        auth_users: vec![svc.clone()],
        xkey: Some(x.seed()),
        service_user: None,
    });
    let app = managed("APP");
    let jwt = account_jwt(&op, &auth, std::slice::from_ref(&app.public_key), NOW).unwrap();
    let c: Claims<AccountClaims> = decode(&jwt).unwrap();
    assert_eq!(c.nats.authorization.auth_users, vec![svc.to_string()]);
    assert_eq!(c.nats.authorization.allowed_accounts, vec![app.public_key.to_string()]);
    assert_eq!(c.nats.authorization.xkey, x.public_key());
}

#[test]
fn user_jwt_carries_role_permissions_and_issuer_account() {
    let acc = managed("APP");
    let perms = Permissions {
        pub_allow: Some(vec![Subject::parse("orders.>").unwrap()]),
        pub_deny: Some(vec![Subject::parse("orders.secret").unwrap()]),
        ..Default::default()
    };
    let mut r = role(perms);
    r.allow_responses = Some(RolePerm { max: 1, ttl: Duration::from_secs(30) });
    r.max_payload = Limit::try_from(1024).unwrap();
    let key = user_key();
    let defaults = default_permissions();
    let spec = UserSpec {
        account: &acc,
        role: &r,
        user_key: &key,
        name: "alice",
        iat: NOW,
        exp: NOW + 60,
        defaults: &defaults,
    };
    let c: Claims<UserClaims> = decode(&user_jwt(&spec).unwrap()).unwrap();
    assert_eq!(c.iss, acc.signing_keys[0].public());
    assert_eq!(c.nats.issuer_account, acc.public_key.as_str());
    assert_eq!(c.sub, key.as_str());
    assert_eq!((c.name.as_str(), c.exp), ("alice", NOW + 60));
    assert_eq!(c.nats.limits.publish.allow, vec!["orders.>".to_string()]);
    assert_eq!(c.nats.limits.publish.deny, vec!["orders.secret".to_string()]);
    assert_eq!(c.nats.limits.subscribe.allow, vec![">".to_string()], "unset takes the default");
    assert_eq!(c.nats.limits.payload, 1024);
    assert_eq!(c.nats.limits.resp.unwrap().ttl, 30_000_000_000);
}

#[test]
fn explicitly_empty_lists_deny_everything() {
    let acc = managed("APP");
    let r = role(Permissions::nothing());
    let key = user_key();
    let defaults = default_permissions();
    let spec = UserSpec {
        account: &acc,
        role: &r,
        user_key: &key,
        name: "nobody",
        iat: NOW,
        exp: 0,
        defaults: &defaults,
    };
    let c = user_claims(&spec).unwrap();
    assert!(c.nats.limits.publish.allow.is_empty());
    assert_eq!(c.nats.limits.publish.deny, vec![">".to_string()]);
    assert_eq!(c.nats.limits.subscribe.deny, vec![">".to_string()]);
}

#[test]
fn sentinel_is_bearer_and_denies_everything() {
    let auth = Account::generate(Name::parse("AUTH").unwrap(), AccountKind::Auth, NOW);
    let c: Claims<UserClaims> = decode(&sentinel_jwt(&auth, NOW).unwrap()).unwrap();
    assert!(c.nats.limits.bearer_token);
    assert_eq!(c.nats.limits.publish.deny, vec![">".to_string()]);
    assert_eq!(c.nats.limits.subscribe.deny, vec![">".to_string()]);
    assert_eq!(c.nats.issuer_account, auth.public_key.as_str());
    assert_eq!(c.exp, 0);
}

#[test]
fn expired_user_jwt_is_never_signed() {
    let acc = managed("APP");
    let mut r = role(Permissions::default());
    r.source_cidrs = vec![];
    let key = user_key();
    let defaults = default_permissions();
    let spec = UserSpec {
        account: &acc,
        role: &r,
        user_key: &key,
        name: "x",
        iat: NOW,
        exp: NOW - 1,
        defaults: &defaults,
    };
    assert!(matches!(user_jwt(&spec), Err(IssueError::Invalid { what: "user JWT", .. })));
}

#[test]
fn templates_render_per_user_with_tags_and_login_claims() {
    let acc = managed("FLEET");
    let sub = |s: &str| crate::model::SubSubject::parse(s).unwrap();
    let perms = Permissions {
        pub_allow: Some(vec![
            Subject::parse("devices.{{name}}.>").unwrap(),
            Subject::parse("{{account}}.site.{{tag:site}}").unwrap(),
        ]),
        pub_deny: Some(vec![Subject::parse("devices.{{name}}.secret").unwrap()]),
        sub_allow: Some(vec![sub("team.{{claim:org.team}}.> q-{{name}}")]),
        sub_deny: None,
    };
    let r = role(perms);
    let key = user_key();
    let defaults = default_permissions();
    let spec = UserSpec {
        account: &acc,
        role: &r,
        user_key: &key,
        name: "d1",
        iat: NOW,
        exp: 0,
        defaults: &defaults,
    };
    let tags: UserTags = [("site".to_string(), "berlin".to_string())].into();
    let claims = serde_json::json!({"org": {"team": "blue"}});
    let vars = UserVars { tags: Some(&tags), claims: Some(&claims) };
    let c = user_claims_with(&spec, vars).unwrap();
    let l = &c.nats.limits;
    assert_eq!(l.publish.allow, ["devices.d1.>", "FLEET.site.berlin"]);
    assert_eq!(l.publish.deny, ["devices.d1.secret"]);
    assert_eq!(l.subscribe.allow, ["team.blue.> q-d1"]);

    // Without the login's claims (creds, a password login) the role is refused, not widened.
    let no_claims = UserVars { tags: Some(&tags), claims: None };
    let err = user_claims_with(&spec, no_claims).unwrap_err();
    assert!(matches!(err, IssueError::Render(RenderError::MissingClaim(_))), "{err:?}");
    let bad = serde_json::json!({"org": {"team": "a.>"}});
    let err = user_claims_with(&spec, UserVars { tags: Some(&tags), claims: Some(&bad) });
    assert!(matches!(err, Err(IssueError::Render(RenderError::NotAToken { .. }))), "{err:?}");
}

#[test]
fn the_size_check_of_a_templated_role_counts_the_longest_values() {
    let plain = role(Permissions {
        pub_allow: Some(vec![Subject::parse("devices.x.>").unwrap()]),
        ..Default::default()
    });
    let templated = role(Permissions {
        pub_allow: Some(vec![Subject::parse("devices.{{tag:site}}.>").unwrap()]),
        ..Default::default()
    });
    let d = default_permissions();
    let small = callout_response_size(&plain, &d, NOW).unwrap();
    let large = callout_response_size(&templated, &d, NOW).unwrap();
    assert!(large >= small + crate::model::template::TAG_VALUE_MAX_LEN - 1, "{small} {large}");
}
