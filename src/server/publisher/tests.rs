//! Unit tests of the publisher's pure and store-side parts; the network side is covered by the
//! integration tests in `tests/publisher.rs` against real nats-servers.

use crate::admin::{AccountAdd, AccountDelete, AccountEdit, OutboxList, OutboxRetry};
use std::time::Duration;

use super::outbox::{cleanup, delete_claim, record_failure, reserve, FailureOutcome, Reserved};
use super::reconcile::{differs, requeue, Stale};
use super::*;
use crate::admin::{self, init, Context, LimitPatch, Request, Response};
use crate::claims::{self, AccountClaims, GenericClaims};
use crate::config::{RawConfig, Settings};
use crate::model::OutboxAction;
use crate::store::{Store, StoreRead};

fn settings() -> PublisherSettings {
    let mut s = Settings::resolve(None, RawConfig::default(), RawConfig::default())
        .expect("defaults are valid")
        .publisher;
    s.backoff_base = Duration::from_millis(100);
    s.backoff_max = Duration::from_millis(1000);
    s.max_attempts = 3;
    s
}

fn ctx(now: i64) -> Context {
    Context { now, now_ms: now * 1000, ..Context::now() }
}

/// A store with the built-in accounts and one managed account `orders`; the outbox emptied.
fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) =
        init::init_store(&dir.path().join("s.redb"), "op", false, &ctx(1_000)).expect("init store");
    add_account(&store, "orders");
    store
        .write(|tx| -> Result<(), StoreError> {
            for e in tx.list_outbox()? {
                tx.delete_outbox(&e.account)?;
            }
            Ok(())
        })
        .expect("clear outbox");
    (dir, store)
}

fn add_account(store: &Store, name: &str) {
    let req = Request::AccountAdd(AccountAdd {
        name: name.into(),
        description: None,
        limits: LimitPatch::default(),
        disallow_bearer: false,
    });
    admin::execute(store, &req, &ctx(1_000)).expect("add account");
}

fn set_max_connections(store: &Store, name: &str, n: i64) {
    let limits = LimitPatch { max_connections: Some(n), ..LimitPatch::default() };
    let req = Request::AccountEdit(AccountEdit {
        name: name.into(),
        description: None,
        limits,
        active: None,
        disallow_bearer: None,
    });
    admin::execute(store, &req, &ctx(1_000)).expect("edit account");
}

fn account(store: &Store, name: &str) -> crate::model::Account {
    store.read(|tx| tx.require_account(name)).expect("account")
}

fn entry(store: &Store, name: &str) -> OutboxEntry {
    let key = account(store, name).public_key;
    store.read(|tx| tx.get_outbox(&key)).expect("read").expect("an outbox entry")
}

fn reserve_jwt(store: &Store, e: &OutboxEntry, now: i64) -> Reserved {
    store.write(|tx| reserve(tx, e, now)).expect("reserve")
}

#[test]
fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
    let s = settings();
    let ms = |n| backoff(&s, n).as_millis();
    assert_eq!([ms(1), ms(2), ms(3), ms(4), ms(5)], [100, 200, 400, 800, 1000]);
    assert_eq!(ms(u32::MAX), 1000);
}

