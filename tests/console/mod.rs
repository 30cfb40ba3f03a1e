//! The web console of the real service over HTTP, as a browser without JavaScript uses it:
//! sign-in with a password set by `pbn admin admin passwd`, cookies, CSRF tokens, pages read
//! as the signed-in admin within its scope, throttled wrong passwords.

mod api_cookie;
mod proxies;
mod self_service;
mod tls;
mod writes;

use pbn::{AdminPasswd, PasswordParams, Request, Secret, UserAdd};

use crate::http_api::{raw, Answer, Api, PW};

/// A browser's cookie jar of one: the console's cookies as `Cookie:` sends them.
struct Browser<'a> {
    api: &'a Api,
    cookies: Vec<(String, String)>,
    /// Header lines sent with every request (each ending in CRLF).
    extra: String,
}

impl<'a> Browser<'a> {
    fn new(api: &'a Api) -> Self {
        Browser { api, cookies: Vec::new(), extra: String::new() }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> Answer {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let cookie = match cookie.is_empty() {
            true => String::new(),
            false => format!("Cookie: {}\r\n", cookie.join("; ")),
        };
        let body = form.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: {}\r\n{cookie}{}Content-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.api.addr,
            self.extra,
            body.len()
        );
        let answer = raw(&self.api.addr, request.as_bytes()).await.expect("an answer");
        for line in answer.head.lines() {
            let Some(v) = line.strip_prefix("set-cookie: ").or(line.strip_prefix("Set-Cookie: "))
            else {
                continue;
            };
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != k);
            if !val.is_empty() {
                self.cookies.push((k.to_string(), val.to_string()));
            }
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &str) -> Answer {
        self.send("POST", path, Some(form)).await
    }

    /// Signs in as `name` with `password` through the form; the answer to the post.
    async fn sign_in(&mut self, name: &str, password: &str) -> Answer {
        let form = self.get("/signin").await;
        assert_eq!(form.status, 200, "{form:?}");
        let csrf = csrf_of(&form);
        self.post("/signin", &format!("name={name}&password={password}&csrf={csrf}")).await
    }
}

/// The CSRF token of the first form of a page.
fn csrf_of(page: &Answer) -> String {
    let html = page.body.as_str().expect("an HTML page");
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("a value").to_string()
}

fn html(a: &Answer) -> &str {
    a.body.as_str().unwrap_or_default()
}

/// Sets admin `name`'s console password on the store (cheap argon2 parameters).
fn set_password(api: &Api, name: &str) {
    let hash = pbn::hash_password_with(&Secret::new(PW), &PasswordParams::for_tests()).unwrap();
    api.d.admin(Request::AdminPasswd(AdminPasswd { name: name.into(), password_hash: hash }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_reads_paged_users_and_signs_out() {
    let api = Api::start().await;
    for i in 0..60 {
        let add = UserAdd {
            name: format!("p{i:03}"),
            account: "APP".into(),
            role: "app".into(),
            ..UserAdd::default()
        };
        api.d.admin(Request::UserAdd(add));
    }
    api.wait_admin_ready().await;
    let env = [("PBN_ADMIN_PASSWORD", PW)];
    api.admin_cli_env(&["admin", "passwd", "ops"], &env).await.success();
    let short = api.admin_cli_env(&["admin", "passwd", "ops"], &[("PBN_ADMIN_PASSWORD", "short")]);
    let short = short.await;
    assert!(short.code.is_some_and(|c| c != 0), "the password policy applies");
    assert!(short.stderr.contains("too short"), "{}", short.stderr);

    let mut b = Browser::new(&api);
    assert_eq!(b.get("/").await.status, 303, "signed out: sent to sign in");
    let signed = b.sign_in("ops", PW).await;
    assert_eq!(signed.status, 303, "{signed:?}");
    let cookie = signed
        .headers
        .lines()
        .find(|l| l.starts_with("set-cookie: pbn_session="))
        .expect("a session cookie");
    assert!(cookie.contains("httponly") && cookie.contains("samesite=strict"), "{cookie}");

    let dash = b.get("/").await;
    assert_eq!(dash.status, 200);
    for text in ["Dashboard", "live sessions", "href=\"/accounts/APP\"", "OTHER"] {
        assert!(html(&dash).contains(text), "{text} missing:\n{}", html(&dash));
    }
    let first = b.get("/users?account=APP").await;
    assert!(
        html(&first).contains(">p048<") && !html(&first).contains(">p049<"),
        "{}",
        html(&first)
    );
    let next = html(&first)
        .split("rel=\"next\"")
        .next()
        .and_then(|h| h.rsplit("href=\"").next())
        .expect("a next link");
    let next = next.split('"').next().unwrap().replace("&amp;", "&");
    let second = b.get(&next).await;
    assert!(
        html(&second).contains(">p049<") && !html(&second).contains(">p048<"),
        "{}",
        html(&second)
    );
    let found = b.get("/users?q=ali").await;
    assert!(
        html(&found).contains(">alice<") && !html(&found).contains(">olga<"),
        "{}",
        html(&found)
    );
    let alice = b.get("/users/alice").await;
    assert!(alice.status == 200 && html(&alice).contains("APP"), "{alice:?}");
    assert_eq!(b.get("/audit?admin=ops").await.status, 200);

    let csrf = csrf_of(&dash);
    assert_eq!(b.post("/signout", "csrf=wrong").await.status, 403, "a wrong CSRF token");
    assert_eq!(b.post("/signout", "").await.status, 403, "no CSRF token");
    assert_eq!(b.post("/signout", &format!("csrf={csrf}")).await.status, 303);
    assert_eq!(b.get("/").await.status, 303, "signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_gets_403_on_another_accounts_pages() {
    let api = Api::start().await;
    set_password(&api, "tenant");
    let mut b = Browser::new(&api);
    assert_eq!(b.sign_in("tenant", PW).await.status, 303);
    assert_eq!(b.get("/accounts/APP").await.status, 200);
    for page in ["/accounts/OTHER", "/users/olga", "/users?account=OTHER"] {
        let a = b.get(page).await;
        assert_eq!(a.status, 403, "{page}: {a:?}");
    }
    let users = b.get("/users").await;
    assert!(html(&users).contains(">alice<") && !html(&users).contains(">olga<"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_without_its_csrf_token_is_refused_and_wrong_passwords_are_throttled() {
    let api = Api::start().await;
    set_password(&api, "ops");
    let mut b = Browser::new(&api);
    let _ = b.get("/signin").await;
    let forged = b.post("/signin", &format!("name=ops&password={PW}")).await;
    assert_eq!(forged.status, 403, "{forged:?}");
    let mut other = Browser::new(&api);
    let forged = other.post("/signin", &format!("name=ops&password={PW}&csrf=guess")).await;
    assert_eq!(forged.status, 403, "no sign-in cookie: {forged:?}");

    for i in 0..10 {
        let wrong = b.sign_in("ops", "not-the-password").await;
        assert_eq!(wrong.status, 401, "attempt {i}: {wrong:?}");
    }
    let throttled = b.sign_in("ops", PW).await;
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert!(!b.cookies.iter().any(|(k, _)| k == "pbn_session"), "no session");
}
