//! Records made over HTTP work on the servers; deactivation kicks; error classes map to HTTP
//! statuses; the OpenAPI document lists what the server answers.

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use futures::StreamExt;
use serde_json::{json, Value};

use super::{Api, PW};
use crate::support::deploy::{ClientEvents, WAIT};
use crate::support::Deadline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_made_over_http_log_in_and_a_deactivated_user_is_kicked() {
    let api = Api::start().await;
    let token = api.token("ops");
    let t = Some(token.as_str());
    let made = api.call("POST", "/api/v1/accounts", t, Some(json!({"name": "WEB"}))).await;
    assert_eq!(made.status, 200, "{made:?}");
    assert!(!made.headers.contains("pbn-warning"), "the push was confirmed: {made:?}");
    let role = json!({"name": "web", "role": {
        "pub_allow": {"set": ["web.>", "$SYS.REQ.USER.INFO"]},
        "sub_allow": {"set": ["web.>", "_INBOX.>"]}}});
    assert_eq!(api.call("POST", "/api/v1/roles", t, Some(role)).await.status, 200);
    let user = json!({"name": "wendy", "account": "WEB", "role": "web", "password": PW});
    let made = api.call("POST", "/api/v1/users", t, Some(user)).await;
    assert_eq!(made.status, 200, "{made:?}");
    let shown = api.call("GET", "/api/v1/users/wendy", t, None).await;
    assert_eq!((shown.status, &shown.body["ok"]["data"]["account"]), (200, &json!("WEB")));

    let events = ClientEvents::new();
    let opts = ConnectOptions::with_user_and_password("wendy".into(), PW.into())
        .max_reconnects(Some(1))
        .reconnect_delay_callback(|_| Duration::from_millis(100));
    let client = api.d.connect(0, opts, &events).await.expect("wendy logs in");
    let mut sub = client.subscribe("web.echo").await.expect("subscribe");
    client.flush().await.expect("flush");
    crate::support::deploy::round_trip(&client).await;
    client.publish("web.echo", "hello".into()).await.expect("publish");
    let got = tokio::time::timeout(WAIT, sub.next()).await.expect("a message in time");
    assert_eq!(got.expect("a message").payload.as_ref(), b"hello");

    let off = api.call("PATCH", "/api/v1/users/wendy", t, Some(json!({"active": false}))).await;
    assert_eq!(off.status, 200, "{off:?}");
    let deadline = Deadline::after(WAIT, "wendy's connection to close");
    while !events.all().iter().any(|e| matches!(e, Event::Disconnected)) {
        deadline.tick().await;
    }
    let again = ConnectOptions::with_user_and_password("wendy".into(), PW.into());
    assert!(api.d.connect(0, again, &ClientEvents::new()).await.is_err(), "wendy is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes_answer_with_their_http_status() {
    let api = Api::start().await;
    let token = api.token("ops");
    let t = Some(token.as_str());
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("GET", "/api/v1/users/nobody", None, 404, "not_found"),
        ("DELETE", "/api/v1/roles/nobody", None, 404, "not_found"),
        ("POST", "/api/v1/accounts", Some(json!({"name": "APP"})), 409, "conflict"),
        ("DELETE", "/api/v1/roles/app", None, 409, "conflict"),
        ("POST", "/api/v1/accounts", Some(json!({"name": "bad name"})), 400, "usage"),
        ("POST", "/api/v1/accounts", Some(json!([1])), 400, "usage"),
        ("PATCH", "/api/v1/users/alice", Some(json!({"name": "bob"})), 400, "usage"),
        ("GET", "/api/v1/audit?since_ms=soon", None, 400, "usage"),
        ("POST", "/api/v1/users", Some(json!({"name": "u", "account": "APP"})), 404, "not_found"),
    ];
    for (method, path, body, status, class) in cases {
        let a = api.call(method, path, t, body).await;
        assert_eq!((a.status, a.body["error"]["class"].as_str()), (status, Some(class)), "{a:?}");
        assert!(a.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{a:?}");
    }
    let unknown = api.call("GET", "/api/v1/nothing-here", t, None).await;
    assert_eq!(unknown.status, 404);
    // A failed change changed nothing: APP still has its users.
    let users = api.call("GET", "/api/v1/users?account=APP", t, None).await;
    assert_eq!(users.body["ok"]["data"].as_array().map(Vec::len), Some(1), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_paths_the_server_answers() {
    let api = Api::start().await;
    let doc = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.body;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    for p in ["/api/v1/accounts", "/api/v1/users/{name}", "/api/v1/admins/{name}/tokens"] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    let token = api.token("ops");
    for (path, item) in paths {
        let Some(op) = item.get("get") else { continue };
        // Path parameters need records; self-service takes a user's token, not an admin's.
        if path.contains('{') || op["security"][0].get("user_bearer").is_some() {
            continue;
        }
        let a = api.call("GET", path, Some(&token), None).await;
        assert_eq!(a.status, 200, "{path} ({}): {a:?}", op["operationId"]);
        assert!(a.body["ok"].is_object(), "{path}: {a:?}");
    }
}
