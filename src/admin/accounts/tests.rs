//! Signing-key operations: rotation, graceful add/remove, and what they refuse.

use crate::admin::init::{init_store_with, AUTH_ACCOUNT, SYS_ACCOUNT};
use crate::admin::{
    execute, AdminError, Context, ErrorClass, LimitPatch, Request, Response, RolePatch,
};
use crate::admin::{
    AccountAdd, AccountRotateKeys, AccountShow, AccountSigningKeyAdd, AccountSigningKeyRemove,
    ExportAdd, RoleAdd, RoleEdit, UserAdd, UserCreds,
};
use crate::claims::{decode, parse_creds, AccountClaims, UserClaims};
use crate::model::{Account, ModelError, OutboxAction};
use crate::store::{Store, StoreRead};

const NOW: i64 = 1_800_000_000;

/// A store with account `app`, role `r` and users `holder` (with creds) and `plain` (without).
fn setup() -> (tempfile::TempDir, Store, Context) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx =
        Context { now: NOW, now_ms: NOW * 1000, defaults: crate::issue::default_permissions() };
    // Sealed, as `pbn init` makes stores.
    let key = Some(crate::seal::KeySource::Key(crate::seal::StoreKey::generate()));
    let path = dir.path().join("pbn.redb");
    let (store, _) = init_store_with(&path, "test", false, &ctx, key).expect("init");
    run(
        &store,
        &ctx,
        Request::AccountAdd(AccountAdd {
            name: "app".into(),
            description: None,
            limits: LimitPatch::default(),
            disallow_bearer: false,
        }),
    );
    run(&store, &ctx, Request::RoleAdd(RoleAdd { name: "r".into(), role: RolePatch::default() }));
    for user in ["holder", "plain"] {
        run(
            &store,
            &ctx,
            Request::UserAdd(UserAdd {
                name: user.into(),
                account: "app".into(),
                role: "r".into(),
                email: None,
                description: None,
                password_hash: None,
                tags: Default::default(),
            }),
        );
    }
    run(
        &store,
        &ctx,
        Request::UserCreds(UserCreds { name: "holder".into(), keep_previous: false }),
    );
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

fn account(store: &Store, name: &str) -> Account {
    store.read(|tx| tx.require_account(name)).expect("account exists")
}

fn keys(store: &Store, name: &str) -> Vec<String> {
    account(store, name).signing_keys.iter().map(|k| k.public().to_string()).collect()
}