#[test]
fn replies_with_an_error_fail_and_unreadable_ones_are_not_success() {
    let acc = account(&store().1, "SYS").public_key;
    let ok = br#"{"server":{"id":"N1"},"data":{"account":"A","code":200,"message":"jwt updated"}}"#;
    assert!(nats::check_reply(CLAIMS_UPDATE, &acc, ok).is_ok());
    let refused = br#"{"server":{},"error":{"account":"A","code":500,"description":"jwt update resulted in error - jwt store is full"}}"#;
    match nats::check_reply(CLAIMS_UPDATE, &acc, refused) {
        Err(PublisherError::Rejected { description, .. }) => {
            assert!(description.ends_with("jwt store is full"))
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    for bad in [&b"not json"[..], br#"{"server":{}}"#] {
        let r = nats::check_reply(CLAIMS_UPDATE, &acc, bad);
        assert!(matches!(r, Err(PublisherError::BadReply { .. })), "{r:?}");
    }
}

#[test]
fn reserve_issues_strictly_increasing_iats_recorded_on_the_account() {
    let (_d, store) = store();
    set_max_connections(&store, "orders", 4);
    let e = entry(&store, "orders");
    let Reserved::Jwt(first) = reserve_jwt(&store, &e, 5_000) else { panic!("a jwt") };
    let Reserved::Jwt(second) = reserve_jwt(&store, &e, 5_000) else { panic!("a jwt") };
    let (a, b) = (
        claims::decode::<AccountClaims>(&first).expect("decodes"),
        claims::decode::<AccountClaims>(&second).expect("decodes"),
    );
    assert_eq!((a.iat, b.iat), (5_000, 5_001));
    assert_eq!(account(&store, "orders").last_jwt_iat, 5_001);
    assert_eq!(a.nats.limits.conn, 4);
    assert_eq!(a.sub, e.account.as_str());
}

#[test]
fn reserve_skips_changed_entries_and_reports_missing_accounts() {
    let (_d, store) = store();
    set_max_connections(&store, "orders", 4);
    let old = entry(&store, "orders");
    set_max_connections(&store, "orders", 3);
    assert_eq!(reserve_jwt(&store, &old, 5_000), Reserved::Stale);
    let mut gone = entry(&store, "orders");
    store.write(|tx| tx.delete_account("orders").map(drop)).expect("delete");
    assert_eq!(reserve_jwt(&store, &gone, 5_000), Reserved::AccountGone);
    gone.revision += 1;
    assert_eq!(reserve_jwt(&store, &gone, 5_000), Reserved::Stale);
}

#[test]
fn auth_jwt_lists_the_active_managed_accounts_at_push_time() {
    let (_d, store) = store();
    add_account(&store, "billing");
    let e = entry(&store, init::AUTH_ACCOUNT);
    let Reserved::Jwt(jwt) = reserve_jwt(&store, &e, 5_000) else { panic!("a jwt") };
    let auth = claims::decode::<AccountClaims>(&jwt).expect("decodes");
    let mut allowed = auth.nats.authorization.allowed_accounts.clone();
    allowed.sort();
    let mut expected: Vec<String> =
        ["orders", "billing"].iter().map(|n| account(&store, n).public_key.to_string()).collect();
    expected.sort();
    assert_eq!(allowed, expected);
}

#[test]
fn failures_back_off_then_mark_the_entry_failed() {
    let (_d, store) = store();
    set_max_connections(&store, "orders", 4);
    let s = settings();
    let mut e = entry(&store, "orders");
    let fail = |e: &OutboxEntry| {
        store.write(|tx| record_failure(tx, e, "boom", &s, 10_000)).expect("record")
    };
    assert_eq!(fail(&e), FailureOutcome::Retry { attempts: 1, at: 10_100 });
    e = entry(&store, "orders");
    assert_eq!(fail(&e), FailureOutcome::Retry { attempts: 2, at: 10_200 });
    e = entry(&store, "orders");
    assert_eq!(fail(&e), FailureOutcome::Failed { attempts: 3 });
    let failed = entry(&store, "orders");
    assert_eq!(failed.failed_at, Some(10_000));
    assert_eq!(failed.last_error.as_deref(), Some("boom"));
    assert!(!failed.is_due(i64::MAX));
}

#[test]
fn a_failure_recorded_after_a_newer_change_is_dropped() {
    let (_d, store) = store();
    set_max_connections(&store, "orders", 4);
    let old = entry(&store, "orders");
    set_max_connections(&store, "orders", 2);
    let s = settings();
    let r = store.write(|tx| record_failure(tx, &old, "boom", &s, 10_000)).expect("record");
    assert_eq!(r, FailureOutcome::Stale);
    let current = entry(&store, "orders");
    assert_eq!((current.attempts, current.last_error), (0, None));
}

#[test]
fn cleanup_removes_old_failed_upserts_and_requeues_failed_deletes() {
    let (_d, store) = store();
    add_account(&store, "gone");
    admin::execute(
        &store,
        &Request::AccountDelete(AccountDelete { name: "gone".into() }),
        &ctx(1_000),
    )
    .expect("delete account");
    set_max_connections(&store, "orders", 4);
    let mut s = settings();
    s.max_attempts = 1;
    store
        .write(|tx| -> Result<(), PublisherError> {
            for e in tx.list_outbox()? {
                record_failure(tx, &e, "refused", &s, 10_000)?;
            }
            Ok(())
        })
        .expect("fail every entry");
    let kept = store.write(|tx| cleanup(tx, 10_500, 1_000)).expect("cleanup");
    assert_eq!((kept.removed, kept.revived), (0, 1));
    let outbox = store.read(|tx| tx.list_outbox()).expect("list");
    let delete = outbox.iter().find(|e| e.action == OutboxAction::Delete).expect("delete kept");
    assert!(delete.is_due(10_500) && delete.attempts == 0);
    let done = store.write(|tx| cleanup(tx, 11_000, 1_000)).expect("cleanup");
    assert_eq!((done.removed, done.revived), (2, 0), "orders and AUTH upserts");
    let left = store.read(|tx| tx.list_outbox()).expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].action, OutboxAction::Delete);
}

#[test]
fn delete_claim_is_self_signed_by_the_operator_identity() {
    let (_d, store) = store();
    let op = store.read(|tx| tx.require_operator()).expect("operator");
    let acc = account(&store, "orders").public_key;
    let claim =
        claims::decode::<GenericClaims>(&delete_claim(&op, &acc).expect("claim")).expect("decodes");
    assert_eq!(claim.iss, op.public_key.as_str());
    assert_eq!(claim.sub, claim.iss);
    assert_eq!(claim.nats.accounts, vec![acc.to_string()]);
}

