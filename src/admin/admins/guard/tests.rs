//! Signature, freshness, nonce and scope checks against a real store in a temp dir.

use super::*;
use crate::admin::{
    execute, AccountAdd, AccountEdit, AccountList, AccountRotateKeys, AccountShow, AdminAdd,
    AdminList, AdminRevoke, Context, OperatorShow, OutboxList, RoleAdd, RoleEdit, TokenAdd,
    UserAdd, UserCreds, UserList, UserShow,
};
use crate::claims::parse_creds;
use crate::keys::KeyPair;
use crate::store::Store;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    ctx: Context,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = Context::now();
    let path = dir.path().join("s.redb");
    let (store, _) = crate::admin::init::init_store(&path, "t", false, &ctx).expect("init");
    for a in ["APP", "OTHER"] {
        let req = AccountAdd { name: a.into(), ..Default::default() };
        execute(&store, &req.into(), &ctx).expect("account");
    }
    execute(&store, &RoleAdd { name: "app".into(), ..Default::default() }.into(), &ctx).unwrap();
    execute(&store, &RoleAdd { name: "shared".into(), ..Default::default() }.into(), &ctx).unwrap();
    for (u, a, r) in
        [("alice", "APP", "app"), ("olga", "OTHER", "shared"), ("al2", "APP", "shared")]
    {
        let req =
            UserAdd { name: u.into(), account: a.into(), role: r.into(), ..Default::default() };
        execute(&store, &req.into(), &ctx).expect("user");
    }
    Fixture { _dir: dir, store, ctx }
}

/// Adds an admin and returns its record and key pair.
fn admin(f: &Fixture, name: &str, scope: &str, read_only: bool) -> (AdminRecord, KeyPair) {
    let add =
        AdminAdd { name: name.into(), scope: Some(scope.into()), read_only, expires_secs: None };
    let creds = match execute(&f.store, &add.into(), &f.ctx).expect("admin add").response {
        Response::Creds { creds, .. } => creds,
        other => panic!("{other:?}"),
    };
    let kp = parse_creds(&creds).unwrap().key_pair().unwrap();
    (f.store.read(|tx| tx.require_admin(name)).unwrap(), kp)
}

fn check(r: &AdminRecord, req: Request, f: &Fixture) -> Result<(), AuthzError> {
    f.store.read(|tx| authorize(tx, r, &req))
}

fn out_of_scope(result: Result<(), AuthzError>) -> bool {
    matches!(result, Err(AuthzError::Denied(Denied::OutOfScope { .. })))
}

#[test]
fn signatures_freshness_and_nonces_are_checked() {
    let f = fixture();
    let (rec, kp) = admin(&f, "ops", "operator", false);
    let nonces = NonceCache::default();
    let now = 1_000_000;
    let payload = br#"{"op":"account_list"}"#;
    let s = Signed::sign(&kp, now, "k", payload);
    let ok = check_signed(Some(rec.clone()), &s, "k", payload, &nonces, now);
    assert_eq!(ok.map(|a| a.name), Ok(rec.name.clone()));
    let again = check_signed(Some(rec.clone()), &s, "k", payload, &nonces, now);
    assert!(matches!(again, Err(Denied::Replayed { .. })), "{again:?}");
    let other = br#"{"op":"account_delete","name":"APP"}"#;
    let forged = check_signed(Some(rec.clone()), &s, "k", other, &nonces, now);
    assert!(matches!(forged, Err(Denied::BadSignature(_))), "{forged:?}");
    for skew in [MAX_SKEW_MS + 1, -MAX_SKEW_MS - 1] {
        let old = Signed::sign(&kp, now + skew, "k", payload);
        let stale = check_signed(Some(rec.clone()), &old, "k", payload, &nonces, now);
        assert!(matches!(stale, Err(Denied::Stale { .. })), "{stale:?}");
    }
    let edge = Signed::sign(&kp, now - MAX_SKEW_MS, "k", payload);
    assert!(check_signed(Some(rec.clone()), &edge, "k", payload, &nonces, now).is_ok());
    let unknown =
        check_signed(None, &Signed::sign(&kp, now, "k", payload), "k", payload, &nonces, now);
    assert!(matches!(unknown, Err(Denied::UnknownKey(_))));
    let revoked = AdminRecord { revoked: Some(5), ..rec.clone() };
    let s2 = Signed::sign(&kp, now, "k", payload);
    assert!(matches!(
        check_signed(Some(revoked), &s2, "k", payload, &nonces, now),
        Err(Denied::Revoked { at: 5, .. })
    ));
    let expired = AdminRecord { expires: rec.created + 1, ..rec.clone() };
    let later = (rec.created + 1) * 1000;
    let s3 = Signed::sign(&kp, later, "k", payload);
    assert!(matches!(
        check_signed(Some(expired), &s3, "k", payload, &nonces, later),
        Err(Denied::Expired { .. })
    ));
}

