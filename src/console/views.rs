//! The console's read pages: dashboard, accounts, users (paged in the store), audit trail.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::{ask, html, pages, signed_in, Console};
use crate::admin::{AccountList, AccountShow, AuditList, Request, UserShow};
use crate::model::AdminScope;
use crate::store::{UserPages, MAX_PAGE};

/// Users per page.
const PAGE: usize = 50;

pub(super) async fn dashboard(State(c): State<Console>, headers: HeaderMap) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let accounts = ask!(c, s, admin, Request::AccountList(AccountList {}));
    let status = crate::server::status::collect(&c.health).await.ok();
    let status = status.and_then(|st| serde_json::to_value(st).ok()).unwrap_or_default();
    let rows = accounts["data"].as_array().cloned().unwrap_or_default();
    let users: u64 = rows.iter().filter_map(|a| a["users"].as_u64()).sum();
    let card = |label: &str, v: String| html! { div.card { b { (v) } (label) } };
    let body = html! {
        div.cards {
            (card("accounts", rows.len().to_string()))
            (card("users", users.to_string()))
            (card("live sessions", pages::text(&status["sessions"])))
            (card("logins, last minute", pages::text(&status["logins_last_minute"])))
            (card("refused, last minute", pages::text(&status["refusals_last_minute"])))
            (card("logins, last hour", pages::text(&status["logins_last_hour"])))
            (card("refused, last hour", pages::text(&status["refusals_last_hour"])))
            (card("outbox entries", pages::text(&status["outbox_entries"])))
        }
        p.actions {
            a href="/do/account_add" { "New account" } " · "
            a href="/do/role_add" { "New role" } " · "
            a href="/do/user_add" { "New user" } " · "
            a href="/download/nats.conf" { "Download nats.conf" } " · "
            a href="/download/operator.jwt" { "Download the operator JWT" }
        }
        h2 { "Servers" }
        dl {
            dt { "callout connection" } dd { (pages::text(&status["callout"]["state"])) " " (pages::text(&status["callout"]["server"])) }
            dt { "system connection" } dd { (pages::text(&status["system"]["state"])) " " (pages::text(&status["system"]["server"])) }
            dt { "publisher failing" } dd { (pages::text(&status["publisher_failing"])) }
        }
        h2 { "Accounts" }
        (pages::table(&rows, &[("name", "Name"), ("kind", "Kind"), ("active", "Active"), ("users", "Users")], Some("/accounts/")))
    };
    html(StatusCode::OK, pages::page("Dashboard", Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn accounts(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let all = ask!(c, s, admin, Request::AccountList(AccountList {}));
    let needle = q.get("q").map(|v| v.to_lowercase()).unwrap_or_default();
    let rows: Vec<Value> = all["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| pages::text(&a["name"]).to_lowercase().contains(&needle))
        .cloned()
        .collect();
    let body = html! {
        (pages::search("/accounts", &[("q", "Name contains", &needle)]))
        (pages::table(&rows, &[("name", "Name"), ("kind", "Kind"), ("active", "Active"), ("users", "Users"), ("public_key", "Public key")], Some("/accounts/")))
    };
    html(StatusCode::OK, pages::page("Accounts", Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn account(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let shown = ask!(c, s, admin, Request::AccountShow(AccountShow { name: name.clone() }));
    let q = pages::encode(&name);
    let body = html! {
        p.actions {
            a href=(format!("/users?account={q}")) { "Users of " (name) } " · "
            a href=(format!("/do/account_edit?name={q}")) { "Edit" } " · "
            a href=(format!("/do/account_edit?name={q}&active=false")) { "Deactivate" } " · "
            a href=(format!("/do/account_rotate_keys?name={q}")) { "Rotate keys" } " · "
            a href=(format!("/do/account_delete?name={q}")) { "Delete" }
        }
        (pages::record(&shown["data"]))
    };
    html(StatusCode::OK, pages::page(&format!("Account {name}"), Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn users(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let mut account = q.get("account").filter(|a| !a.is_empty()).cloned();
    if let AdminScope::Account(own) = &admin.scope {
        if account.as_deref().is_some_and(|a| a != own.as_str()) {
            let body = pages::error(&format!(
                "admin {} (scope {}) may not list users of account {}",
                admin.name.as_str(),
                admin.scope,
                account.unwrap_or_default()
            ));
            return html(
                StatusCode::FORBIDDEN,
                pages::page("Refused", Some((&s.admin, &s.csrf)), body),
            );
        }
        account = Some(own.to_string());
    }
    let prefix = q.get("q").cloned().unwrap_or_default();
    let after = q.get("after").cloned();
    let (acc, pre) = (account.clone(), prefix.clone());
    let page = c
        .health
        .store
        .read_async(move |tx| {
            tx.users_page(acc.as_deref(), &pre, after.as_deref(), PAGE.min(MAX_PAGE))
        })
        .await;
    let page = match page {
        Ok(p) => p,
        Err(e) => return html(StatusCode::INTERNAL_SERVER_ERROR, pages::error(&e.to_string())),
    };
    let rows: Vec<Value> = page
        .users
        .iter()
        .map(|u| serde_json::json!({"name": u.name.as_str(), "account": u.account.as_str(), "role": u.role.as_str(), "active": u.active}))
        .collect();
    let acc = account.unwrap_or_default();
    let next = page.next.map(|n| {
        format!(
            "/users?account={}&q={}&after={}",
            pages::encode(&acc),
            pages::encode(&prefix),
            pages::encode(&n)
        )
    });
    let body = html! {
        (pages::search("/users", &[("q", "Name starts with", &prefix), ("account", "Account", &acc)]))
        (pages::table(&rows, &[("name", "Name"), ("account", "Account"), ("role", "Role"), ("active", "Active")], Some("/users/")))
        @if let Some(n) = next { p { a href=(n) rel="next" { "Next page" } } }
    };
    html(StatusCode::OK, pages::page("Users", Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn user(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let shown = ask!(c, s, admin, Request::UserShow(UserShow { name: name.clone() }));
    let q = pages::encode(&name);
    let body = html! {
        p.actions {
            a href=(format!("/do/user_edit?name={q}")) { "Edit" } " · "
            a href=(format!("/do/user_edit?name={q}&active=false")) { "Deactivate" } " · "
            a href=(format!("/do/user_passwd?name={q}")) { "Set password" } " · "
            a href=(format!("/do/user_creds?name={q}")) { "Download new creds" } " · "
            a href=(format!("/do/token_add?name={q}")) { "New API token" } " · "
            a href=(format!("/do/user_delete?name={q}")) { "Delete" }
        }
        (pages::record(&shown["data"]))
    };
    html(StatusCode::OK, pages::page(&format!("User {name}"), Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn audit(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let who = q.get("admin").filter(|a| !a.is_empty()).cloned();
    let verb = q.get("verb").cloned().unwrap_or_default();
    let req = Request::AuditList(AuditList { since_ms: None, admin: who.clone() });
    let all = ask!(c, s, admin, req);
    let mut rows: Vec<Value> = all["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| pages::text(&e["verb"]).contains(&verb))
        .cloned()
        .collect();
    rows.reverse();
    let body = html! {
        (pages::search("/audit", &[("admin", "Admin", who.as_deref().unwrap_or("")), ("verb", "Verb contains", &verb)]))
        (pages::table(&rows, &[("at_ms", "At (unix ms)"), ("admin", "Admin"), ("verb", "Verb"), ("target", "Target"), ("result", "Result")], None))
    };
    html(StatusCode::OK, pages::page("Audit trail", Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn operator_jwt(State(c): State<Console>, headers: HeaderMap) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let shown = ask!(c, s, admin, Request::OperatorShow(crate::admin::OperatorShow {}));
    super::forms::download("operator.jwt", pages::text(&shown["data"]["jwt"]))
}

pub(super) async fn nats_conf(State(c): State<Console>, headers: HeaderMap) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let trust = ask!(c, s, admin, Request::NatsConfTrust(crate::admin::NatsConfTrust {}));
    let layout = crate::natsconf::Layout {
        out_dir: "nats".into(),
        port: 4222,
        cluster: None,
        auth_timeout: std::time::Duration::from_secs(5),
        host: "0.0.0.0".into(),
    };
    let rendered = serde_json::from_value::<crate::natsconf::Trust>(trust["data"].clone())
        .map_err(|e| e.to_string())
        .and_then(|t| crate::natsconf::render(&t, &layout).map_err(|e| e.to_string()));
    match rendered {
        Ok(files) => {
            let text = files.into_iter().next().map(|f| f.text).unwrap_or_default();
            super::forms::download("nats.conf", text)
        }
        Err(e) => html(StatusCode::INTERNAL_SERVER_ERROR, pages::error(&e)),
    }
}
