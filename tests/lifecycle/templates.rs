//! Per-user subjects from one role: subject templates filled in at login and in creds, user
//! tags, refusals of values that are not one subject token, and tag edits on live sessions.

use std::time::Instant;

use futures::StreamExt;
use pbn::claims::{decode, parse_creds, Claims, UserClaims};
use pbn::{ErrorClass, ListPatch, Request, RoleAdd, RolePatch};

use super::{pub_allow, Live, UserConn, PW};
use crate::support::deploy::{round_trip, DeployOptions, Deployment, USER_INFO_SUBJECT, WAIT};
use crate::support::wait_until;

/// The fleet role: each device publishes under its own name and reads its own commands.
fn device_role() -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec!["devices.{{name}}.>".into(), USER_INFO_SUBJECT.into()]),
        sub_allow: ListPatch::Set(vec!["cmd.{{name}}.>".into(), "_INBOX.>".into()]),
        ..RolePatch::default()
    }
}

/// A role whose subjects come from the user's `site` tag.
fn site_role() -> RolePatch {
    RolePatch {
        pub_allow: ListPatch::Set(vec!["site.{{tag:site}}.>".into(), USER_INFO_SUBJECT.into()]),
        sub_allow: ListPatch::Set(vec!["_INBOX.>".into()]),
        ..RolePatch::default()
    }
}

/// Roles `device`, `site` and `observer` (reads `devices.>`); devices `d1`, `d2`; site users
/// `s1`, `s2`, `x1`, `x2`, `nosite`; observer `obs`; all in APP.
fn fleet(d: &Deployment) {
    d.add_role("device", device_role());
    d.add_role("site", site_role());
    d.add_role(
        "observer",
        RolePatch {
            pub_allow: ListPatch::Set(vec![USER_INFO_SUBJECT.into()]),
            sub_allow: ListPatch::Set(vec!["devices.>".into(), "_INBOX.>".into()]),
            ..RolePatch::default()
        },
    );
    for (user, role) in [
        ("d1", "device"),
        ("d2", "device"),
        ("s1", "site"),
        ("s2", "site"),
        ("x1", "site"),
        ("x2", "site"),
        ("nosite", "site"),
        ("obs", "observer"),
    ] {
        d.add_user(user, "APP", role, PW);
    }
}

async fn fleet_live() -> Live {
    let live = Live::start(DeployOptions::default(), fleet).await;
    for (user, site) in [("s1", "berlin"), ("s2", "paris"), ("x1", "x.>"), ("x2", "*")] {
        let tag = format!("site={site}");
        live.admin(&["user", "edit", user, "--tag", &tag]).await.success();
    }
    live
}

