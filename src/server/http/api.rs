//! The JSON API under `/api/v1`: every admin command over HTTP ([`super::routes`]), run by
//! the same path as the NATS admin API (`admin_api::run_request`: scope checks, audit trail,
//! idempotency keys, pushes waited for, sessions kicked).
//!
//! Authentication is a bearer API token of a named admin (`pbn admin admin token add`), or the
//! console's session cookie (a change made with the cookie must also carry the session's CSRF
//! token in [`CSRF_HEADER`], which a cross-site form cannot set); the request then runs as that
//! admin, within its scope and read-only flag. The answer is the
//! admin API's reply (`{"ok": …}` or `{"error": {"class", "message"}}`) with the HTTP status of
//! its class (`Reply::error_code`, the one table of exit class → status); warnings about
//! effects not confirmed are in the `Pbn-Warning` header.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodRouter};
use axum::Router;
use serde_json::Value;
use tracing::warn;

use super::routes::{self, Method, Route, ROUTES};
use super::Health;
use crate::admin::api::{Reply, IDEMPOTENCY_KEY_HEADER, WARNING_HEADER};
use crate::admin::api_tokens::{self, TokenRefused};
use crate::admin::ErrorClass;
use crate::console::session::{self, Session};
use crate::model::AdminRecord;
use crate::server::admin_api;

/// The prefix of every API path.
pub(crate) const PREFIX: &str = "/api/v1";
/// The header that carries the console session's CSRF token on a change made with the
/// session cookie instead of a bearer token.
pub const CSRF_HEADER: &str = "x-pbn-csrf";

/// The API's router (paths below [`PREFIX`]), with `/openapi.json`.
pub(super) fn router() -> Router<Health> {
    let mut by_path: Vec<(&'static str, MethodRouter<Health>)> = Vec::new();
    for route in ROUTES {
        let filter = route.method.filter();
        let handler =
            move |state: State<Health>,
                  path: Option<Path<HashMap<String, String>>>,
                  uri: Uri,
                  headers: HeaderMap,
                  body: Bytes| { handle(route, state, path, uri, headers, body) };
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).on(filter, handler),
            None => by_path.push((route.path, on(filter, handler))),
        }
    }
    let mut router =
        Router::new().route("/openapi.json", axum::routing::get(super::openapi::serve));
    for (path, methods) in by_path {
        router = router.route(path, methods);
    }
    router
}

