//! Tests of opening: migrations, read-only opens, the lock wait, remembered results, and when
//! the whole file is checked (the clean-close stamp, a crash, damage from outside).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::store::StoreRead;

fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    (dir, path)
}

/// The store file a build before the nkey index wrote (schema 1, no `user_nkeys` entries):
/// user `olga` with nkey [`V1_NKEY`]. See `tests/data/README.md`.
fn v1_fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/store_v1_before_nkey_index.redb");
    let (dir, path) = temp_path();
    std::fs::copy(src, &path).unwrap();
    (dir, path)
}

const V1_NKEY: &str = "UAFHG6FUD2UU4SDFVAFUL5LDFO2XM4WYM76UNXTPJYJK7EEMYRBHT2VE";

fn schema_version(store: &Store) -> u64 {
    store.check_schema().unwrap()
}

#[test]
fn open_migrates_a_v1_store_and_backfills_the_nkey_index() {
    let (_dir, path) = v1_fixture();
    let store = Store::open(&path).unwrap();
    let user = store.read(|tx| tx.user_by_nkey(V1_NKEY)).unwrap().expect("indexed by migration");
    assert_eq!(user.name.as_str(), "olga");
    assert_eq!(schema_version(&store), tables::SCHEMA_VERSION);
    let txn = store.inner.db.begin_read().unwrap();
    let sessions = txn.open_table(tables::V1_SESSIONS).map(|_| ());
    assert!(matches!(sessions, Err(redb::TableError::TableDoesNotExist(_))), "sessions dropped");
    drop(txn);
    drop(store);
    // Opening again finds nothing to do and keeps the index.
    let store = Store::open(&path).unwrap();
    assert!(store.read(|tx| tx.user_by_nkey(V1_NKEY)).unwrap().is_some());
}

#[test]
fn read_only_open_reads_and_refuses_writes_and_old_schemas() {
    let (_dir, path) = v1_fixture();
    let err = Store::open_read_only(&path, Duration::ZERO).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooOld { found: 1, .. }), "{err:?}");
    drop(Store::open(&path).unwrap());
    let before = std::fs::read(&path).unwrap();
    let store = Store::open_read_only(&path, Duration::ZERO).unwrap();
    assert_eq!(store.read(|tx| tx.list_users()).unwrap().len(), 1);
    let err = store.write(|tx| tx.delete_user("olga")).unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly(ref p) if *p == path), "{err:?}");
    // A second reader may share the file; a writer may not.
    let second = Store::open_read_only(&path, Duration::ZERO).unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::Locked { .. })));
    drop((store, second));
    assert_eq!(std::fs::read(&path).unwrap(), before, "a read-only open writes nothing");
}

#[test]
fn open_waits_for_a_busy_store_then_names_the_holder() {
    let (_dir, path) = temp_path();
    let first = Store::create(&path).unwrap();
    // Released while the second open waits: it gets the store.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
    });
    let started = std::time::Instant::now();
    let store = Store::open_for(&path, "pbn admin", Duration::from_secs(10)).unwrap();
    releaser.join().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Held for longer than the wait: the holder is named once the wait is over.
    let started = std::time::Instant::now();
    let err = Store::open_for(&path, "pbn admin", Duration::from_millis(200)).unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    match err {
        StoreError::Locked { holder: Some(h), .. } => assert_eq!(h.command, "pbn admin"),
        other => panic!("expected a named holder, got {other:?}"),
    }
    drop(store);
}

