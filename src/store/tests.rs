//! Store tests: file handling, transactions, records, indexes, outbox and sessions.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use redb::ReadableTable;

use super::*;
use crate::keys::{KeyKind, KeyPair, UserPublicKey};
use crate::model::{Account, AccountKind, ApiToken, Name, Operator, OutboxAction, Role, User};

fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    (dir, path)
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn user_key() -> UserPublicKey {
    UserPublicKey::parse(KeyPair::generate(KeyKind::User).public_key()).unwrap()
}

fn token(id: &str, secret: &str) -> ApiToken {
    ApiToken {
        id: id.into(),
        label: String::new(),
        hash: ApiToken::hash_secret(secret),
        created: 1,
        expires: None,
    }
}

/// A store with account `orders`, roles `writer` and `reader`, user `alice` (writer).
fn fixture() -> (tempfile::TempDir, Store, Account) {
    let (dir, path) = temp_path();
    let store = Store::create(&path).unwrap();
    let account = Account::generate(name("orders"), AccountKind::Managed, 10);
    store
        .write(|tx| {
            tx.insert_account(&account)?;
            tx.insert_role(&Role::new(name("writer"), 10))?;
            tx.insert_role(&Role::new(name("reader"), 10))?;
            tx.insert_user(&User::new(name("alice"), name("orders"), name("writer"), 10))
        })
        .unwrap();
    (dir, store, account)
}

#[test]
fn create_makes_a_0600_file_with_the_schema_version() {
    let (_dir, path) = temp_path();
    let store = Store::create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(store.read(|tx| tx.schema_version()).unwrap(), tables::SCHEMA_VERSION);
    assert_eq!(store.path(), path.as_path());
}

#[test]
fn create_refuses_an_existing_file() {
    let (_dir, path) = temp_path();
    std::fs::write(&path, b"keep me").unwrap();
    assert!(matches!(Store::create(&path), Err(StoreError::AlreadyExists(p)) if p == path));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn open_of_a_missing_file_is_file_not_found() {
    let (_dir, path) = temp_path();
    assert!(matches!(Store::open(&path), Err(StoreError::FileNotFound(p)) if p == path));
}

#[test]
fn open_of_garbage_is_corrupt_file() {
    let (_dir, path) = temp_path();
    let garbage: Vec<u8> =
        (0..16_384u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, garbage).unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::CorruptFile { .. })));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::CorruptFile { .. })));
}

#[test]
fn open_of_a_redb_file_without_pbn_schema_is_corrupt_file() {
    let (_dir, path) = temp_path();
    drop(redb::Database::create(&path).unwrap());
    assert!(matches!(Store::open(&path), Err(StoreError::CorruptFile { .. })));
}

#[test]
fn open_of_a_newer_schema_is_refused() {
    let (_dir, path) = temp_path();
    drop(Store::create(&path).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(tables::META).unwrap().insert(tables::SCHEMA_VERSION_KEY, 99).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(
        err,
        StoreError::SchemaTooNew { found: 99, supported: tables::SCHEMA_VERSION, .. }
    ));
}

#[test]
fn open_of_a_store_that_is_open_is_locked() {
    let (_dir, path) = temp_path();
    let first = Store::create(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { path: ref p, .. } if *p == path));
    // The holder is named from the lock-info file `create` wrote.
    match &err {
        StoreError::Locked { holder: Some(h), .. } => {
            assert_eq!((h.pid, h.command.as_str()), (std::process::id(), "pbn init"))
        }
        other => panic!("expected a named holder, got {other:?}"),
    }
    drop(first);
    assert!(!lock::info_path(&path).exists(), "the lock-info file goes on close");
    Store::open(&path).unwrap();
}

#[test]
fn data_survives_reopen() {
    let (dir, store, account) = fixture();
    let path = store.path().to_path_buf();
    drop(store);
    let store = Store::open(&path).unwrap();
    let back = store.read(|tx| tx.require_account("orders")).unwrap();
    assert_eq!(back, account);
    drop(dir);
}

