//! What real clients and `pbn check` see through the callout: a nats.js login with user/password
//! options, `pbn check`'s verdicts and exit codes, `$SYS.REQ.USER.INFO` of a callout user, and
//! the help texts. Each test runs a real nats-server with the callout answering from the store.

use pbn::RoleEdit;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pbn::{ListPatch, RolePatch};

use crate::support::deploy::{ClientEvents, DeployOptions, Deployment, USER_INFO_SUBJECT, WAIT};
use crate::support::pbn::{Pbn, PbnOutput};

/// Password of every test user (long enough for the policy).
const PW: &str = "correct-horse-battery-staple";

/// A role publishing and subscribing on `svc.>`, receiving replies on `_INBOX.>`, allowed to
/// answer requests, and allowed to ask `$SYS.REQ.USER.INFO`.
fn service_role() -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec!["svc.>".into(), USER_INFO_SUBJECT.into()]),
        sub_allow: ListPatch::Set(vec!["svc.>".into(), "_INBOX.>".into()]),
        allow_responses: Some(1),
        ..RolePatch::default()
    }
}

/// A running deployment: account APP, role `svc` ([`service_role`]), role `nosub` (publishes
/// `svc.>`, subscribes nothing), users `alice` (svc) and `mia` (nosub).
async fn deployment() -> Deployment {
    let mut d = Deployment::new(DeployOptions::default());
    d.add_account("APP");
    d.add_role("svc", service_role());
    d.add_role(
        "nosub",
        RolePatch { pub_allow: ListPatch::Set(vec!["svc.>".into()]), ..RolePatch::default() },
    );
    d.admin(pbn::Request::RoleEdit(RoleEdit {
        name: "nosub".into(),
        role: RolePatch { sub_deny: ListPatch::Set(vec![">".into()]), ..RolePatch::default() },
    }));
    d.add_user("alice", "APP", "svc", PW);
    d.add_user("mia", "APP", "nosub", PW);
    d.start().await;
    d
}

/// Runs `pbn check` against server 0 as `user` with `password` on stdin (off the runtime).
async fn check(d: &Deployment, user: &str, password: &str, subject: &str) -> (PbnOutput, Duration) {
    let pbn = Pbn::new(["check", "--server", &d.url(0), "--user", user, "--subject", subject])
        .args(["--password-stdin", "--timeout", "10s"])
        .stdin(format!("{password}\n"));
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || pbn.run()).await.expect("pbn ran");
    (out, started.elapsed())
}

#[tokio::test]
async fn check_succeeds_for_an_allowed_subject() {
    let d = deployment().await;
    let (out, _) = check(&d, "alice", PW, "svc.check").await;
    out.success();
    assert!(out.stdout.starts_with("ok: logged in as alice"), "{}", out.streams());
}

#[tokio::test]
async fn check_with_a_short_wrong_password_says_refused_once_without_the_policy() {
    let d = deployment().await;
    let (out, _) = check(&d, "alice", "short", "svc.check").await;
    out.code(6);
    let err = out.stderr.to_lowercase();
    assert_eq!(err.matches("refused").count(), 1, "{}", out.streams());
    assert!(err.contains("wrong password"), "{}", out.streams());
    assert!(!err.contains("too short"), "the policy judged the password: {}", out.streams());
    assert!(!err.contains("authorization violation"), "{}", out.streams());
    assert!(!out.stderr.contains("ERROR"), "a log line leaked: {}", out.streams());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.streams());
}

#[tokio::test]
async fn check_reports_a_permission_violation_as_it_arrives() {
    let d = deployment().await;
    let (out, elapsed) = check(&d, "mia", PW, "svc.check").await;
    out.code(7);
    assert!(out.stderr.contains("Permissions Violation"), "{}", out.streams());
    assert!(out.stderr.contains("svc.check"), "{}", out.streams());
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}, the timeout is 10 s");
}

/// Where `scripts/install-node-clients.sh` puts the `nats` npm package.
fn node_modules() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/node/node_modules");
    assert!(
        dir.join("nats/package.json").is_file(),
        "the npm package `nats` is missing from {}: run scripts/install-node-clients.sh",
        dir.display()
    );
    dir
}

#[tokio::test]
async fn natsjs_logs_in_with_user_and_pass_options_and_does_a_request_reply() {
    let d = deployment().await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/natsjs_request_reply.js");
    let mut cmd = Command::new("node");
    cmd.arg(&script).args([&d.url(0), "alice", "svc.greet"]).env("NODE_PATH", node_modules());
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().expect("node runs (it is installed with the toolchain)");
        child.stdin.take().expect("stdin").write_all(format!("{PW}\n").as_bytes()).expect("pw");
        child.wait_with_output().expect("node finished")
    })
    .await
    .expect("node ran");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "reply: hello alice", "{stderr}");
}

/// `user` is the name the client logged in with; `user_name` is the `name` of the JWT the server
/// authenticated the connection with first, the shared sentinel, and nats-server 2.15.1 does not
/// replace it with the `name` of the callout's user JWT (pbn sets that to the user's name). The
/// README ("Clients") documents this; the test fails if a server starts reporting otherwise.
#[tokio::test]
async fn user_info_of_a_callout_user_names_the_login_and_the_sentinel() {
    let d = deployment().await;
    let client = d.login("alice", PW, &ClientEvents::new()).await;
    let msg = tokio::time::timeout(WAIT, client.request(USER_INFO_SUBJECT, "".into()))
        .await
        .expect("user info within the deadline")
        .expect("user info");
    let info: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
    let data = &info["data"];
    assert_eq!(data["user"], "alice", "{info}");
    assert_eq!(data["user_name"], "sentinel", "{info}");
    assert_eq!(data["account"], d.account("APP").public_key.to_string(), "{info}");
}

/// `pbn ARGS --help`, asserted successful.
fn help(args: &[&str]) -> String {
    let out = Pbn::new(args.iter().copied().chain(["--help"])).run();
    out.success();
    out.stdout
}

#[test]
fn subcommand_help_shows_global_options_under_their_own_heading() {
    let text = help(&["admin", "user", "add"]);
    let own = text.find("--account").expect("own option listed");
    let global = text.find("Global options:").unwrap_or_else(|| panic!("no heading:\n{text}"));
    let admin = text.find("Admin options").unwrap_or_else(|| panic!("no heading:\n{text}"));
    assert!(own < admin && admin < global, "own options first:\n{text}");
    assert!(text[global..].contains("--log"), "{text}");
    assert!(text[admin..global].contains("--server"), "{text}");
    assert!(!text[..admin].contains("--log") && !text[..admin].contains("--creds"), "{text}");
}

#[test]
fn no_pub_and_no_sub_help_says_what_is_written() {
    let text = help(&["admin", "role", "add"]);
    assert!(!text.contains("explicitly empty allow list"), "{text}");
    assert_eq!(text.matches(r#"deny: [">"]"#).count(), 2, "{text}");
}

#[test]
fn top_level_help_documents_the_check_exit_codes() {
    let text = help(&[]);
    for line in ["6  `pbn check`: login refused", "7  `pbn check`: permission", "8  `pbn check`"] {
        assert!(text.contains(line), "missing {line:?}:\n{text}");
    }
}
