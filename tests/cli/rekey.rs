//! `pbn admin store rekey`: the store re-sealed under a new key in one go; the old key no
//! longer opens it, every record and seed is as it was, and the store file holds no seed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::bad_input::{assert_clear, populated};
use super::store_key::{key_file, seeds_in};
use super::Deployment;
use crate::support::pbn::Pbn;

const USAGE: i32 = 2;
const STORE_KEY: i32 = 9;

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What must survive a rekey: the records and the operator's public keys and JWT claims.
fn public_state(d: &Deployment, key: &[&str]) -> String {
    let run = |args: &[&str]| {
        let out = Pbn::new(["admin", "--store"]).args([&d.store]).args(key).args(args).run();
        out.success();
        out.stdout
    };
    let mut all = vec![run(&["--json", "operator", "show"])];
    all.extend(["account", "role", "user"].map(|what| run(&["--json", what, "list"])));
    all.join("\n")
}

/// Mints creds with the key in `key` args: the account's signing seed opens.
fn mints_creds(d: &Deployment, key: &[&str], n: usize) {
    let out_file = d.dir().join(format!("after-{n}.creds"));
    Pbn::new(["admin", "--store"])
        .args([&d.store])
        .args(key)
        .args(["user", "creds", "alice", "--out"])
        .args([&out_file])
        .run()
        .success();
}

#[test]
fn rekey_replaces_the_default_key_file_and_keeps_the_old_one_aside() {
    let d = populated();
    let before = public_state(&d, &[]);
    let key = key_file(&d.store);
    let old_text = std::fs::read_to_string(&key).expect("key");
    let out = d.ok(&["store", "rekey"]);
    assert!(out.stdout.contains("re-sealed"), "{}", out.streams());
    let old = with_suffix(&key, ".old");
    assert_eq!(std::fs::read_to_string(&old).expect("old key"), old_text);
    assert_ne!(std::fs::read_to_string(&key).expect("new key"), old_text);
    assert!(!with_suffix(&key, ".new").exists());
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(public_state(&d, &[]), before);
    mints_creds(&d, &[], 1);
    let raw = std::fs::read(&d.store).expect("store file");
    assert_eq!(seeds_in(&raw), Vec::<String>::new(), "a seed in the store file");
    let old_arg = old.to_str().expect("utf-8");
    d.admin(&["--key-file", old_arg, "account", "list"]).code(STORE_KEY);
}

#[test]
fn rekey_into_a_named_key_file_or_a_passphrase() {
    let d = populated();
    let before = public_state(&d, &[]);
    let named = d.dir().join("next.key");
    let out = d.ok(&["store", "rekey", "--new-key-file", named.to_str().expect("utf-8")]);
    assert!(out.stdout.contains("--key-file"), "{}", out.streams());
    d.admin(&["account", "list"]).code(STORE_KEY);
    let key = ["--key-file", named.to_str().expect("utf-8")];
    assert_eq!(public_state(&d, &key), before);
    mints_creds(&d, &key, 1);

    let rekey = Pbn::new(["admin", "--store"])
        .args([&d.store])
        .args(key)
        .args(["store", "rekey"])
        .env("PBN_NEW_KEY_PASSPHRASE", "a long new passphrase")
        .run();
    rekey.success();
    d.admin(&[key[0], key[1], "account", "list"]).code(STORE_KEY);
    let listed = Pbn::new(["admin", "--store"])
        .args([&d.store])
        .args(["--json", "account", "list"])
        .env("PBN_KEY_PASSPHRASE", "a long new passphrase")
        .run();
    listed.success();
    assert!(before.contains(listed.stdout.trim()), "{}", listed.streams());
}

#[test]
fn rekey_through_the_service_or_onto_the_key_in_use_is_refused() {
    let d = populated();
    let key = key_file(&d.store);
    let key_text = std::fs::read_to_string(&key).expect("key");
    let creds = d.dir().join("admin.creds");
    let out = d.admin(&[
        "--server",
        "nats://user:secret@127.0.0.1:1",
        "--creds",
        creds.to_str().expect("utf-8"),
        "store",
        "rekey",
    ]);
    out.code(USAGE);
    assert_clear(&out, &["pbn serve"]);
    assert!(!out.stderr.contains("secret"), "the URL's password was printed");
    let out = d.admin(&["store", "rekey", "--new-key-file", key.to_str().expect("utf-8")]);
    out.code(USAGE);
    assert_clear(&out, &["current key file"]);
    assert_eq!(std::fs::read_to_string(&key).expect("key"), key_text);
    d.ok(&["account", "list"]);
}
