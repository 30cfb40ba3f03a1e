//! The store key: `pbn init` seals every seed under a key file beside the store (or a
//! passphrase); without its key, or with another, a store does not open (exit 9) and nothing
//! changes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pbn::keys::Seed;
use pbn::seal::StoreKey;

use super::bad_input::{assert_clear, populated};
use crate::support::pbn::Pbn;

/// Exit code of a missing or wrong store key (`pbn --help`).
const STORE_KEY: i32 = 9;

pub(super) fn key_file(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Every valid nkey seed (`SO`/`SA`/`SU`/`SX`/`SN` + the rest of its 58 characters, CRC
/// checked) anywhere in `bytes`.
pub(super) fn seeds_in(bytes: &[u8]) -> Vec<String> {
    const LEN: usize = 58;
    bytes
        .windows(LEN)
        .filter(|w| w[0] == b'S' && b"OAUXN".contains(&w[1]))
        .filter_map(|w| std::str::from_utf8(w).ok())
        .filter(|text| Seed::new(*text).is_ok())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_seed_scan_finds_a_plain_seed() {
    let seed = pbn::keys::KeyPair::generate(pbn::keys::KeyKind::Account).seed();
    let bytes = [b"xx".as_slice(), seed.expose().as_bytes(), b"yy"].concat();
    assert_eq!(seeds_in(&bytes), [seed.expose()]);
}

#[test]
fn init_seals_every_seed_under_a_0600_key_file_beside_the_store() {
    let d = populated();
    d.ok(&["account", "add", "other"]);
    d.ok(&["account", "signing-key", "add", "app"]);
    let creds = d.creds("alice", &[]);
    assert!(!seeds_in(&std::fs::read(&creds).expect("creds")).is_empty(), "the scan sees seeds");
    let key = key_file(&d.store);
    let mode = std::fs::metadata(&key).expect("key file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let raw = std::fs::read(&d.store).expect("store file");
    assert_eq!(seeds_in(&raw), Vec::<String>::new(), "a seed in the store file");
    // The seeds are there, under the key.
    let store = crate::support::open_store(&d.store, "pbn admin");
    assert!(store.is_sealed());
    // With a callout xkey (`SX…`) too.
    let with_xkey = d.dir().join("xkey.redb");
    Pbn::new(["init", "--xkey", "--store"]).args([&with_xkey]).run().success();
    let raw = std::fs::read(&with_xkey).expect("store file");
    assert_eq!(seeds_in(&raw), Vec::<String>::new(), "a seed in the xkey store file");
}

#[test]
fn a_missing_or_wrong_key_exits_9_and_changes_nothing() {
    let d = populated();
    let before = d.snapshot();
    let key = key_file(&d.store);
    let moved = d.dir().join("moved.key");
    std::fs::rename(&key, &moved).expect("move the key away");
    let out = d.admin(&["account", "list"]);
    out.code(STORE_KEY);
    assert_clear(&out, &["encrypted", "pbn.redb"]);
    let out = d.admin(&["account", "add", "x"]);
    out.code(STORE_KEY);

    let other = d.dir().join("other.key");
    std::fs::write(&other, StoreKey::generate().to_file_text().as_bytes()).expect("write");
    let out = d.admin(&["--key-file", other.to_str().expect("utf-8"), "account", "add", "x"]);
    out.code(STORE_KEY);
    assert_clear(&out, &["store key", "pbn.redb"]);
    std::fs::write(&other, "not a key").expect("write");
    let out = d.admin(&["--key-file", other.to_str().expect("utf-8"), "account", "list"]);
    out.code(STORE_KEY);
    assert_clear(&out, &["other.key"]);
    let out = Pbn::new(["admin", "--store"])
        .args([&d.store])
        .args(["account", "list"])
        .env("PBN_KEY_PASSPHRASE", "a guess")
        .run();
    out.code(STORE_KEY);

    // Named explicitly, the moved key opens the store, which is as it was.
    let moved_arg = moved.to_str().expect("utf-8");
    let json = |what: &str| d.ok(&["--key-file", moved_arg, "--json", what, "list"]).stdout;
    let after = ["account", "role", "user"].map(json).join("\n");
    assert!(after == before, "a refused command changed the store");
}

#[test]
fn init_uses_an_existing_key_file_and_never_overwrites_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("pbn.redb");
    let key = key_file(&store);
    let text = StoreKey::generate().to_file_text();
    std::fs::write(&key, text.as_bytes()).expect("write key");
    Pbn::new(["init", "--store"]).args([&store]).run().success();
    assert_eq!(std::fs::read_to_string(&key).expect("key"), *text);
    Pbn::new(["admin", "--store"]).args([&store]).args(["account", "add", "app"]).run().success();
    // A store that already exists is refused, and its key file stays.
    Pbn::new(["init", "--store"]).args([&store]).run().code(4);
    assert_eq!(std::fs::read_to_string(&key).expect("key"), *text);
}

#[test]
fn a_passphrase_store_has_no_key_file_and_opens_with_its_passphrase_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("pbn.redb");
    let with = |pass: &str, args: &[&str]| {
        Pbn::new(["admin", "--store"]).args([&store]).args(args).env("PBN_KEY_PASSPHRASE", pass)
    };
    Pbn::new(["init", "--store"])
        .args([&store])
        .env("PBN_KEY_PASSPHRASE", "correct horse")
        .run()
        .success();
    assert!(!key_file(&store).exists(), "a passphrase store needs no key file");
    with("correct horse", &["account", "add", "app"]).run().success();
    with("correct horsf", &["account", "list"]).run().code(STORE_KEY);
    Pbn::new(["admin", "--store"]).args([&store]).args(["account", "list"]).run().code(STORE_KEY);
    assert_eq!(seeds_in(&std::fs::read(&store).expect("store")), Vec::<String>::new());
}

#[test]
fn a_plain_store_is_sealed_the_first_time_a_key_is_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("old.redb");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    std::fs::copy(data.join("store_v1_before_nkey_index.redb"), &store).expect("copy");
    let admin = |args: &[&str]| Pbn::new(["admin", "--store"]).args([&store]).args(args).run();
    // No key anywhere: it stays plain (a write upgrades its schema only).
    admin(&["account", "add", "PLAIN"]).success();
    let key = dir.path().join("old.key");
    std::fs::write(&key, StoreKey::generate().to_file_text().as_bytes()).expect("write key");
    let key_arg = key.to_str().expect("utf-8");
    let after = admin(&["--key-file", key_arg, "--json", "account", "add", "NEW"]);
    after.success();
    let listed = admin(&["--key-file", key_arg, "--json", "account", "list"]);
    listed.success();
    assert!(
        listed.stdout.contains("NEW") && listed.stdout.contains("PLAIN"),
        "{}",
        listed.streams()
    );
    // From now on it needs its key.
    let out = admin(&["account", "list"]);
    out.code(STORE_KEY);
    assert_clear(&out, &["encrypted", "old.redb"]);
}
