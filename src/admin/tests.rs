//! `admin::execute` against a store made by `init::init_store` in a temp dir.

use crate::admin::{
    AccountAdd, AccountDelete, AccountEdit, AccountShow, ExportAdd, ExportRemove, ImportAdd,
    RoleAdd, RoleDelete, RoleEdit, RoleShow, TokenAdd, TokenList, TokenRevoke, UserAdd, UserCreds,
    UserDelete, UserEdit, UserList, UserShow,
};
use std::collections::{BTreeMap, BTreeSet};

use super::init::{init_store, ADMIN_ROLE, AUTH_ACCOUNT, SYS_ACCOUNT};
use super::*;
use crate::claims::{decode, parse_creds, AccountClaims, UserClaims};
use crate::model::{Account, ApiToken, Limit, OutboxAction, Role, User};
use crate::store::StoreRead;

const NOW: i64 = 1_800_000_000;

/// A fresh store (operator, SYS, AUTH, admin role) and a context at [`NOW`].
fn setup() -> (tempfile::TempDir, Store, Context) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx =
        Context { now: NOW, now_ms: NOW * 1000, defaults: crate::issue::default_permissions() };
    // Sealed, as `pbn init` makes stores.
    let key = Some(crate::seal::KeySource::Key(crate::seal::StoreKey::generate()));
    let path = dir.path().join("pbn.redb");
    let (store, _) =
        crate::admin::init::init_store_with(&path, "test", false, &ctx, key).expect("init");
    (dir, store, ctx)
}

fn run(store: &Store, ctx: &Context, req: Request) -> Response {
    execute(store, &req, ctx).unwrap_or_else(|e| panic!("{req:?} failed: {e}")).response
}

fn fail(store: &Store, ctx: &Context, req: Request) -> AdminError {
    match execute(store, &req, ctx) {
        Ok(resp) => panic!("{req:?} succeeded: {resp:?}"),
        Err(e) => e,
    }
}

fn add_account(name: &str) -> Request {
    Request::AccountAdd(AccountAdd {
        name: name.into(),
        description: None,
        limits: LimitPatch::default(),
        disallow_bearer: false,
    })
}

fn add_role(name: &str, role: RolePatch) -> Request {
    Request::RoleAdd(RoleAdd { name: name.into(), role })
}

fn add_user(name: &str, account: &str, role: &str) -> Request {
    Request::UserAdd(UserAdd {
        name: name.into(),
        account: account.into(),
        role: role.into(),
        email: None,
        description: None,
        password_hash: None,
        tags: Default::default(),
    })
}

fn user_edit(name: &str) -> Request {
    Request::UserEdit(UserEdit {
        name: name.into(),
        account: None,
        role: None,
        active: None,
        email: None,
        description: None,
        nkey: None,
        tags: Default::default(),
    })
}

fn account(store: &Store, name: &str) -> Account {
    store.read(|tx| tx.require_account(name)).expect("account exists")
}

fn user(store: &Store, name: &str) -> User {
    store.read(|tx| tx.require_user(name)).expect("user exists")
}

fn role(store: &Store, name: &str) -> Role {
    store.read(|tx| tx.require_role(name)).expect("role exists")
}

/// Mints creds for `name` and returns the new public key and the keys it revoked.
fn creds(store: &Store, ctx: &Context, name: &str, keep_previous: bool) -> (String, Vec<String>) {
    match run(store, ctx, Request::UserCreds(UserCreds { name: name.into(), keep_previous })) {
        Response::Creds { public_key, revoked, creds, .. } => {
            let parsed = parse_creds(&creds).expect("creds parse");
            let kp = parsed.key_pair().expect("seed");
            assert_eq!(kp.public_key(), public_key);
            let claims = decode::<UserClaims>(&parsed.jwt).expect("user jwt");
            assert_eq!(claims.sub, public_key);
            (public_key, revoked)
        }
        other => panic!("not creds: {other:?}"),
    }
}

