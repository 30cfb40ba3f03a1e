//! The self-service pages ([`super::me`]): `/me/signin`, `/me` (the user's account, tokens,
//! password and creds forms) and its forms' posts. A user's session lives in its own cookie
//! ([`USER_COOKIE`]) and table, so it can never pass for an admin's; every form carries the
//! session's CSRF token.

use axum::extract::{ConnectInfo, Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::me::{self, Ask, Me};
use super::session::{self, Session};
use super::{html as respond, pages, Console};
use crate::admin::api::Reply;
use crate::server::http::tls::Peer;

/// The self-service session cookie's name.
pub const USER_COOKIE: &str = "pbn_me";

/// The signed-in self-service user of the request (its session still matching the user's
/// password), or the answer sending it to the self-service sign-in page.
pub(super) async fn signed_in_user(
    c: &Console,
    headers: &HeaderMap,
) -> Result<(Session, Me), Response> {
    let to_signin = || Redirect::to("/me/signin").into_response();
    let id = session::cookie(headers, USER_COOKIE).ok_or_else(to_signin)?;
    let s = c.users.get(&id).ok_or_else(to_signin)?;
    let me = me::load(c, &s.admin)
        .await
        .map_err(|e| respond(StatusCode::INTERNAL_SERVER_ERROR, pages::error(&e.to_string())))?;
    match me {
        Some(me) if session::same_token(&me.fingerprint(), &s.key) => Ok((s, me)),
        _ => {
            c.users.end(&id);
            Err(to_signin())
        }
    }
}

/// A page of the self-service user `s`.
fn page(title: &str, s: &Session, body: Markup) -> Markup {
    let body = html! {
        nav {
            a href="/me" { "My account" }
            span.who { "signed in as user " b { (s.admin) } }
            form method="post" action="/me/signout" {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" { "Sign out" }
            }
        }
        (body)
    };
    pages::page(title, None, body)
}

fn signin_page(csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { "Sign in with the user name and password you use for NATS." }
        form method="post" action="/me/signin" {
            input type="hidden" name="csrf" value=(csrf);
            label { "User " input name="name" autocomplete="username" required; }
            label { "Password " input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        p { a href="/signin" { "Admin sign-in" } }
    };
    pages::page("Self-service sign-in", None, body)
}

fn with_cookie(
    mut r: Response,
    name: &str,
    value: &str,
    max_age: std::time::Duration,
    secure: bool,
) -> Response {
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(name, value, max_age, secure)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn signin_form(State(c): State<Console>) -> Response {
    let token = session::random_token();
    let r = respond(StatusCode::OK, signin_page(&token, None));
    with_cookie(r, session::SIGNIN_COOKIE, &token, session::LIFETIME, c.secure)
}

/// A self-service form's fields (each form uses some).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct MeForm {
    name: String,
    password: String,
    old_password: String,
    label: String,
    id: String,
    keep_previous: String,
    csrf: String,
}

fn forged() -> Response {
    let body =
        pages::page("Refused", None, pages::error("the form's CSRF token is missing or wrong"));
    respond(StatusCode::FORBIDDEN, body)
}

pub(super) async fn signin(
    State(c): State<Console>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<MeForm>,
) -> Response {
    let expected = session::cookie(&headers, session::SIGNIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(&expected, &form.csrf) {
        return forged();
    }
    let host = c.client_ip(peer, &headers);
    match me::sign_in(&c, &form.name, form.password, host).await {
        Ok(me) => {
            let id = c.users.start(me.user.name.as_str(), &me.fingerprint());
            tracing::info!(user = %me.user.name.as_str(), "self-service sign-in");
            let r = Redirect::to("/me").into_response();
            with_cookie(r, USER_COOKIE, &id, session::LIFETIME, c.secure)
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            respond(status, signin_page(&form.csrf, Some(&e.to_string())))
        }
    }
}

macro_rules! user_or_return {
    ($c:expr, $headers:expr) => {
        match signed_in_user(&$c, &$headers).await {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}

/// `GET /me`: the user's account, tokens and forms.
pub(super) async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    let (s, me) = user_or_return!(c, headers);
    let tokens = match me::ask(&c, &me, Ask::Tokens).await {
        Ok(Reply::Ok(r)) => serde_json::to_value(&*r).unwrap_or_default(),
        Ok(Reply::Error(e)) => {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, pages::error(&e.message))
        }
        Err(e) => return respond(StatusCode::INTERNAL_SERVER_ERROR, pages::error(&e.to_string())),
    };
    let rows = tokens["data"].as_array().cloned().unwrap_or_default();
    let csrf = s.csrf.as_str();
    let body = html! {
        dl {
            dt { "user" } dd { (me.user.name.as_str()) }
            dt { "account" } dd { (me.user.account.as_str()) }
            dt { "role" } dd { (me.role.name.as_str()) }
        }
        h2 { "API tokens" }
        (tokens_table(&rows, csrf))
        form method="post" action="/me/tokens" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Label " input name="label"; }
            button type="submit" { "New API token" }
        }
        h2 { "Password" }
        form method="post" action="/me/password" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Current password " input name="old_password" type="password" autocomplete="current-password" required; }
            label { "New password " input name="password" type="password" autocomplete="new-password" required; }
            button type="submit" { "Change password" }
        }
        @if me.role.self_service_creds {
            h2 { "Creds" }
            form method="post" action="/me/creds" {
                input type="hidden" name="csrf" value=(csrf);
                label { input type="checkbox" name="keep_previous" value="true"; " keep my previous creds valid" }
                button type="submit" { "Download new creds" }
            }
        }
    };
    respond(StatusCode::OK, page("My account", &s, body))
}

/// The user's tokens, each with its revoke button.
fn tokens_table(rows: &[serde_json::Value], csrf: &str) -> Markup {
    html! {
        table {
            thead { tr { th { "Id" } th { "Label" } th { "Expires" } th {} } }
            tbody {
                @for t in rows {
                    tr {
                        td { (pages::text(&t["id"])) }
                        td { (pages::text(&t["label"])) }
                        td { (pages::text(&t["expires"])) }
                        td {
                            form method="post" action="/me/tokens/revoke" {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="id" value=(pages::text(&t["id"]));
                                button type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The signed-in user of a form's post, its CSRF token checked.
async fn posted(
    c: &Console,
    headers: &HeaderMap,
    form: &MeForm,
) -> Result<(Session, Me), Response> {
    let (s, me) = signed_in_user(c, headers).await?;
    if !session::same_token(&s.csrf, &form.csrf) {
        return Err(forged());
    }
    Ok((s, me))
}

/// The page answering a self-service change.
fn done(s: &Session, title: &str, reply: Result<Reply, me::MeError>) -> Response {
    let (status, body) = match reply {
        Err(e) => (
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            pages::error(&e.to_string()),
        ),
        Ok(Reply::Error(e)) => {
            let status =
                Reply::Error(e.clone()).error_code().and_then(|c| StatusCode::from_u16(c).ok());
            (status.unwrap_or(StatusCode::BAD_REQUEST), pages::error(&e.message))
        }
        Ok(Reply::Ok(r)) => {
            let v = serde_json::to_value(&*r).unwrap_or_default();
            let body = html! {
                @if v["kind"] == "token" {
                    p { "The token, shown once: store it now." }
                    pre { (pages::text(&v["data"]["token"])) }
                } @else {
                    (pages::record(&v["data"]))
                }
            };
            (StatusCode::OK, body)
        }
    };
    let body = html! { (body) p { a href="/me" { "Back to my account" } } };
    respond(status, page(title, s, body))
}

pub(super) async fn password(
    State(c): State<Console>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    Form(form): Form<MeForm>,
) -> Response {
    let (s, me) = match posted(&c, &headers, &form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let host = c.client_ip(peer, &headers);
    match me::change_password(&c, &me, form.old_password, form.password, host).await {
        Ok((reply, print)) => {
            if matches!(reply, Reply::Ok(_)) {
                if let Some(id) = session::cookie(&headers, USER_COOKIE) {
                    c.users.rekey(&id, &print);
                }
            }
            done(&s, "Password", Ok(reply))
        }
        Err(e) => done(&s, "Password", Err(e)),
    }
}

pub(super) async fn token_add(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<MeForm>,
) -> Response {
    let (s, me) = match posted(&c, &headers, &form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let label = Some(form.label).filter(|l| !l.trim().is_empty());
    let reply = me::ask(&c, &me, Ask::TokenAdd { label, expires_secs: None }).await;
    done(&s, "New API token", reply)
}

pub(super) async fn token_revoke(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<MeForm>,
) -> Response {
    let (s, me) = match posted(&c, &headers, &form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    done(&s, "Token revoked", me::ask(&c, &me, Ask::TokenRevoke(form.id)).await)
}

pub(super) async fn creds(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<MeForm>,
) -> Response {
    let (s, me) = match posted(&c, &headers, &form).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let keep_previous = form.keep_previous == "true";
    match me::ask(&c, &me, Ask::Creds { keep_previous }).await {
        Ok(Reply::Ok(r)) => {
            let v = serde_json::to_value(&*r).unwrap_or_default();
            let user = pages::text(&v["data"]["user"]);
            super::forms::download(&format!("{user}.creds"), pages::text(&v["data"]["creds"]))
        }
        other => done(&s, "Creds", other),
    }
}

pub(super) async fn signout(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<MeForm>,
) -> Response {
    if let Err(r) = posted(&c, &headers, &form).await {
        return r;
    }
    if let Some(id) = session::cookie(&headers, USER_COOKIE) {
        c.users.end(&id);
    }
    let r = Redirect::to("/me/signin").into_response();
    with_cookie(r, USER_COOKIE, "", std::time::Duration::ZERO, c.secure)
}
