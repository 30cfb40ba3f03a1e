//! The HTTP API's routes: one table mapping a method and path under `/api/v1` to an admin
//! command (its `op`). The same table builds the router ([`super::api`]) and the OpenAPI
//! document ([`super::openapi`]), so the two cannot disagree; a unit test checks that every
//! admin command has a route.
//!
//! A request's JSON is built from the route: the JSON body (an object of the command's
//! fields), the path parameters (named as the command's fields) and the declared query
//! parameters, plus `op`. It then goes through the same decoding, scope checks and execution
//! as a request of the NATS admin API.

use serde::Serialize;
use serde_json::Value;

use crate::admin::{
    AccountAdd, AccountEdit, AdminAdd, AdminPasswd, AdminTokenAdd, ExportAdd, ImportAdd, RoleAdd,
    RoleEdit, UserAdd, UserCreds, UserEdit, UserPasswd,
};

/// An HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// Reads.
    Get,
    /// Creates, or runs an action.
    Post,
    /// Changes some fields.
    Patch,
    /// Replaces one value.
    Put,
    /// Removes.
    Delete,
}

impl Method {
    /// axum's filter for this method, for routing.
    pub(crate) fn filter(self) -> axum::routing::MethodFilter {
        use axum::routing::MethodFilter;
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Patch => MethodFilter::PATCH,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

/// The type of a query parameter (query strings carry text; the request needs JSON types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueryType {
    /// A string.
    Text,
    /// An integer.
    Integer,
}

/// One route of the API.
#[derive(Debug)]
pub(crate) struct Route {
    /// Its method.
    pub method: Method,
    /// Its path below `/api/v1`, parameters as `{field}`.
    pub path: &'static str,
    /// The admin command it runs.
    pub op: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The query parameters it takes.
    pub query: &'static [(&'static str, QueryType)],
    /// The JSON body's fields, as the command's default value (`None`: no body).
    pub body: Option<fn() -> Value>,
}

fn fields<T: Serialize + Default>() -> Value {
    serde_json::to_value(T::default()).unwrap_or(Value::Null)
}

macro_rules! route {
    ($m:ident $path:literal => $op:literal, $summary:literal) => {
        Route {
            method: Method::$m,
            path: $path,
            op: $op,
            summary: $summary,
            query: &[],
            body: None,
        }
    };
    ($m:ident $path:literal => $op:literal, $summary:literal, query $q:expr) => {
        Route { method: Method::$m, path: $path, op: $op, summary: $summary, query: $q, body: None }
    };
    ($m:ident $path:literal => $op:literal, $summary:literal, body $t:ty) => {
        Route {
            method: Method::$m,
            path: $path,
            op: $op,
            summary: $summary,
            query: &[],
            body: Some(fields::<$t>),
        }
    };
}

use QueryType::{Integer, Text};

