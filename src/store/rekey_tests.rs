//! Re-sealing a store under a new key.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::model::{Account, AccountKind, Name};
use crate::seal::StoreKey;

const OLD: [u8; 32] = [7; 32];
const NEW: [u8; 32] = [9; 32];

fn key(bytes: &[u8; 32]) -> KeySource {
    KeySource::Key(StoreKey::from_slice(bytes).unwrap())
}

fn sealed_store(path: &Path) -> (Store, Vec<Account>) {
    let store = Store::create_with(path, Some(key(&OLD))).unwrap();
    let accounts: Vec<Account> = (0..5)
        .map(|i| Account::generate(Name::parse(&format!("a{i}")).unwrap(), AccountKind::Managed, 1))
        .collect();
    store.write(|tx| accounts.iter().try_for_each(|a| tx.insert_account(a))).unwrap();
    (store, accounts)
}

fn open(path: &Path, source: KeySource) -> Result<Store, StoreError> {
    Store::open_for_with(path, "test", Duration::ZERO, Some(source))
}

#[test]
fn a_rekeyed_store_opens_with_the_new_key_only_and_keeps_every_seed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    let (store, accounts) = sealed_store(&path);
    store.rekey(key(&NEW)).unwrap();
    // The open handle goes on with the new key.
    assert_eq!(store.read(|tx| tx.require_account("a3")).unwrap(), accounts[3]);
    drop(store);
    assert!(matches!(open(&path, key(&OLD)), Err(StoreError::WrongKey(_))));
    let store = open(&path, key(&NEW)).unwrap();
    let back = store.read(|tx| tx.list_accounts()).unwrap();
    assert_eq!(back, accounts);
    let raw = std::fs::read(&path).unwrap();
    for a in &accounts {
        let seed = a.identity.expose().as_bytes();
        assert!(!raw.windows(seed.len()).any(|w| w == seed), "a seed is in the file");
    }
}

#[test]
fn a_store_rekeyed_to_a_passphrase_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    let (store, accounts) = sealed_store(&path);
    store.rekey(KeySource::Passphrase("battery staple".to_string().into())).unwrap();
    drop(store);
    let pass = || KeySource::Passphrase("battery staple".to_string().into());
    let store = open(&path, pass()).unwrap();
    assert_eq!(store.read(|tx| tx.require_account("a0")).unwrap(), accounts[0]);
    store.rekey(key(&NEW)).unwrap();
    drop(store);
    // The salt went with the passphrase: only the new key opens it.
    assert!(matches!(open(&path, pass()), Err(StoreError::WrongKey(_))));
    assert_eq!(open(&path, key(&NEW)).unwrap().read(|tx| tx.list_accounts()).unwrap(), accounts);
}

#[test]
fn a_plain_or_read_only_store_is_not_rekeyed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    let store = Store::create(&path).unwrap();
    assert!(matches!(store.rekey(key(&NEW)), Err(StoreError::NotSealed(_))));
    drop(store);
    let sealed = dir.path().join("sealed.redb");
    drop(sealed_store(&sealed));
    let ro = Store::open_read_only_with(&sealed, Duration::ZERO, Some(key(&OLD))).unwrap();
    assert!(matches!(ro.rekey(key(&NEW)), Err(StoreError::ReadOnly(_))));
}

#[test]
fn reads_running_through_a_rekey_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    let (store, accounts) = sealed_store(&path);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done, want) = (store.clone(), done.clone(), accounts[1].clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                assert_eq!(store.read(|tx| tx.require_account("a1")).unwrap(), want);
                reads += 1;
            }
            reads
        })
    };
    for round in 0..20u8 {
        store.rekey(key(&[round; 32])).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}
