//! Refused input: a clear message on stderr, the documented exit code, and an unchanged store.
//! Also: no secret in read output, passwords never from flags, files created 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pbn::StoreRead;

use super::Deployment;
use crate::support::pbn::{Pbn, PbnOutput};

/// Exit codes documented in `pbn --help`.
pub(super) const USAGE: i32 = 2;
pub(super) const NOT_FOUND: i32 = 3;
pub(super) const CONFLICT: i32 = 4;
pub(super) const LOCKED: i32 = 5;
pub(super) const OTHER: i32 = 1;

/// A deployment with account `app`, role `r` and user `alice` (no password).
pub(super) fn populated() -> Deployment {
    let d = Deployment::init();
    d.ok(&["account", "add", "app"]);
    d.ok(&["role", "add", "r", "--pub", "app.>"]);
    d.ok(&["user", "add", "alice", "--account", "app", "--role", "r", "--no-password"]);
    d
}

/// Runs each `(args, exit code, words)` against `d`: the code must match, stderr must contain
/// every word, and the store must be unchanged afterwards.
#[track_caller]
pub(super) fn refused(d: &Deployment, cases: &[(&[&str], i32, &[&str])]) {
    let before = d.snapshot();
    for (args, code, words) in cases {
        let out = d.admin(args);
        out.code(*code);
        assert_clear(&out, words);
        assert_eq!(d.snapshot(), before, "pbn admin {args:?} changed the store");
    }
}

/// Asserts stdout is empty and stderr is one `error: ...` message naming every word and saying
/// nothing twice.
#[track_caller]
pub(super) fn assert_clear(out: &PbnOutput, words: &[&str]) {
    assert!(out.stdout.is_empty(), "a failure printed to stdout:\n{}", out.streams());
    assert!(out.stderr.starts_with("error: "), "no error message:\n{}", out.streams());
    let first_line = out.stderr.lines().next().unwrap_or_default();
    let parts: Vec<&str> = first_line.split(": ").collect();
    assert!(!parts.windows(2).any(|w| w[0] == w[1]), "repeated message:\n{}", out.streams());
    for word in words {
        assert!(out.stderr.contains(word), "stderr lacks {word:?}:\n{}", out.streams());
    }
}

#[test]
fn duplicate_names_are_conflicts() {
    let d = populated();
    refused(
        &d,
        &[
            (&["account", "add", "app"], CONFLICT, &["account", "\"app\"", "already exists"]),
            (&["role", "add", "r"], CONFLICT, &["role", "\"r\"", "already exists"]),
            (
                &["user", "add", "alice", "--account", "app", "--role", "r", "--no-password"],
                CONFLICT,
                &["user", "\"alice\"", "already exists"],
            ),
        ],
    );
}

#[test]
fn unknown_accounts_and_roles_are_not_found() {
    let d = populated();
    let add = |account: &'static str, role: &'static str| -> Vec<&'static str> {
        vec!["user", "add", "bob", "--account", account, "--role", role, "--no-password"]
    };
    let (no_account, no_role) = (add("nope", "r"), add("app", "nope"));
    refused(
        &d,
        &[
            (&no_account, NOT_FOUND, &["account", "\"nope\"", "not found"]),
            (&no_role, NOT_FOUND, &["role", "\"nope\"", "not found"]),
            (&["user", "edit", "alice", "--role", "nope"], NOT_FOUND, &["role \"nope\""]),
            (&["user", "edit", "alice", "--account", "nope"], NOT_FOUND, &["account \"nope\""]),
            (&["account", "show", "nope"], NOT_FOUND, &["account \"nope\" not found"]),
            (&["role", "delete", "nope"], NOT_FOUND, &["role \"nope\" not found"]),
            (&["user", "show", "nope"], NOT_FOUND, &["user \"nope\" not found"]),
            (&["user", "list", "--account", "nope"], NOT_FOUND, &["account \"nope\""]),
        ],
    );
}

#[test]
fn invalid_subjects_are_usage_errors() {
    let d = populated();
    refused(
        &d,
        &[
            (&["role", "add", "bad", "--pub", "a..b"], USAGE, &["\"a..b\""]),
            (&["role", "add", "bad", "--sub", "a b c"], USAGE, &["\"a b c\""]),
            (&["role", "edit", "r", "--pub", "x", "--pub-deny", "a.>.b"], USAGE, &["\"a.>.b\""]),
            (
                &["account", "export", "add", "app", "--subject", "has space"],
                USAGE,
                &["\"has space\""],
            ),
        ],
    );
}