/// Every route of the API.
pub(crate) static ROUTES: &[Route] = &[
    route!(Get "/operator" => "operator_show", "Show the operator and its JWT"),
    route!(Post "/operator/admin-creds" => "operator_admin_creds", "Mint operator admin creds"),
    route!(Post "/operator/nats-conf" => "nats_conf_trust", "The trust block of nats.conf"),
    route!(Get "/accounts" => "account_list", "List accounts"),
    route!(Post "/accounts" => "account_add", "Add an account", body AccountAdd),
    route!(Get "/accounts/{name}" => "account_show", "Show an account"),
    route!(Patch "/accounts/{name}" => "account_edit", "Edit an account", body AccountEdit),
    route!(Delete "/accounts/{name}" => "account_delete", "Delete an account"),
    route!(Post "/accounts/{name}/rotate-keys" => "account_rotate_keys", "Rotate signing keys"),
    route!(Post "/accounts/{name}/signing-keys" => "account_signing_key_add", "Add a signing key"),
    route!(Delete "/accounts/{name}/signing-keys/{key}" => "account_signing_key_remove",
        "Remove a signing key"),
    route!(Post "/accounts/{account}/exports" => "export_add", "Add an export", body ExportAdd),
    route!(Delete "/accounts/{account}/exports" => "export_remove", "Remove an export",
        query &[("subject", Text)]),
    route!(Post "/accounts/{account}/imports" => "import_add", "Add an import", body ImportAdd),
    route!(Delete "/accounts/{account}/imports" => "import_remove", "Remove an import",
        query &[("subject", Text)]),
    route!(Get "/roles" => "role_list", "List roles"),
    route!(Post "/roles" => "role_add", "Add a role", body RoleAdd),
    route!(Get "/roles/{name}" => "role_show", "Show a role"),
    route!(Patch "/roles/{name}" => "role_edit", "Edit a role", body RoleEdit),
    route!(Delete "/roles/{name}" => "role_delete", "Delete a role"),
    route!(Get "/users" => "user_list", "List users", query &[("account", Text)]),
    route!(Post "/users" => "user_add", "Add a user (`password` is hashed by the service)",
        body UserAdd),
    route!(Get "/users/{name}" => "user_show", "Show a user"),
    route!(Patch "/users/{name}" => "user_edit", "Edit a user", body UserEdit),
    route!(Delete "/users/{name}" => "user_delete", "Delete a user"),
    route!(Put "/users/{name}/password" => "user_passwd",
        "Set a user's password (`password` is hashed by the service)", body UserPasswd),
    route!(Post "/users/{name}/creds" => "user_creds", "Mint creds (shown once)", body UserCreds),
    route!(Get "/users/{name}/tokens" => "token_list", "List a user's API tokens"),
    route!(Post "/users/{name}/tokens" => "token_add", "Make a user API token (shown once)",
        body crate::admin::TokenAdd),
    route!(Delete "/users/{name}/tokens/{id}" => "token_revoke", "Revoke a user API token"),
    route!(Get "/outbox" => "outbox_list", "List pending and failed account pushes"),
    route!(Post "/outbox/{id}/retry" => "outbox_retry", "Retry an account push"),
    route!(Get "/admins" => "admin_list", "List admins"),
    route!(Post "/admins" => "admin_add", "Add an admin (its creds shown once)", body AdminAdd),
    route!(Get "/admins/{name}" => "admin_show", "Show an admin"),
    route!(Post "/admins/{name}/revoke" => "admin_revoke", "Revoke an admin"),
    route!(Delete "/admins/{name}" => "admin_delete", "Revoke and delete an admin"),
    route!(Get "/admins/{name}/tokens" => "admin_token_list", "List an admin's API tokens"),
    route!(Post "/admins/{name}/tokens" => "admin_token_add",
        "Make an admin API token (shown once)", body AdminTokenAdd),
    route!(Delete "/admins/{name}/tokens/{id}" => "admin_token_revoke",
        "Revoke an admin API token"),
    route!(Put "/admins/{name}/password" => "admin_passwd",
        "Set an admin's console password (`password` is hashed by the service)", body AdminPasswd),
    route!(Get "/audit" => "audit_list", "The audit trail",
        query &[("since_ms", Integer), ("admin", Text)]),
    route!(Get "/sessions" => "session_list", "List live sessions",
        query &[("user", Text), ("account", Text)]),
    route!(Post "/sessions/kick" => "session_kick", "End live sessions (by id or user)",
        body crate::admin::SessionKick),
    route!(Get "/replicas" => "replica_list", "List replicas"),
    route!(Post "/replicas" => "replica_add", "Add a replica (its join bundle's parts shown once)",
        body crate::admin::ReplicaAdd),
    route!(Get "/replicas/{name}" => "replica_show", "Show a replica"),
    route!(Delete "/replicas/{name}" => "replica_remove", "Remove a replica and revoke its creds"),
    route!(Get "/idps" => "idp_list", "List identity providers"),
    route!(Post "/idps" => "idp_add", "Add an identity provider", body crate::admin::IdpAdd),
    route!(Get "/idps/{name}" => "idp_show", "Show an identity provider"),
    route!(Patch "/idps/{name}" => "idp_edit", "Edit an identity provider",
        body crate::admin::IdpEdit),
    route!(Delete "/idps/{name}" => "idp_delete", "Delete an identity provider"),
    route!(Post "/idps/{name}/mappings" => "idp_map", "Add a mapping rule",
        body crate::admin::IdpMap),
    route!(Post "/idps/{name}/unmap" => "idp_unmap", "Remove a mapping rule",
        body crate::admin::IdpUnmap),
    route!(Post "/bulk/check" => "bulk_check", "Check records for an import (nothing written)",
        body crate::admin::bulk::BulkCheck),
    route!(Post "/bulk/import" => "bulk_import", "Import records (checked whole first)",
        body crate::admin::bulk::BulkImport),
    route!(Get "/bulk/export" => "bulk_export", "One page of an export (no secrets)",
        query &[("section", Text), ("after", Text)]),
];

