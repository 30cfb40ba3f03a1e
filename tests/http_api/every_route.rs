//! Every route of the HTTP API, table-driven: for each one a request that succeeds (200), and
//! its refusals: no token (401), a body the route cannot take (400), a record that is not
//! there (404, for routes with path parameters) and, for changes, a read-only admin (403).
//!
//! [`cases`] holds one request per route, in an order where each finds what it needs (made by
//! an earlier one, or captured from its answer); a test checks that its routes are exactly
//! those of the OpenAPI document, which the server builds from its route table.

use std::collections::{BTreeSet, HashMap};

use async_nats::ConnectOptions;
use pbn::{AccountEdit, Request};
use serde_json::{json, Value};

use super::{Api, PW};
use crate::support::deploy::ClientEvents;

/// The password `PUT …/password` sets.
const NEW_PW: &str = "another-long-password-1";

/// One route and a request that succeeds on it.
struct Case {
    /// Its method.
    method: &'static str,
    /// Its path below `/api/v1` as the route table writes it (`{name}` for a parameter).
    route: &'static str,
    /// The request's path below `/api/v1`, with query; `{var}` is a value captured earlier.
    path: &'static str,
    /// The JSON body.
    body: Option<Value>,
    /// Captures `var` from the answer, at this JSON pointer, for later paths.
    capture: Option<(&'static str, &'static str)>,
    /// What the servers need first.
    before: Before,
}

/// What a request needs besides records made over the API.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Before {
    /// Nothing.
    Nothing,
    /// A live NATS session of this user (whose password is [`NEW_PW`]).
    LogIn(&'static str),
    /// A push that stays in the outbox: the server is stopped, then account OTHER changed
    /// on the store (so this comes last).
    QueuePush,
}

fn case(
    method: &'static str,
    route: &'static str,
    path: &'static str,
    body: Option<Value>,
) -> Case {
    Case { method, route, path, body, capture: None, before: Before::Nothing }
}

/// A route whose path has no parameters or query: the request's path is the route's.
fn plain(method: &'static str, route: &'static str, body: Option<Value>) -> Case {
    case(method, route, route, body)
}

fn after(before: Before, mut c: Case) -> Case {
    c.before = before;
    c
}

fn capturing(mut c: Case, var: &'static str, pointer: &'static str) -> Case {
    c.capture = Some((var, pointer));
    c
}

/// A bulk file's records as the API takes them.
fn records(lines: &[&str]) -> Value {
    let file = format!("{{\"version\":1}}\n{}\n", lines.join("\n"));
    let parsed = pbn::bulk::parse::parse(&file).expect("a valid bulk file");
    serde_json::to_value(parsed).expect("records are JSON")
}

/// One request per route, in an order where each finds what it needs made by the ones before.
fn cases() -> Vec<Case> {
    [operator_and_accounts(), roles_users_and_sessions(), admins(), replicas_idps_bulk_outbox()]
        .into_iter()
        .flatten()
        .collect()
}

fn operator_and_accounts() -> Vec<Case> {
    vec![
        plain("GET", "/operator", None),
        plain("POST", "/operator/admin-creds", None),
        plain("POST", "/operator/nats-conf", None),
        plain("GET", "/accounts", None),
        plain("POST", "/accounts", Some(json!({"name": "EVR"}))),
        case("GET", "/accounts/{name}", "/accounts/EVR", None),
        case("PATCH", "/accounts/{name}", "/accounts/EVR", Some(json!({"description": "d"}))),
        case("POST", "/accounts/{name}/rotate-keys", "/accounts/EVR/rotate-keys", None),
        capturing(
            case("POST", "/accounts/{name}/signing-keys", "/accounts/EVR/signing-keys", None),
            "key",
            "/ok/data/signing_keys/1",
        ),
        case(
            "DELETE",
            "/accounts/{name}/signing-keys/{key}",
            "/accounts/EVR/signing-keys/{key}",
            None,
        ),
        case(
            "POST",
            "/accounts/{account}/exports",
            "/accounts/EVR/exports",
            Some(json!({"subject": "evr.svc", "kind": "service"})),
        ),
        case(
            "POST",
            "/accounts/{account}/imports",
            "/accounts/APP/imports",
            Some(json!({"subject": "evr.svc", "from": "EVR", "kind": "service"})),
        ),
        case(
            "DELETE",
            "/accounts/{account}/imports",
            "/accounts/APP/imports?subject=evr.svc",
            None,
        ),
        case(
            "DELETE",
            "/accounts/{account}/exports",
            "/accounts/EVR/exports?subject=evr.svc",
            None,
        ),
    ]
}

