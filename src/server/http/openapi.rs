//! The OpenAPI document of the HTTP API, built from the route table ([`super::routes`]):
//! every path and method, its parameters, its request body's fields (read from the command
//! type's default JSON) and the error statuses of the reply classes. Served at
//! `/api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Required, ResponseBuilder, ResponsesBuilder,
};

use super::api::PREFIX;
use super::routes::ROUTES;
use super::routes::{path_params, MeRoute, Method, QueryType, Route, ME_ROUTES};

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";
/// The name of the self-service bearer scheme (a user's own API token).
const USER_BEARER: &str = "user_bearer";

/// The statuses an operation may answer, and what each means.
const STATUSES: &[(&str, &str)] = &[
    ("200", "Done: `{\"ok\": <response>}`"),
    ("400", "Bad input (exit class usage): `{\"error\": {\"class\", \"message\"}}`"),
    ("401", "No API token, or an unknown, revoked or expired one"),
    ("403", "Outside the admin's scope, or a change by a read-only admin"),
    ("404", "No such record"),
    ("409", "Exists already, in use, or built in"),
    ("423", "The store is held by another process"),
    ("500", "Anything else"),
];

/// The document (built once).
pub(crate) fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn serve() -> Response {
    let json = document().to_json().unwrap_or_default();
    let mut response = json.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn build() -> OpenApi {
    let mut paths = PathsBuilder::new();
    let mut items: Vec<(String, PathItem)> = Vec::new();
    for route in ROUTES {
        let path = format!("{PREFIX}{}", route.path);
        let item = PathItem::new(method(route.method), operation(route));
        match items.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => existing.merge_operations(item),
            None => items.push((path, item)),
        }
    }
    for route in ME_ROUTES {
        let path = format!("{PREFIX}{}", route.path);
        let item = PathItem::new(method(route.method), me_operation(route));
        match items.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => existing.merge_operations(item),
            None => items.push((path, item)),
        }
    }
    for (path, item) in items {
        paths = paths.path(path, item);
    }
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An admin API token from `pbn admin admin token add NAME`"))
        .build();
    let user = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("An API token of a user whose role has `--self-service`"))
        .build();
    let components = ComponentsBuilder::new()
        .security_scheme(BEARER, SecurityScheme::Http(bearer))
        .security_scheme(USER_BEARER, SecurityScheme::Http(user))
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("pbn admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Every `pbn admin` command over HTTP, as its admin runs it.")),
        )
        .paths(paths.build())
        .components(Some(components))
        .security(Some([SecurityRequirement::new(BEARER, Vec::<String>::new())]))
        .build()
}

fn method(m: Method) -> HttpMethod {
    match m {
        Method::Get => HttpMethod::Get,
        Method::Post => HttpMethod::Post,
        Method::Patch => HttpMethod::Patch,
        Method::Put => HttpMethod::Put,
        Method::Delete => HttpMethod::Delete,
    }
}

fn operation(route: &Route) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(route.op))
        .summary(Some(route.summary))
        .tag(route.path.split('/').nth(1).unwrap_or("api"));
    for name in path_params(route.path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(typed(Type::String))),
        );
    }
    for (name, ty) in route.query {
        let ty = match ty {
            QueryType::Text => Type::String,
            QueryType::Integer => Type::Integer,
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(typed(ty))),
        );
    }
    if let Some(fields) = route.body {
        let mut body = fields();
        if let Value::Object(m) = &mut body {
            for name in path_params(route.path) {
                m.remove(name);
            }
            if m.contains_key("password_hash") {
                m.insert("password".into(), Value::String(String::new()));
            }
        }
        let content = ContentBuilder::new().schema(Some(schema_of(&body))).build();
        op = op.request_body(Some(
            RequestBodyBuilder::new().content("application/json", content).build(),
        ));
    }
    let mut responses = ResponsesBuilder::new();
    for (code, what) in STATUSES {
        responses = responses.response(*code, ResponseBuilder::new().description(*what));
    }
    op.responses(responses.build()).build()
}

/// A self-service operation: a user's own API token as bearer; its body's fields.
fn me_operation(route: &MeRoute) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(route.op))
        .summary(Some(route.summary))
        .description(Some(
            "Self-service: the bearer is an API token of a user whose role has --self-service.",
        ))
        .tag("me")
        .security(SecurityRequirement::new(USER_BEARER, Vec::<String>::new()));
    for name in path_params(route.path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(typed(Type::String))),
        );
    }
    if let Some(fields) = route.body {
        let content = ContentBuilder::new().schema(Some(schema_of(&fields()))).build();
        op = op.request_body(Some(
            RequestBodyBuilder::new().content("application/json", content).build(),
        ));
    }
    let mut responses = ResponsesBuilder::new();
    for (code, what) in STATUSES.iter().chain(&[("429", "Too many wrong passwords")]) {
        responses = responses.response(*code, ResponseBuilder::new().description(*what));
    }
    op.responses(responses.build()).build()
}

fn typed(ty: Type) -> Schema {
    Schema::Object(ObjectBuilder::new().schema_type(ty).build())
}

/// The schema of a command's default JSON: the types of its fields (a field whose default is
/// null may hold any value, and may be left out).
fn schema_of(value: &Value) -> Schema {
    match value {
        Value::Null => {
            Schema::Object(ObjectBuilder::new().schema_type(SchemaType::AnyValue).build())
        }
        Value::Bool(_) => typed(Type::Boolean),
        Value::Number(_) => typed(Type::Integer),
        Value::String(_) => typed(Type::String),
        Value::Array(_) => Schema::Array(
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)).build(),
        ),
        Value::Object(m) => {
            let mut o = ObjectBuilder::new().schema_type(Type::Object);
            for (k, v) in m {
                o = o.property(k.clone(), schema_of(v));
            }
            Schema::Object(o.build())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_with_its_parameters() {
        let doc: Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
        for route in ROUTES {
            let path = format!("{PREFIX}{}", route.path);
            let m = format!("{:?}", route.method).to_lowercase();
            let op = &doc["paths"][&path][&m];
            assert_eq!(op["operationId"], route.op, "{path} {m}");
            for p in path_params(route.path) {
                let params = op["parameters"].as_array().unwrap();
                assert!(params.iter().any(|x| x["name"] == p && x["in"] == "path"), "{path}");
            }
            assert!(op["responses"]["404"].is_object());
        }
        let add = &doc["paths"]["/api/v1/users"]["post"]["requestBody"]["content"];
        let props = &add["application/json"]["schema"]["properties"];
        assert_eq!(props["account"]["type"], "string", "{props}");
        assert!(props["password"].is_object(), "{props}");
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        for route in ME_ROUTES {
            let m = format!("{:?}", route.method).to_lowercase();
            let op = &doc["paths"][format!("{PREFIX}{}", route.path)][&m];
            assert_eq!(op["operationId"], route.op, "{}", route.path);
            assert!(op["security"][0]["user_bearer"].is_array(), "{op}");
        }
        let pw = &doc["paths"]["/api/v1/me/password"]["put"]["requestBody"]["content"];
        assert!(pw["application/json"]["schema"]["properties"]["old_password"].is_object());
    }
}
