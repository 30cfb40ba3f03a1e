//! Changes through the console's forms: records made there log in to nats-server, a
//! deactivation kicks, creds and configs download, forms without the CSRF token are refused.

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use futures::StreamExt;

use super::{csrf_of, html, set_password, Browser};
use crate::http_api::{Api, PW};
use crate::support::deploy::{ClientEvents, WAIT};
use crate::support::Deadline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_made_in_the_console_log_in_and_deactivating_kicks() {
    let api = Api::start().await;
    set_password(&api, "ops");
    let mut b = Browser::new(&api);
    assert_eq!(b.sign_in("ops", PW).await.status, 303);
    let form = b.get("/do/account_add").await;
    assert_eq!(form.status, 200);
    let csrf = csrf_of(&form);
    let bad = b.post("/do/account_add", &format!("csrf={csrf}&name=bad+name")).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(html(&bad).contains("bad name"), "the CLI's message names the value: {}", html(&bad));
    let made = b.post("/do/account_add", &format!("csrf={csrf}&name=WEB")).await;
    assert_eq!(made.status, 200, "{made:?}");
    let role = format!(
        "csrf={csrf}&name=web&role.pub_allow=web.%3E%0A%24SYS.REQ.USER.INFO&role.sub_allow=web.%3E%0A_INBOX.%3E"
    );
    assert_eq!(b.post("/do/role_add", &role).await.status, 200);
    let user = format!("csrf={csrf}&name=wendy&account=WEB&role=web&password={PW}");
    let made = b.post("/do/user_add", &user).await;
    assert_eq!(made.status, 200, "{made:?}");
    let no_csrf = b.post("/do/user_add", "name=eve&account=WEB&role=web").await;
    assert_eq!(no_csrf.status, 403, "{no_csrf:?}");

    let events = ClientEvents::new();
    let opts = ConnectOptions::with_user_and_password("wendy".into(), PW.into())
        .max_reconnects(Some(1))
        .reconnect_delay_callback(|_| Duration::from_millis(100));
    let client = api.d.connect(0, opts, &events).await.expect("wendy logs in");
    let mut sub = client.subscribe("web.echo").await.expect("subscribe");
    crate::support::deploy::round_trip(&client).await;
    client.publish("web.echo", "hello".into()).await.expect("publish");
    let got = tokio::time::timeout(WAIT, sub.next()).await.expect("in time").expect("a message");
    assert_eq!(got.payload.as_ref(), b"hello");

    let page = b.get("/users/wendy").await;
    assert!(html(&page).contains("/do/user_edit?name=wendy&amp;active=false"), "{}", html(&page));
    let confirm = b.get("/do/user_edit?name=wendy&active=false").await;
    assert!(html(&confirm).contains("Confirm"), "{}", html(&confirm));
    let off = b.post("/do/user_edit", &format!("csrf={csrf}&name=wendy&active=false")).await;
    assert_eq!(off.status, 200, "{off:?}");
    let deadline = Deadline::after(WAIT, "wendy's connection to close");
    while !events.all().iter().any(|e| matches!(e, Event::Disconnected)) {
        deadline.tick().await;
    }

    let creds = b.post("/do/user_creds", &format!("csrf={csrf}&name=alice")).await;
    assert_eq!(creds.status, 200, "{creds:?}");
    assert!(creds.headers.contains("attachment; filename=\"alice.creds\""), "{creds:?}");
    assert!(html(&creds).contains("BEGIN NATS USER JWT"), "{creds:?}");
    let conf = b.get("/download/nats.conf").await;
    assert!(conf.status == 200 && html(&conf).contains("operator"), "{conf:?}");
    let jwt = b.get("/download/operator.jwt").await;
    assert!(jwt.status == 200 && html(&jwt).starts_with("eyJ"), "{jwt:?}");
}
