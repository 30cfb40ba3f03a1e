//! Output files are written through a temporary file and a rename: a symlink at the target is
//! refused (its target untouched), an existing file is kept unless `--force`. Standard output
//! closed early ends pbn quietly. Error messages and tables never echo raw control characters or
//! floods of input.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::bad_input::{assert_clear, populated, refused, CONFLICT, USAGE};
use super::Deployment;
use crate::support::pbn::{self, Pbn};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// A 0644 file holding `precious`, and a symlink `name` pointing at it.
fn victim_and_link(d: &Deployment, name: &str) -> (PathBuf, PathBuf) {
    let victim = d.dir().join(format!("victim-of-{}", name.replace('/', "-")));
    std::fs::write(&victim, "precious").expect("write victim");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let link = d.dir().join(name);
    symlink(&victim, &link).expect("symlink");
    (victim, link)
}

#[track_caller]
fn assert_untouched(victim: &Path) {
    assert_eq!(std::fs::read_to_string(victim).expect("read victim"), "precious");
    assert_eq!(mode(victim), 0o644, "the symlink's target was chmod'ed");
}

#[test]
fn out_never_writes_through_a_symlink() {
    let d = populated();
    let creds_before = d.ok(&["--json", "user", "show", "alice"]).stdout;
    for force in [false, true] {
        let (victim, link) = victim_and_link(&d, &format!("link-{force}.creds"));
        let mut user = vec!["user", "creds", "alice", "--out", arg(&link)];
        let mut admin = vec!["operator", "admin-creds", "--out", arg(&link)];
        if force {
            user.push("--force");
            admin.push("--force");
        }
        refused(&d, &[(&user, USAGE, &[arg(&link), "symbolic link"])]);
        refused(&d, &[(&admin, USAGE, &[arg(&link), "symbolic link"])]);
        assert_untouched(&victim);
    }
    // The refusal came before minting: alice's creds were not revoked.
    assert_eq!(d.ok(&["--json", "user", "show", "alice"]).stdout, creds_before);

    let conf_dir = d.dir().join("conf");
    std::fs::create_dir(&conf_dir).expect("mkdir");
    let (victim, _) = victim_and_link(&d, "conf/nats.conf");
    let conf =
        Pbn::new(["nats-conf", "--store"]).args([&d.store]).args(["--out"]).args([&conf_dir]);
    for extra in [&[][..], &["--force"][..]] {
        let out = conf.clone().args(extra).run();
        out.code(USAGE);
        assert_clear(&out, &["nats.conf", "symbolic link"]);
        assert_untouched(&victim);
    }
}

#[test]
fn init_never_writes_admin_creds_through_a_symlink() {
    let d = Deployment::init();
    // Named: refused before a store exists.
    let (victim, link) = victim_and_link(&d, "named.creds");
    let store = d.dir().join("second.redb");
    let out = Pbn::new(["init", "--store"]).args([&store, Path::new("--admin-creds"), &link]).run();
    out.code(CONFLICT);
    assert!(!store.exists(), "init made a store without its admin creds");
    assert_untouched(&victim);
    // Beside the store, even dangling: skipped with the warning, nothing created behind it.
    let sub = d.dir().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    let nowhere = d.dir().join("nowhere.creds");
    symlink(&nowhere, sub.join("admin.creds")).expect("symlink");
    let out = Pbn::new(["init", "--store"]).args([sub.join("pbn.redb")]).run();
    out.success();
    assert!(out.stderr.contains("left alone"), "{}", out.streams());
    assert!(!nowhere.exists(), "init wrote through a dangling symlink");
}

#[test]
fn an_existing_out_file_is_kept_unless_forced() {
    let d = populated();
    let file = d.dir().join("existing.creds");
    for (args, name) in [
        (vec!["user", "creds", "alice", "--out"], "user creds"),
        (vec!["operator", "admin-creds", "--out"], "admin creds"),
    ] {
        std::fs::write(&file, "old").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let with_file = [&args[..], &[arg(&file)]].concat();
        refused(&d, &[(&with_file, CONFLICT, &[arg(&file), "already exists", "--force"])]);
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "old", "{name}");
        let forced = [&with_file[..], &["--force"]].concat();
        let out = d.ok(&forced);
        assert!(out.stdout.starts_with("wrote "), "{}", out.streams());
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.contains("BEGIN NATS USER JWT"), "{name}: {text}");
        assert_eq!(mode(&file), 0o600, "{name}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d.dir())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind: {leftovers:?}");
}

