//! Self-service over the API (`/api/v1/me…`), with a user's own API token: off until the
//! role allows it (`pbn admin role edit --self-service`), nothing but the user's own records,
//! creds only with `--self-service-creds`, a password change that NATS logins follow, and
//! the changes in the audit trail as the user's.

use async_nats::ConnectOptions;
use pbn::{Request, Response, TokenAdd};
use serde_json::json;

use super::{Api, PW};
use crate::support::deploy::ClientEvents;

const NEW_PW: &str = "another-password-of-alice";

fn user_token(api: &Api, name: &str) -> String {
    let add = TokenAdd { name: name.into(), label: None, expires_secs: None };
    match api.d.admin(Request::TokenAdd(add)) {
        Response::Token { token, .. } => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_serves_themselves_over_the_api_once_their_role_allows_it() {
    let api = Api::start().await;
    api.wait_admin_ready().await;
    let token = user_token(&api, "alice");
    let t = Some(token.as_str());
    assert_eq!(api.call("GET", "/api/v1/me", t, None).await.status, 401, "off by default");
    let events = ClientEvents::new();
    let live = api.d.login("alice", PW, &events).await;

    let on = api.admin_cli(&["--json", "role", "edit", "app", "--self-service"]).await;
    let on = on.success().json();
    let role = &on["data"];
    assert_eq!((&role["self_service"], &role["self_service_creds"]), (&json!(true), &json!(false)));
    let me = api.call("GET", "/api/v1/me", t, None).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["ok"]["data"]["user"], "alice");
    assert_eq!(api.call("GET", "/api/v1/users", t, None).await.status, 401, "not an admin");
    let creds = api.call("POST", "/api/v1/me/creds", t, None).await;
    assert_eq!(creds.status, 403, "{creds:?}");

    let with_creds = api.admin_cli(&["--json", "role", "edit", "app", "--self-service-creds"]);
    assert_eq!(with_creds.await.success().json()["data"]["self_service_creds"], true);
    // The edits returned after any kick they caused: none, the flags change no JWT.
    crate::support::deploy::round_trip(&live).await;
    let disconnected =
        events.all().into_iter().any(|e| matches!(e, async_nats::Event::Disconnected));
    assert!(!disconnected, "turning self-service on closed no session");
    let creds = api.call("POST", "/api/v1/me/creds", t, Some(json!({"keep_previous": true})));
    let creds = creds.await;
    assert_eq!(creds.status, 200, "{creds:?}");
    assert!(creds.body["ok"]["data"]["creds"].as_str().unwrap().contains("BEGIN NATS USER JWT"));

    let made = api.call("POST", "/api/v1/me/tokens", t, Some(json!({"label": "ci"}))).await;
    assert_eq!(made.status, 200, "{made:?}");
    let (second, id) = (&made.body["ok"]["data"]["token"], &made.body["ok"]["data"]["id"]);
    let second = second.as_str().expect("the token").to_string();
    let listed = api.call("GET", "/api/v1/me/tokens", t, None).await;
    assert_eq!(listed.body["ok"]["data"].as_array().map(Vec::len), Some(2), "{listed:?}");
    let path = format!("/api/v1/me/tokens/{}", id.as_str().unwrap());
    assert_eq!(api.call("DELETE", &path, t, None).await.status, 200);
    assert_eq!(api.call("GET", "/api/v1/me", Some(&second), None).await.status, 401, "revoked");

    let change = |old: &str, new: &str| json!({"old_password": old, "password": new});
    let bad = api.call("PUT", "/api/v1/me/password", t, Some(change("wrong-one", NEW_PW))).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    let ok = api.call("PUT", "/api/v1/me/password", t, Some(change(PW, NEW_PW))).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let old = ConnectOptions::with_user_and_password("alice".into(), PW.into());
    assert!(api.d.connect(0, old, &events).await.is_err(), "NATS follows the change");
    let client = api.d.login("alice", NEW_PW, &events).await;
    crate::support::deploy::round_trip(&client).await;

    let ops = api.token("ops");
    let audit = api.call("GET", "/api/v1/audit", Some(&ops), None).await;
    let entries = audit.body["ok"]["data"].as_array().cloned().unwrap_or_default();
    let by_alice: Vec<&str> = entries
        .iter()
        .filter(|e| e["admin"] == "user alice")
        .filter_map(|e| e["verb"].as_str())
        .collect();
    assert!(by_alice.contains(&"user_passwd") && by_alice.contains(&"token_add"), "{entries:?}");

    let doc = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.body["paths"]["/api/v1/me/password"]["put"]["operationId"], "me_passwd");
}