/// A self-service route under `/api/v1/me`: not an admin command, but what a user whose role
/// allows self-service may do on their own records, authenticated by one of their own API
/// tokens (served by `console::me_api`; listed in the OpenAPI document).
#[derive(Debug)]
pub(crate) struct MeRoute {
    /// Its method.
    pub method: Method,
    /// Its path below `/api/v1`.
    pub path: &'static str,
    /// Its operation id.
    pub op: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The JSON body's fields and their defaults (`None`: no body).
    pub body: Option<fn() -> Value>,
}

fn password_change() -> Value {
    serde_json::json!({ "old_password": "", "password": "" })
}

fn token_add() -> Value {
    serde_json::json!({ "label": null, "expires_secs": null })
}

fn creds() -> Value {
    serde_json::json!({ "keep_previous": false })
}

/// Every self-service route.
pub(crate) static ME_ROUTES: &[MeRoute] = &[
    MeRoute {
        method: Method::Get,
        path: "/me",
        op: "me_show",
        summary: "The signed-in user (self-service)",
        body: None,
    },
    MeRoute {
        method: Method::Put,
        path: "/me/password",
        op: "me_passwd",
        summary: "Change one's own password (the current one required)",
        body: Some(password_change),
    },
    MeRoute {
        method: Method::Get,
        path: "/me/tokens",
        op: "me_token_list",
        summary: "List one's own API tokens",
        body: None,
    },
    MeRoute {
        method: Method::Post,
        path: "/me/tokens",
        op: "me_token_add",
        summary: "Make an API token of one's own (shown once)",
        body: Some(token_add),
    },
    MeRoute {
        method: Method::Delete,
        path: "/me/tokens/{id}",
        op: "me_token_revoke",
        summary: "Revoke one of one's own API tokens",
        body: None,
    },
    MeRoute {
        method: Method::Post,
        path: "/me/creds",
        op: "me_creds",
        summary: "Mint one's own creds (shown once; roles with --self-service-creds)",
        body: Some(creds),
    },
];

/// The names of the path parameters of `path`, in order.
pub(crate) fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// Why an HTTP request does not make an admin request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The body is not a JSON object.
    #[error("the request body must be a JSON object: {0}")]
    Body(String),
    /// A query parameter of the wrong type.
    #[error("query parameter {name} must be {expected}, not {value:?}")]
    Query {
        /// Its name.
        name: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        value: String,
    },
    /// The body names a field the path sets, with another value.
    #[error("field {0} is given by the path and differs in the body")]
    Conflict(String),
}

