//! The effects of provider changes, and of role changes on the sessions providers admitted.

use crate::admin::{
    execute, AccountAdd, Context, IdpAdd, IdpDelete, IdpEdit, IdpMap, ListPatch, Request, RoleAdd,
    RoleEdit, RolePatch,
};
use crate::model::{CloseSessions, Effects, Name};
use crate::store::Store;

fn fixture() -> (tempfile::TempDir, Store, Context) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = Context::now();
    let (store, _) =
        crate::admin::init::init_store(&dir.path().join("s.redb"), "t", false, &ctx).unwrap();
    let run = |r: Request| execute(&store, &r, &ctx).unwrap();
    run(AccountAdd { name: "APP".into(), ..Default::default() }.into());
    run(RoleAdd { name: "dev".into(), ..Default::default() }.into());
    run(RoleAdd { name: "other".into(), ..Default::default() }.into());
    run(IdpAdd {
        name: "kc".into(),
        issuer: "https://kc".into(),
        audience: "nats".into(),
        ..Default::default()
    }
    .into());
    (dir, store, ctx)
}

fn effects(store: &Store, ctx: &Context, req: Request) -> Effects {
    execute(store, &req, ctx).unwrap().effects
}

fn kc() -> CloseSessions {
    CloseSessions::Provider(Name::parse("kc").unwrap())
}

fn map(role: &str) -> Request {
    IdpMap {
        name: "kc".into(),
        claim: Some("groups".into()),
        value: Some("dev".into()),
        account: "APP".into(),
        role: role.into(),
        default: false,
    }
    .into()
}

#[test]
fn provider_changes_close_its_sessions_only_when_logins_may_change() {
    let (_dir, store, ctx) = fixture();
    assert!(effects(&store, &ctx, map("dev")).close.contains(&kc()));
    // The same rule again changes nothing: nothing closes.
    assert!(effects(&store, &ctx, map("dev")).close.is_empty());
    let same = IdpEdit { name: "kc".into(), audience: Some("nats".into()), ..Default::default() };
    assert!(effects(&store, &ctx, same.into()).close.is_empty());
    let other = IdpEdit { name: "kc".into(), audience: Some("other".into()), ..Default::default() };
    assert!(effects(&store, &ctx, other.into()).close.contains(&kc()));
    assert!(effects(&store, &ctx, IdpDelete { name: "kc".into() }.into()).close.contains(&kc()));
}

#[test]
fn a_role_change_closes_the_sessions_of_providers_mapping_to_it() {
    let (_dir, store, ctx) = fixture();
    effects(&store, &ctx, map("dev"));
    let narrower = |role: &str| -> Request {
        let role_patch =
            RolePatch { pub_allow: ListPatch::Set(vec!["x.>".into()]), ..Default::default() };
        RoleEdit { name: role.into(), role: role_patch }.into()
    };
    assert!(effects(&store, &ctx, narrower("dev")).close.contains(&kc()));
    assert!(!effects(&store, &ctx, narrower("other")).close.contains(&kc()));
}