#[test]
fn the_nonce_cache_is_bounded_and_forgets_only_what_can_no_longer_be_fresh() {
    let cache = NonceCache::default();
    for i in 0..MAX_NONCES {
        cache.check("a", &format!("{i:032x}"), 0, 0).unwrap();
    }
    assert_eq!(cache.check("a", &format!("{:032x}", MAX_NONCES), 0, 0), Err(Denied::Busy));
    assert!(matches!(cache.check("a", &format!("{:032x}", 1), 0, 0), Err(Denied::Replayed { .. })));
    // Once the old requests are stale, their nonces make room.
    let later = MAX_SKEW_MS + 1;
    cache.check("a", &format!("{:032x}", MAX_NONCES), later, later).unwrap();
}

#[test]
fn a_read_only_admin_runs_every_read_and_nothing_else() {
    let f = fixture();
    let (rec, _) = admin(&f, "auditor", "operator", true);
    for req in Request::every_kind() {
        let result = check(&rec, req.clone(), &f);
        if req.is_read_only() {
            assert!(result.is_ok(), "{}: {result:?}", req.name());
        } else {
            assert!(
                matches!(result, Err(AuthzError::Denied(Denied::ReadOnly { .. }))),
                "{}: {result:?}",
                req.name()
            );
        }
    }
}

#[test]
fn an_account_admin_manages_its_account_only() {
    let f = fixture();
    let (rec, _) = admin(&f, "tenant", "account:APP", false);
    let user = |n: &str| UserShow { name: n.into() };
    assert!(check(&rec, user("alice").into(), &f).is_ok());
    assert!(out_of_scope(check(&rec, user("olga").into(), &f)));
    let creds = |n: &str| UserCreds { name: n.into(), keep_previous: false };
    assert!(check(&rec, creds("alice").into(), &f).is_ok());
    assert!(out_of_scope(check(&rec, creds("olga").into(), &f)));
    let token = TokenAdd { name: "olga".into(), ..Default::default() };
    assert!(out_of_scope(check(&rec, token.into(), &f)));
    let add = |a: &str| UserAdd {
        name: "n".into(),
        account: a.into(),
        role: "app".into(),
        ..Default::default()
    };
    assert!(check(&rec, add("APP").into(), &f).is_ok());
    assert!(out_of_scope(check(&rec, add("OTHER").into(), &f)));
    let list = UserList { account: Some("OTHER".into()) };
    assert!(out_of_scope(check(&rec, list.into(), &f)));
    let edit = |r: &str| RoleEdit { name: r.into(), ..Default::default() };
    assert!(check(&rec, edit("app").into(), &f).is_ok(), "only APP users hold it");
    assert!(out_of_scope(check(&rec, edit("shared").into(), &f)), "olga of OTHER holds it");
    assert!(out_of_scope(check(&rec, edit(crate::admin::init::ADMIN_ROLE).into(), &f)));
    assert!(check(&rec, AccountShow { name: "APP".into() }.into(), &f).is_ok());
    let denied: Vec<Request> = vec![
        AccountShow { name: "OTHER".into() }.into(),
        AccountEdit { name: "APP".into(), ..Default::default() }.into(),
        AccountAdd { name: "NEW".into(), ..Default::default() }.into(),
        AccountRotateKeys { name: "APP".into() }.into(),
        OperatorShow {}.into(),
        AdminList {}.into(),
        AdminRevoke { name: "tenant".into() }.into(),
        crate::admin::AuditList::default().into(),
    ];
    for req in denied {
        assert!(out_of_scope(check(&rec, req.clone(), &f)), "{}", req.name());
    }
    // Lists are narrowed to the account.
    let scoped_list = scoped(&rec, UserList { account: None }.into());
    let resp = execute(&f.store, &scoped_list, &f.ctx).unwrap().response;
    let Response::Users(users) = resp else { panic!() };
    assert!(users.iter().all(|u| u.account == "APP") && users.len() == 2);
    let accounts = execute(&f.store, &AccountList {}.into(), &f.ctx).unwrap().response;
    let Response::Accounts(v) = filtered(&rec, accounts) else { panic!() };
    assert_eq!(v.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["APP"]);
    let outbox = execute(&f.store, &OutboxList {}.into(), &f.ctx).unwrap().response;
    let Response::Outbox(v) = filtered(&rec, outbox) else { panic!() };
    assert!(v.iter().all(|e| e.account_name == "APP"));
}

#[test]
fn only_operator_admins_manage_identity_providers() {
    let f = fixture();
    let (scoped, _) = admin(&f, "app-admin", "account:APP", false);
    let (operator, _) = admin(&f, "root", "operator", false);
    let reqs: Vec<Request> = vec![
        crate::admin::IdpAdd { name: "kc".into(), ..Default::default() }.into(),
        crate::admin::IdpList {}.into(),
        crate::admin::IdpShow { name: "kc".into() }.into(),
        crate::admin::IdpEdit { name: "kc".into(), ..Default::default() }.into(),
        crate::admin::IdpDelete { name: "kc".into() }.into(),
        crate::admin::IdpMap { name: "kc".into(), account: "APP".into(), ..Default::default() }
            .into(),
        crate::admin::IdpUnmap { name: "kc".into(), ..Default::default() }.into(),
    ];
    for req in reqs {
        assert!(out_of_scope(check(&scoped, req.clone(), &f)), "{req:?}");
        assert!(check(&operator, req, &f).is_ok());
    }
}
