//! The API with the console's session cookie instead of a bearer token: reads work with the
//! cookie alone; a change needs the session's CSRF token in `x-pbn-csrf` as well, and a
//! signed-out session is refused.

use super::{csrf_of, set_password, Browser};
use crate::http_api::{Api, PW};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_the_console_cookie_and_changes_need_its_csrf_header() {
    let api = Api::start().await;
    set_password(&api, "ops");
    let mut b = Browser::new(&api);
    assert_eq!(b.sign_in("ops", PW).await.status, 303);
    let accounts = b.get("/api/v1/accounts").await;
    assert_eq!(accounts.status, 200, "{accounts:?}");
    assert!(accounts.body.to_string().contains("\"APP\""), "{accounts:?}");

    let add = r#"{"name": "COOKIE"}"#;
    let bare = b.post("/api/v1/accounts", add).await;
    assert_eq!(bare.status, 401, "a change with the cookie alone: {bare:?}");
    b.extra = "x-pbn-csrf: not-the-token\r\n".into();
    assert_eq!(b.post("/api/v1/accounts", add).await.status, 401, "a wrong token");
    assert_eq!(b.get("/api/v1/accounts/COOKIE").await.status, 404, "nothing was made");

    b.extra = String::new();
    let csrf = csrf_of(&b.get("/do/account_add").await);
    b.extra = format!("x-pbn-csrf: {csrf}\r\n");
    let made = b.post("/api/v1/accounts", add).await;
    assert_eq!(made.status, 200, "{made:?}");
    assert_eq!(b.get("/api/v1/accounts/COOKIE").await.status, 200);

    // Signed out, the cookie is worth nothing.
    let kept = b.cookies.clone();
    b.extra = String::new();
    assert_eq!(b.post("/signout", &format!("csrf={csrf}")).await.status, 303);
    b.cookies = kept;
    let stale = b.get("/api/v1/accounts").await;
    assert_eq!(stale.status, 401, "{stale:?}");
}
