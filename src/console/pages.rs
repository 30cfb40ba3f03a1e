//! The console's HTML, rendered on the server with `maud` (escaped by construction). Reads
//! work without JavaScript: every page is a plain document, every action a plain form.

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// The stylesheet, served at `/assets/console.css`.
pub const CSS: &str = include_str!("../../assets/console.css");

/// A whole page: the navigation (when signed in as `admin`), then `body`.
pub fn page(title: &str, admin: Option<(&str, &str)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · pbn" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                @if let Some((name, csrf)) = admin {
                    nav {
                        a href="/" { "Dashboard" }
                        a href="/accounts" { "Accounts" }
                        a href="/users" { "Users" }
                        a href="/roles" { "Roles" }
                        a href="/admins" { "Admins" }
                        a href="/admin-tokens" { "Admin tokens" }
                        a href="/audit" { "Audit" }
                        span.who { "signed in as " b { (name) } }
                        form method="post" action="/signout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The sign-in form, with the sign-in CSRF token and an optional error.
pub fn signin(csrf: &str, error: Option<&str>) -> Markup {
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form method="post" action="/signin" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Admin " input name="name" autocomplete="username" required; }
            label { "Password " input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
        p { a href="/me/signin" { "Self-service sign-in for users" } }
    };
    page("Sign in", None, body)
}

/// An error message.
pub fn error(message: &str) -> Markup {
    html! { p.error role="alert" { (message) } }
}

/// A table of `rows` (JSON objects) with `columns` (field, heading); the first column links to
/// `link` + its value when given.
pub fn table(rows: &[Value], columns: &[(&str, &str)], link: Option<&str>) -> Markup {
    html! {
        table {
            thead { tr { @for (_, h) in columns { th { (h) } } } }
            tbody {
                @for row in rows {
                    tr {
                        @for (i, (field, _)) in columns.iter().enumerate() {
                            td {
                                @match (i, link) {
                                    (0, Some(prefix)) => {
                                        @let v = text(&row[*field]);
                                        a href=(format!("{prefix}{}", encode(&v))) { (v) }
                                    }
                                    _ => (text(&row[*field])),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Any answer as nested definition lists (show pages).
pub fn record(value: &Value) -> Markup {
    match value {
        Value::Object(m) => html! {
            dl { @for (k, v) in m { dt { (k) } dd { (record(v)) } } }
        },
        Value::Array(items) if items.iter().all(|v| !v.is_object()) => html! {
            @if items.is_empty() { span.none { "none" } }
            @else { ul { @for v in items { li { (text(v)) } } } }
        },
        Value::Array(items) => html! { @for v in items { (record(v)) } },
        other => html! { (text(other)) },
    }
}

/// A JSON value as one line of text.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A search form over `fields` (name, label, current value) submitting to `action` by GET.
pub fn search(action: &str, fields: &[(&str, &str, &str)]) -> Markup {
    html! {
        form.search method="get" action=(action) {
            @for (name, label, value) in fields {
                label { (label) " " input name=(name) value=(value); }
            }
            button type="submit" { "Search" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_links_encoded() {
        let rows = vec![serde_json::json!({"name": "<b>x</b> y", "n": 2})];
        let html = table(&rows, &[("name", "Name"), ("n", "N")], Some("/users/")).into_string();
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt; y"), "{html}");
        assert!(html.contains("href=\"/users/%3Cb%3Ex%3C%2Fb%3E%20y\""), "{html}");
        assert!(!html.contains("<b>x"), "{html}");
        let shown = record(&serde_json::json!({"k": ["<i>"]})).into_string();
        assert!(shown.contains("&lt;i&gt;"), "{shown}");
    }
}
