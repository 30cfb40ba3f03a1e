//! The console's changes: one form per admin command that changes something, built from the
//! HTTP API's route table (the command's fields, read from its default JSON), so every change
//! the CLI can make has its form, validated by the same code with the same messages.
//!
//! `GET /do/{op}` shows the form (prefilled from the query: a link such as "Deactivate"
//! prefills `active=false`); it is the confirmation step of every action. `POST /do/{op}`
//! checks the session's CSRF token, runs the request as the signed-in admin, and shows the
//! answer; creds are sent once, as a download.

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::{html as page_response, pages, signed_in, Console};
use crate::admin::api::Reply;
use crate::server::http::routes::{path_params, Method, Route, ROUTES};

/// The route of a changing command named `op`.
fn route_of(op: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.op == op && r.method != Method::Get)
}

/// The form's fields of `route`: (name, default) with nested objects flattened as `a.b`.
fn fields(route: &Route) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> =
        path_params(route.path).map(|p| (p.to_string(), Value::String(String::new()))).collect();
    for (name, _) in route.query {
        out.push((name.to_string(), Value::String(String::new())));
    }
    if let Some(Value::Object(m)) = route.body.map(|f| f()) {
        flatten("", &m, &mut out);
    }
    out.retain(|(n, _)| n != "password_hash");
    if route.body.is_some_and(|f| f().get("password_hash").is_some()) {
        out.push(("password".into(), Value::String(String::new())));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(n, _)| seen.insert(n.clone()));
    out
}

fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in m {
        let name = format!("{prefix}{k}");
        match v {
            Value::Object(inner) => flatten(&format!("{name}."), inner, out),
            other => out.push((name, other.clone())),
        }
    }
}

/// One form field's input, by the type of its default.
fn input(name: &str, default: &Value, value: Option<&str>) -> Markup {
    let value = value.unwrap_or("");
    html! {
        label {
            (name) " "
            @match default {
                Value::Bool(_) => {
                    input type="checkbox" name=(name) value="true" checked[value == "true"];
                }
                Value::String(s) if s == "keep" => {
                    textarea name=(name) placeholder="subjects, one per line; empty: keep; `default`: unset" { (value) }
                }
                _ if name == "password" => { input type="password" name=(name) autocomplete="new-password"; }
                _ => { input name=(name) value=(value); }
            }
        }
    }
}

/// `GET /do/{op}`: the form (the confirmation step).
pub(super) async fn form(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(op): Path<String>,
    Query(prefill): Query<Vec<(String, String)>>,
) -> Response {
    let (s, _) = match signed_in(&c, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(route) = route_of(&op) else {
        return page_response(StatusCode::NOT_FOUND, pages::error(&format!("no action {op:?}")));
    };
    let given = |n: &str| prefill.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let body = html! {
        p { (route.summary) }
        form method="post" action=(format!("/do/{op}")) {
            input type="hidden" name="csrf" value=(s.csrf);
            @for (name, default) in fields(route) {
                p { (input(&name, &default, given(&name))) }
            }
            button type="submit" { "Confirm: " (op.replace('_', " ")) }
        }
    };
    page_response(StatusCode::OK, pages::page(route.summary, Some((&s.admin, &s.csrf)), body))
}

/// `POST /do/{op}`: runs the command as the signed-in admin.
pub(super) async fn submit(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(op): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (s, admin) = match signed_in(&c, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    if !super::session::same_token(&s.csrf, csrf) {
        let body =
            pages::page("Refused", None, pages::error("the form's CSRF token is missing or wrong"));
        return page_response(StatusCode::FORBIDDEN, body);
    }
    let Some(route) = route_of(&op) else {
        return page_response(StatusCode::NOT_FOUND, pages::error(&format!("no action {op:?}")));
    };
    let mut req = request(route, &form);
    if let Some(Value::String(pw)) = req.remove("password") {
        let secret = crate::auth::Secret::new(pw);
        match tokio::task::spawn_blocking(move || crate::auth::hash_password(&secret)).await {
            Ok(Ok(phc)) => {
                req.insert("password_hash".into(), Value::String(phc));
            }
            _ => {
                return page_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    pages::error("cannot hash the password"),
                )
            }
        }
    }
    let (reply, warnings) = super::run(&c, admin, &req).await;
    answer(&s.admin, &s.csrf, op.as_str(), reply, &warnings)
}

/// The request JSON from the form's fields, typed by the command's defaults.
fn request(route: &Route, form: &[(String, String)]) -> Map<String, Value> {
    // Fields left empty keep the command's defaults (nested objects included).
    let mut req = match route.body.map(|f| f()) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (name, default) in fields(route) {
        let given = form.iter().find(|(k, _)| *k == name).map(|(_, v)| v.trim());
        let value = match (&default, given) {
            (Value::Bool(_), g) => Value::Bool(g == Some("true")),
            (_, None | Some("")) if default.is_string() && default != "keep" => default.clone(),
            (_, None | Some("")) => continue,
            (Value::String(k), Some(v)) if k == "keep" => match v {
                "default" => Value::String("default".into()),
                v => {
                    serde_json::json!({ "set": v.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>() })
                }
            },
            (Value::String(_), Some(v)) => Value::String(v.into()),
            (_, Some(v)) => typed(v),
        };
        insert(&mut req, &name, value);
    }
    req.insert("op".into(), Value::String(route.op.into()));
    req
}

/// A value of a field whose default is null or a number: a number or boolean when it reads as
/// one, else text.
fn typed(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        v => v.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(v.into())),
    }
}

