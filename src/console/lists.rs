//! The console's list pages of roles, admins and admin API tokens: read as the signed-in admin
//! through the admin API (its scope applies), searched by name and paged by name. Roles and
//! admins are few compared to users, so one read of the whole list per page is cheap.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::{ask, html, pages, signed_in, Console};
use crate::admin::{AdminList, AdminTokenList, Request, RoleList};

/// Rows per page.
pub(super) const PAGE: usize = 50;

/// One page of `rows` (sorted by `key`) whose `key` contains `needle`, starting after
/// `after`; with the key to start the next page from, when there is one.
fn page_of(
    mut rows: Vec<Value>,
    key: &str,
    needle: &str,
    after: Option<&str>,
) -> (Vec<Value>, Option<String>) {
    let needle = needle.to_lowercase();
    rows.retain(|r| pages::text(&r[key]).to_lowercase().contains(&needle));
    rows.sort_by_key(|r| pages::text(&r[key]));
    if let Some(after) = after.filter(|a| !a.is_empty()) {
        rows.retain(|r| pages::text(&r[key]).as_str() > after);
    }
    let next = (rows.len() > PAGE).then(|| pages::text(&rows[PAGE - 1][key]));
    rows.truncate(PAGE);
    (rows, next)
}

/// The "Next page" link of a list at `path` searched by `q`.
fn next_link(path: &str, q: &str, next: Option<String>) -> maud::Markup {
    html! {
        @if let Some(n) = next {
            p { a href=(format!("{path}?q={}&after={}", pages::encode(q), pages::encode(&n))) rel="next" { "Next page" } }
        }
    }
}

fn query<'a>(q: &'a HashMap<String, String>, k: &str) -> &'a str {
    q.get(k).map(String::as_str).unwrap_or("")
}

pub(super) async fn roles(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let all = ask!(c, s, admin, Request::RoleList(RoleList {}));
    let rows = all["data"].as_array().cloned().unwrap_or_default();
    let needle = query(&q, "q");
    let (rows, next) = page_of(rows, "name", needle, q.get("after").map(String::as_str));
    let body = html! {
        p.actions { a href="/do/role_add" { "New role" } }
        (pages::search("/roles", &[("q", "Name contains", needle)]))
        (pages::table(&rows, &[("name", "Name"), ("description", "Description"), ("users", "Users"), ("max_connections", "Connections/user"), ("self_service", "Self-service")], Some("/do/role_edit?name=")))
        (next_link("/roles", needle, next))
    };
    html(StatusCode::OK, pages::page("Roles", Some((&s.admin, &s.csrf)), body))
}

pub(super) async fn admins(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let all = ask!(c, s, admin, Request::AdminList(AdminList {}));
    let rows = all["data"].as_array().cloned().unwrap_or_default();
    let needle = query(&q, "q");
    let (rows, next) = page_of(rows, "name", needle, q.get("after").map(String::as_str));
    let body = html! {
        p.actions { a href="/do/admin_add" { "New admin" } }
        (pages::search("/admins", &[("q", "Name contains", needle)]))
        (pages::table(&rows, &[("name", "Name"), ("scope", "Scope"), ("read_only", "Read-only"), ("state", "State"), ("public_key", "Public key")], Some("/admin-tokens?admin=")))
        (next_link("/admins", needle, next))
    };
    html(StatusCode::OK, pages::page("Admins", Some((&s.admin, &s.csrf)), body))
}

/// `GET /admin-tokens`: the API tokens of one admin (`?admin=`), or of every admin listed.
pub(super) async fn admin_tokens(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (s, admin) = signed_in!(c, headers);
    let names: Vec<String> = match q.get("admin").filter(|a| !a.is_empty()) {
        Some(one) => vec![one.clone()],
        None => {
            let all = ask!(c, s, admin.clone(), Request::AdminList(AdminList {}));
            all["data"].as_array().into_iter().flatten().map(|a| pages::text(&a["name"])).collect()
        }
    };
    let mut rows = Vec::new();
    for name in names {
        let req = Request::AdminTokenList(AdminTokenList { name: name.clone() });
        let tokens = ask!(c, s, admin.clone(), req);
        for mut t in tokens["data"].as_array().cloned().unwrap_or_default() {
            t["admin"] = Value::String(name.clone());
            t["key"] = Value::String(format!("{name}/{}", pages::text(&t["id"])));
            rows.push(t);
        }
    }
    let needle = query(&q, "q");
    let (rows, next) = page_of(rows, "key", needle, q.get("after").map(String::as_str));
    let who = query(&q, "admin");
    let body = html! {
        p.actions { a href=(format!("/do/admin_token_add?name={}", pages::encode(who))) { "New admin token" } }
        (pages::search("/admin-tokens", &[("q", "Admin/id contains", needle), ("admin", "Admin", who)]))
        (pages::table(&rows, &[("admin", "Admin"), ("id", "Id"), ("label", "Label"), ("created", "Created (unix s)"), ("expires", "Expires (unix s)")], None))
        (next_link("/admin-tokens", needle, next))
    };
    html(StatusCode::OK, pages::page("Admin tokens", Some((&s.admin, &s.csrf)), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_searched_sorted_and_continue_after_the_last_name() {
        let rows: Vec<Value> =
            (0..120).rev().map(|i| serde_json::json!({ "name": format!("r{i:03}") })).collect();
        let (first, next) = page_of(rows.clone(), "name", "", None);
        assert_eq!((first.len(), first[0]["name"].as_str()), (PAGE, Some("r000")));
        assert_eq!(next.as_deref(), Some("r049"));
        let (second, _) = page_of(rows.clone(), "name", "", next.as_deref());
        assert_eq!(second[0]["name"], "r050");
        let (found, none) = page_of(rows, "name", "R11", None);
        assert_eq!((found.len(), none), (10, None));
    }
}