#[test]
fn limits_below_minus_one_are_usage_errors() {
    let d = populated();
    refused(
        &d,
        &[
            (&["account", "add", "new", "--max-connections", "-2"], USAGE, &["-2"]),
            (&["account", "edit", "app", "--max-payload", "-2"], USAGE, &["-2"]),
            (&["account", "edit", "app", "--js-disk", "-2"], USAGE, &["-2"]),
            (&["role", "add", "new", "--max-subscriptions", "-2"], USAGE, &["-2"]),
            (&["role", "edit", "r", "--max-payload", "-2"], USAGE, &["-2"]),
        ],
    );
}

#[test]
fn values_breaking_a_model_rule_are_usage_errors() {
    let d = populated();
    let user = ["user", "add", "bob", "--account", "app", "--role", "r", "--no-password"];
    let bad_email = [&user[..], &["--email", "not-an-address"]].concat();
    let ten_thousand_years = "10000y";
    refused(
        &d,
        &[
            (&["role", "add", "x", "--allow-responses", "-5"], USAGE, &["-5"]),
            (&["role", "add", "x", "--connection-type", "carrier-pigeon"], USAGE, &["PIGEON"]),
            (&["role", "add", "x", "--source-cidr", "10.0.0.0/33"], USAGE, &["10.0.0.0/33"]),
            (&["role", "add", "x", "--jwt-ttl", ten_thousand_years], USAGE, &["JWT lifetime"]),
            (&["role", "edit", "r", "--jwt-ttl", "0s"], USAGE, &["minimum", "1s"]),
            (&["role", "edit", "r", "--jwt-ttl", "1ms"], USAGE, &["minimum", "1s"]),
            (&bad_email, USAGE, &["\"not-an-address\""]),
            (&["account", "add", "has space"], USAGE, &["\"has space\""]),
            (&["user", "edit", "alice", "--nkey", "UNOTAKEY"], USAGE, &["\"UNOTAKEY\""]),
            (
                &["user", "token", "add", "alice", "--expires", ten_thousand_years],
                USAGE,
                &["token lifetime"],
            ),
        ],
    );
}

#[test]
fn records_in_use_and_built_ins_cannot_be_deleted() {
    let d = populated();
    refused(
        &d,
        &[
            (&["role", "delete", "r"], CONFLICT, &["role \"r\"", "1 user"]),
            (&["account", "delete", "app"], CONFLICT, &["account \"app\"", "1 user"]),
            (&["account", "delete", "SYS"], CONFLICT, &["\"SYS\"", "built in"]),
            (&["account", "delete", "AUTH"], CONFLICT, &["\"AUTH\"", "built in"]),
            (&["account", "edit", "AUTH", "--active", "false"], CONFLICT, &["\"AUTH\""]),
            (&["user", "edit", "alice", "--account", "AUTH"], CONFLICT, &["\"AUTH\"", "users"]),
            (
                &["user", "add", "bob", "--account", "SYS", "--role", "r", "--no-password"],
                CONFLICT,
                &["\"SYS\"", "users"],
            ),
        ],
    );
    d.ok(&["user", "delete", "alice"]);
    d.ok(&["role", "delete", "r"]);
    d.ok(&["account", "delete", "app"]);
}

#[test]
fn a_missing_store_is_not_found_and_not_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("absent.redb");
    let out = Pbn::new(["admin", "--store"]).args([&store]).args(["account", "list"]).run();
    out.code(NOT_FOUND);
    assert_clear(&out, &["absent.redb", "does not exist", "pbn init"]);
    let conf = Pbn::new(["nats-conf", "--store"]).args([&store]).args(["--out"]);
    let out = conf.args([dir.path().join("conf")]).run();
    out.code(NOT_FOUND);
    assert_clear(&out, &["absent.redb", "does not exist"]);
    assert!(!store.exists(), "a failed command created the store");
}

#[test]
fn a_locked_store_exits_5_and_points_to_remote_administration() {
    let d = populated();
    let before = d.snapshot();
    // Held as a running `pbn serve` holds it: commands fail at once instead of waiting.
    let held = crate::support::open_store(&d.store, pbn::SERVICE_COMMAND);
    for args in [&["account", "list"][..], &["account", "add", "other"]] {
        let out = d.admin(args);
        out.code(LOCKED);
        assert_clear(&out, &["locked", "pbn serve", "--server URL --creds FILE"]);
    }
    drop(held);
    assert_eq!(d.snapshot(), before);
}