/// `app` with role `r` (defaults) and user `u`.
fn with_user() -> (tempfile::TempDir, Store, Context) {
    let (dir, store, ctx) = setup();
    run(&store, &ctx, add_account("app"));
    run(&store, &ctx, add_role("r", RolePatch::default()));
    run(&store, &ctx, add_user("u", "app", "r"));
    (dir, store, ctx)
}

fn revoked_keys(acc: &Account) -> BTreeSet<String> {
    acc.revocations.keys().cloned().collect()
}

#[test]
fn account_add_defaults_to_unlimited_with_jetstream_off() {
    let (_dir, store, ctx) = setup();
    let Response::Account(view) = run(&store, &ctx, add_account("app")) else {
        panic!("account add answers with the account");
    };
    assert_eq!(view.limits.max_connections, -1);
    let acc = account(&store, "app");
    let l = &acc.limits;
    for limit in [
        l.max_connections,
        l.max_subscriptions,
        l.max_data,
        l.max_payload,
        l.max_leafnodes,
        l.max_imports,
        l.max_exports,
    ] {
        assert_eq!(limit, Limit::UNLIMITED);
    }
    assert!(!l.jetstream_enabled());
    assert_eq!((l.js_disk, l.js_memory), (Limit::DISABLED, Limit::DISABLED));
    assert!(acc.active);
}

#[test]
fn account_add_enqueues_the_account_and_auth() {
    let (_dir, store, ctx) = setup();
    assert!(store.read(|tx| tx.list_outbox()).unwrap().is_empty());
    run(&store, &ctx, add_account("app"));
    let app = account(&store, "app").public_key;
    let auth = account(&store, AUTH_ACCOUNT).public_key;
    let outbox = store.read(|tx| tx.list_outbox()).unwrap();
    let queued: BTreeMap<String, OutboxAction> =
        outbox.iter().map(|e| (e.account.to_string(), e.action)).collect();
    let expected = BTreeMap::from([
        (app.to_string(), OutboxAction::Upsert),
        (auth.to_string(), OutboxAction::Upsert),
    ]);
    assert_eq!(queued, expected);

    // AUTH's JWT now allows the new account.
    let show = run(&store, &ctx, Request::AccountShow(AccountShow { name: AUTH_ACCOUNT.into() }));
    let Response::Account(view) = show else { panic!("account show answers with the account") };
    let claims = decode::<AccountClaims>(view.jwt.as_deref().expect("show has the jwt")).unwrap();
    assert_eq!(claims.nats.authorization.allowed_accounts, vec![app.to_string()]);
}

#[test]
fn deactivating_an_account_enqueues_auth_and_disables_its_jwt() {
    let (_dir, store, ctx) = setup();
    run(&store, &ctx, add_account("app"));
    store.write(|tx| tx.delete_outbox(&account(&store, AUTH_ACCOUNT).public_key)).unwrap();
    let edit = Request::AccountEdit(AccountEdit {
        name: "app".into(),
        description: None,
        limits: LimitPatch::default(),
        active: Some(false),
        disallow_bearer: None,
    });
    run(&store, &ctx, edit);
    let auth = account(&store, AUTH_ACCOUNT).public_key;
    assert!(store.read(|tx| tx.get_outbox(&auth)).unwrap().is_some(), "AUTH re-queued");
    let Response::Account(view) =
        run(&store, &ctx, Request::AccountShow(AccountShow { name: "app".into() }))
    else {
        panic!("account show answers with the account");
    };
    let claims = decode::<AccountClaims>(view.jwt.as_deref().expect("jwt")).unwrap();
    assert_eq!(claims.nats.limits.conn, 0);
    assert!(claims.nats.revocations.contains_key("*"));
}