fn roles_users_and_sessions() -> Vec<Case> {
    let pw = json!({ "password": NEW_PW });
    vec![
        plain("GET", "/roles", None),
        plain("POST", "/roles", Some(json!({"name": "evr", "role": {}}))),
        case("GET", "/roles/{name}", "/roles/evr", None),
        case(
            "PATCH",
            "/roles/{name}",
            "/roles/evr",
            Some(json!({"role": {"pub_allow": {"set": ["evr.>"]}}})),
        ),
        case("GET", "/users", "/users?account=EVR", None),
        plain(
            "POST",
            "/users",
            Some(json!({"name": "evan", "account": "EVR", "role": "evr", "password": PW})),
        ),
        case("GET", "/users/{name}", "/users/evan", None),
        case("PATCH", "/users/{name}", "/users/evan", Some(json!({"description": "d"}))),
        case("PUT", "/users/{name}/password", "/users/evan/password", Some(pw)),
        case("POST", "/users/{name}/creds", "/users/evan/creds", Some(json!({}))),
        case("GET", "/users/{name}/tokens", "/users/evan/tokens", None),
        capturing(
            case("POST", "/users/{name}/tokens", "/users/evan/tokens", Some(json!({}))),
            "token",
            "/ok/data/id",
        ),
        case("DELETE", "/users/{name}/tokens/{id}", "/users/evan/tokens/{token}", None),
        case("GET", "/sessions", "/sessions?account=EVR", None),
        after(
            Before::LogIn("evan"),
            plain("POST", "/sessions/kick", Some(json!({"user": "evan"}))),
        ),
        case("DELETE", "/users/{name}", "/users/evan", None),
        case("DELETE", "/roles/{name}", "/roles/evr", None),
    ]
}

/// Admins, then the account their scope named (deleted once they are gone).
fn admins() -> Vec<Case> {
    let pw = json!({ "password": NEW_PW });
    vec![
        plain("GET", "/admins", None),
        plain("POST", "/admins", Some(json!({"name": "eva", "scope": "account:EVR"}))),
        case("GET", "/admins/{name}", "/admins/eva", None),
        case("GET", "/admins/{name}/tokens", "/admins/eva/tokens", None),
        capturing(
            case("POST", "/admins/{name}/tokens", "/admins/eva/tokens", Some(json!({}))),
            "admin_token",
            "/ok/data/id",
        ),
        case("DELETE", "/admins/{name}/tokens/{id}", "/admins/eva/tokens/{admin_token}", None),
        case("PUT", "/admins/{name}/password", "/admins/eva/password", Some(pw)),
        case("POST", "/admins/{name}/revoke", "/admins/eva/revoke", None),
        case("DELETE", "/admins/{name}", "/admins/eva", None),
        case("DELETE", "/accounts/{name}", "/accounts/EVR", None),
        case("GET", "/audit", "/audit?admin=ops&since_ms=0", None),
    ]
}