#[test]
fn remembered_results_are_bounded_by_age_and_count() {
    let (_dir, path) = temp_path();
    let store = Store::create(&path).unwrap();
    store
        .write(|tx| {
            tx.remember("a", 1_000, b"one", 10_000, 2)?;
            tx.remember("b", 2_000, b"two", 10_000, 2)?;
            let hit = tx.remembered("a")?.expect("kept");
            assert_eq!((hit.at_ms, hit.result.as_slice()), (1_000, &b"one"[..]));
            // A third key pushes out the oldest (count bound).
            tx.remember("c", 3_000, b"three", 10_000, 2)?;
            assert!(tx.remembered("a")?.is_none());
            assert!(tx.remembered("b")?.is_some());
            // Much later, everything older than the age bound goes.
            tx.remember("d", 20_000, b"four", 10_000, 100)?;
            assert!(tx.remembered("b")?.is_none() && tx.remembered("c")?.is_none());
            assert!(tx.remembered("d")?.is_some());
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

/// A store with user `zzdamageme` in account `orders`, closed cleanly (so stamped).
fn closed_store_with_a_user() -> (tempfile::TempDir, PathBuf) {
    use crate::model::{Account, AccountKind, Name, Role, User};
    let name = |s: &str| Name::parse(s).unwrap();
    let (dir, path) = temp_path();
    let store = Store::create(&path).unwrap();
    store
        .write(|tx| {
            tx.insert_account(&Account::generate(name("orders"), AccountKind::Managed, 10))?;
            tx.insert_role(&Role::new(name("writer"), 10))?;
            tx.insert_user(&User::new(name("zzdamageme"), name("orders"), name("writer"), 10))
        })
        .unwrap();
    drop(store);
    (dir, path)
}

/// Flips one byte inside every copy of the user's name in the file, as damage from outside pbn
/// would: every such page is part of the committed trees, so its checksum no longer verifies.
fn damage(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let marker = b"zzdamageme";
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(marker.len()) {
        if &bytes[i..i + marker.len()] == marker {
            bytes[i + 2] ^= 0x20;
            hits += 1;
        }
    }
    assert!(hits > 0, "the user's name is in the file");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_clean_close_stamps_the_store_and_the_next_open_skips_the_whole_file_check() {
    let (_dir, path) = closed_store_with_a_user();
    let stamp_path = stamp::path(&path);
    assert_eq!(std::fs::metadata(&stamp_path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(stamp::matches(&path));
    let store = Store::open(&path).unwrap();
    assert!(!store.inner.checked, "a store as pbn closed it is trusted");
    assert!(!stamp_path.exists(), "an open store has no stamp");
    assert!(store.read(|tx| tx.get_user("zzdamageme")).unwrap().is_some());
    drop(store);
    assert!(stamp::matches(&path), "closed again: stamped again");
    // A read-only open neither needs nor touches the stamp.
    let reader = Store::open_read_only(&path, Duration::ZERO).unwrap();
    drop(reader);
    assert!(stamp::matches(&path));
}

#[test]
fn any_write_to_the_file_after_its_clean_close_brings_back_the_whole_file_check() {
    let (_dir, path) = closed_store_with_a_user();
    // The same bytes written again: only the file's change time differs.
    std::fs::write(&path, std::fs::read(&path).unwrap()).unwrap();
    assert!(!stamp::matches(&path));
    let store = Store::open(&path).unwrap();
    assert!(store.inner.checked);
    drop(store);
    // No stamp at all (a store from an older build, a copy, a restore): checked too.
    std::fs::remove_file(stamp::path(&path)).unwrap();
    let copy = path.with_file_name("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    assert!(Store::open(&path).unwrap().inner.checked);
    assert!(Store::open(&copy).unwrap().inner.checked, "a copy never inherits a stamp");
}

#[test]
fn a_store_damaged_after_its_clean_close_is_refused() {
    let (_dir, path) = closed_store_with_a_user();
    damage(&path);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::CorruptFile { path: ref p, .. } if *p == path), "{err:?}");
    // Refused again: a failed open stamps nothing that would trust the file.
    assert!(!stamp::matches(&path));
    assert!(matches!(Store::open(&path), Err(StoreError::CorruptFile { .. })));
}

#[test]
fn a_store_a_crash_left_open_is_checked_and_damage_in_it_refused() {
    let (dir, path) = closed_store_with_a_user();
    let store = Store::open(&path).unwrap();
    store.write(|tx| tx.remember("k", 1, b"x", 10_000, 10)).unwrap();
    // The file as a crash (kill -9, power loss) would leave it: open, never closed.
    let crashed = dir.path().join("crashed.redb");
    std::fs::copy(&path, &crashed).unwrap();
    assert!(!stamp::path(&path).exists(), "the open store has no stamp to leave behind");
    let damaged = dir.path().join("damaged.redb");
    std::fs::copy(&path, &damaged).unwrap();
    drop(store);
    let reopened = Store::open(&crashed).unwrap();
    assert!(reopened.inner.checked);
    assert!(reopened.read(|tx| tx.get_user("zzdamageme")).unwrap().is_some());
    assert!(reopened.read(|tx| tx.remembered("k")).unwrap().is_some(), "the last commit kept");
    damage(&damaged);
    let err = Store::open(&damaged).unwrap_err();
    assert!(matches!(err, StoreError::CorruptFile { .. }), "{err:?}");
}

#[test]
fn a_stamp_that_does_not_describe_the_file_is_ignored() {
    let (_dir, path) = closed_store_with_a_user();
    let stamp_path = stamp::path(&path);
    for forged in ["", "pbn clean close v1\n", "garbage\n\0\u{1}", &"x".repeat(10_000)] {
        std::fs::write(&stamp_path, forged).unwrap();
        assert!(!stamp::matches(&path), "{forged:.20?}");
        assert!(Store::open(&path).unwrap().inner.checked);
    }
}