#[test]
fn user_creds_revoke_the_previous_ones_unless_kept() {
    let (_dir, store, ctx) = with_user();
    let (k1, revoked) = creds(&store, &ctx, "u", false);
    assert!(revoked.is_empty());
    let (k2, revoked) = creds(&store, &ctx, "u", true);
    assert!(revoked.is_empty(), "--keep-previous revokes nothing");
    assert!(account(&store, "app").revocations.is_empty());
    let issued: Vec<String> =
        user(&store, "u").creds.iter().map(|c| c.public.to_string()).collect();
    assert_eq!(issued, [k1.clone(), k2.clone()]);

    let app_key = account(&store, "app").public_key;
    store.write(|tx| tx.delete_outbox(&app_key)).unwrap();
    let (k3, revoked) = creds(&store, &ctx, "u", false);
    assert_eq!(
        revoked.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([k1.clone(), k2.clone()])
    );
    let app = account(&store, "app");
    assert_eq!(revoked_keys(&app), BTreeSet::from([k1.clone(), k2.clone()]));
    assert!(app.is_revoked(&k1, NOW) && app.is_revoked(&k2, NOW));
    assert!(!app.is_revoked(&k3, NOW), "the new creds stay valid");
    assert!(store.read(|tx| tx.get_outbox(&app_key)).unwrap().is_some(), "account re-queued");
    let issued: Vec<String> =
        user(&store, "u").creds.iter().map(|c| c.public.to_string()).collect();
    assert_eq!(issued, [k3]);
}

#[test]
fn creds_carry_the_role_and_the_account_signing_key() {
    let (_dir, store, ctx) = with_user();
    let Response::Creds { creds, .. } =
        run(&store, &ctx, Request::UserCreds(UserCreds { name: "u".into(), keep_previous: false }))
    else {
        panic!("creds answer");
    };
    let claims = decode::<UserClaims>(&parse_creds(&creds).unwrap().jwt).unwrap();
    let app = account(&store, "app");
    assert_eq!(claims.nats.issuer_account, app.public_key.as_str());
    assert_eq!(claims.iss, app.signing_keys[0].public());
    assert_eq!((claims.nats.limits.subs, claims.nats.limits.payload), (-1, -1));
    assert_eq!(claims.exp, 0, "creds of a role without a JWT lifetime do not expire");
}

#[test]
fn user_delete_revokes_its_creds() {
    let (_dir, store, ctx) = with_user();
    let (k1, _) = creds(&store, &ctx, "u", false);
    run(&store, &ctx, Request::UserDelete(UserDelete { name: "u".into() }));
    assert_eq!(revoked_keys(&account(&store, "app")), BTreeSet::from([k1]));
    assert!(store.read(|tx| tx.get_user("u")).unwrap().is_none());
}

#[test]
fn moving_a_user_revokes_its_creds_in_the_old_account() {
    let (_dir, store, ctx) = with_user();
    run(&store, &ctx, add_account("other"));
    let (k1, _) = creds(&store, &ctx, "u", false);

    let mut edit = user_edit("u");
    if let Request::UserEdit(UserEdit { email, .. }) = &mut edit {
        *email = Some("u@example.com".into());
    }
    run(&store, &ctx, edit);
    assert!(account(&store, "app").revocations.is_empty(), "an unrelated edit revokes nothing");

    let mut edit = user_edit("u");
    if let Request::UserEdit(UserEdit { account: target, .. }) = &mut edit {
        *target = Some("other".into());
    }
    run(&store, &ctx, edit);
    assert_eq!(revoked_keys(&account(&store, "app")), BTreeSet::from([k1]));
    assert!(account(&store, "other").revocations.is_empty());
    let u = user(&store, "u");
    assert_eq!(u.account.as_str(), "other");
    assert!(u.creds.is_empty());
}

#[test]
fn a_role_change_or_deactivation_revokes_creds() {
    let (_dir, store, ctx) = with_user();
    run(&store, &ctx, add_role("r2", RolePatch::default()));
    let (k1, _) = creds(&store, &ctx, "u", false);
    let mut edit = user_edit("u");
    if let Request::UserEdit(UserEdit { role, .. }) = &mut edit {
        *role = Some("r2".into());
    }
    run(&store, &ctx, edit);
    assert_eq!(revoked_keys(&account(&store, "app")), BTreeSet::from([k1.clone()]));

    let (k2, _) = creds(&store, &ctx, "u", false);
    let mut edit = user_edit("u");
    if let Request::UserEdit(UserEdit { active, .. }) = &mut edit {
        *active = Some(false);
    }
    run(&store, &ctx, edit);
    assert_eq!(revoked_keys(&account(&store, "app")), BTreeSet::from([k1, k2]));
    let err = fail(
        &store,
        &ctx,
        Request::UserCreds(UserCreds { name: "u".into(), keep_previous: false }),
    );
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
}