async fn handle(
    route: &'static Route,
    State(health): State<Health>,
    path: Option<Path<HashMap<String, String>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let admin = match request_admin(&health, &headers, route.method).await {
        Ok(admin) => admin,
        Err(response) => return response,
    };
    let path: Vec<(String, String)> = match path {
        Some(Path(p)) => routes::path_params(route.path)
            .filter_map(|n| p.get(n).map(|v| (n.to_string(), v.clone())))
            .collect(),
        None => Vec::new(),
    };
    let query = parse_query(uri.query().unwrap_or(""));
    let mut req = match routes::build(route, &path, &query, &body) {
        Ok(req) => req,
        Err(e) => return reply(&Reply::error(ErrorClass::Usage, e.to_string()), &[]),
    };
    if let Err(reply_) = hash_password(&mut req).await {
        return reply(&reply_, &[]);
    }
    let key = headers.get(IDEMPOTENCY_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let payload = serde_json::to_vec(&req).unwrap_or_default();
    run(&health, &payload, key, admin).await
}

/// Runs an admin request payload as `admin` and answers it.
pub(super) async fn run(
    health: &Health,
    payload: &[u8],
    key: Option<String>,
    admin: AdminRecord,
) -> Response {
    let client = health.system.borrow().clone();
    let (answer, warnings) =
        admin_api::run_request(client.as_ref(), &health.admin, payload, key, admin).await;
    reply(&answer, &warnings)
}

/// The admin behind the request: its bearer token when it has an `Authorization` header, else
/// its console session cookie; or the 401 (or 500) answer.
async fn request_admin(
    health: &Health,
    headers: &HeaderMap,
    method: Method,
) -> Result<AdminRecord, Response> {
    let session = session::cookie(headers, session::COOKIE)
        .and_then(|id| health.console_sessions.get(&id).map(|s| (id, s)));
    match session {
        Some((id, s)) if !headers.contains_key(header::AUTHORIZATION) => {
            session_admin(health, headers, method, (&id, s)).await
        }
        _ => bearer_admin(health, headers).await,
    }
}

/// The (still active) admin of console session `id`. A change must carry the session's CSRF
/// token in [`CSRF_HEADER`]: the cookie alone would let any page the admin visits make it.
async fn session_admin(
    health: &Health,
    headers: &HeaderMap,
    method: Method,
    (id, s): (&str, Session),
) -> Result<AdminRecord, Response> {
    let refuse = |why: &str| {
        warn!(reason = why, "HTTP API request with a session cookie refused");
        reply(&Reply::error(ErrorClass::Unauthenticated, why.to_string()), &[])
    };
    if method != Method::Get {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !session::same_token(sent, &s.csrf) {
            return Err(refuse(
                "a change made with the session cookie needs its x-pbn-csrf header",
            ));
        }
    }
    let (name, key, now) = (s.admin.clone(), s.key.clone(), crate::clock::unix_now());
    let found = health.store.read_async(move |tx| api_tokens::active_admin(tx, &name, &key, now));
    match found.await {
        Ok(Some(admin)) => Ok(admin),
        Ok(None) => {
            health.console_sessions.end(id);
            Err(refuse("the console session has ended: sign in again"))
        }
        Err(e) => Err(reply(&Reply::error(ErrorClass::Other, e.to_string()), &[])),
    }
}

/// The admin behind the request's bearer token, or the 401 (or 500) answer.
async fn bearer_admin(health: &Health, headers: &HeaderMap) -> Result<AdminRecord, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let found = match token {
        None => Err(TokenRefused::Missing),
        Some(token) => {
            let now = crate::clock::unix_now();
            let read =
                health.store.read_async(move |tx| Ok(api_tokens::authenticate(tx, &token, now)));
            match read.await {
                Ok(result) => result,
                Err(e) => Err(TokenRefused::Store(e)),
            }
        }
    };
    found.map_err(|e| {
        let class = match e {
            TokenRefused::Store(_) => ErrorClass::Other,
            _ => ErrorClass::Unauthenticated,
        };
        warn!(reason = %e, "HTTP API request refused");
        let mut response = reply(&Reply::error(class, e.to_string()), &[]);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pbn\""));
        response
    })
}

/// Replaces a `password` field by its argon2id hash (`password_hash`): requests carry only
/// hashes, as `pbn admin` sends them. Hashing runs on the blocking pool.
async fn hash_password(req: &mut serde_json::Map<String, Value>) -> Result<(), Reply> {
    let Some(password) = req.remove("password") else { return Ok(()) };
    let Value::String(password) = password else {
        return Err(Reply::error(ErrorClass::Usage, "field password must be a string"));
    };
    let secret = crate::auth::Secret::new(password);
    let hashed = tokio::task::spawn_blocking(move || crate::auth::hash_password(&secret)).await;
    match hashed {
        Ok(Ok(phc)) => {
            req.insert("password_hash".into(), Value::String(phc));
            Ok(())
        }
        Ok(Err(e)) => Err(Reply::error(ErrorClass::Usage, e.to_string())),
        Err(e) => Err(Reply::error(ErrorClass::Other, format!("cannot hash the password: {e}"))),
    }
}

/// The HTTP answer of a reply: its status by error class, the JSON body, the warnings.
pub(super) fn reply(answer: &Reply, warnings: &[String]) -> Response {
    let status =
        answer.error_code().and_then(|c| StatusCode::from_u16(c).ok()).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.to_bytes()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Answers may hold creds or tokens: never cached.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let line: String = warnings.join("; ").chars().filter(|c| !c.is_control()).collect();
    if let Ok(v) = HeaderValue::from_str(&line).map_err(drop).and_then(|v| match line.is_empty() {
        true => Err(()),
        false => Ok(v),
    }) {
        h.insert(WARNING_HEADER, v);
    }
    response
}

/// The pairs of a query string, percent-decoded (`+` is a space).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_split_and_decoded() {
        let q = parse_query("subject=a.b.%3E&account=APP+X&flag&bad=%zz&end=%4");
        let pairs: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("subject", "a.b.>"),
                ("account", "APP X"),
                ("flag", ""),
                ("bad", "%zz"),
                ("end", "%4")
            ]
        );
    }
}