/// Clears the outbox, so a test sees only what the next operation queues.
fn clear_outbox(store: &Store) {
    store
        .write(|tx| {
            for e in tx.list_outbox()? {
                tx.delete_outbox(&e.account)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .expect("clear outbox");
}

/// The account names queued in the outbox, with their actions.
fn queued(store: &Store) -> Vec<(String, OutboxAction)> {
    let entries = store.read(|tx| tx.list_outbox()).expect("outbox");
    entries.into_iter().map(|e| (e.account_name.to_string(), e.action)).collect()
}

/// The issuer of freshly minted creds of `user`.
fn creds_issuer(store: &Store, ctx: &Context, user: &str) -> String {
    let Response::Creds { creds, .. } =
        run(store, ctx, Request::UserCreds(UserCreds { name: user.into(), keep_previous: true }))
    else {
        panic!("user creds answers with creds");
    };
    let jwt = parse_creds(&creds).expect("creds parse").jwt;
    decode::<UserClaims>(&jwt).expect("user jwt").iss
}

fn account_jwt_keys(store: &Store, ctx: &Context, name: &str) -> Vec<String> {
    let Response::Account(view) =
        run(store, ctx, Request::AccountShow(AccountShow { name: name.into() }))
    else {
        panic!("account show answers with the account");
    };
    let claims = decode::<AccountClaims>(view.jwt.as_deref().expect("jwt")).expect("decode");
    let mut keys: Vec<String> = claims.nats.signing_keys.iter().map(|k| k.key().into()).collect();
    keys.sort();
    keys
}

#[test]
fn rotate_keys_replaces_every_key_queues_the_account_and_names_creds_holders() {
    let (_dir, store, ctx) = setup();
    let old = keys(&store, "app");
    clear_outbox(&store);

    let resp =
        run(&store, &ctx, Request::AccountRotateKeys(AccountRotateKeys { name: "app".into() }));
    let Response::KeysRotated { account: acc, signing_key, removed, creds_users } = resp else {
        panic!("rotate-keys answers with the rotation");
    };
    assert_eq!(acc, "app");
    assert_eq!(removed, old);
    assert_eq!(creds_users, vec!["holder".to_string()], "only users holding creds");
    assert_eq!(keys(&store, "app"), vec![signing_key.clone()]);
    assert!(!old.contains(&signing_key));
    assert_eq!(queued(&store), vec![("app".to_string(), OutboxAction::Upsert)]);
    assert_eq!(account_jwt_keys(&store, &ctx, "app"), vec![signing_key.clone()]);
    assert_eq!(creds_issuer(&store, &ctx, "plain"), signing_key, "the new key signs");
}

#[test]
fn added_key_signs_both_stay_valid_and_the_old_one_can_go() {
    let (_dir, store, ctx) = setup();
    let old = keys(&store, "app").remove(0);
    clear_outbox(&store);

    let Response::Account(view) = run(
        &store,
        &ctx,
        Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: "app".into() }),
    ) else {
        panic!("signing-key add answers with the account");
    };
    assert_eq!(view.signing_keys.len(), 2);
    let new = view.signing_keys.iter().find(|k| **k != old).expect("a new key").clone();
    assert_eq!(queued(&store), vec![("app".to_string(), OutboxAction::Upsert)]);
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert_eq!(account_jwt_keys(&store, &ctx, "app"), both, "both keys valid in between");
    assert_eq!(creds_issuer(&store, &ctx, "plain"), new, "new logins use the newest key");

    clear_outbox(&store);
    let remove = Request::AccountSigningKeyRemove(AccountSigningKeyRemove {
        name: "app".into(),
        key: old.clone(),
    });
    let Response::Account(view) = run(&store, &ctx, remove) else {
        panic!("signing-key remove answers with the account");
    };
    assert_eq!(view.signing_keys, vec![new.clone()]);
    assert_eq!(queued(&store), vec![("app".to_string(), OutboxAction::Upsert)]);
}

#[test]
fn a_key_added_in_the_same_second_still_becomes_the_signer() {
    let (_dir, store, ctx) = setup();
    for _ in 0..3 {
        run(
            &store,
            &ctx,
            Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: "app".into() }),
        );
        let newest = keys(&store, "app").pop().expect("a key");
        assert_eq!(creds_issuer(&store, &ctx, "plain"), newest);
    }
}

#[test]
fn the_last_key_an_unknown_key_and_built_in_accounts_are_refused_without_change() {
    let (_dir, store, ctx) = setup();
    let only = keys(&store, "app").remove(0);
    clear_outbox(&store);
    let before = account(&store, "app");

    let last =
        Request::AccountSigningKeyRemove(AccountSigningKeyRemove { name: "app".into(), key: only });
    let err = fail(&store, &ctx, last);
    assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Usage);

    let unknown = Request::AccountSigningKeyRemove(AccountSigningKeyRemove {
        name: "app".into(),
        key: "AXXX".into(),
    });
    let err = fail(&store, &ctx, unknown);
    assert!(matches!(err, AdminError::NotFound { what: "signing key", .. }), "{err:?}");

    let missing = Request::AccountRotateKeys(AccountRotateKeys { name: "nope".into() });
    assert_eq!(fail(&store, &ctx, missing).class(), ErrorClass::NotFound);

    for name in [SYS_ACCOUNT, AUTH_ACCOUNT] {
        let sys_keys = keys(&store, name);
        for req in [
            Request::AccountRotateKeys(AccountRotateKeys { name: name.into() }),
            Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: name.into() }),
            Request::AccountSigningKeyRemove(AccountSigningKeyRemove {
                name: name.into(),
                key: sys_keys[0].clone(),
            }),
        ] {
            let err = fail(&store, &ctx, req);
            assert!(matches!(err, AdminError::Protected(..)), "{name}: {err:?}");
        }
        assert_eq!(keys(&store, name), sys_keys);
    }
    assert_eq!(account(&store, "app"), before);
    assert!(queued(&store).is_empty(), "nothing queued by refused requests");
}

