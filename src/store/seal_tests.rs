//! Encrypted stores: seeds sealed in the file, the key checked on open, records bound to
//! their slot.

use std::path::{Path, PathBuf};

use redb::ReadableTable;

use super::read::sealed::Source;

use super::*;
use crate::keys::{KeyKind, KeyPair, Seed, UserPublicKey};
use crate::model::{Account, AccountKind, CalloutConfig, Name, Operator};
use crate::seal::StoreKey;

fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbn.redb");
    (dir, path)
}

/// The key bytes of a test store, so it can be opened again with "the same key".
const KEY: [u8; 32] = [7; 32];

fn key() -> KeySource {
    KeySource::Key(StoreKey::from_slice(&KEY).unwrap())
}

fn account(name: &str) -> Account {
    Account::generate(Name::parse(name).unwrap(), AccountKind::Managed, 10)
}

/// An encrypted store with the operator, a managed account and an auth account with an xkey
/// and a service user; returns every seed it holds.
fn sealed_fixture(path: &Path) -> Vec<Seed> {
    let store = Store::create_with(path, Some(key())).unwrap();
    let sys = account("SYS");
    let operator = Operator::generate("op", sys.public_key.clone(), 10);
    let orders = account("orders");
    let mut auth = Account::generate(Name::parse("AUTH").unwrap(), AccountKind::Auth, 10);
    let service = KeyPair::generate(KeyKind::User);
    auth.callout = Some(CalloutConfig {
        auth_users: vec![UserPublicKey::parse(service.public_key()).unwrap()],
        xkey: Some(crate::keys::XKeyPair::generate().seed()),
        service_user: Some(service.seed()),
    });
    store
        .write(|tx| {
            tx.insert_operator(&operator)?;
            tx.insert_account(&sys)?;
            tx.insert_account(&orders)?;
            tx.insert_account(&auth)
        })
        .unwrap();
    let mut seeds = vec![operator.identity.clone()];
    seeds.extend(operator.signing_keys.iter().map(|k| k.seed.clone()));
    for a in [&sys, &orders, &auth] {
        seeds.push(a.identity.clone());
        seeds.extend(a.signing_keys.iter().map(|k| k.seed.clone()));
    }
    let callout = auth.callout.unwrap();
    seeds.extend([callout.xkey.unwrap(), callout.service_user.unwrap()]);
    seeds
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_encrypted_store_file_holds_no_seed_and_reads_them_back() {
    let (_dir, path) = temp_path();
    let seeds = sealed_fixture(&path);
    assert!(seeds.len() >= 8, "{}", seeds.len());
    let raw = std::fs::read(&path).unwrap();
    for seed in &seeds {
        assert!(
            !contains(&raw, seed.expose().as_bytes()),
            "a {:?} seed is in the file",
            seed.kind()
        );
    }
    let store = Store::open_for_with(&path, "test", Duration::ZERO, Some(key())).unwrap();
    assert!(store.is_sealed());
    let (operator, accounts) = store
        .read(|tx| Ok::<_, StoreError>((tx.require_operator()?, tx.list_accounts()?)))
        .unwrap();
    let mut read = vec![operator.identity.clone()];
    read.extend(operator.signing_keys.iter().map(|k| k.seed.clone()));
    let mut accounts = accounts;
    let order = ["SYS", "orders", "AUTH"];
    accounts.sort_by_key(|a| order.iter().position(|n| *n == a.name.as_str()));
    for a in &accounts {
        read.push(a.identity.clone());
        read.extend(a.signing_keys.iter().map(|k| k.seed.clone()));
    }
    let callout = accounts[2].callout.clone().unwrap();
    read.extend([callout.xkey.unwrap(), callout.service_user.unwrap()]);
    let texts = |s: &[Seed]| s.iter().map(|s| s.expose().to_string()).collect::<Vec<_>>();
    assert_eq!(texts(&read), texts(&seeds));
}

#[test]
fn an_encrypted_store_needs_its_own_key() {
    let (_dir, path) = temp_path();
    sealed_fixture(&path);
    let open = |key: Option<KeySource>| Store::open_for_with(&path, "test", Duration::ZERO, key);
    assert!(matches!(open(None), Err(StoreError::KeyRequired(p)) if p == path));
    let wrong = KeySource::Key(StoreKey::from_slice(&[8; 32]).unwrap());
    assert!(matches!(open(Some(wrong)), Err(StoreError::WrongKey(p)) if p == path));
    let pass = KeySource::Passphrase("the key file's store has no salt".to_string().into());
    assert!(matches!(open(Some(pass)), Err(StoreError::WrongKey(_))));
    let ro = Store::open_read_only_with(&path, Duration::ZERO, None);
    assert!(matches!(ro, Err(StoreError::KeyRequired(_))));
    let ro = Store::open_read_only_with(&path, Duration::ZERO, Some(key())).unwrap();
    assert!(ro.read(|tx| tx.require_operator()).is_ok());
}

#[test]
fn a_plain_store_is_sealed_the_first_time_it_is_opened_with_a_key() {
    let (_dir, path) = temp_path();
    let store = Store::create(&path).unwrap();
    let orders = account("orders");
    store.write(|tx| tx.insert_account(&orders)).unwrap();
    drop(store);
    // Read-only, it cannot be sealed: refused, and still plain.
    let ro = Store::open_read_only_with(&path, Duration::ZERO, Some(key()));
    assert!(matches!(ro, Err(StoreError::NotSealed(p)) if p == path));
    assert!(!Store::open(&path).unwrap().is_sealed());

    let store = Store::open_for_with(&path, "test", Duration::ZERO, Some(key())).unwrap();
    assert!(store.is_sealed());
    let back = store.read(|tx| tx.require_account("orders")).unwrap();
    assert_eq!(back.identity.expose(), orders.identity.expose());
    let raw = store
        .read(|tx| {
            let accounts = tx.table(tables::ACCOUNTS)?;
            let raw = accounts.get("orders").map_err(backend("test"))?.unwrap().value().to_vec();
            Ok::<_, StoreError>(raw)
        })
        .unwrap();
    assert!(!contains(&raw, orders.identity.expose().as_bytes()), "the record is still plain");
    drop(store);
    assert!(matches!(Store::open(&path), Err(StoreError::KeyRequired(_))));
    let wrong = KeySource::Key(StoreKey::from_slice(&[8; 32]).unwrap());
    let err = Store::open_for_with(&path, "test", Duration::ZERO, Some(wrong)).unwrap_err();
    assert!(matches!(err, StoreError::WrongKey(_)));
}

#[test]
fn a_sealed_record_moved_to_another_key_does_not_open() {
    let (_dir, path) = temp_path();
    sealed_fixture(&path);
    let store = Store::open_for_with(&path, "test", Duration::ZERO, Some(key())).unwrap();
    store
        .write(|tx| {
            let mut accounts = tx.open(tables::ACCOUNTS)?;
            let raw = accounts.get("orders").map_err(backend("test"))?.unwrap().value().to_vec();
            accounts.insert("copied", raw.as_slice()).map_err(backend("test"))?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let err = store.read(|tx| tx.get_account("copied")).unwrap_err();
    assert!(
        matches!(err, StoreError::Unseal { ref table, ref key, .. } if table == "accounts" && key == "copied"),
        "{err:?}"
    );
    assert!(store.read(|tx| tx.get_account("orders")).unwrap().is_some());
}

fn passphrase(text: &str) -> Option<KeySource> {
    Some(KeySource::Passphrase(text.to_string().into()))
}

#[test]
fn a_passphrase_store_opens_with_its_passphrase_only() {
    let (_dir, path) = temp_path();
    let store = Store::create_with(&path, passphrase("correct horse")).unwrap();
    let orders = account("orders");
    store.write(|tx| tx.insert_account(&orders)).unwrap();
    drop(store);
    let raw = std::fs::read(&path).unwrap();
    assert!(!contains(&raw, orders.identity.expose().as_bytes()));
    let open = |key| Store::open_for_with(&path, "test", Duration::ZERO, key);
    assert!(matches!(open(passphrase("correct horsf")), Err(StoreError::WrongKey(_))));
    assert!(matches!(open(None), Err(StoreError::KeyRequired(_))));
    // The passphrase's key with another salt (the key file route) is another key.
    let salted = StoreKey::from_passphrase(b"correct horse", &[0; crate::seal::SALT_LEN]).unwrap();
    assert!(matches!(open(Some(KeySource::Key(salted))), Err(StoreError::WrongKey(_))));
    let store = open(passphrase("correct horse")).unwrap();
    let back = store.read(|tx| tx.require_account("orders")).unwrap();
    assert_eq!(back.identity.expose(), orders.identity.expose());
}
