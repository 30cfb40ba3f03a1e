//! Validation mirrors Go's checks for the claim types pbn produces.

use super::super::{
    AccountClaims, AuthorizationRequestClaims, AuthorizationResponseClaims, Claims, ClaimsError,
    Export, ExportType, ExternalAuthorization, FindingKind, Import, JetStreamLimits, UserClaims,
    ANY_ACCOUNT,
};
use super::key;
use crate::keys::{KeyKind, XKeyPair};

fn user(body: UserClaims) -> Claims<UserClaims> {
    Claims::new(key(KeyKind::User).public_key(), body)
}

#[test]
fn time_checks_are_kept_apart() {
    let c = user(UserClaims::new()).with_expires(100).with_not_before(50);
    let v = c.validate(101);
    assert!(v.has(FindingKind::Expired) && v.errors.is_empty() && v.time.len() == 1);
    assert!(!v.is_blocking(false) && v.is_blocking(true));
    let v = c.validate(10);
    assert!(v.has(FindingKind::NotYetValid) && !v.has(FindingKind::Expired));
    assert!(c.validate(100).is_empty(), "exp itself is still valid");
}

#[test]
fn user_subjects_cidrs_and_issuer_account_are_checked() {
    let v = user(UserClaims::new().allow_pub("a..b")).validate(0);
    assert!(v.has(FindingKind::InvalidSubject) && v.is_blocking(false));
    let v = user(UserClaims::new().allow_pub("a.b q")).validate(0);
    assert!(v.has(FindingKind::InvalidPermission), "no queue in publish permissions");
    assert!(user(UserClaims::new().allow_sub("a.b q")).validate(0).is_empty());
    assert!(user(UserClaims::new().allow_sub("")).validate(0).has(FindingKind::InvalidSubject));
    assert!(user(UserClaims::new().allow_src("300.1.1.1/8"))
        .validate(0)
        .has(FindingKind::InvalidCidr));
    assert!(user(UserClaims::new().allow_times("9:00", "10:00:00"))
        .validate(0)
        .has(FindingKind::InvalidTimeRange));
    let v =
        user(UserClaims::new().with_issuer_account(key(KeyKind::User).public_key())).validate(0);
    assert!(v.has(FindingKind::InvalidIssuerAccount));
}

#[test]
fn account_jetstream_tiers_are_checked() {
    let acc = key(KeyKind::Account);
    let check = |body: AccountClaims, kind: FindingKind| {
        let v = Claims::new(acc.public_key(), body).validate(0);
        assert!(v.has(kind), "{kind:?} missing from {v}");
    };
    let mut b = AccountClaims::new();
    b.limits.jetstream.mem_storage = 1;
    b.limits.tiered_limits.insert("R1".into(), JetStreamLimits::default());
    check(b, FindingKind::TieredAndFlatJetStream);
    let mut b = AccountClaims::new();
    b.limits.tiered_limits.insert(String::new(), JetStreamLimits::default());
    check(b, FindingKind::BlankTierName);
}

#[test]
fn account_authorization_block_is_checked() {
    let acc = key(KeyKind::Account);
    let check = |body: AccountClaims, kind: FindingKind| {
        let v = Claims::new(acc.public_key(), body).validate(0);
        assert!(v.has(kind), "{kind:?} missing from {v}");
    };
    let user = key(KeyKind::User).public_key().to_string();
    let other = key(KeyKind::Account).public_key().to_string();
    let auth = |users: Vec<String>, accounts: Vec<String>, xkey: String| {
        let mut b = AccountClaims::new();
        b.authorization =
            ExternalAuthorization { auth_users: users, allowed_accounts: accounts, xkey };
        b
    };
    check(auth(vec![other.clone()], vec![], String::new()), FindingKind::InvalidAuthUser);
    check(
        auth(vec![user.clone()], vec![user.clone()], String::new()),
        FindingKind::InvalidAllowedAccount,
    );
    check(
        auth(vec![user.clone()], vec![ANY_ACCOUNT.into(), other.clone()], String::new()),
        FindingKind::InvalidAllowedAccount,
    );
    check(
        auth(vec![], vec![other.clone()], String::new()),
        FindingKind::AllowedAccountsWithoutUsers,
    );
    check(auth(vec![user.clone()], vec![], other.clone()), FindingKind::InvalidXkey);
    let good = auth(
        vec![user.clone()],
        vec![ANY_ACCOUNT.into()],
        XKeyPair::generate().public_key().into(),
    );
    let op = key(KeyKind::Operator);
    let mut claims = Claims::new(acc.public_key(), good);
    claims.iss = op.public_key().into();
    assert!(claims.validate(0).is_empty(), "{}", claims.validate(0));
}

