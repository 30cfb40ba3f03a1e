//! Which sessions `session list` and `session kick` select, for which admin.

use super::*;
use crate::admin::{execute, AccountAdd, AdminAdd};
use crate::keys::{KeyKind, KeyPair, ServerPublicKey};
use crate::model::Name;

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
    Fixture { _dir: dir, store, ctx }
}

fn admin(f: &Fixture, name: &str, scope: &str) -> AdminRecord {
    let add = AdminAdd { name: name.into(), scope: Some(scope.into()), ..Default::default() };
    execute(&f.store, &add.into(), &f.ctx).expect("admin add");
    f.store.read(|tx| tx.require_admin(name)).unwrap()
}

fn session(f: &Fixture, user: &str, account: &str, cid: u64) -> Session {
    let acc = f.store.read(|tx| tx.require_account(account)).unwrap();
    let server = KeyPair::generate(KeyKind::Server);
    Session {
        server_id: ServerPublicKey::parse(server.public_key()).unwrap(),
        client_id: cid,
        user: Name::parse(user).unwrap(),
        account: acc.public_key,
        user_nkey: None,
        issuer: None,
        issued: 10,
        expires: i64::MAX,
        host: "10.1.2.3".into(),
        method: None,
        since: 10,
        provider: None,
    }
}

fn listed(resp: Response) -> Vec<SessionView> {
    match resp {
        Response::Sessions(v) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_filters_and_names_accounts_and_a_tenant_sees_its_own_only() {
    let f = fixture();
    let all = vec![session(&f, "alice", "APP", 1), session(&f, "olga", "OTHER", 2)];
    let root = admin(&f, "root", "operator");
    let tenant = admin(&f, "tenant", "account:APP");
    let every = SessionList::default();
    let v = listed(f.store.read(|tx| list(tx, &root, &every, all.clone())).unwrap());
    assert_eq!(v.len(), 2);
    assert_eq!((v[0].user.as_str(), v[0].account.as_str()), ("alice", "APP"));
    assert_eq!((v[0].host.as_str(), v[0].method.as_str(), v[0].expires), ("10.1.2.3", "-", None));
    assert_eq!(v[0].id, session_id(&all[0]));

    let other = SessionList { account: Some("OTHER".into()), ..Default::default() };
    let v = listed(f.store.read(|tx| list(tx, &root, &other, all.clone())).unwrap());
    assert_eq!(v.iter().map(|s| s.user.as_str()).collect::<Vec<_>>(), ["olga"]);

    let v = listed(f.store.read(|tx| list(tx, &tenant, &every, all.clone())).unwrap());
    assert_eq!(v.iter().map(|s| s.user.as_str()).collect::<Vec<_>>(), ["alice"]);
    let v = listed(f.store.read(|tx| list(tx, &tenant, &other, all.clone())).unwrap());
    assert!(v.is_empty(), "a tenant never sees another account's sessions");
}

#[test]
fn kick_selects_by_id_or_user_within_the_admins_scope() {
    let f = fixture();
    let all = vec![
        session(&f, "alice", "APP", 1),
        session(&f, "alice", "APP", 2),
        session(&f, "olga", "OTHER", 3),
    ];
    let root = admin(&f, "root", "operator");
    let tenant = admin(&f, "tenant", "account:APP");
    let by_user = |u: &str| SessionKick { user: Some(u.into()), id: None };
    let kicked = f.store.read(|tx| to_kick(tx, &root, &by_user("alice"), all.clone())).unwrap();
    assert_eq!(kicked.len(), 2);
    let by_id = SessionKick { id: Some(session_id(&all[2])), user: None };
    let kicked = f.store.read(|tx| to_kick(tx, &root, &by_id, all.clone())).unwrap();
    assert_eq!(kicked, vec![all[2].clone()]);

    let err = f.store.read(|tx| to_kick(tx, &tenant, &by_id, all.clone())).unwrap_err();
    assert!(matches!(err, AdminError::NotFound { .. }), "{err:?}");
    let err = f.store.read(|tx| to_kick(tx, &tenant, &by_user("olga"), all.clone())).unwrap_err();
    assert!(matches!(err, AdminError::NotFound { .. }), "{err:?}");
    let both = SessionKick { id: Some("1@x".into()), user: Some("alice".into()) };
    let err = f.store.read(|tx| to_kick(tx, &root, &both, all.clone())).unwrap_err();
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
}

#[test]
fn on_a_store_file_the_commands_say_they_need_the_service() {
    let f = fixture();
    let err = SessionList::default().run(&f.store, &f.ctx).unwrap_err();
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
}