#[tokio::test(flavor = "multi_thread")]
async fn one_device_role_gives_each_device_its_own_subjects() {
    let live = fleet_live().await;
    let d1 = live.login("d1").await;
    let info = d1.user_info().await;
    assert_eq!(pub_allow(&info), [USER_INFO_SUBJECT, "devices.d1.>"]);
    let sub = info["permissions"]["subscribe"]["allow"].as_array().cloned().unwrap_or_default();
    assert!(sub.iter().any(|s| s == "cmd.d1.>"), "{sub:?}");

    // Messages of one connection arrive in order: `devices.d1.temp` seen after the refused
    // `devices.d2.temp` means the latter was dropped by the server.
    let obs = live.login("obs").await;
    let mut seen = obs.client.subscribe("devices.>").await.expect("observer subscribes");
    round_trip(&obs.client).await;
    d1.client.publish("devices.d2.temp", "spoofed".into()).await.expect("publish");
    d1.client.publish("devices.d1.temp", "21.5".into()).await.expect("publish");
    d1.client.flush().await.expect("flush");
    let msg = tokio::time::timeout(WAIT, seen.next()).await.ok().flatten().expect("a message");
    assert_eq!(msg.subject.as_str(), "devices.d1.temp");
    assert_eq!(&msg.payload[..], b"21.5");
    wait_until(WAIT, "the permissions violation", || {
        d1.events.has_server_error(r#"Permissions Violation for Publish to "devices.d2.temp""#)
    })
    .await;
    let d2 = live.login("d2").await;
    assert_eq!(pub_allow(&d2.user_info().await), [USER_INFO_SUBJECT, "devices.d2.>"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_puts_users_of_one_role_on_their_own_sites() {
    let live = fleet_live().await;
    let shown = live.admin(&["--json", "user", "show", "s1"]).await;
    assert_eq!(shown.success().json()["data"]["tags"]["site"], "berlin");
    let s1 = live.login("s1").await;
    let s2 = live.login("s2").await;
    assert_eq!(pub_allow(&s1.user_info().await), [USER_INFO_SUBJECT, "site.berlin.>"]);
    assert_eq!(pub_allow(&s2.user_info().await), [USER_INFO_SUBJECT, "site.paris.>"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_that_is_not_one_token_or_is_missing_refuses_the_login() {
    let live = fleet_live().await;
    let mut errors = live.d.auth_errors(0).await;
    for (user, value) in [("x1", "x.>"), ("x2", "*")] {
        live.assert_refused(user).await;
        let reason = errors.next_reason().await;
        assert!(reason.contains(&format!("user \"{user}\" refused")), "{reason}");
        assert!(reason.contains(&format!("{value:?}")), "{reason}");
        assert!(reason.contains("not a single subject token"), "{reason}");
    }
    live.assert_refused("nosite").await;
    let reason = errors.next_reason().await;
    assert!(reason.contains("has no tag \"site\""), "{reason}");
    // Creds are refused the same way, and nothing is minted.
    let out = live.admin(&["user", "creds", "x1"]).await;
    out.code(2);
    assert!(out.stderr.contains("not a single subject token"), "{}", out.streams());
    assert!(!out.stdout.contains("NATS USER JWT"), "{}", out.streams());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_template_is_refused_when_the_role_is_written() {
    let live = fleet_live().await;
    for bad in ["devices.{{nme}}.>", "devices.{{name}}>", "devices.{{name", "a.{{tag:a.b}}"] {
        let out = live.admin(&["role", "add", "broken", "--pub", bad]).await;
        out.code(2);
        assert!(out.stderr.contains(bad), "{bad}: {}", out.streams());
    }
    let add = RoleAdd {
        name: "broken".into(),
        role: RolePatch {
            sub_allow: ListPatch::Set(vec!["cmd.{{who}}.>".into()]),
            ..RolePatch::default()
        },
    };
    let err = pbn::execute(live.d.store(), &Request::RoleAdd(add), &pbn::Context::now())
        .expect_err("an unknown placeholder");
    assert!(matches!(err, pbn::AdminError::Model(_)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Usage);
    live.admin(&["role", "show", "broken"]).await.code(3);
}

#[tokio::test(flavor = "multi_thread")]
async fn creds_of_a_templated_role_carry_the_rendered_subjects() {
    let live = fleet_live().await;
    let path = live.creds_for("d1").await;
    let text = std::fs::read_to_string(&path).expect("creds file");
    let creds = parse_creds(&text).expect("creds");
    let jwt: Claims<UserClaims> = decode(&creds.jwt).expect("a user JWT");
    let limits = &jwt.nats.limits;
    assert!(limits.publish.allow.contains(&"devices.d1.>".to_string()), "{limits:?}");
    assert!(limits.subscribe.allow.contains(&"cmd.d1.>".to_string()), "{limits:?}");
    assert!(!format!("{limits:?}").contains("{{"), "no placeholder left: {limits:?}");
    let site = live.creds_for("s2").await;
    let jwt: Claims<UserClaims> =
        decode(&parse_creds(&std::fs::read_to_string(site).unwrap()).unwrap().jwt).unwrap();
    assert!(jwt.nats.limits.publish.allow.contains(&"site.paris.>".to_string()));
}

/// Asserts that `conn` is still connected and was never dropped.
async fn assert_untouched(conn: &UserConn) {
    conn.user_info().await;
    assert_eq!(conn.disconnects(), 0, "dropped: {:?}", conn.events.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_edit_that_changes_the_subjects_closes_the_session() {
    let live = fleet_live().await;
    let s1 = live.login("s1").await;
    let s2 = live.login("s2").await;
    // A tag no template uses changes nothing live.
    live.admin(&["user", "edit", "s1", "--tag", "team=blue"]).await.success();
    assert_untouched(&s1).await;

    let (start, connects) = (Instant::now(), s1.connects());
    live.admin(&["user", "edit", "s1", "--tag", "site=rome"]).await.success();
    s1.assert_closed_within(start, 0).await;
    s1.wait_reconnected(connects).await;
    assert_eq!(pub_allow(&s1.user_info().await), [USER_INFO_SUBJECT, "site.rome.>"]);
    assert_untouched(&s2).await;

    // Removing the tag it needs closes the session, and the reconnect is refused.
    let start = Instant::now();
    live.admin(&["user", "edit", "s2", "--untag", "site"]).await.success();
    s2.assert_closed_within(start, 0).await;
    live.assert_refused("s2").await;
}