#[test]
fn a_corrupt_store_exits_1_and_is_left_alone() {
    let d = populated();
    let good = std::fs::read(&d.store).expect("read store");
    let garbage = d.dir().join("garbage.redb");
    std::fs::write(&garbage, b"this is not a database").expect("write");
    let truncated = d.dir().join("truncated.redb");
    std::fs::write(&truncated, &good[..good.len() / 2]).expect("write");
    let empty = d.dir().join("empty.redb");
    std::fs::write(&empty, b"").expect("write");
    for file in [&garbage, &truncated, &empty] {
        let bytes = std::fs::read(file).expect("read");
        let out = Pbn::new(["admin", "--store"]).args([file]).args(["account", "list"]).run();
        out.code(OTHER);
        assert_clear(&out, &["not a valid pbn store"]);
        assert_eq!(std::fs::read(file).expect("read"), bytes, "{} was modified", file.display());
    }
}

#[test]
fn a_store_damaged_after_pbn_closed_it_is_refused_by_admin_and_serve() {
    let d = populated();
    d.ok(&["user", "add", "zzdamageme", "--account", "app", "--role", "r", "--no-password"]);
    // Damage from outside pbn: one byte flipped in every page that holds the user's name. pbn
    // closed the store cleanly, but the write changed the file after that, so it is checked.
    let mut bytes = std::fs::read(&d.store).expect("read store");
    let marker = b"zzdamageme";
    let hits: Vec<usize> = (0..bytes.len() - marker.len())
        .filter(|&i| &bytes[i..i + marker.len()] == marker)
        .collect();
    assert!(!hits.is_empty(), "the user's name is in the store file");
    hits.iter().for_each(|&i| bytes[i + 2] ^= 0x20);
    std::fs::write(&d.store, &bytes).expect("write store");
    let serve =
        Pbn::new(["serve", "--store"]).args([&d.store]).args(["--server", "nats://127.0.0.1:1"]);
    // Read-only verbs open without a check (redb checks only a writable open): a writing one.
    for out in [d.admin(&["account", "add", "other"]), serve.run()] {
        out.code(OTHER);
        assert_clear(&out, &["not a valid pbn store"]);
    }
    assert_eq!(
        std::fs::read(&d.store).expect("read store"),
        bytes,
        "the damaged store was modified"
    );
}

#[test]
fn init_refuses_an_existing_store() {
    let d = populated();
    let bytes = std::fs::read(&d.store).expect("read store");
    let out = Pbn::new(["init", "--store"]).args([&d.store]).run();
    out.code(CONFLICT);
    assert_clear(&out, &["already exists"]);
    assert_eq!(std::fs::read(&d.store).expect("read store"), bytes);
    let other = d.dir().join("not-a-store");
    std::fs::write(&other, b"precious").expect("write");
    Pbn::new(["init", "--store"]).args([&other]).run().code(CONFLICT);
    assert_eq!(std::fs::read(&other).expect("read"), b"precious");
}

#[test]
fn passwords_are_never_taken_from_flags() {
    let d = populated();
    let add = ["user", "add", "bob", "--account", "app", "--role", "r"];
    let before = d.snapshot();
    for flag in ["--password", "--pass", "--pw"] {
        let out = d.admin(&[&add[..], &[flag, "secret-password"]].concat());
        out.code(USAGE);
        assert!(out.stderr.contains("unexpected argument"), "{}", out.streams());
        assert!(!out.stderr.contains("secret-password"), "password echoed:\n{}", out.streams());
    }
    let out = d.admin(&["user", "passwd", "alice", "--password", "secret-password"]);
    out.code(USAGE);
    // No source given and stdin is no terminal: refused rather than an empty password.
    let out = d.admin(&add);
    out.code(USAGE);
    assert_clear(&out, &["--password-stdin", "--password-file"]);
    let short =
        Pbn::new(["admin", "--store"]).args([&d.store]).args(add).args(["--password-stdin"]);
    short.stdin("short\n").run().code(USAGE);
    assert_eq!(d.snapshot(), before);

    let ok = Pbn::new(["admin", "--store"]).args([&d.store]).args(add).args(["--password-stdin"]);
    ok.stdin("long enough password\n").run().success();
    let file = d.dir().join("pw.txt");
    std::fs::write(&file, "another long password\n").expect("write");
    d.ok(&["user", "passwd", "alice", "--password-file", file.to_str().expect("utf-8 path")]);
    let users = d.ok(&["--json", "user", "list"]).json();
    let has_password: Vec<bool> =
        users["data"].as_array().expect("list").iter().map(|u| u["has_password"] == true).collect();
    assert_eq!(has_password, [true, true], "{users}");
}