#[test]
fn editing_what_a_role_grants_revokes_the_creds_of_its_users() {
    let (_dir, store, ctx) = with_user();
    run(&store, &ctx, add_account("other"));
    run(&store, &ctx, add_user("w", "other", "r"));
    run(&store, &ctx, add_role("r2", RolePatch::default()));
    run(&store, &ctx, add_user("bystander", "app", "r2"));
    let (ku, _) = creds(&store, &ctx, "u", false);
    let (kw, _) = creds(&store, &ctx, "w", false);
    let (kb, _) = creds(&store, &ctx, "bystander", false);

    let cosmetic = RolePatch {
        description: Some("words".into()),
        max_connections: Some(3),
        ..RolePatch::default()
    };
    run(&store, &ctx, Request::RoleEdit(RoleEdit { name: "r".into(), role: cosmetic }));
    assert!(account(&store, "app").revocations.is_empty(), "nothing in the JWT changed");

    let narrower =
        RolePatch { pub_allow: ListPatch::Set(vec!["only.this".into()]), ..RolePatch::default() };
    run(&store, &ctx, Request::RoleEdit(RoleEdit { name: "r".into(), role: narrower }));
    assert_eq!(revoked_keys(&account(&store, "app")), BTreeSet::from([ku]));
    assert_eq!(revoked_keys(&account(&store, "other")), BTreeSet::from([kw]));
    assert!(user(&store, "u").creds.is_empty() && user(&store, "w").creds.is_empty());
    assert_eq!(user(&store, "bystander").creds.len(), 1, "{kb} has another role");
}

#[test]
fn token_add_shows_the_token_once_and_stores_only_its_hash() {
    let (_dir, store, ctx) = with_user();
    let add = Request::TokenAdd(TokenAdd {
        name: "u".into(),
        label: Some("ci".into()),
        expires_secs: None,
    });
    let Response::Token { id, token, .. } = run(&store, &ctx, add) else {
        panic!("token answer");
    };
    let u = user(&store, "u");
    assert_eq!(u.tokens.len(), 1);
    let stored = &u.tokens[0];
    assert_eq!(stored.id, id);
    assert_eq!(stored.hash, ApiToken::hash_secret(&token));
    assert_ne!(stored.hash, token);
    let found = store.read(|tx| tx.user_by_token(&stored.hash)).unwrap();
    assert_eq!(found.map(|(u, t)| (u.name.to_string(), t.id)), Some(("u".into(), id.clone())));

    for req in [
        Request::TokenList(TokenList { name: "u".into() }),
        Request::UserShow(UserShow { name: "u".into() }),
    ] {
        let resp = run(&store, &ctx, req);
        let text = format!("{}{}", serde_json::to_string(&resp).unwrap(), resp.to_text());
        assert!(!text.contains(&token), "token shown again: {text}");
        assert!(!text.contains(&stored.hash), "token hash shown: {text}");
    }
    let Response::Tokens(list) =
        run(&store, &ctx, Request::TokenList(TokenList { name: "u".into() }))
    else {
        panic!("token list answer");
    };
    assert_eq!(list.iter().map(|t| t.label.as_str()).collect::<Vec<_>>(), ["ci"]);

    run(&store, &ctx, Request::TokenRevoke(TokenRevoke { name: "u".into(), id }));
    assert!(store.read(|tx| tx.user_by_token(&stored.hash)).unwrap().is_none());
}

#[test]
fn token_expiry_is_relative_to_now() {
    let (_dir, store, ctx) = with_user();
    let add =
        Request::TokenAdd(TokenAdd { name: "u".into(), label: None, expires_secs: Some(3600) });
    run(&store, &ctx, add);
    assert_eq!(user(&store, "u").tokens[0].expires, Some(NOW + 3600));
    let too_long =
        Request::TokenAdd(TokenAdd { name: "u".into(), label: None, expires_secs: Some(u64::MAX) });
    assert!(matches!(fail(&store, &ctx, too_long), AdminError::Invalid(_)));
    assert_eq!(user(&store, "u").tokens.len(), 1);
}