#[test]
fn inserts_conflict_on_existing_records() {
    let (_dir, store, account) = fixture();
    let err = store.write(|tx| tx.insert_account(&account)).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { kind: RecordKind::Account, ref name } if name == "orders")
    );
    let mut same_key = account.clone();
    same_key.name = name("orders2");
    let err = store.write(|tx| tx.insert_account(&same_key)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { kind: RecordKind::Account, .. }));
    let err = store.write(|tx| tx.insert_role(&Role::new(name("writer"), 1))).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { kind: RecordKind::Role, .. }));
    let alice = User::new(name("alice"), name("orders"), name("reader"), 1);
    let err = store.write(|tx| tx.insert_user(&alice)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { kind: RecordKind::User, .. }));
    let op = Operator::generate("pbn", account.public_key.clone(), 1);
    store.write(|tx| tx.insert_operator(&op)).unwrap();
    let err = store.write(|tx| tx.insert_operator(&op)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { kind: RecordKind::Operator, .. }));
    assert_eq!(store.read(|tx| tx.require_operator()).unwrap(), op);
}

#[test]
fn get_of_missing_is_none_and_require_is_not_found() {
    let (_dir, store, _) = fixture();
    store
        .read(|tx| {
            assert!(tx.get_user("bob")?.is_none());
            assert!(tx.get_operator()?.is_none());
            let err = tx.require_user("bob").unwrap_err();
            assert!(matches!(err, StoreError::NotFound { kind: RecordKind::User, ref name } if name == "bob"));
            assert!(matches!(tx.require_role("x"), Err(StoreError::NotFound { kind: RecordKind::Role, .. })));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let ghost = Role::new(name("ghost"), 1);
    let err = store.write(|tx| tx.update_role(&ghost)).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: RecordKind::Role, .. }));
}

