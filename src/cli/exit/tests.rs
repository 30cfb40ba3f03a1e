use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::admin::ErrorClass;

/// The exit code of `err` as the binary reports it, behind a context line as the commands add.
fn code(err: impl StdError + Send + Sync + 'static) -> u8 {
    Failure::from(anyhow::Error::new(err).context("cannot do it")).code()
}

fn locked() -> StoreError {
    StoreError::Locked { path: PathBuf::from("pbn.redb"), holder: None }
}

#[test]
fn each_class_has_its_documented_code() {
    let table = [
        (ExitClass::Other, 1),
        (ExitClass::Usage, 2),
        (ExitClass::NotFound, 3),
        (ExitClass::Conflict, 4),
        (ExitClass::Locked, 5),
        (ExitClass::LoginRefused, 6),
        (ExitClass::PermissionDenied, 7),
        (ExitClass::TimedOut, 8),
        (ExitClass::LogConflict, 15),
        (ExitClass::Unavailable, 16),
        (ExitClass::ReplicaRemoved, 17),
        (ExitClass::OutputClosed, 141),
    ];
    for (class, expected) in table {
        assert_eq!(class.code(), expected, "{class:?}");
        let documented = format!("\n  {expected}  ");
        let closed = format!("\n{expected}  ");
        let two_digits = format!("\n {expected}  ");
        assert!(
            super::super::args::EXIT_CODES.contains(&documented)
                || super::super::args::EXIT_CODES.contains(&closed)
                || super::super::args::EXIT_CODES.contains(&two_digits),
            "exit code {expected} is not in the --help table"
        );
    }
}

#[test]
fn admin_classes_keep_their_codes() {
    let table = [
        (ErrorClass::Usage, 2),
        (ErrorClass::NotFound, 3),
        (ErrorClass::Conflict, 4),
        (ErrorClass::Locked, 5),
        (ErrorClass::StoreKey, 9),
        (ErrorClass::Other, 1),
        (ErrorClass::LogConflict, 15),
        (ErrorClass::Unavailable, 16),
    ];
    for (class, expected) in table {
        assert_eq!(ExitClass::from(class).code(), expected, "{class:?}");
    }
}

#[test]
fn admin_errors_exit_with_their_class() {
    let not_found = AdminError::NotFound { what: "account", name: "A".into() };
    assert_eq!(code(not_found), 3);
    assert_eq!(code(AdminError::Conflict { what: "account", name: "A".into() }), 4);
    assert_eq!(code(AdminError::Protected("SYS".into(), "deleted")), 4);
    assert_eq!(code(AdminError::Invalid("bad".into())), 2);
    assert_eq!(code(AdminError::Model(ModelError::NameLength(String::new()))), 2);
    assert_eq!(code(AdminError::Store(locked())), 5);
    assert_eq!(code(AdminError::Auth(AuthError::EmptyPassword)), 1);
}

#[test]
fn store_errors_exit_with_their_class() {
    assert_eq!(code(locked()), 5);
    assert_eq!(code(StoreError::FileNotFound("pbn.redb".into())), 3);
    assert_eq!(code(StoreError::AlreadyExists("pbn.redb".into())), 4);
    assert_eq!(code(StoreError::Invalid(ModelError::SubjectEmpty)), 2);
    assert_eq!(code(StoreError::TaskFailed("panicked".into())), 1);
}

#[test]
fn store_key_errors_exit_9() {
    assert_eq!(code(StoreError::KeyRequired("pbn.redb".into())), 9);
    assert_eq!(code(StoreError::WrongKey("pbn.redb".into())), 9);
    assert_eq!(code(StoreError::NotSealed("pbn.redb".into())), 9);
    assert_eq!(code(crate::seal::SealError::KeyText), 9);
    let tampered = StoreError::Unseal {
        table: "accounts".into(),
        key: "A".into(),
        source: crate::seal::SealError::Open { slot: "accounts/A/identity".into() },
    };
    assert_eq!(code(tampered), 1);
}

#[test]
fn remote_errors_exit_with_their_class() {
    let refused = RemoteError::Refused { class: ErrorClass::NotFound, message: "no".into() };
    assert_eq!(code(refused), 3);
    let creds = RemoteError::Creds { path: "admin.creds".into(), reason: "missing".into() };
    assert_eq!(code(creds), 2);
    assert_eq!(code(RemoteError::NoService("nats://x".into())), 1);
    let too_large = ApiError::TooLarge { size: 2, max: 1 };
    assert_eq!(code(RemoteError::TooLarge(too_large.clone())), 2);
    assert_eq!(code(too_large), 2);
}

#[test]
fn input_errors_exit_2() {
    let parse = ConfigError::Parse { path: "pbn.toml".into(), message: "bad".into() };
    assert_eq!(code(parse), 2);
    let read = ConfigError::Read { path: "pbn.toml".into(), source: std::io::Error::other("x") };
    assert_eq!(code(read), 2);
    assert_eq!(code(PasswordError::Mismatch), 2);
    assert_eq!(code(PasswordError::NotGiven), 2);
    assert_eq!(code(NatsConfError::ClusterTooSmall(1)), 2);
    assert_eq!(code(ModelError::SubjectEmpty), 2);
    assert_eq!(code(KeyError::InvalidPublicKey("x".into())), 2);
}

