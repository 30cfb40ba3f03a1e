//! Self-service over the JSON API: `/api/v1/me…` ([`ME_ROUTES`]), authenticated by a bearer
//! API token of the user (`pbn admin user token add`, or one they made themselves), for users
//! whose role allows self-service. Answers are shaped as the admin API's (`{"ok": …}` or
//! `{"error": {"class", "message"}}`) with the status of their class; a throttled password
//! check answers 429.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodRouter};
use axum::Router;
use serde_json::{json, Value};

use super::me::{self, Ask, Me, MeError};
use super::Console;
use crate::admin::api::Reply;
use crate::admin::ErrorClass;
use crate::server::http::routes::{MeRoute, ME_ROUTES};
use crate::server::http::tls::Peer;

/// The self-service API's routes (full paths, under `/api/v1`).
pub(super) fn routes(mut router: Router<Console>) -> Router<Console> {
    let mut by_path: Vec<(String, MethodRouter<Console>)> = Vec::new();
    for route in ME_ROUTES {
        let filter = route.method.filter();
        let handler =
            move |state: State<Console>,
                  peer: ConnectInfo<Peer>,
                  path: Option<Path<HashMap<String, String>>>,
                  headers: HeaderMap,
                  body: Bytes| handle(route, state, peer, path, headers, body);
        let full = format!("/api/v1{}", route.path);
        match by_path.iter_mut().find(|(p, _)| *p == full) {
            Some((_, methods)) => *methods = std::mem::take(methods).on(filter, handler),
            None => by_path.push((full, on(filter, handler))),
        }
    }
    for (path, methods) in by_path {
        router = router.route(&path, methods);
    }
    router
}

/// The JSON answer of `reply` with its status (`status` overrides the class's).
fn answer(reply: &Reply, status: Option<u16>) -> Response {
    let code = status.or(reply.error_code()).unwrap_or(200);
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, reply.to_bytes()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refused(e: &MeError) -> Response {
    answer(&e.reply(), Some(e.status()))
}

/// The self-service user behind the bearer token, or the 401 answer.
async fn bearer_user(c: &Console, headers: &HeaderMap) -> Result<Me, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let found = match token {
        Some(t) => me::by_token(c, t).await.map_err(|e| refused(&MeError::Store(e)))?,
        None => None,
    };
    found.ok_or_else(|| {
        tracing::warn!("self-service API request refused: no valid user token");
        let reply = Reply::error(
            ErrorClass::Unauthenticated,
            "a bearer API token of a user whose role allows self-service is required",
        );
        let mut r = answer(&reply, None);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pbn\""));
        r
    })
}

/// The request body as an object with `route`'s defaults for fields left out.
fn body_of(route: &MeRoute, body: &[u8]) -> Result<serde_json::Map<String, Value>, Reply> {
    let mut fields = match route.body.map(|f| f()) {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(fields);
    }
    let bad = |m: String| Reply::error(ErrorClass::Usage, format!("the request body must be {m}"));
    match (route.body, serde_json::from_slice::<Value>(body)) {
        (None, _) => Err(bad("empty: this route takes no body".into())),
        (Some(_), Ok(Value::Object(m))) => {
            fields.extend(m);
            Ok(fields)
        }
        (Some(_), Ok(_)) => Err(bad("a JSON object".into())),
        (Some(_), Err(e)) => Err(bad(format!("a JSON object: {e}"))),
    }
}

/// `GET /api/v1/me`.
fn show(me: &Me) -> Response {
    let data = json!({
        "user": me.user.name.as_str(),
        "account": me.user.account.as_str(),
        "role": me.role.name.as_str(),
        "self_service_creds": me.role.self_service_creds,
    });
    let body = serde_json::to_vec(&json!({ "ok": { "kind": "me", "data": data } }));
    let mut r = (StatusCode::OK, body.unwrap_or_default()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(m: &serde_json::Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_string)
}

async fn handle(
    route: &'static MeRoute,
    State(c): State<Console>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    path: Option<Path<HashMap<String, String>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let me = match bearer_user(&c, &headers).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let fields = match body_of(route, &body) {
        Ok(f) => f,
        Err(reply) => return answer(&reply, None),
    };
    let ask = match route.op {
        "me_show" => return show(&me),
        "me_passwd" => {
            let (old, new) = (text(&fields, "old_password"), text(&fields, "password"));
            let host = c.client_ip(peer, &headers);
            let changed = me::change_password(
                &c,
                &me,
                old.unwrap_or_default(),
                new.unwrap_or_default(),
                host,
            );
            return match changed.await {
                Ok((reply, _)) => answer(&reply, None),
                Err(e) => refused(&e),
            };
        }
        "me_token_list" => Ask::Tokens,
        "me_token_add" => Ask::TokenAdd {
            label: text(&fields, "label"),
            expires_secs: fields.get("expires_secs").and_then(Value::as_u64),
        },
        "me_token_revoke" => {
            let id = path.and_then(|Path(p)| p.get("id").cloned()).unwrap_or_default();
            Ask::TokenRevoke(id)
        }
        _ => Ask::Creds {
            keep_previous: fields.get("keep_previous").and_then(Value::as_bool).unwrap_or(false),
        },
    };
    match me::ask(&c, &me, ask).await {
        Ok(reply) => answer(&reply, None),
        Err(e) => refused(&e),
    }
}