#[test]
fn disabled_jwt_admits_nobody_and_drops_the_signing_keys() {
    let (_d, store) = store();
    let op = store.read(|tx| tx.require_operator()).expect("operator");
    let acc = account(&store, "orders");
    let e = OutboxEntry::new(acc.public_key.clone(), acc.name.clone(), OutboxAction::Delete, 0);
    let jwt = disabled_account_jwt(&op, &e, 7_000).expect("jwt");
    let c = claims::decode::<AccountClaims>(&jwt).expect("decodes");
    assert_eq!(c.sub, acc.public_key.as_str());
    assert_eq!(c.iss, op.current_signing_key().expect("a signing key").public());
    assert_eq!((c.iat, c.nats.limits.conn, c.nats.limits.leaf), (7_000, 0, 0));
    assert_eq!(c.nats.revocations.get("*"), Some(&7_000));
    assert!(c.nats.signing_keys.is_empty());
}

#[test]
fn reconcile_compares_by_reissuing_at_the_held_iat() {
    let (_d, store) = store();
    let op = store.read(|tx| tx.require_operator()).expect("operator");
    let allowed = store.read(|tx| tx.allowed_accounts()).expect("allowed");
    let mut acc = account(&store, "orders");
    let held = crate::issue::account_jwt(&op, &acc, &allowed, 4_000).expect("jwt");
    assert_eq!(differs(&op, &acc, &allowed, &[Some(held.clone())]), None);
    assert_eq!(differs(&op, &acc, &allowed, &[Some(held.clone()), None]), Some(4_000));
    acc.limits.max_connections = crate::model::Limit::try_from(2).expect("limit");
    assert_eq!(differs(&op, &acc, &allowed, &[Some(held)]), Some(4_000));
    assert_eq!(differs(&op, &acc, &allowed, &[Some("garbage".into())]), Some(0));
}

#[test]
fn requeue_raises_the_iat_floor_and_leaves_pending_entries_alone() {
    let (_d, store) = store();
    let orders = account(&store, "orders");
    let auth = account(&store, init::AUTH_ACCOUNT);
    set_max_connections(&store, init::AUTH_ACCOUNT, 9);
    let before = entry(&store, init::AUTH_ACCOUNT);
    let stale = [
        Stale { account: orders.public_key.clone(), held_iat: 9_000 },
        Stale { account: auth.public_key.clone(), held_iat: 0 },
    ];
    assert_eq!(store.write(|tx| requeue(tx, &stale, 20_000)).expect("requeue"), 1);
    assert_eq!(account(&store, "orders").last_jwt_iat, 9_000);
    assert_eq!(entry(&store, "orders").action, OutboxAction::Upsert);
    assert_eq!(entry(&store, init::AUTH_ACCOUNT).revision, before.revision);
    let e = entry(&store, "orders");
    let Reserved::Jwt(jwt) = reserve_jwt(&store, &e, 5_000) else { panic!("a jwt") };
    assert_eq!(claims::decode::<AccountClaims>(&jwt).expect("decodes").iat, 9_001);
}

#[test]
fn admin_outbox_list_and_retry() {
    let (_d, store) = store();
    set_max_connections(&store, "orders", 4);
    let mut s = settings();
    s.max_attempts = 1;
    let e = entry(&store, "orders");
    store.write(|tx| record_failure(tx, &e, "jwt store is full", &s, 10_000)).expect("fail");
    let list = admin::execute(&store, &Request::OutboxList(OutboxList {}), &ctx(11)).expect("list");
    let Response::Outbox(views) = list.response else { panic!("an outbox view") };
    let v = views.iter().find(|v| v.account_name == "orders").expect("orders listed");
    assert_eq!((v.state.as_str(), v.action.as_str(), v.attempts), ("failed", "upsert", 1));
    assert_eq!(v.last_error.as_deref(), Some("jwt store is full"));
    assert!(list_text_mentions(&store, "jwt store is full"));

    let retry = Request::OutboxRetry(OutboxRetry { id: "orders".into() });
    admin::execute(&store, &retry, &ctx(12)).expect("retry");
    let again = entry(&store, "orders");
    assert!(again.failed_at.is_none() && again.is_due(12_000) && again.revision > e.revision);
    let missing = Request::OutboxRetry(OutboxRetry { id: "nope".into() });
    let err = admin::execute(&store, &missing, &ctx(12)).expect_err("no such entry");
    assert!(matches!(err, admin::AdminError::NotFound { .. }));
    assert!(Request::OutboxList(OutboxList {}).is_read_only() && !retry.is_read_only());
}

fn list_text_mentions(store: &Store, text: &str) -> bool {
    let list = admin::execute(store, &Request::OutboxList(OutboxList {}), &ctx(11)).expect("list");
    list.response.to_text().contains(text)
}