#[test]
fn an_explicit_no_pub_stays_explicit_after_unrelated_edits() {
    let (_dir, store, ctx) = setup();
    let mute = RolePatch { pub_allow: ListPatch::Set(vec![]), ..RolePatch::default() };
    run(&store, &ctx, add_role("mute", mute));
    let edit = RolePatch {
        description: Some("still mute".into()),
        max_payload: Some(10),
        ..RolePatch::default()
    };
    run(&store, &ctx, Request::RoleEdit(RoleEdit { name: "mute".into(), role: edit }));
    let r = role(&store, "mute");
    assert_eq!(r.permissions.pub_allow, Some(vec![]), "explicitly nothing survives");
    assert_eq!(r.permissions.sub_allow, None, "an unset list stays unset");
    assert_eq!(r.description, "still mute");

    let Response::Role(view) =
        run(&store, &ctx, Request::RoleShow(RoleShow { name: "mute".into() }))
    else {
        panic!("role answer");
    };
    assert_eq!(view.pub_allow, Some(vec![]));

    let reset = RolePatch { pub_allow: ListPatch::Default, ..RolePatch::default() };
    run(&store, &ctx, Request::RoleEdit(RoleEdit { name: "mute".into(), role: reset }));
    assert_eq!(role(&store, "mute").permissions.pub_allow, None);
}

#[test]
fn built_in_accounts_and_the_admin_role_are_protected() {
    let (_dir, store, ctx) = setup();
    for name in [SYS_ACCOUNT, AUTH_ACCOUNT] {
        let err = fail(&store, &ctx, Request::AccountDelete(AccountDelete { name: name.into() }));
        assert!(matches!(err, AdminError::Protected(..)), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Conflict);
        let off = Request::AccountEdit(AccountEdit {
            name: name.into(),
            description: None,
            limits: LimitPatch::default(),
            active: Some(false),
            disallow_bearer: None,
        });
        let err = fail(&store, &ctx, off);
        assert!(matches!(err, AdminError::Protected(..)), "{err:?}");
        assert!(account(&store, name).active);
    }
    let err = fail(&store, &ctx, Request::RoleDelete(RoleDelete { name: ADMIN_ROLE.into() }));
    assert!(matches!(err, AdminError::Protected(..)), "{err:?}");
    role(&store, ADMIN_ROLE);
}

#[test]
fn users_belong_to_managed_accounts_only() {
    let (_dir, store, ctx) = with_user();
    for name in [SYS_ACCOUNT, AUTH_ACCOUNT] {
        let err = fail(&store, &ctx, add_user("intruder", name, "r"));
        assert!(matches!(err, AdminError::Protected(..)), "{err:?}");
        let mut edit = user_edit("u");
        if let Request::UserEdit(UserEdit { account, .. }) = &mut edit {
            *account = Some(name.into());
        }
        let err = fail(&store, &ctx, edit);
        assert!(matches!(err, AdminError::Protected(..)), "{err:?}");
    }
    assert_eq!(user(&store, "u").account.as_str(), "app");
    assert!(store.read(|tx| tx.get_user("intruder")).unwrap().is_none());
}

#[test]
fn a_failed_write_changes_nothing() {
    let (_dir, store, ctx) = with_user();
    let outbox_before = store.read(|tx| tx.list_outbox()).unwrap();
    let bad = RolePatch {
        pub_allow: ListPatch::Set(vec!["ok.subject".into()]),
        pub_deny: ListPatch::Set(vec!["bad..subject".into()]),
        ..RolePatch::default()
    };
    fail(&store, &ctx, Request::RoleEdit(RoleEdit { name: "r".into(), role: bad }));
    assert_eq!(role(&store, "r").permissions.pub_allow, None);
    let mut limits = LimitPatch { max_connections: Some(5), ..LimitPatch::default() };
    limits.max_payload = Some(-2);
    let add = Request::AccountAdd(AccountAdd {
        name: "half".into(),
        description: None,
        limits,
        disallow_bearer: false,
    });
    fail(&store, &ctx, add);
    assert!(store.read(|tx| tx.get_account("half")).unwrap().is_none());
    assert_eq!(store.read(|tx| tx.list_outbox()).unwrap(), outbox_before);
}