#[test]
fn a_failed_write_changes_nothing() {
    let (_dir, store, _) = fixture();
    let err = store
        .write(|tx| {
            tx.insert_role(&Role::new(name("temp"), 1))?;
            tx.delete_user("alice")?;
            tx.insert_user(&User::new(name("bob"), name("nope"), name("writer"), 1))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { kind: RecordKind::Account, .. }));
    store
        .read(|tx| {
            assert!(tx.get_role("temp")?.is_none());
            assert!(tx.get_user("alice")?.is_some());
            assert_eq!(tx.count_users_of_account("orders")?, 1);
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

#[test]
fn invalid_records_are_refused_on_write() {
    let (_dir, store, account) = fixture();
    let mut bad = account.clone();
    bad.identity = KeyPair::generate(KeyKind::Account).seed();
    let err = store.write(|tx| tx.update_account(&bad)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(crate::model::ModelError::KeyMismatch(_))));
    let mut plain = User::new(name("bob"), name("orders"), name("writer"), 1);
    plain.password_hash = Some("hunter2".into());
    let err = store.write(|tx| tx.insert_user(&plain)).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn record_version_byte_round_trips_and_unknown_version_is_corrupt() {
    let (_dir, store, _) = fixture();
    store
        .write(|tx| {
            let mut users = tx.open(tables::USERS)?;
            let raw = users.get("alice").map_err(backend("test"))?.unwrap().value().to_vec();
            assert_eq!(raw[0], codec::RECORD_VERSION);
            let mut future = raw.clone();
            future[0] = codec::RECORD_VERSION + 1;
            users.insert("carol", future.as_slice()).map_err(backend("test"))?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let err = store.read(|tx| tx.get_user("carol")).unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { ref table, ref key } if table == "users" && key == "carol")
    );
    assert_eq!(store.read(|tx| tx.require_user("alice")).unwrap().name.as_str(), "alice");
}

#[test]
fn accounts_are_found_by_key_and_key_changes_move_the_index() {
    let (_dir, store, account) = fixture();
    let found = store.read(|tx| tx.get_account_by_key(&account.public_key)).unwrap().unwrap();
    assert_eq!(found.name.as_str(), "orders");
    let mut rekeyed = Account::generate(name("orders"), AccountKind::Managed, 20);
    rekeyed.created = account.created;
    store.write(|tx| tx.update_account(&rekeyed)).unwrap();
    store
        .read(|tx| {
            assert!(tx.get_account_by_key(&account.public_key)?.is_none());
            assert!(tx.get_account_by_key(&rekeyed.public_key)?.is_some());
            assert_eq!(tx.list_accounts()?.len(), 1);
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

#[test]
fn deletes_refuse_records_in_use() {
    let (_dir, store, account) = fixture();
    let err = store.write(|tx| tx.delete_account("orders")).unwrap_err();
    assert!(matches!(err, StoreError::InUse { kind: RecordKind::Account, users: 1, .. }));
    let err = store.write(|tx| tx.delete_role("writer")).unwrap_err();
    assert!(matches!(err, StoreError::InUse { kind: RecordKind::Role, users: 1, .. }));
    store.write(|tx| tx.delete_role("reader")).unwrap();
    store.write(|tx| tx.delete_user("alice")).unwrap();
    let gone = store.write(|tx| tx.delete_account("orders")).unwrap();
    assert_eq!(gone.public_key, account.public_key);
    assert!(store.read(|tx| tx.get_account_by_key(&account.public_key)).unwrap().is_none());
}

#[test]
fn user_indexes_follow_updates() {
    let (_dir, store, _) = fixture();
    let mut bob = User::new(name("bob"), name("orders"), name("writer"), 1);
    bob.tokens = vec![token("ci", "s3cret")];
    store.write(|tx| tx.insert_user(&bob)).unwrap();
    store
        .read(|tx| {
            assert_eq!(tx.count_users_of_account("orders")?, 2);
            assert_eq!(tx.count_users_of_role("writer")?, 2);
            assert_eq!(tx.count_users_of_role("reader")?, 0);
            let names: Vec<_> = tx
                .list_users_of_account("orders")?
                .into_iter()
                .map(|u| u.name.to_string())
                .collect();
            assert_eq!(names, ["alice", "bob"]);
            let (user, tok) = tx.user_by_token(&ApiToken::hash_secret("s3cret"))?.unwrap();
            assert_eq!((user.name.as_str(), tok.id.as_str()), ("bob", "ci"));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    bob.role = name("reader");
    bob.tokens = vec![token("ci2", "other")];
    store.write(|tx| tx.update_user(&bob)).unwrap();
    store
        .read(|tx| {
            assert_eq!(tx.list_user_names_of_role("reader")?, ["bob"]);
            assert_eq!(tx.list_user_names_of_role("writer")?, ["alice"]);
            assert!(tx.lookup_token(&ApiToken::hash_secret("s3cret"))?.is_none());
            assert_eq!(tx.lookup_token(&ApiToken::hash_secret("other"))?.unwrap().user, "bob");
            Ok::<_, StoreError>(())
        })
        .unwrap();
    store.write(|tx| tx.delete_user("bob")).unwrap();
    store
        .read(|tx| {
            assert!(tx.lookup_token(&ApiToken::hash_secret("other"))?.is_none());
            assert_eq!(tx.count_users_of_role("reader")?, 0);
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

#[test]
fn a_token_cannot_belong_to_two_users() {
    let (_dir, store, _) = fixture();
    let mut alice = store.read(|tx| tx.require_user("alice")).unwrap();
    alice.tokens = vec![token("a", "shared")];
    store.write(|tx| tx.update_user(&alice)).unwrap();
    let mut bob = User::new(name("bob"), name("orders"), name("writer"), 1);
    bob.tokens = vec![token("b", "shared")];
    let err = store.write(|tx| tx.insert_user(&bob)).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { kind: RecordKind::Token, ref name } if name == "b")
    );
}

#[test]
fn outbox_coalesces_per_account_and_latest_action_wins() {
    let (_dir, store, account) = fixture();
    let key = &account.public_key;
    let first = store
        .write(|tx| tx.enqueue_outbox(key, &account.name, OutboxAction::Upsert, 1_000))
        .unwrap();
    let second = store
        .write(|tx| tx.enqueue_outbox(key, &account.name, OutboxAction::Delete, 2_000))
        .unwrap();
    assert_eq!(second.revision, first.revision + 1);
    let all = store.read(|tx| tx.list_outbox()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].action, OutboxAction::Delete);
    assert_eq!(all[0].created, 1_000);
    assert!(store.read(|tx| tx.list_due_outbox(1_999)).unwrap().is_empty());
    assert_eq!(store.read(|tx| tx.list_due_outbox(2_000)).unwrap().len(), 1);
}

#[test]
fn outbox_writes_and_only_they_change_the_outbox_counter() {
    let (_dir, store, account) = fixture();
    let key = &account.public_key;
    let mut changes = store.outbox_changes();
    changes.mark_unchanged();
    let mut edited = account.clone();
    edited.description = "no outbox".into();
    store.write(|tx| tx.update_account(&edited)).unwrap();
    assert!(!changes.has_changed().unwrap(), "a write without the outbox");
    let failed: Result<(), StoreError> = store.write(|tx| {
        tx.enqueue_outbox(key, &account.name, OutboxAction::Upsert, 1_000)?;
        Err(StoreError::TaskFailed("rolled back".into()))
    });
    assert!(failed.is_err());
    assert!(!changes.has_changed().unwrap(), "a rolled-back write");
    store.write(|tx| tx.enqueue_outbox(key, &account.name, OutboxAction::Upsert, 1_000)).unwrap();
    assert!(changes.has_changed().unwrap(), "an enqueue");
    changes.mark_unchanged();
    store.write(|tx| tx.delete_outbox(key)).unwrap();
    assert!(changes.has_changed().unwrap(), "a removal");
}

#[test]
fn an_entry_enqueued_at_once_is_due_whatever_the_debounce() {
    let (_dir, store, account) = fixture();
    let key = &account.public_key;
    let now = 5_000_000;
    let entry = store
        .write(|tx| tx.enqueue_outbox_at_once(key, &account.name, OutboxAction::Upsert, now))
        .unwrap();
    assert_eq!((entry.revision, entry.created, entry.updated), (1, now, now));
    // Due with a quiet time of an hour before now; a plain enqueue is not.
    assert_eq!(store.read(|tx| tx.list_due_outbox(now - 3_600_000)).unwrap().len(), 1);
    let coalesced =
        store.write(|tx| tx.enqueue_outbox(key, &account.name, OutboxAction::Upsert, now)).unwrap();
    assert_eq!(coalesced.revision, 2);
    assert!(store.read(|tx| tx.list_due_outbox(now - 3_600_000)).unwrap().is_empty());
}

#[test]
fn outbox_stale_updates_and_completions_are_refused() {
    let (_dir, store, account) = fixture();
    let key = &account.public_key;
    let seen = store
        .write(|tx| tx.enqueue_outbox(key, &account.name, OutboxAction::Upsert, 1_000))
        .unwrap();
    store.write(|tx| tx.enqueue_outbox(key, &account.name, OutboxAction::Upsert, 1_500)).unwrap();
    let mut failed = seen.clone();
    failed.record_failure("timeout", Some(9_000), 1_600);
    assert!(!store.write(|tx| tx.update_outbox(&failed)).unwrap());
    assert!(!store.write(|tx| tx.complete_outbox(key, seen.revision)).unwrap());
    let current = store.read(|tx| tx.get_outbox(key)).unwrap().unwrap();
    assert_eq!(current.attempts, 0);
    let mut failed = current.clone();
    failed.record_failure("timeout", Some(9_000), 1_600);
    assert!(store.write(|tx| tx.update_outbox(&failed)).unwrap());
    assert!(store.read(|tx| tx.list_due_outbox(8_999)).unwrap().is_empty());
    assert!(store.write(|tx| tx.complete_outbox(key, current.revision)).unwrap());
    assert!(store.read(|tx| tx.get_outbox(key)).unwrap().is_none());
}

#[test]
fn concurrent_revocations_are_never_lost() {
    let (_dir, store, _) = fixture();
    const THREADS: usize = 6;
    const PER_THREAD: usize = 15;
    let keys: Vec<Vec<UserPublicKey>> =
        (0..THREADS).map(|_| (0..PER_THREAD).map(|_| user_key()).collect()).collect();
    std::thread::scope(|scope| {
        for batch in &keys {
            let store = store.clone();
            scope.spawn(move || {
                for (i, key) in batch.iter().enumerate() {
                    store
                        .write(|tx| {
                            let mut account = tx.require_account("orders")?;
                            std::thread::yield_now();
                            account.revoke(key, 100 + i as i64);
                            tx.update_account(&account)
                        })
                        .unwrap();
                }
            });
        }
    });
    let account = store.read(|tx| tx.require_account("orders")).unwrap();
    assert_eq!(account.revocations.len(), THREADS * PER_THREAD);
    for key in keys.iter().flatten() {
        assert!(account.revocations.contains_key(key.as_str()));
    }
}

#[tokio::test]
async fn async_writes_run_off_the_runtime() {
    let (_dir, store, _) = fixture();
    store.write_async(|tx| tx.insert_role(&Role::new(name("async"), 1))).await.unwrap();
    let role = store.read_async(|tx| tx.require_role("async")).await.unwrap();
    assert_eq!(role.name.as_str(), "async");
    let err = store.write_async(|_| -> Result<(), StoreError> { panic!("boom") }).await;
    assert!(matches!(err, Err(StoreError::TaskFailed(_))));
}

/// Median time of `get_user` in a store of 100,000 users. Timing-sensitive, so run on demand:
/// `cargo test --release --lib user_lookup -- --ignored --nocapture`.
#[test]
#[ignore = "timing measurement; run explicitly"]
fn user_lookup_in_a_store_of_100k_users() {
    let (_dir, store, _) = fixture();
    let start = std::time::Instant::now();
    store
        .write(|tx| {
            let mut template = User::new(name("u0"), name("orders"), name("writer"), 1);
            template.email = Some("someone@example.com".into());
            template.password_hash =
                Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into());
            template.tokens = vec![];
            for i in 0..100_000 {
                template.name = name(&format!("user{i:06}"));
                tx.insert_user(&template)?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    eprintln!("insert 100k users: {:?}", start.elapsed());
    let path = store.path().to_path_buf();
    drop(store);
    let start = std::time::Instant::now();
    let store = Store::open(&path).unwrap();
    eprintln!("open with integrity check: {:?}", start.elapsed());
    let mut samples: Vec<std::time::Duration> = (0..10_000u64)
        .map(|i| {
            let n = format!("user{:06}", (i * 7_919) % 100_000);
            let t = std::time::Instant::now();
            let user = store.read(|tx| tx.get_user(&n)).unwrap();
            let elapsed = t.elapsed();
            assert!(user.is_some());
            elapsed
        })
        .collect();
    samples.sort();
    let median = samples[samples.len() / 2];
    eprintln!("get_user median: {median:?}, p99: {:?}", samples[samples.len() * 99 / 100]);
    let budget = if cfg!(debug_assertions) { 200 } else { 10 };
    assert!(median <= std::time::Duration::from_micros(budget), "median {median:?}");
}

#[test]
fn nkeys_are_indexed_and_unique() {
    let (_dir, store, _) = fixture();
    let key = user_key();
    let mut alice = store.read(|tx| tx.require_user("alice")).unwrap();
    alice.nkey = Some(key.clone());
    store.write(|tx| tx.update_user(&alice)).unwrap();
    let found = store.read(|tx| tx.user_by_nkey(key.as_str())).unwrap().unwrap();
    assert_eq!(found.name.as_str(), "alice");
    let mut bob = User::new(name("bob"), name("orders"), name("writer"), 1);
    bob.nkey = Some(key.clone());
    let err = store.write(|tx| tx.insert_user(&bob)).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { kind: RecordKind::User, .. }), "{err:?}");
    alice.nkey = None;
    store.write(|tx| tx.update_user(&alice)).unwrap();
    assert!(store.read(|tx| tx.user_by_nkey(key.as_str())).unwrap().is_none());
    store.write(|tx| tx.insert_user(&bob)).unwrap();
    let found = store.read(|tx| tx.user_by_nkey(key.as_str())).unwrap().unwrap();
    assert_eq!(found.name.as_str(), "bob");
}