#[test]
fn nats_conf_keeps_existing_files_unless_forced() {
    let d = populated();
    let dir = d.dir().join("conf");
    let conf = Pbn::new(["nats-conf", "--store"]).args([&d.store]).args(["--out"]).args([&dir]);
    conf.clone().run().success();
    let file = dir.join("nats.conf");
    std::fs::write(&file, "# edited by hand").expect("write");
    let out = conf.clone().run();
    out.code(CONFLICT);
    assert_clear(&out, &[arg(&file), "--force"]);
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "# edited by hand");
    conf.args(["--force"]).run().success();
    assert!(std::fs::read_to_string(&file).expect("read").contains("operator"));
}

/// Runs `pbn ARGS` with standard output a pipe whose reading end is already closed.
fn run_into_closed_pipe(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    // The writing end of a pipe whose only reader, a `true` process, has exited.
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().expect("run true");
    let writer = reader.stdin.take().expect("piped stdin");
    reader.wait().expect("true exits");
    let out = Command::new(pbn::binary())
        .args(args)
        .env_remove("PBN_LOG")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run pbn");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_closed_standard_output_ends_pbn_quietly() {
    let d = populated();
    let store = d.store.as_os_str();
    for args in [
        &["account", "list"][..],
        &["--json", "user", "show", "alice"],
        &["operator", "show", "--jwt"],
    ] {
        let mut full = vec!["admin".as_ref(), "--store".as_ref(), store];
        full.extend(args.iter().map(std::ffi::OsStr::new));
        let (code, stderr) = run_into_closed_pipe(&full);
        assert_eq!(code, Some(141), "pbn {args:?}: {stderr}");
        assert!(stderr.is_empty(), "pbn {args:?} said something: {stderr}");
    }
}

#[test]
fn control_characters_are_refused_in_every_free_text_field() {
    let d = populated();
    let esc = "red \u{1b}[31m text";
    let user = ["user", "add", "bob", "--account", "app", "--role", "r", "--no-password"];
    let user_desc = [&user[..], &["--description", esc]].concat();
    refused(
        &d,
        &[
            (&["account", "add", "new", "--description", esc], USAGE, &["description", "\\u{1b}"]),
            (&["account", "edit", "app", "--description", esc], USAGE, &["description"]),
            (&["role", "add", "x", "--description", esc], USAGE, &["description"]),
            (&["role", "edit", "r", "--description", "bell\u{7}"], USAGE, &["description"]),
            (&user_desc, USAGE, &["description"]),
            (&["user", "edit", "alice", "--description", esc], USAGE, &["description"]),
            (&["user", "token", "add", "alice", "--label", esc], USAGE, &["label"]),
            (
                &["account", "export", "add", "app", "--subject", "a.b", "--name", esc],
                USAGE,
                &["export name"],
            ),
        ],
    );
    let out = d.admin(&["account", "add", "new", "--description", esc]);
    assert!(!out.stderr.contains('\u{1b}'), "the error echoed a raw escape: {:?}", out.stderr);
}

#[test]
fn reserved_names_are_reserved_in_any_case() {
    let d = populated();
    refused(
        &d,
        &[
            (&["account", "add", "sys"], USAGE, &["\"sys\"", "reserved"]),
            (&["account", "add", "Sys"], USAGE, &["\"Sys\"", "reserved"]),
            (&["account", "add", "auth"], USAGE, &["\"auth\"", "reserved"]),
            (&["account", "add", "aUtH"], USAGE, &["\"aUtH\"", "reserved"]),
        ],
    );
}

#[test]
fn names_and_long_input_get_clear_short_messages() {
    let d = populated();
    let long = "x".repeat(10_000);
    let long_subject = format!("a.{}", "y".repeat(10_000));
    refused(
        &d,
        &[
            (&["account", "add", "Ünïcødé"], USAGE, &["ASCII letter"]),
            (&["account", "add", "a\u{e9}"], USAGE, &["ASCII letters"]),
            (&["account", "add", &long], USAGE, &["1 to 64", "…"]),
            (&["role", "add", "x", "--pub", &format!("{long_subject}..")], USAGE, &["…"]),
        ],
    );
    let lookups = [
        &["account", "add", &long][..],
        &["role", "add", "x", "--pub", &long_subject],
        &["account", "show", &long],
        &["user", "show", &long],
        &["role", "delete", &long],
        &["user", "creds", &long],
        &["user", "add", "bob", "--account", &long, "--role", "r", "--no-password"],
    ];
    for args in lookups {
        let out = d.admin(args);
        assert!(out.stderr.len() < 400, "{} bytes of error:\n{}", out.stderr.len(), out.stderr);
    }
}
