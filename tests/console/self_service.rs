//! Self-service in the console: a user whose role allows it signs in with their NATS
//! password, sees only their own page, changes their password (their session survives it, an
//! admin's reset ends it), makes API tokens and downloads creds; wrong passwords are
//! throttled. The dashboard counts the last hour's logins and refusals.

use async_nats::ConnectOptions;
use pbn::{PasswordParams, Request, RoleEdit, RolePatch, Secret, UserPasswd};

use super::{csrf_of, html, set_password, Browser};
use crate::http_api::{Api, PW};
use crate::support::deploy::{ClientEvents, WAIT};
use crate::support::Deadline;

/// A new password for alice.
const NEW_PW: &str = "a-new-password-for-alice";

impl Browser<'_> {
    /// Signs in at the self-service page as `name`; the answer to the post.
    async fn sign_in_user(&mut self, name: &str, password: &str) -> crate::http_api::Answer {
        let form = self.get("/me/signin").await;
        assert_eq!(form.status, 200, "{form:?}");
        let csrf = csrf_of(&form);
        self.post("/me/signin", &format!("name={name}&password={password}&csrf={csrf}")).await
    }
}

fn self_service(api: &Api, creds: bool) {
    let role = RolePatch {
        self_service: Some(true),
        self_service_creds: Some(creds),
        ..RolePatch::default()
    };
    api.d.admin(Request::RoleEdit(RoleEdit { name: "app".into(), role }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_service_user_manages_their_own_account_and_nothing_else() {
    let api = Api::start().await;
    let mut b = Browser::new(&api);
    assert_eq!(b.sign_in_user("alice", PW).await.status, 401, "off until the role allows it");
    self_service(&api, true);
    let signed = b.sign_in_user("alice", PW).await;
    assert_eq!(signed.status, 303, "{signed:?}");
    assert!(signed.headers.contains("set-cookie: pbn_me="), "{signed:?}");
    let home = b.get("/me").await;
    assert_eq!(home.status, 200, "{home:?}");
    for text in [">alice<", ">APP<", "Change password", "New API token", "Download new creds"] {
        assert!(html(&home).contains(text), "{text} missing:\n{}", html(&home));
    }
    let csrf = csrf_of(&home);
    for page in ["/", "/users", "/users/alice", "/accounts/APP", "/roles", "/audit"] {
        assert_eq!(b.get(page).await.status, 403, "{page}");
    }
    let del = b.post("/do/user_delete", &format!("csrf={csrf}&name=olga")).await;
    assert_eq!(del.status, 403, "{del:?}");

    assert_eq!(b.post("/me/tokens", "label=laptop").await.status, 403, "no CSRF token");
    let token = b.post("/me/tokens", &format!("csrf={csrf}&label=laptop")).await;
    assert_eq!(token.status, 200, "{token:?}");
    assert!(html(&token).contains("pbn_"), "shown once: {}", html(&token));
    let listed = b.get("/me").await;
    assert!(html(&listed).contains(">laptop<"), "{}", html(&listed));
    let creds = b.post("/me/creds", &format!("csrf={csrf}&keep_previous=true")).await;
    assert_eq!(creds.status, 200, "{creds:?}");
    assert!(creds.headers.contains("attachment; filename=\"alice.creds\""), "{creds:?}");
    assert!(html(&creds).contains("BEGIN NATS USER JWT"), "{creds:?}");

    let wrong = format!("csrf={csrf}&old_password=not-it-at-all&password={NEW_PW}");
    assert_eq!(b.post("/me/password", &wrong).await.status, 400, "the old password is checked");
    let short = format!("csrf={csrf}&old_password={PW}&password=short");
    assert_eq!(b.post("/me/password", &short).await.status, 400);
    let change = format!("csrf={csrf}&old_password={PW}&password={NEW_PW}");
    let changed = b.post("/me/password", &change).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(b.get("/me").await.status, 200, "the session that changed it lives on");
    let events = ClientEvents::new();
    let old = ConnectOptions::with_user_and_password("alice".into(), PW.into());
    assert!(api.d.connect(0, old, &events).await.is_err(), "the old NATS password is gone");
    let client = api.d.login("alice", NEW_PW, &events).await;
    crate::support::deploy::round_trip(&client).await;

    let hash = pbn::hash_password_with(&Secret::new(PW), &PasswordParams::for_tests()).unwrap();
    let reset = UserPasswd { name: "alice".into(), password_hash: hash };
    api.d.admin(Request::UserPasswd(reset));
    assert_eq!(b.get("/me").await.status, 303, "an admin's reset ends the session");

    self_service(&api, false);
    assert_eq!(b.sign_in_user("alice", PW).await.status, 303);
    let home = b.get("/me").await;
    assert!(!html(&home).contains("Download new creds"), "{}", html(&home));
    let csrf = csrf_of(&home);
    assert_eq!(b.post("/me/creds", &format!("csrf={csrf}")).await.status, 403);

    let mut other = Browser::new(&api);
    for i in 0..10 {
        assert_eq!(other.sign_in_user("olga", "wrong-password").await.status, 401, "{i}");
    }
    assert_eq!(other.sign_in_user("olga", PW).await.status, 429, "throttled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_counts_the_last_hours_logins_and_refusals() {
    let api = Api::start().await;
    set_password(&api, "ops");
    let events = ClientEvents::new();
    let client = api.d.login("olga", PW, &events).await;
    crate::support::deploy::round_trip(&client).await;
    let wrong = ConnectOptions::with_user_and_password("olga".into(), "nope-nope".into());
    assert!(api.d.connect(0, wrong, &events).await.is_err());
    let mut b = Browser::new(&api);
    assert_eq!(b.sign_in("ops", PW).await.status, 303);
    let card = |page: &str, label: &str| -> u64 {
        let end = page.find(&format!("</b>{label}")).unwrap_or_else(|| panic!("{label}: {page}"));
        page[..end].rsplit("<b>").next().and_then(|n| n.parse().ok()).expect("a number")
    };
    let deadline = Deadline::after(WAIT, "the dashboard to count both logins");
    loop {
        let dash = b.get("/").await;
        let page = html(&dash).to_string();
        let (logins, refused) =
            (card(&page, "logins, last hour"), card(&page, "refused, last hour"));
        if logins >= 2 && refused >= 1 {
            assert!(logins >= card(&page, "logins, last minute"));
            break;
        }
        deadline.tick().await;
    }
}