/// Every secret the store holds: seeds of the operator, accounts, signing keys, service user and
/// xkey; password hashes and token hashes.
pub(super) fn stored_secrets(store: &Path) -> Vec<String> {
    let store = crate::support::open_store(store, "pbn admin");
    store
        .read(|tx| {
            let op = tx.require_operator()?;
            let mut out = vec![op.identity.expose().to_string()];
            out.extend(op.signing_keys.iter().map(|k| k.seed.expose().to_string()));
            for acc in tx.list_accounts()? {
                out.push(acc.identity.expose().to_string());
                out.extend(acc.signing_keys.iter().map(|k| k.seed.expose().to_string()));
                let callout = acc.callout.iter();
                out.extend(
                    callout
                        .flat_map(|c| [&c.xkey, &c.service_user])
                        .flatten()
                        .map(|s| s.expose().to_string()),
                );
            }
            for user in tx.list_users()? {
                out.extend(user.password_hash.clone());
                out.extend(user.tokens.iter().map(|t| t.hash.clone()));
            }
            Ok::<_, pbn::StoreError>(out)
        })
        .expect("read secrets")
}

/// Whether `text` holds something shaped like an nkey seed (`S` + kind letter, 58 base32 chars).
fn has_seed_shape(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|word| {
        word.len() == 58
            && ["SO", "SA", "SU", "SX"].iter().any(|p| word.starts_with(p))
            && word.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    })
}

#[test]
fn read_output_never_contains_a_secret() {
    let d = Deployment::init();
    let with_xkey = d.dir().join("xkey.redb");
    Pbn::new(["init", "--xkey", "--store"]).args([&with_xkey]).run().success();
    d.ok(&["account", "add", "app"]);
    d.ok(&["role", "add", "r"]);
    let add = ["user", "add", "alice", "--account", "app", "--role", "r", "--password-stdin"];
    Pbn::new(["admin", "--store"]).args([&d.store]).args(add).stdin("a long password\n").run();
    let token = d.ok(&["--json", "user", "token", "add", "alice", "--label", "ci"]).json();
    let token = token["data"]["token"].as_str().expect("token in output").to_string();
    d.creds("alice", &[]);

    let mut secrets = stored_secrets(&d.store);
    assert!(secrets.len() >= 10, "expected seeds, a hash and a token hash: {}", secrets.len());
    secrets.push(token);
    let reads: [&[&str]; 12] = [
        &["operator", "show"],
        &["operator", "show", "--jwt"],
        &["account", "list"],
        &["account", "show", "SYS"],
        &["account", "show", "AUTH"],
        &["account", "show", "app"],
        &["role", "list"],
        &["role", "show", "r"],
        &["user", "list"],
        &["user", "show", "alice"],
        &["user", "token", "list", "alice"],
        &["account", "show", "app", "--jwt"],
    ];
    let mut outputs = Vec::new();
    for args in reads {
        outputs.push(d.ok(args));
        let json = d.ok(&[&["--json"][..], args].concat());
        json.json();
        outputs.push(json);
    }
    let xkey_secrets = stored_secrets(&with_xkey);
    for args in [&["account", "show", "AUTH"][..], &["--json", "account", "show", "AUTH"]] {
        outputs.push(Pbn::new(["admin", "--store"]).args([&with_xkey]).args(args).run());
    }
    for out in &outputs {
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!has_seed_shape(&text), "seed in pbn {:?}:\n{text}", out.args);
        assert!(!text.contains("$argon2"), "password hash in pbn {:?}:\n{text}", out.args);
        for secret in secrets.iter().chain(&xkey_secrets) {
            assert!(!text.contains(secret.as_str()), "a secret in pbn {:?}:\n{text}", out.args);
        }
    }
}