/// The outbox retry comes last: it stops the server first.
fn replicas_idps_bulk_outbox() -> Vec<Case> {
    vec![
        plain("GET", "/replicas", None),
        plain("POST", "/replicas", Some(json!({"name": "r1"}))),
        case("GET", "/replicas/{name}", "/replicas/r1", None),
        case("DELETE", "/replicas/{name}", "/replicas/r1", None),
        plain("GET", "/idps", None),
        plain(
            "POST",
            "/idps",
            Some(json!({"name": "kc", "issuer": "https://idp.example.com", "audience": "pbn",
                "jwks_url": "https://idp.example.com/jwks"})),
        ),
        case("GET", "/idps/{name}", "/idps/kc", None),
        case("PATCH", "/idps/{name}", "/idps/kc", Some(json!({"audience": "pbn2"}))),
        case(
            "POST",
            "/idps/{name}/mappings",
            "/idps/kc/mappings",
            Some(json!({"claim": "groups", "value": "dev", "account": "APP", "role": "app"})),
        ),
        case(
            "POST",
            "/idps/{name}/unmap",
            "/idps/kc/unmap",
            Some(json!({"claim": "groups", "value": "dev"})),
        ),
        case("DELETE", "/idps/{name}", "/idps/kc", None),
        plain(
            "POST",
            "/bulk/check",
            Some(json!({"records": records(&[r#"{"account":{"name":"BULK"}}"#])})),
        ),
        plain(
            "POST",
            "/bulk/import",
            Some(json!({"records": records(&[r#"{"account":{"name":"BULK"}}"#])})),
        ),
        case("GET", "/bulk/export", "/bulk/export?section=accounts", None),
        plain("GET", "/outbox", None),
        after(Before::QueuePush, case("POST", "/outbox/{id}/retry", "/outbox/OTHER/retry", None)),
    ]
}

/// `path` with every `{var}` replaced by its captured value.
fn fill(path: &str, captured: &HashMap<&str, String>) -> String {
    let mut out = path.to_string();
    for (var, value) in captured {
        out = out.replace(&format!("{{{var}}}"), value);
    }
    assert!(!out.contains('{'), "{path}: a value is not captured yet");
    format!("/api/v1{out}")
}

/// The request's `path` (filled) with every path parameter of its route naming a record that
/// does not exist; `None` for routes without parameters.
fn missing(c: &Case, path: &str) -> Option<String> {
    let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
    let route = format!("/api/v1{}", c.route);
    let parts: Vec<&str> = route
        .split('/')
        .zip(path.split('/'))
        .map(|(r, p)| if r.starts_with('{') { "NOBODY" } else { p })
        .collect();
    let gone = parts.join("/") + &query.map(|q| format!("?{q}")).unwrap_or_default();
    c.route.contains('{').then_some(gone)
}

/// Whether the route changes something (a read-only admin is refused it).
fn changes(c: &Case) -> bool {
    c.method != "GET" && c.route != "/bulk/check"
}

/// Makes what `before` says; the NATS clients are kept in `clients`.
async fn prepare(api: &mut Api, before: Before, clients: &mut Vec<async_nats::Client>) {
    match before {
        Before::Nothing => {}
        Before::LogIn(user) => {
            let events = ClientEvents::new();
            let opts = ConnectOptions::with_user_and_password(user.into(), NEW_PW.into());
            clients.push(api.d.connect(0, opts, &events).await.expect("the user logs in"));
        }
        Before::QueuePush => {
            api.d.server_mut(0).stop().await;
            let description = Some("queued".to_string());
            let edit = AccountEdit { name: "OTHER".into(), description, ..Default::default() };
            api.d.admin(Request::AccountEdit(edit));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cases_cover_exactly_the_routes_of_the_openapi_document() {
    let api = Api::start().await;
    let doc = api.call("GET", "/api/v1/openapi.json", None, None).await.body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("an item") {
            // A user's own routes (`/me…`, user tokens only) are proven in `me.rs`.
            if op["security"].to_string().contains("user_bearer") {
                continue;
            }
            let route = path.strip_prefix("/api/v1").expect("under /api/v1").to_string();
            documented.insert((method.to_uppercase(), route));
        }
    }
    let listed: BTreeSet<(String, String)> =
        cases().iter().map(|c| (c.method.to_string(), c.route.to_string())).collect();
    assert_eq!(listed.len(), cases().len(), "a route is listed twice");
    assert_eq!(listed, documented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_a_valid_request_and_refuses_bad_ones() {
    let mut api = Api::start().await;
    let ops = api.token("ops");
    let reader = api.token("reader");
    let mut captured: HashMap<&str, String> = HashMap::new();
    let mut clients = Vec::new();
    for c in cases() {
        prepare(&mut api, c.before, &mut clients).await;
        let what = format!("{} {}", c.method, c.route);
        let path = fill(c.path, &captured);
        let body = c.body.clone();

        let none = api.call(c.method, &path, None, body.clone()).await;
        assert_eq!(none.status, 401, "{what} without a token: {none:?}");
        let bad = match &c.body {
            Some(_) => json!([1]),
            None => json!({"unexpected": true}),
        };
        let bad = api.call(c.method, &path, Some(&ops), Some(bad)).await;
        assert_eq!(bad.status, 400, "{what} with a body it cannot take: {bad:?}");
        assert_eq!(bad.body["error"]["class"], "usage", "{what}: {bad:?}");
        if let Some(gone) = missing(&c, &path) {
            let a = api.call(c.method, &gone, Some(&ops), body.clone()).await;
            assert_eq!(a.status, 404, "{what} on a record that is not there: {a:?}");
        }
        if changes(&c) {
            let a = api.call(c.method, &path, Some(&reader), body.clone()).await;
            assert_eq!(a.status, 403, "{what} by a read-only admin: {a:?}");
        }

        let ok = api.call(c.method, &path, Some(&ops), body).await;
        assert_eq!(ok.status, 200, "{what}: {ok:?}");
        assert!(ok.body["ok"].is_object(), "{what}: {ok:?}");
        if let Some((var, pointer)) = c.capture {
            let value = ok.body.pointer(pointer).and_then(Value::as_str);
            let value = value.unwrap_or_else(|| panic!("{what}: no {pointer} in {ok:?}"));
            captured.insert(var, value.to_string());
        }
    }
}