#[test]
fn file_errors_exit_with_their_class() {
    assert_eq!(code(FsError::Exists("creds".into())), 4);
    assert_eq!(code(FsError::Symlink("creds".into())), 2);
    assert_eq!(code(FsError::NotAFile("dir".into())), 2);
    let kept = |source| FsError::Kept { path: "a".into(), kept: "b".into(), source };
    assert_eq!(code(kept(Box::new(FsError::Exists("a".into())))), 4);
    let io = || FsError::Io { path: "a".into(), source: std::io::Error::other("disk") };
    assert_eq!(code(kept(Box::new(io()))), 1);
    assert_eq!(code(NatsConfError::File(FsError::Exists("a.conf".into()))), 4);
    let nats_io = NatsConfError::Io { path: "a".into(), source: std::io::Error::other("x") };
    assert_eq!(code(nats_io), 1);
}

#[test]
fn serve_errors_take_the_class_of_the_store_error_inside() {
    assert_eq!(code(ServerError::Store(locked())), 5);
    let missing = StoreError::FileNotFound("pbn.redb".into());
    assert_eq!(code(ServerError::Callout(CalloutError::Store(missing))), 3);
    let credentials =
        ConnectionError::Credentials { name: "pbn".into(), source: Box::new(locked()) };
    assert_eq!(code(ServerError::Connection(credentials)), 5);
    assert_eq!(code(ServerError::Task("panicked".into())), 1);
    assert_eq!(code(ServerError::NotInitialised("no operator".into())), 1);
    assert_eq!(code(PublisherError::Store(locked())), 5);
    assert_eq!(code(CalloutError::NoCredentials), 1);
}

#[test]
fn check_errors_exit_6_7_8() {
    assert_eq!(code(CheckError::LoginRefused { user: "u".into() }), 6);
    let denied = CheckError::PermissionDenied { user: "u".into(), reason: "no".into() };
    assert_eq!(code(denied), 7);
    let timed_out = CheckError::TimedOut { what: "reply", after: Duration::from_secs(1) };
    assert_eq!(code(timed_out), 8);
    let unreachable = CheckError::Unreachable { server: "nats://x".into(), reason: "no".into() };
    assert_eq!(code(unreachable), 1);
    assert_eq!(code(CheckError::Unexpected { subject: "s".into() }), 1);
}

#[test]
fn errors_of_no_pbn_type_exit_1() {
    assert_eq!(Failure::from(anyhow::anyhow!("cannot start the async runtime")).code(), 1);
    assert_eq!(code(std::io::Error::other("disk full")), 1);
    let failure = Failure::from(anyhow::Error::new(std::io::Error::other("x")).context("y"));
    assert_eq!(failure.class(), ExitClass::Other);
    assert_eq!(failure.message().as_deref(), Some("y: x"));
}

#[test]
fn a_closed_output_exits_141_without_a_message() {
    assert_eq!(code(OutputClosed), 141);
    let failure = Failure::from(anyhow::Error::new(OutputClosed).context("cannot print"));
    assert_eq!(failure.class(), ExitClass::OutputClosed);
    assert_eq!(failure.message(), None);
}

#[test]
fn the_outermost_pbn_error_decides() {
    // A bad seed inside a creds file pbn cannot read: the creds file is the failure (exit 1),
    // not a bad key on the command line (exit 2).
    let seed = || KeyError::InvalidSeed { prefix: "SX".into() };
    assert_eq!(code(seed()), 2);
    assert_eq!(code(ClaimsError::CredsSeed(seed())), 1);
}

/// The error types declared in `src/`: the type after each `#[derive(..)]` naming
/// `thiserror::Error` (or `Error` in a file that imports `thiserror::Error`).
fn declared_error_types(dir: &Path, found: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            declared_error_types(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        let imports_error = text.contains("use thiserror::Error");
        let mut pending = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("#[derive(") {
                let derives: Vec<&str> = line
                    .trim_start_matches("#[derive(")
                    .trim_end_matches(")]")
                    .split(',')
                    .map(str::trim)
                    .collect();
                pending = derives.contains(&"thiserror::Error")
                    || (imports_error && derives.contains(&"Error"));
                continue;
            }
            if !pending || line.starts_with("#[") || line.starts_with("///") {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "enum" || *w == "struct") {
                let name = words.get(i + 1).expect("type name");
                let name = name.split(['{', '(', ';', '<']).next().expect("name");
                found.push((name.to_string(), path.clone()));
            }
            pending = false;
        }
    }
}

#[test]
fn every_error_type_of_the_crate_has_an_exit_class() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut declared = Vec::new();
    declared_error_types(&src, &mut declared);
    assert!(declared.len() >= 20, "found only {declared:?}");
    let registered: Vec<&str> =
        REGISTERED.iter().map(|t| t.rsplit("::").next().expect("name").trim()).collect();
    let missing: Vec<_> =
        declared.iter().filter(|(name, _)| !registered.contains(&name.as_str())).collect();
    assert!(
        missing.is_empty(),
        "error types without an exit class (add them to registry!): {missing:?}"
    );
}

#[test]
fn replica_errors_exit_with_their_class() {
    let unavailable = ReplicaError::Unavailable("no quorum; the change is not applied".into());
    assert_eq!(code(unavailable), 16);
    assert_eq!(code(ReplicaError::NoAnswer { subject: "pbn.log".into() }), 16);
    assert_eq!(code(ReplicaError::Conflicts(5)), 15);
    assert_eq!(code(ReplicaError::Removed { name: "r1".into() }), 17);
}