/// The JSON of the admin request for `route`, from its path parameters, query and body.
pub(crate) fn build(
    route: &Route,
    path: &[(String, String)],
    query: &[(String, String)],
    body: &[u8],
) -> Result<serde_json::Map<String, Value>, BuildError> {
    // Fields left out take the command's defaults (false, empty, none).
    let mut req = match route.body.map(|f| f()) {
        Some(Value::Object(defaults)) => defaults,
        _ => serde_json::Map::new(),
    };
    match (route.body, body.iter().all(u8::is_ascii_whitespace)) {
        (_, true) => {}
        (Some(_), false) => match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => req.extend(m),
            Ok(_) => return Err(BuildError::Body("not an object".into())),
            Err(e) => return Err(BuildError::Body(e.to_string())),
        },
        (None, false) => return Err(BuildError::Body("this route takes no body".into())),
    }
    for (name, value) in path {
        match req.insert(name.clone(), Value::String(value.clone())) {
            Some(Value::String(old)) if !old.is_empty() && old != *value => {
                return Err(BuildError::Conflict(name.clone()))
            }
            Some(Value::String(_)) | Some(Value::Null) | None => {}
            Some(_) => return Err(BuildError::Conflict(name.clone())),
        }
    }
    for (name, ty) in route.query {
        let Some((_, value)) = query.iter().find(|(n, _)| n == name) else { continue };
        let json = match ty {
            QueryType::Text => Value::String(value.clone()),
            QueryType::Integer => value.parse::<i64>().map(Value::from).map_err(|_| {
                let (name, value) = (name.to_string(), value.clone());
                BuildError::Query { name, expected: "an integer", value }
            })?,
        };
        req.insert(name.to_string(), json);
    }
    req.insert("op".into(), Value::String(route.op.into()));
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::decode_request;
    use crate::admin::Request;

    /// The JSON of a route's request with every parameter set.
    fn filled(route: &Route) -> Vec<u8> {
        let path: Vec<(String, String)> =
            path_params(route.path).map(|p| (p.to_string(), "x".to_string())).collect();
        let query: Vec<(String, String)> = route
            .query
            .iter()
            .map(|(n, t)| {
                let value = match (*n, t) {
                    (_, Integer) => "1",
                    ("section", _) => "users",
                    _ => "a",
                };
                (n.to_string(), value.to_string())
            })
            .collect();
        let body = route.body.map_or(Vec::new(), |f| serde_json::to_vec(&f()).unwrap());
        serde_json::to_vec(&build(route, &path, &query, &body).unwrap()).unwrap()
    }

    #[test]
    fn every_admin_command_has_one_route_and_each_route_makes_its_request() {
        let mut ops: Vec<&str> = ROUTES.iter().map(|r| r.op).collect();
        ops.sort_unstable();
        let mut all: Vec<&str> = Request::every_kind().iter().map(|r| r.name()).collect();
        all.sort_unstable();
        assert_eq!(ops, all);
        for route in ROUTES {
            let req = decode_request(&filled(route));
            assert!(req.is_ok(), "{} {}: {req:?}", route.op, route.path);
            // Reads are GETs, except a check that takes a body (POST); writes never are.
            let read_only = req.unwrap().is_read_only();
            let get = route.method == Method::Get;
            assert!(read_only || !get, "{}: a write over GET", route.op);
            assert!(!read_only || get || route.body.is_some(), "{}: a read over POST", route.op);
        }
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(seen.insert((r.path, r.method as u8)), "{} twice", r.path);
        }
    }

    #[test]
    fn bad_bodies_queries_and_conflicting_fields_are_refused() {
        let route = ROUTES.iter().find(|r| r.op == "user_edit").unwrap();
        let name = [("name".to_string(), "alice".to_string())];
        assert!(matches!(build(route, &name, &[], b"[1]"), Err(BuildError::Body(_))));
        assert!(matches!(build(route, &name, &[], b"{x"), Err(BuildError::Body(_))));
        let other = build(route, &name, &[], br#"{"name":"bob"}"#);
        assert_eq!(other, Err(BuildError::Conflict("name".into())));
        let same = build(route, &name, &[], br#"{"name":"alice","active":false}"#).unwrap();
        assert_eq!(same["active"], false);
        let audit = ROUTES.iter().find(|r| r.op == "audit_list").unwrap();
        let q = [("since_ms".to_string(), "soon".to_string())];
        assert!(matches!(build(audit, &[], &q, b""), Err(BuildError::Query { .. })));
        let show = ROUTES.iter().find(|r| r.op == "user_show").unwrap();
        assert!(matches!(build(show, &name, &[], b"{}"), Err(BuildError::Body(_))));
    }
}