/// The class of the error each request fails with.
fn class_of(store: &Store, ctx: &Context, req: Request) -> ErrorClass {
    fail(store, ctx, req).class()
}

/// Asserts every request fails with an error of class `class`.
#[track_caller]
fn assert_classes(store: &Store, ctx: &Context, class: ErrorClass, requests: Vec<Request>) {
    for req in requests {
        assert_eq!(class_of(store, ctx, req.clone()), class, "{req:?}");
    }
}

#[test]
fn bad_values_are_usage_errors() {
    let (_dir, store, ctx) = with_user();
    let bad_limit = LimitPatch { max_connections: Some(-2), ..LimitPatch::default() };
    let bad_sub = ListPatch::Set(vec!["a b c".into()]);
    let self_import = Request::ImportAdd(ImportAdd {
        account: "app".into(),
        subject: "s".into(),
        from: "app".into(),
        kind: ExportKind::Stream,
        local_subject: None,
        name: None,
    });
    let usage = vec![
        Request::AccountAdd(AccountAdd {
            name: "x".into(),
            description: None,
            limits: bad_limit,
            disallow_bearer: false,
        }),
        add_account("bad name"),
        add_role("x", RolePatch { sub_allow: bad_sub, ..RolePatch::default() }),
        add_role("x", RolePatch { allow_responses: Some(-5), ..RolePatch::default() }),
        add_role("x", RolePatch { jwt_ttl_secs: Some(u64::MAX), ..RolePatch::default() }),
        self_import,
    ];
    assert_classes(&store, &ctx, ErrorClass::Usage, usage);
    // A model rule the store checks is reported as that rule, not as a store failure.
    let bad_reply = add_role("x", RolePatch { allow_responses: Some(-5), ..RolePatch::default() });
    assert!(matches!(fail(&store, &ctx, bad_reply), AdminError::Model(_)));
}

#[test]
fn missing_records_are_not_found() {
    let (_dir, store, ctx) = with_user();
    let not_found = vec![
        Request::AccountShow(AccountShow { name: "nope".into() }),
        add_user("v", "nope", "r"),
        add_user("v", "app", "nope"),
        Request::TokenRevoke(TokenRevoke { name: "u".into(), id: "tok_nope".into() }),
        Request::ExportRemove(ExportRemove { account: "app".into(), subject: "none".into() }),
        Request::UserList(UserList { account: Some("nope".into()) }),
    ];
    assert_classes(&store, &ctx, ErrorClass::NotFound, not_found);
}

#[test]
fn existing_or_used_records_are_conflicts() {
    let (_dir, store, ctx) = with_user();
    let export = Request::ExportAdd(ExportAdd {
        account: "app".into(),
        subject: "feed".into(),
        kind: ExportKind::Stream,
        name: None,
        token_req: false,
    });
    run(&store, &ctx, export.clone());
    let conflict = vec![
        add_account("app"),
        add_role("r", RolePatch::default()),
        add_user("u", "app", "r"),
        Request::RoleDelete(RoleDelete { name: "r".into() }),
        Request::AccountDelete(AccountDelete { name: "app".into() }),
        export,
    ];
    assert_classes(&store, &ctx, ErrorClass::Conflict, conflict);
}

#[test]
fn store_file_errors_map_to_their_classes() {
    let (dir, _store, ctx) = setup();
    let path = dir.path().join("pbn.redb");
    assert_eq!(store_class(&Store::open(&path).unwrap_err()), ErrorClass::Locked);
    let missing = dir.path().join("missing.redb");
    assert_eq!(store_class(&Store::open(missing).unwrap_err()), ErrorClass::NotFound);
    let exists = init_store(&path, "again", false, &ctx).unwrap_err();
    assert_eq!(exists.class(), ErrorClass::Conflict);
}