fn insert(m: &mut Map<String, Value>, dotted: &str, value: Value) {
    match dotted.split_once('.') {
        None => {
            m.insert(dotted.into(), value);
        }
        Some((head, rest)) => {
            let inner = m.entry(head).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

/// The page (or download) answering a change.
fn answer(admin: &str, csrf: &str, op: &str, reply: Reply, warnings: &[String]) -> Response {
    let status = reply.error_code().and_then(|c| StatusCode::from_u16(c).ok());
    let resp = match reply {
        Reply::Error(e) => {
            let body = pages::page("Refused", Some((admin, csrf)), pages::error(&e.message));
            return page_response(status.unwrap_or(StatusCode::BAD_REQUEST), body);
        }
        Reply::Ok(resp) => serde_json::to_value(&*resp).unwrap_or_default(),
    };
    if resp["kind"] == "creds" {
        let user = pages::text(&resp["data"]["user"]);
        return download(&format!("{user}.creds"), pages::text(&resp["data"]["creds"]));
    }
    let body = html! {
        @for w in warnings { p.error { (w) } }
        @if resp["kind"] == "token" {
            p { "The token, shown once: store it now." }
            pre { (pages::text(&resp["data"]["token"])) }
        } @else {
            (pages::record(&resp["data"]))
        }
        p { a href="/" { "Back to the dashboard" } }
    };
    page_response(
        StatusCode::OK,
        pages::page(&format!("Done: {}", op.replace('_', " ")), Some((admin, csrf)), body),
    )
}

/// A file download of `text` named `name`, never cached.
pub(super) fn download(name: &str, text: String) -> Response {
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let safe: String =
        name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::decode_request;

    #[test]
    fn every_changing_command_has_a_form_whose_fields_make_its_request() {
        for route in ROUTES.iter().filter(|r| r.method != Method::Get) {
            let form: Vec<(String, String)> = fields(route)
                .into_iter()
                .map(|(n, d)| (n, if d.is_boolean() { "true".into() } else { String::new() }))
                .collect();
            let req = serde_json::to_vec(&request(route, &form)).unwrap();
            assert!(
                decode_request(&req).is_ok(),
                "{}: {}",
                route.op,
                String::from_utf8_lossy(&req)
            );
        }
    }

    #[test]
    fn form_values_are_typed_by_the_commands_fields() {
        let role = route_of("role_add").unwrap();
        let form = vec![
            ("name".to_string(), "web".to_string()),
            ("role.pub_allow".to_string(), "web.>\n\n$SYS.REQ.USER.INFO".to_string()),
            ("role.max_payload".to_string(), "1024".to_string()),
        ];
        let req = request(role, &form);
        assert_eq!(
            req["role"]["pub_allow"],
            serde_json::json!({"set": ["web.>", "$SYS.REQ.USER.INFO"]})
        );
        assert_eq!(req["role"]["max_payload"], 1024);
        assert_eq!(req["role"]["sub_allow"], "keep", "left as it is");
        let edit = route_of("user_edit").unwrap();
        let req = request(edit, &[("name".into(), "u".into()), ("active".into(), "false".into())]);
        assert_eq!((&req["name"], &req["active"]), (&Value::from("u"), &Value::Bool(false)));
        assert!(decode_request(&serde_json::to_vec(&req).unwrap()).is_ok());
    }
}
