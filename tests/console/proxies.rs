//! Sign-in throttling behind a reverse proxy: `X-Forwarded-For` names the host a sign-in is
//! counted as only when the connection comes from a trusted proxy (`--http-trusted-proxy`);
//! and the list pages of roles, admins and admin tokens.

use pbn::{RawConfig, RolePatch};

use super::{html, set_password, Browser};
use crate::http_api::{Api, PW};

/// Signs in as ops from `host` (as `X-Forwarded-For` says) with `password`; the status.
async fn sign_in_from(b: &mut Browser<'_>, host: &str, password: &str) -> u16 {
    b.extra = format!("X-Forwarded-For: {host}\r\n");
    b.sign_in("ops", password).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_from_a_trusted_proxy_and_lists_page() {
    let config = RawConfig {
        http_trusted_proxies: Some(vec!["127.0.0.1/32".into()]),
        ..RawConfig::default()
    };
    let api = Api::start_with(config, true).await;
    set_password(&api, "ops");
    let mut b = Browser::new(&api);
    for i in 0..10 {
        assert_eq!(sign_in_from(&mut b, "198.51.100.1", "wrong-password").await, 401, "{i}");
    }
    assert_eq!(sign_in_from(&mut b, "198.51.100.1", PW).await, 429, "that host is throttled");
    assert_eq!(sign_in_from(&mut b, "203.0.113.7", PW).await, 303, "another host is not");

    for (page, texts) in [
        ("/roles", &["href=\"/roles\"", ">app<", "New role"][..]),
        ("/admins", &["href=\"/admins\"", ">tenant<", "account:APP", ">reader<"][..]),
        ("/admin-tokens?admin=ops", &["href=\"/admin-tokens\"", "New admin token"][..]),
        ("/roles?q=zzz", &["Roles"][..]),
    ] {
        let a = b.get(page).await;
        assert_eq!(a.status, 200, "{page}: {a:?}");
        for t in texts {
            assert!(html(&a).contains(t), "{page}: {t} missing:\n{}", html(&a));
        }
    }
    let none = b.get("/roles?q=zzz").await;
    assert!(!html(&none).contains(">app<"), "the search filters: {}", html(&none));

    for i in 0..55 {
        api.d.add_role(&format!("r{i:02}"), RolePatch::default());
    }
    let first = b.get("/roles").await;
    assert!(!html(&first).contains(">r54<"), "one page at a time: {}", html(&first));
    let next = html(&first)
        .split("rel=\"next\"")
        .next()
        .and_then(|h| h.rsplit("href=\"").next())
        .expect("a next link")
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let second = b.get(&next).await;
    assert!(html(&second).contains(">r54<") && !html(&second).contains(">app<"), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_without_trusted_proxies() {
    let api = Api::start().await;
    set_password(&api, "ops");
    let mut b = Browser::new(&api);
    for i in 0..10 {
        assert_eq!(sign_in_from(&mut b, "198.51.100.1", "wrong-password").await, 401, "{i}");
    }
    let status = sign_in_from(&mut b, "203.0.113.7", PW).await;
    assert_eq!(status, 429, "the header does not make a fresh host: the peer is counted");
}
