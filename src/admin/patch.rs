//! Partial values as given on the command line or the wire: account limits, role fields,
//! permission lists, and the kind of an export or import. Commands validate them into model
//! values inside their transaction.

use serde::{Deserialize, Serialize};

/// Account limits as given; `None` keeps the current value (or the default on create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitPatch {
    /// Max client connections.
    pub max_connections: Option<i64>,
    /// Max subscriptions.
    pub max_subscriptions: Option<i64>,
    /// Max data bytes.
    pub max_data: Option<i64>,
    /// Max payload bytes.
    pub max_payload: Option<i64>,
    /// Max leafnode connections.
    pub max_leafnodes: Option<i64>,
    /// Max imports.
    pub max_imports: Option<i64>,
    /// Max exports.
    pub max_exports: Option<i64>,
    /// JetStream disk bytes.
    pub js_disk: Option<i64>,
    /// JetStream memory bytes.
    pub js_memory: Option<i64>,
    /// JetStream streams.
    pub js_streams: Option<i64>,
    /// JetStream consumers.
    pub js_consumers: Option<i64>,
}

/// A permission list change: keep, set (possibly to explicitly nothing), or back to the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListPatch {
    /// Leave as it is.
    #[default]
    Keep,
    /// Replace with these subjects (empty = nothing allowed).
    Set(Vec<String>),
    /// Unset: the configured default applies.
    Default,
}

/// Role fields as given; `None`/`Keep` leaves a field alone on edit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolePatch {
    /// Description.
    pub description: Option<String>,
    /// Publish allow list.
    pub pub_allow: ListPatch,
    /// Publish deny list.
    pub pub_deny: ListPatch,
    /// Subscribe allow list.
    pub sub_allow: ListPatch,
    /// Subscribe deny list.
    pub sub_deny: ListPatch,
    /// Reply permission: max messages per request.
    pub allow_responses: Option<i64>,
    /// Reply permission lifetime in milliseconds.
    pub response_ttl_ms: Option<u64>,
    /// Max subscriptions per connection.
    pub max_subscriptions: Option<i64>,
    /// Max data per connection.
    pub max_data: Option<i64>,
    /// Max payload per message.
    pub max_payload: Option<i64>,
    /// Max simultaneous connections per user.
    pub max_connections: Option<i64>,
    /// Minted JWT lifetime in seconds.
    pub jwt_ttl_secs: Option<u64>,
    /// Allowed source networks (replaces the list when `Some`).
    pub source_cidrs: Option<Vec<String>>,
    /// Allowed connection types (replaces the list when `Some`).
    pub connection_types: Option<Vec<String>>,
    /// Users may sign in to the console for self-service (off also turns off
    /// `self_service_creds`).
    pub self_service: Option<bool>,
    /// Users may download their own creds in self-service (on also turns on `self_service`).
    pub self_service_creds: Option<bool>,
}

/// Stream or service, for exports and imports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// A message stream.
    #[default]
    Stream,
    /// A request/reply service.
    Service,
}
