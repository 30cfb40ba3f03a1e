//! Full-state entries and the replica mark.

use super::super::super::journal::JournalError;
use super::super::super::{Store, StoreError, StoreRead};
use crate::admin::{AccountAdd, Context, Request};
use crate::seal::{KeySource, StoreKey};

/// A sealed store made by `pbn init` at `name` in `dir`, with the key text.
fn init(dir: &std::path::Path, name: &str, text: &str) -> Store {
    let key = Some(KeySource::Key(StoreKey::from_file_text(text).expect("key")));
    let path = dir.join(name);
    crate::admin::init::init_store_with(&path, "t", false, &Context::now(), key).expect("init").0
}

fn add(store: &Store, name: &str) -> Result<(), crate::admin::AdminError> {
    let req = Request::AccountAdd(AccountAdd { name: name.into(), ..AccountAdd::default() });
    crate::admin::execute(store, &req, &Context::now()).map(drop)
}

fn has(store: &Store, name: &str) -> bool {
    store.read(|tx| tx.get_account(name)).expect("read").is_some()
}

#[test]
fn a_full_state_entry_replaces_the_rows_of_a_store_under_the_same_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = StoreKey::generate().to_file_text();
    let a = init(dir.path(), "a.redb", &text);
    add(&a, "ONE").expect("add");
    std::fs::copy(dir.path().join("a.redb"), dir.path().join("b.redb")).expect("copy");
    let key = || Some(KeySource::Key(StoreKey::from_file_text(&text).expect("key")));
    let b = Store::open_for_with(dir.path().join("b.redb"), "t", Default::default(), key())
        .expect("open b");
    add(&b, "STRAY").expect("a row only b has");
    let entry = a.full_state().expect("full state");
    assert!(matches!(
        b.apply(&entry, 2),
        Err(StoreError::Journal(JournalError::FullStateMisplaced(2)))
    ));
    for store in [&a, &b] {
        store.apply(&entry, 1).expect("apply the full state");
    }
    assert!(has(&b, "ONE") && !has(&b, "STRAY"), "b holds exactly a's rows");
    assert_eq!(a.raw_rows().expect("a"), b.raw_rows().expect("b"));

    let other = init(dir.path(), "c.redb", &StoreKey::generate().to_file_text());
    let refused = other.apply(&entry, 1);
    assert!(matches!(refused, Err(StoreError::Journal(JournalError::KeyMismatch(_)))));
    assert!(!has(&other, "ONE"), "nothing applied");
}

#[test]
fn a_replica_refuses_local_writes_sealing_and_rekeying_but_applies_and_prepares() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = StoreKey::generate().to_file_text();
    let a = init(dir.path(), "a.redb", &text);
    assert!(!a.is_replica().expect("mark"));
    a.mark_replica().expect("mark");
    assert!(a.is_replica().expect("mark"));
    let refused = add(&a, "ONE");
    assert!(
        matches!(
            refused,
            Err(crate::admin::AdminError::Store(StoreError::Journal(JournalError::ReplicaStore(
                _
            ))))
        ),
        "{refused:?}"
    );
    let rekey = a.rekey(KeySource::Key(StoreKey::generate()));
    assert!(matches!(rekey, Err(StoreError::Journal(JournalError::ReplicaStore(_)))));
    let (prepared, journal) = Store::prepared(|| add(&a, "ONE"));
    prepared.expect("a prepared change commits nothing, so it is allowed");
    a.apply(&journal.expect("a change"), 1).expect("the log's changes are applied");
    assert!(has(&a, "ONE"));
    drop(a);

    let plain = dir.path().join("plain.redb");
    let made = crate::admin::init::init_store_with(&plain, "t", false, &Context::now(), None);
    made.expect("a plain store").0.mark_replica().expect("mark");
    let key = Some(KeySource::Key(StoreKey::generate()));
    let sealed = Store::open_for_with(&plain, "t", Default::default(), key);
    assert!(matches!(sealed, Err(StoreError::Journal(JournalError::ReplicaStore(_)))));
}

#[test]
fn a_snapshot_is_restored_at_its_position_on_a_store_that_applied_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = StoreKey::generate().to_file_text();
    let a = init(dir.path(), "a.redb", &text);
    add(&a, "ONE").expect("add");
    let snapshot = a.full_state().expect("full state");
    let key = || Some(KeySource::Key(StoreKey::from_file_text(&text).expect("key")));
    let b = Store::create_replica(dir.path().join("b.redb"), &a.genesis().expect("g"), key())
        .expect("b");
    let not_full = crate::store::Journal::new();
    assert!(b.restore_full_state(&not_full, 7).is_err(), "only a full-state entry restores");
    b.restore_full_state(&snapshot, 7).expect("restore");
    assert_eq!(b.applied_seq().expect("seq"), 7);
    assert!(has(&b, "ONE"));
    let again = b.restore_full_state(&snapshot, 9);
    assert!(matches!(again, Err(StoreError::Journal(JournalError::OutOfOrder { .. }))));
}
