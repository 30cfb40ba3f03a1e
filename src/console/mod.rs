//! The web console at `/`: server-rendered pages ([`pages`]) for admins who sign in with a
//! password (`pbn admin admin passwd NAME`). Every read runs as the signed-in admin through
//! the admin API's path (scope, read-only flag and audit trail as for `pbn admin --server`),
//! except the user list, which pages through the store directly (scoped the same way) so it
//! stays fast with 100,000 users.
//!
//! Sign-in is throttled like NATS logins ([`crate::auth::LoginThrottle`]: per admin and host,
//! per host, per admin) and verifies argon2id off the async threads, at most
//! [`VERIFY_IN_FLIGHT`] at once. Every form carries a CSRF token: the session's, or for the
//! sign-in form one in its own `SameSite=Strict` cookie; a form without it is refused (403).
//!
//! End users whose role allows it sign in at `/me/signin` for self-service ([`me`]); their
//! sessions are kept apart from admins', and every admin page answers them 403.
//!
//! Behind a reverse proxy, the host a sign-in is throttled by is the one `X-Forwarded-For`
//! names, but only when the connection comes from a configured trusted proxy
//! (`--http-trusted-proxy`); otherwise the header is ignored, so a client cannot pick the
//! host it is counted as.

/// The signed-in admin of a page handler's request, or the handler returns the sign-in answer.
macro_rules! signed_in {
    ($c:expr, $headers:expr) => {
        match signed_in(&$c, &$headers).await {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}

/// A request's answer for a page handler, or the handler returns the error page.
macro_rules! ask {
    ($c:expr, $s:expr, $admin:expr, $req:expr) => {
        match ask(&$c, &$s, $admin, $req).await {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

mod forms;
mod lists;
pub mod me;
mod me_api;
mod me_pages;
pub mod pages;
pub mod session;
mod views;

use std::sync::Arc;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;
use tokio::sync::Semaphore;

use crate::admin::api::Reply;
use crate::admin::api_tokens;
use crate::admin::Request;
use crate::auth::LoginThrottle;
use crate::model::AdminRecord;
use crate::server::http::tls::Peer;
use crate::server::http::Health;
use session::{Session, Sessions};

/// Password verifications (argon2id, ~19 MiB each) run at once for sign-ins: admins sign in
/// rarely, and two keeps a burst of wrong passwords from taking the machine's memory or the
/// blocking pool from logins.
pub const VERIFY_IN_FLIGHT: usize = 2;

/// What the console's handlers share.
#[derive(Clone)]
pub struct Console {
    health: Health,
    sessions: Arc<Sessions>,
    /// Self-service users' sessions (cookie [`me_pages::USER_COOKIE`]).
    users: Arc<Sessions>,
    throttle: Arc<LoginThrottle>,
    verify: Arc<Semaphore>,
    /// Served over TLS: cookies get `Secure`.
    secure: bool,
}

/// The console's routes, with `state` for the service's parts.
pub fn router(health: Health, secure: bool) -> Router {
    let console = Console {
        sessions: health.console_sessions.clone(),
        health,
        users: Arc::default(),
        throttle: Arc::default(),
        verify: Arc::new(Semaphore::new(VERIFY_IN_FLIGHT)),
        secure,
    };
    let router = Router::new()
        .route("/", get(views::dashboard))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/accounts", get(views::accounts))
        .route("/accounts/{name}", get(views::account))
        .route("/users", get(views::users))
        .route("/users/{name}", get(views::user))
        .route("/roles", get(lists::roles))
        .route("/admins", get(lists::admins))
        .route("/admin-tokens", get(lists::admin_tokens))
        .route("/me", get(me_pages::home))
        .route("/me/signin", get(me_pages::signin_form).post(me_pages::signin))
        .route("/me/signout", post(me_pages::signout))
        .route("/me/password", post(me_pages::password))
        .route("/me/tokens", post(me_pages::token_add))
        .route("/me/tokens/revoke", post(me_pages::token_revoke))
        .route("/me/creds", post(me_pages::creds))
        .route("/audit", get(views::audit))
        .route("/do/{op}", get(forms::form).post(forms::submit))
        .route("/download/operator.jwt", get(views::operator_jwt))
        .route("/download/nats.conf", get(views::nats_conf))
        .route("/assets/console.css", get(css));
    me_api::routes(router).with_state(console)
}

impl Console {
    /// The host a sign-in from `peer` is counted as: the peer itself, unless it is a trusted
    /// proxy; then the last address of `X-Forwarded-For` that is not a trusted proxy (the one
    /// the nearest trusted proxy saw), or the peer when the header names none.
    fn client_ip(&self, peer: std::net::SocketAddr, headers: &HeaderMap) -> std::net::IpAddr {
        forwarded_client(peer.ip(), headers, &self.health.trusted_proxies)
    }
}

/// See [`Console::client_ip`].
fn forwarded_client(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    // From the nearest hop outwards; a hop that is not an address ends the walk (counted as
    // the last trusted proxy: never as a host the client chose).
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.1.1.1".parse().unwrap());
        let proxy: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let stranger: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let client: std::net::IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(forwarded_client(proxy, &h, &trusted), client, "nearest untrusted hop");
        assert_eq!(forwarded_client(stranger, &h, &trusted), stranger, "header ignored");
        assert_eq!(forwarded_client(proxy, &h, &[]), proxy, "no trusted proxies: ignored");
        h.insert("x-forwarded-for", "198.51.100.7, junk".parse().unwrap());
        assert_eq!(forwarded_client(proxy, &h, &trusted), proxy, "garbage ends the walk");
        assert_eq!(forwarded_client(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], pages::CSS).into_response()
}

/// An HTML answer with the console's security headers.
fn html(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    r
}

/// The signed-in admin of the request: its live session and its (still active) record, or
/// the answer sending it to the sign-in page.
async fn signed_in(c: &Console, headers: &HeaderMap) -> Result<(Session, AdminRecord), Response> {
    let to_signin = || Redirect::to("/signin").into_response();
    let admin_session =
        session::cookie(headers, session::COOKIE).filter(|id| c.sessions.get(id).is_some());
    let user_session =
        session::cookie(headers, me_pages::USER_COOKIE).filter(|id| c.users.get(id).is_some());
    if admin_session.is_none() && user_session.is_some() {
        let body = pages::page(
            "Refused",
            None,
            pages::error("this page is for admins; self-service users have their account page"),
        );
        return Err(html(StatusCode::FORBIDDEN, body));
    }
    let id = session::cookie(headers, session::COOKIE).ok_or_else(to_signin)?;
    let s = c.sessions.get(&id).ok_or_else(to_signin)?;
    let (name, key, now) = (s.admin.clone(), s.key.clone(), crate::clock::unix_now());
    let admin = c
        .health
        .store
        .read_async(move |tx| api_tokens::active_admin(tx, &name, &key, now))
        .await
        .map_err(|e| html(StatusCode::INTERNAL_SERVER_ERROR, pages::error(&e.to_string())))?;
    match admin {
        Some(a) => Ok((s, a)),
        None => {
            c.sessions.end(&id);
            Err(to_signin())
        }
    }
}

/// Runs `req` (an admin request's JSON) as `admin` through the admin API's one request path,
/// kicks going out on the system connection; the reply and its warnings.
async fn run(
    c: &Console,
    admin: AdminRecord,
    req: &impl serde::Serialize,
) -> (crate::admin::api::Reply, Vec<String>) {
    let payload = serde_json::to_vec(req).unwrap_or_default();
    let client = c.health.system.borrow().clone();
    crate::server::admin_api::run_request(client.as_ref(), &c.health.admin, &payload, None, admin)
        .await
}

/// Runs `req` as `admin`, as the admin API does; the response's JSON, or the error page.
async fn ask(
    c: &Console,
    s: &Session,
    admin: AdminRecord,
    req: Request,
) -> Result<serde_json::Value, Response> {
    let (reply, _) = run(c, admin, &req).await;
    let code = reply.error_code();
    match reply {
        Reply::Ok(resp) => Ok(serde_json::to_value(&*resp).unwrap_or_default()),
        Reply::Error(e) => {
            let status = code.and_then(|c| StatusCode::from_u16(c).ok());
            let body = pages::page("Refused", Some((&s.admin, &s.csrf)), pages::error(&e.message));
            Err(html(status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body))
        }
    }
}

async fn signin_form(State(c): State<Console>) -> Response {
    let token = session::random_token();
    let mut r = html(StatusCode::OK, pages::signin(&token, None));
    let cookie = session::set_cookie(session::SIGNIN_COOKIE, &token, session::LIFETIME, c.secure);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
struct SignIn {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn signin(
    State(c): State<Console>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let expected = session::cookie(&headers, session::SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(&expected, &form.csrf) {
        let body =
            pages::page("Refused", None, pages::error("the form's CSRF token is missing or wrong"));
        return html(StatusCode::FORBIDDEN, body);
    }
    let host = c.client_ip(peer, &headers);
    let attempt = match c.throttle.begin_waiting(Some(&form.name), Some(host)).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(admin = %form.name, %host, "console sign-in throttled");
            return html(
                StatusCode::TOO_MANY_REQUESTS,
                pages::signin(&form.csrf, Some(&e.to_string())),
            );
        }
    };
    match verify(&c, &form.name, form.password).await {
        Some(admin) => {
            attempt.succeeded();
            let id = c.sessions.start(admin.name.as_str(), admin.public_key.as_str());
            tracing::info!(admin = %admin.name.as_str(), "console sign-in");
            let mut r = Redirect::to("/").into_response();
            let cookie = session::set_cookie(session::COOKIE, &id, session::LIFETIME, c.secure);
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        None => {
            attempt.failed(std::time::Instant::now());
            tracing::warn!(admin = %form.name, %host, "console sign-in refused");
            let body = pages::signin(&form.csrf, Some("wrong admin name or password"));
            html(StatusCode::UNAUTHORIZED, body)
        }
    }
}

/// The active admin named `name` whose console password is `password`.
async fn verify(c: &Console, name: &str, password: String) -> Option<AdminRecord> {
    let owned = name.to_string();
    let now = crate::clock::unix_now();
    let found =
        c.health.store.read_async(move |tx| api_tokens::console_admin(tx, &owned, now)).await;
    let (admin, phc) = found.ok().flatten()?;
    let _permit = c.verify.acquire().await.ok()?;
    let ok = tokio::task::spawn_blocking(move || {
        let secret = crate::auth::Secret::new(password);
        let mut memory = crate::auth::VerifyMemory::new(crate::auth::default_verify_blocks());
        crate::auth::verify_password_in(&secret, &phc, &mut memory)
    })
    .await;
    matches!(ok, Ok(Ok(true))).then_some(admin)
}

/// A form that carries only the CSRF token.
#[derive(serde::Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let (s, _) = match signed_in(&c, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !session::same_token(&s.csrf, &form.csrf) {
        let body =
            pages::page("Refused", None, pages::error("the form's CSRF token is missing or wrong"));
        return html(StatusCode::FORBIDDEN, body);
    }
    if let Some(id) = session::cookie(&headers, session::COOKIE) {
        c.sessions.end(&id);
    }
    let mut r = Redirect::to("/signin").into_response();
    let gone = session::set_cookie(session::COOKIE, "", std::time::Duration::ZERO, c.secure);
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