#[test]
fn store_and_creds_files_are_mode_0600() {
    let d = populated();
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&d.store), 0o600);
    let creds = d.creds("alice", &[]);
    assert_eq!(mode(&creds), 0o600);
    let text = std::fs::read_to_string(&creds).expect("read creds");
    assert!(text.contains("BEGIN NATS USER JWT") && text.contains("BEGIN USER NKEY SEED"));

    let existing = d.dir().join("open.creds");
    std::fs::write(&existing, "old").expect("write");
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = d.admin(&["user", "creds", "alice", "--out", existing.to_str().expect("utf-8 path")]);
    out.code(CONFLICT);
    assert_clear(&out, &["open.creds", "--force"]);
    assert_eq!(std::fs::read_to_string(&existing).expect("read"), "old");
    let existing_arg = existing.to_str().expect("utf-8 path");
    d.ok(&["user", "creds", "alice", "--out", existing_arg, "--force"]);
    assert_eq!(mode(&existing), 0o600);
    assert!(std::fs::read_to_string(&existing).expect("read").contains("BEGIN NATS USER JWT"));
}

#[test]
fn creds_that_cannot_be_written_change_nothing() {
    let d = populated();
    d.creds("alice", &[]);
    let unwritable = d.dir().join("no-such-dir").join("alice.creds");
    let unwritable = unwritable.to_str().expect("utf-8 path");
    let nobody = d.dir().join("nobody.creds");
    let nobody = nobody.to_str().expect("utf-8 path");
    refused(
        &d,
        &[
            (&["user", "creds", "alice", "--out", unwritable], OTHER, &["no-such-dir"]),
            (&["user", "creds", "nobody", "--out", nobody], NOT_FOUND, &["user \"nobody\""]),
        ],
    );
    assert!(!Path::new(nobody).exists(), "a failed creds command left a file behind");
}

#[test]
fn a_nats_conf_layout_out_of_range_is_a_usage_error_and_leaves_the_store_alone() {
    let d = populated();
    let bytes = std::fs::read(&d.store).expect("read store");
    let conf = Pbn::new(["nats-conf", "--store"]).args([&d.store]).args(["--out"]);
    let conf = conf.args([d.dir().join("conf")]);
    let out = conf.clone().args(["--port", "65000", "--cluster", "3"]).run();
    out.code(USAGE);
    assert_clear(&out, &["65000", "3 nodes"]);
    conf.clone().args(["--auth-timeout", "0"]).run().code(USAGE);
    conf.args(["--cluster", "1"]).run().code(USAGE);
    assert_eq!(std::fs::read(&d.store).expect("read store"), bytes, "the store was written");
    assert!(!d.dir().join("conf").exists(), "files written for a refused layout");
}

#[test]
fn an_unwritable_nats_conf_directory_is_reported_once() {
    let d = populated();
    let blocker = d.dir().join("blocker");
    std::fs::write(&blocker, b"a file, not a directory").expect("write");
    let conf = Pbn::new(["nats-conf", "--store"]).args([&d.store]).args(["--out"]);
    let out = conf.args([blocker.join("conf")]).run();
    out.code(OTHER);
    assert_clear(&out, &["cannot write", "blocker"]);
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Pbn::new(["--help"]).run();
    out.success();
    for line in ["0  success", "1  other failure", "2  usage error", "3  not found"] {
        assert!(out.stdout.contains(line), "--help lacks {line:?}:\n{}", out.stdout);
    }
    for line in ["4  conflict", "5  store locked"] {
        assert!(out.stdout.contains(line), "--help lacks {line:?}:\n{}", out.stdout);
    }
}

#[test]
fn the_store_path_defaults_to_pbn_store_then_the_working_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let from_env = dir.path().join("env.redb");
    Pbn::new(["init"]).env("PBN_STORE", &from_env).run().success();
    assert!(from_env.is_file());
    let list = Pbn::new(["admin", "--json", "account", "list"]).env("PBN_STORE", &from_env).run();
    assert_eq!(list.success().json()["data"].as_array().map(Vec::len), Some(2));

    Pbn::new(["init"]).current_dir(dir.path()).run().success();
    assert!(dir.path().join("pbn.redb").is_file());
    Pbn::new(["admin", "account", "list"]).current_dir(dir.path()).run().success();
}

#[test]
fn a_role_too_large_to_mint_is_a_usage_error_naming_the_size() {
    let d = populated();
    let subjects: Vec<String> = (0..80).map(|i| format!("{i:02}.{}", "s".repeat(8_997))).collect();
    let mut add = vec!["role", "add", "huge"];
    let mut edit = vec!["role", "edit", "r"];
    for s in &subjects {
        add.extend(["--pub", s]);
        edit.extend(["--pub", s]);
    }
    refused(
        &d,
        &[
            (&add, USAGE, &["role \"huge\"", "message of", "max payload is 1048576 bytes"]),
            (&edit, USAGE, &["role \"r\"", "max payload is 1048576 bytes"]),
        ],
    );
}