#[test]
fn account_signing_keys_and_self_signed_limits_are_checked() {
    let acc = key(KeyKind::Account);
    let user = key(KeyKind::User).public_key().to_string();
    let mut b = AccountClaims::new();
    b.add_signing_key(user);
    let v = Claims::new(acc.public_key(), b).validate(0);
    assert!(v.has(FindingKind::InvalidSigningKey), "{v}");
    let mut self_signed = Claims::new(acc.public_key(), AccountClaims::new());
    self_signed.iss = acc.public_key().into();
    let v = self_signed.validate(0);
    assert!(v.has(FindingKind::SelfSignedLimits) && v.errors.is_empty());
}

#[test]
fn account_exports_and_imports_are_checked() {
    let acc = key(KeyKind::Account);
    let check = |body: AccountClaims, kind: FindingKind| {
        let v = Claims::new(acc.public_key(), body).validate(0);
        assert!(v.has(kind), "{kind:?} missing from {v}");
    };
    let with_exports = |exports: Vec<Export>| AccountClaims { exports, ..AccountClaims::new() };
    let with_imports = |imports: Vec<Import>| AccountClaims { imports, ..AccountClaims::new() };
    check(
        with_exports(vec![Export { subject: "a".into(), ..Default::default() }]),
        FindingKind::InvalidExportType,
    );
    check(
        with_exports(vec![Export { export_type: ExportType::Stream, ..Default::default() }]),
        FindingKind::InvalidSubject,
    );
    let stream = |s: &str| Export {
        subject: s.into(),
        export_type: ExportType::Stream,
        ..Default::default()
    };
    check(with_exports(vec![stream("a.>"), stream("a.b")]), FindingKind::OverlappingExports);
    check(
        with_exports(vec![Export { account_token_position: 1, ..stream("a.*") }]),
        FindingKind::InvalidAccountTokenPosition,
    );
    let mut limited = with_exports(vec![stream("a.*")]);
    limited.limits.wildcards = false;
    limited.limits.exports = 5;
    check(limited, FindingKind::WildcardExport);
    check(
        with_imports(vec![Import {
            subject: "x".into(),
            import_type: ExportType::Stream,
            ..Default::default()
        }]),
        FindingKind::MissingImportAccount,
    );
    let svc = |s: &str| Import {
        subject: s.into(),
        account: key(KeyKind::Account).public_key().into(),
        import_type: ExportType::Service,
        token: "not.a.token".into(),
        ..Default::default()
    };
    check(with_imports(vec![svc("x")]), FindingKind::InvalidActivation);
    let mut same = svc("x.>");
    same.token.clear();
    let mut twin = same.clone();
    twin.subject = "x.y".into();
    check(with_imports(vec![same, twin]), FindingKind::OverlappingImports);
}

#[test]
fn callout_response_and_request_rules() {
    let server = key(KeyKind::Server).public_key().to_string();
    let u = key(KeyKind::User).public_key().to_string();
    let resp = |body: AuthorizationResponseClaims| {
        Claims::new(u.clone(), body).with_audience(server.clone())
    };
    let both =
        AuthorizationResponseClaims { jwt: "x".into(), error: "y".into(), ..Default::default() };
    assert!(resp(both).validate(0).has(FindingKind::JwtAndError));
    assert!(resp(AuthorizationResponseClaims::default())
        .validate(0)
        .has(FindingKind::MissingJwtOrError));
    assert!(resp(AuthorizationResponseClaims::success("x")).validate(0).is_empty());
    let v = Claims::new(server.clone(), AuthorizationResponseClaims::failure("no"))
        .with_audience(u.clone())
        .validate(0);
    assert!(v.has(FindingKind::InvalidSubjectKey) && v.has(FindingKind::InvalidAudience));
    let bad_issuer = AuthorizationResponseClaims::success("x").with_issuer_account(u.clone());
    let err = resp(bad_issuer).validate(0).ensure_clean().unwrap_err();
    assert!(matches!(&err, ClaimsError::Invalid(v) if v.has(FindingKind::InvalidIssuerAccount)));

    let req =
        Claims::new(key(KeyKind::Account).public_key(), AuthorizationRequestClaims::default());
    assert!(req.validate(0).has(FindingKind::InvalidUserNkey));
}