#[test]
fn new_requests_have_stable_wire_names() {
    let json = r#"{"op":"account_signing_key_remove","name":"app","key":"AK"}"#;
    let req: Request = serde_json::from_str(json).expect("parse");
    assert_eq!(
        req,
        Request::AccountSigningKeyRemove(AccountSigningKeyRemove {
            name: "app".into(),
            key: "AK".into()
        })
    );
    for (req, op) in [
        (Request::AccountRotateKeys(AccountRotateKeys { name: "a".into() }), "account_rotate_keys"),
        (
            Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: "a".into() }),
            "account_signing_key_add",
        ),
    ] {
        let v = serde_json::to_value(&req).expect("serialize");
        assert_eq!(v["op"], op);
        assert!(!req.is_read_only());
    }
}

#[test]
fn rotation_text_lists_the_users_who_need_new_creds() {
    let rotated = |creds_users: Vec<String>| Response::KeysRotated {
        account: "app".into(),
        signing_key: "ANEW".into(),
        removed: vec!["AOLD".into()],
        creds_users,
    };
    let text = rotated(vec!["holder".into()]).to_text();
    assert!(text.contains("ANEW") && text.contains("AOLD"), "{text}");
    assert!(text.contains("pbn admin user creds") && text.contains("  holder\n"), "{text}");
    let none = rotated(vec![]).to_text();
    assert!(none.contains("no user holds creds"), "{none}");
}

/// `n` distinct subjects of `len` characters each.
fn long_subjects(n: usize, len: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:04}.{}", "s".repeat(len - 5))).collect()
}

#[test]
fn a_role_whose_callout_response_exceeds_the_max_payload_is_refused() {
    let (_dir, store, ctx) = setup();
    let huge = RolePatch {
        pub_allow: crate::admin::ListPatch::Set(long_subjects(80, 9_000)),
        ..RolePatch::default()
    };
    let err =
        fail(&store, &ctx, Request::RoleAdd(RoleAdd { name: "huge".into(), role: huge.clone() }));
    let AdminError::Model(ModelError::JwtTooLarge { what: "role", size, max, .. }) = err else {
        panic!("{err}");
    };
    assert_eq!(max, crate::issue::DEFAULT_MAX_PAYLOAD);
    assert!(size > max, "{size}");
    assert_eq!(
        err_class(
            &store,
            &ctx,
            Request::RoleAdd(RoleAdd { name: "huge".into(), role: huge.clone() })
        ),
        ErrorClass::Usage
    );
    assert!(store.read(|tx| tx.get_role("huge")).expect("read").is_none());

    let before = store.read(|tx| tx.require_role("r")).expect("role r");
    let err = fail(&store, &ctx, Request::RoleEdit(RoleEdit { name: "r".into(), role: huge }));
    assert!(matches!(err, AdminError::Model(ModelError::JwtTooLarge { .. })), "{err}");
    assert_eq!(store.read(|tx| tx.require_role("r")).expect("role r"), before);

    // A large role that fits is accepted; the estimate grows with what the JWT carries.
    let fits = RolePatch {
        pub_allow: crate::admin::ListPatch::Set(long_subjects(20, 9_000)),
        ..RolePatch::default()
    };
    run(&store, &ctx, Request::RoleAdd(RoleAdd { name: "big".into(), role: fits }));
    let big = store.read(|tx| tx.require_role("big")).expect("role big");
    let size = crate::issue::callout_response_size(&big, &ctx.defaults, NOW).expect("size");
    assert!(size > 4 * 20 * 9_000 / 3 && size < crate::issue::DEFAULT_MAX_PAYLOAD, "{size}");
}

fn err_class(store: &Store, ctx: &Context, req: Request) -> ErrorClass {
    fail(store, ctx, req).class()
}

#[test]
fn an_account_whose_jwt_exceeds_the_max_payload_is_refused() {
    let (_dir, store, ctx) = setup();
    let before = account(&store, "app");
    let export = |subject: String| {
        Request::ExportAdd(ExportAdd {
            account: "app".into(),
            subject,
            kind: crate::admin::ExportKind::Stream,
            name: None,
            token_req: false,
        })
    };
    let huge = format!("a.{}", "b".repeat(crate::issue::DEFAULT_MAX_PAYLOAD));
    let err = fail(&store, &ctx, export(huge));
    let AdminError::Model(ModelError::JwtTooLarge { what: "account", size, .. }) = err else {
        panic!("{err}");
    };
    assert!(size > crate::issue::DEFAULT_MAX_PAYLOAD);
    assert_eq!(account(&store, "app"), before, "a refused edit changed the account");
    run(&store, &ctx, export(format!("a.{}", "b".repeat(100_000))));
}
