//! What admin operations answer: secret-free views of records, plus the one-time secrets that
//! creating creds or a token produces, and their table rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The operator, without seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorView {
    /// Name.
    pub name: String,
    /// Identity public key.
    pub public_key: String,
    /// Signing public keys, oldest first.
    pub signing_keys: Vec<String>,
    /// System account public key.
    pub system_account: String,
    /// Operator JWT.
    pub jwt: String,
}

/// Account limits as numbers (-1 unlimited, 0 disabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsView {
    /// Max client connections.
    pub max_connections: i64,
    /// Max subscriptions.
    pub max_subscriptions: i64,
    /// Max data bytes.
    pub max_data: i64,
    /// Max payload bytes.
    pub max_payload: i64,
    /// Max leafnodes.
    pub max_leafnodes: i64,
    /// Max imports.
    pub max_imports: i64,
    /// Max exports.
    pub max_exports: i64,
    /// JetStream disk bytes.
    pub js_disk: i64,
    /// JetStream memory bytes.
    pub js_memory: i64,
    /// JetStream streams.
    pub js_streams: i64,
    /// JetStream consumers.
    pub js_consumers: i64,
}

/// An export or import line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareView {
    /// Subject.
    pub subject: String,
    /// `stream` or `service`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// For imports: the exporting account key; for exports: empty.
    pub account: String,
    /// For imports: the local subject, if renamed.
    pub local_subject: String,
}

/// An account, without seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// Name.
    pub name: String,
    /// `system`, `auth` or `managed`.
    pub kind: String,
    /// Identity public key.
    pub public_key: String,
    /// Description.
    pub description: String,
    /// Whether users can connect.
    pub active: bool,
    /// Signing public keys, oldest first (the newest signs).
    pub signing_keys: Vec<String>,
    /// Limits.
    pub limits: LimitsView,
    /// Refuse bearer users.
    pub disallow_bearer: bool,
    /// Exports.
    pub exports: Vec<ShareView>,
    /// Imports.
    pub imports: Vec<ShareView>,
    /// Number of revocation entries.
    pub revocations: usize,
    /// Number of users.
    pub users: usize,
    /// The account JWT, when asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jwt: Option<String>,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Publish allow (`None` = default).
    pub pub_allow: Option<Vec<String>>,
    /// Publish deny.
    pub pub_deny: Option<Vec<String>>,
    /// Subscribe allow (`None` = default).
    pub sub_allow: Option<Vec<String>>,
    /// Subscribe deny.
    pub sub_deny: Option<Vec<String>>,
    /// Reply permission max messages, if replies are allowed.
    pub allow_responses: Option<i64>,
    /// Reply permission lifetime (ms).
    pub response_ttl_ms: Option<u64>,
    /// Max subscriptions per connection.
    pub max_subscriptions: i64,
    /// Max data per connection.
    pub max_data: i64,
    /// Max payload.
    pub max_payload: i64,
    /// Max connections per user.
    pub max_connections: i64,
    /// JWT lifetime (s), if set.
    pub jwt_ttl_secs: Option<u64>,
    /// Allowed source networks.
    pub source_cidrs: Vec<String>,
    /// Allowed connection types.
    pub connection_types: Vec<String>,
    /// Users may sign in to the console for self-service.
    #[serde(default)]
    pub self_service: bool,
    /// Users may download their own creds in self-service.
    #[serde(default)]
    pub self_service_creds: bool,
    /// Number of users with this role.
    pub users: usize,
}

/// A user, without secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Name.
    pub name: String,
    /// Account name.
    pub account: String,
    /// Role name.
    pub role: String,
    /// Active.
    pub active: bool,
    /// E-mail.
    pub email: Option<String>,
    /// Description.
    pub description: String,
    /// Whether a password is set.
    pub has_password: bool,
    /// Number of API tokens.
    pub tokens: usize,
    /// Registered nkey.
    pub nkey: Option<String>,
    /// Public keys of creds handed out.
    pub creds: Vec<String>,
    /// Tags (`KEY=VALUE`) for subject templates.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Created (unix s).
    pub created: i64,
    /// Updated (unix s).
    pub updated: i64,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// Id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Created (unix s).
    pub created: i64,
    /// Expiry (unix s), if any.
    pub expires: Option<i64>,
}

/// A claims outbox entry: a push pending or given up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxView {
    /// Account public key (the entry's id).
    pub account: String,
    /// Account name when the entry was queued.
    pub account_name: String,
    /// `upsert` or `delete`.
    pub action: String,
    /// `pending` or `failed`.
    pub state: String,
    /// Failed attempts since the last change.
    pub attempts: u32,
    /// Next attempt (unix ms), for pending entries.
    pub next_attempt: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the entry was given up (unix ms).
    pub failed_at: Option<i64>,
    /// First queued (unix ms).
    pub created: i64,
    /// Last change (unix ms).
    pub updated: i64,
}

/// The answer to an admin request. `Debug` shows the JSON form with the one-time secrets
/// (creds text, token) redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Response {
    /// The operator.
    Operator(OperatorView),
    /// One account.
    Account(AccountView),
    /// Accounts.
    Accounts(Vec<AccountView>),
    /// An account's signing keys were all replaced by a new one.
    KeysRotated {
        /// Account name.
        account: String,
        /// The new signing key (public).
        signing_key: String,
        /// The signing keys removed (public).
        removed: Vec<String>,
        /// Users holding creds signed by a removed key: they need new creds.
        creds_users: Vec<String>,
    },
    /// One role.
    Role(RoleView),
    /// Roles.
    Roles(Vec<RoleView>),
    /// One user.
    User(UserView),
    /// Users.
    Users(Vec<UserView>),
    /// Tokens of a user.
    Tokens(Vec<TokenView>),
    /// Freshly minted creds (shown once).
    Creds {
        /// User name.
        user: String,
        /// Public key of the new creds.
        public_key: String,
        /// The creds file text (JWT + seed).
        creds: String,
        /// Public keys revoked by this operation.
        revoked: Vec<String>,
    },
    /// A fresh API token (shown once).
    Token {
        /// User name.
        user: String,
        /// Token id.
        id: String,
        /// The token.
        token: String,
    },
    /// The claims outbox.
    Outbox(Vec<OutboxView>),
    /// What the servers trust and preload (for `pbn nats-conf --server`).
    Trust(Box<crate::natsconf::Trust>),
    /// Named admins.
    Admins(Vec<super::AdminView>),
    /// Audit entries, oldest first.
    Audit(Vec<crate::model::AuditRecord>),
    /// Live sessions.
    Sessions(Vec<super::sessions::SessionView>),
    /// Replicas.
    Replicas(Vec<super::replicas::ReplicaView>),
    /// A new replica: what its join bundle needs (creds and store key shown once).
    Replica {
        /// Name.
        name: String,
        /// Public key of its creds.
        public_key: String,
        /// Its creds file text (JWT + seed).
        creds: String,
        /// The store key file's text; `None` for a plain store or a passphrase.
        store_key: Option<String>,
        /// Whether a passphrase opens the store (the joiner must be given it).
        passphrase: bool,
        /// The store's seal metadata (`Store::genesis`), encoded and in base64.
        genesis: String,
        /// The log's stream.
        stream: String,
    },
    /// The answer of a bulk import, check or export page.
    Bulk(Box<super::bulk::BulkAnswer>),
    /// One identity provider.
    Idp(super::IdpView),
    /// Identity providers.
    Idps(Vec<super::IdpView>),
    /// A write that returns nothing but a message.
    Done {
        /// What happened.
        message: String,
    },
}

fn limit(v: i64) -> String {
    match v {
        -1 => "unlimited".into(),
        0 => "disabled".into(),
        n => n.to_string(),
    }
}

fn list(v: &Option<Vec<String>>) -> String {
    match v {
        None => "(default)".into(),
        Some(v) if v.is_empty() => "(nothing)".into(),
        Some(v) => v.join(", "),
    }
}

impl Response {
    /// Human-readable text (tables for lists, key: value for one record). Control characters
    /// other than the line breaks of the layout are shown escaped (`\u{1b}`), so a stored value
    /// (older stores, outbox errors) can never drive the terminal.
    pub fn to_text(&self) -> String {
        escape_controls(&self.raw_text())
    }

    fn raw_text(&self) -> String {
        let mut s = String::new();
        match self {
            Response::Operator(o) => {
                let _ = writeln!(s, "name:           {}", o.name);
                let _ = writeln!(s, "public key:     {}", o.public_key);
                let _ = writeln!(s, "signing keys:   {}", o.signing_keys.join(", "));
                let _ = writeln!(s, "system account: {}", o.system_account);
            }
            Response::Account(a) => account_text(&mut s, a),
            Response::Admins(v) => super::admins::text(&mut s, v),
            Response::Replicas(v) => super::replicas::text(&mut s, v),
            Response::Replica { name, public_key, .. } => {
                let _ = writeln!(s, "replica {name} added (user key {public_key})");
            }
            Response::Audit(v) => super::audit::text(&mut s, v),
            Response::Sessions(v) => super::sessions::text(&mut s, v),
            Response::Idp(v) => super::idps::text(&mut s, v),
            Response::Idps(v) => super::idps::list_text(&mut s, v),
            Response::Accounts(v) => {
                let _ = writeln!(
                    s,
                    "{:<24} {:<8} {:<7} {:<6} PUBLIC KEY",
                    "NAME", "KIND", "ACTIVE", "USERS"
                );
                for a in v {
                    let _ = writeln!(
                        s,
                        "{:<24} {:<8} {:<7} {:<6} {}",
                        a.name, a.kind, a.active, a.users, a.public_key
                    );
                }
            }
            Response::KeysRotated { account, signing_key, removed, creds_users } => {
                rotated_text(&mut s, account, signing_key, removed, creds_users)
            }
            Response::Role(r) => role_text(&mut s, r),
            Response::Roles(v) => {
                let _ = writeln!(s, "{:<24} {:<6} {:<30} SUB", "NAME", "USERS", "PUB");
                for r in v {
                    let _ = writeln!(
                        s,
                        "{:<24} {:<6} {:<30} {}",
                        r.name,
                        r.users,
                        list(&r.pub_allow),
                        list(&r.sub_allow)
                    );
                }
            }
            Response::User(u) => user_text(&mut s, u),
            Response::Users(v) => {
                let _ = writeln!(s, "{:<24} {:<20} {:<20} ACTIVE", "NAME", "ACCOUNT", "ROLE");
                for u in v {
                    let _ =
                        writeln!(s, "{:<24} {:<20} {:<20} {}", u.name, u.account, u.role, u.active);
                }
            }
            Response::Tokens(v) => {
                let _ = writeln!(s, "{:<28} {:<20} {:<12} EXPIRES", "ID", "LABEL", "CREATED");
                for t in v {
                    let exp = t.expires.map_or("never".to_string(), |e| e.to_string());
                    let _ = writeln!(s, "{:<28} {:<20} {:<12} {}", t.id, t.label, t.created, exp);
                }
            }
            Response::Creds { creds, .. } => s.push_str(creds),
            Response::Token { id, token, .. } => {
                let _ = writeln!(s, "token id: {id}");
                let _ = writeln!(s, "token:    {token}");
                let _ = writeln!(s, "(shown once: store it now)");
            }
            Response::Outbox(v) => outbox_text(&mut s, v),
            Response::Trust(t) => {
                let _ = writeln!(s, "system account: {}", t.system_account);
                let _ = writeln!(s, "preloaded accounts: {}", t.preload.len());
            }
            Response::Bulk(b) => super::bulk::text(&mut s, b),
            Response::Done { message } => {
                let _ = writeln!(s, "{message}");
            }
        }
        s
    }
}

fn account_text(s: &mut String, a: &AccountView) {
    let l = &a.limits;
    let _ = writeln!(s, "name:            {}", a.name);
    let _ = writeln!(s, "kind:            {}", a.kind);
    let _ = writeln!(s, "public key:      {}", a.public_key);
    let _ = writeln!(s, "active:          {}", a.active);
    let _ = writeln!(s, "description:     {}", a.description);
    let _ = writeln!(s, "signing keys:    {}", a.signing_keys.join(", "));
    let _ = writeln!(s, "users:           {}", a.users);
    let _ = writeln!(s, "connections:     {}", limit(l.max_connections));
    let _ = writeln!(s, "subscriptions:   {}", limit(l.max_subscriptions));
    let _ = writeln!(s, "payload:         {}", limit(l.max_payload));
    let _ = writeln!(s, "data:            {}", limit(l.max_data));
    let _ = writeln!(s, "leafnodes:       {}", limit(l.max_leafnodes));
    let _ = writeln!(s, "imports/exports: {} / {}", limit(l.max_imports), limit(l.max_exports));
    let _ = writeln!(
        s,
        "jetstream:       disk {}, memory {}, streams {}, consumers {}",
        limit(l.js_disk),
        limit(l.js_memory),
        limit(l.js_streams),
        limit(l.js_consumers)
    );
    let _ = writeln!(s, "disallow bearer: {}", a.disallow_bearer);
    for e in &a.exports {
        let _ = writeln!(s, "export:          {} ({}) {}", e.subject, e.kind, e.name);
    }
    for i in &a.imports {
        let _ = writeln!(s, "import:          {} ({}) from {}", i.subject, i.kind, i.account);
    }
    let _ = writeln!(s, "revocations:     {}", a.revocations);
}

fn rotated_text(s: &mut String, account: &str, key: &str, removed: &[String], users: &[String]) {
    let _ = writeln!(s, "account {account}: new signing key {key}");
    for k in removed {
        let _ = writeln!(s, "removed signing key {k}");
    }
    if users.is_empty() {
        let _ = writeln!(s, "no user holds creds of this account");
        return;
    }
    let _ = writeln!(
        s,
        "users holding creds signed by a removed key (issue new ones with `pbn admin user creds NAME`):"
    );
    for u in users {
        let _ = writeln!(s, "  {u}");
    }
}

fn outbox_text(s: &mut String, v: &[OutboxView]) {
    let _ = writeln!(
        s,
        "{:<20} {:<7} {:<8} {:<8} {:<56} LAST ERROR",
        "ACCOUNT", "ACTION", "STATE", "ATTEMPTS", "PUBLIC KEY"
    );
    for e in v {
        let _ = writeln!(
            s,
            "{:<20} {:<7} {:<8} {:<8} {:<56} {}",
            e.account_name,
            e.action,
            e.state,
            e.attempts,
            e.account,
            e.last_error.as_deref().unwrap_or("")
        );
    }
}

fn role_text(s: &mut String, r: &RoleView) {
    let _ = writeln!(s, "name:              {}", r.name);
    let _ = writeln!(s, "description:       {}", r.description);
    let _ = writeln!(s, "publish allow:     {}", list(&r.pub_allow));
    let _ = writeln!(s, "publish deny:      {}", list(&r.pub_deny));
    let _ = writeln!(s, "subscribe allow:   {}", list(&r.sub_allow));
    let _ = writeln!(s, "subscribe deny:    {}", list(&r.sub_deny));
    let resp = r.allow_responses.map_or("no".to_string(), |m| format!("yes (max {})", limit(m)));
    let _ = writeln!(s, "allow responses:   {resp}");
    let _ = writeln!(s, "subscriptions:     {}", limit(r.max_subscriptions));
    let _ = writeln!(s, "payload:           {}", limit(r.max_payload));
    let _ = writeln!(s, "connections/user:  {}", limit(r.max_connections));
    let ttl = r.jwt_ttl_secs.map_or("(default)".to_string(), |t| format!("{t}s"));
    let _ = writeln!(s, "jwt ttl:           {ttl}");
    let _ = writeln!(s, "source cidrs:      {}", r.source_cidrs.join(", "));
    let _ = writeln!(s, "connection types:  {}", r.connection_types.join(", "));
    let service = match (r.self_service, r.self_service_creds) {
        (false, _) => "no",
        (true, false) => "yes",
        (true, true) => "yes, with creds",
    };
    let _ = writeln!(s, "self-service:      {service}");
    let _ = writeln!(s, "users:             {}", r.users);
}

fn user_text(s: &mut String, u: &UserView) {
    let _ = writeln!(s, "name:        {}", u.name);
    let _ = writeln!(s, "account:     {}", u.account);
    let _ = writeln!(s, "role:        {}", u.role);
    let _ = writeln!(s, "active:      {}", u.active);
    let _ = writeln!(s, "email:       {}", u.email.as_deref().unwrap_or(""));
    let _ = writeln!(s, "description: {}", u.description);
    let _ = writeln!(s, "password:    {}", if u.has_password { "set" } else { "none" });
    let _ = writeln!(s, "tokens:      {}", u.tokens);
    let _ = writeln!(s, "nkey:        {}", u.nkey.as_deref().unwrap_or(""));
    let _ = writeln!(s, "creds:       {}", u.creds.join(", "));
    let tags: Vec<String> = u.tags.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    let _ = writeln!(s, "tags:        {}", tags.join(", "));
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(data) = v.get_mut("data").and_then(|d| d.as_object_mut()) {
            for secret in ["creds", "token", "store_key"] {
                if let Some(x) = data.get_mut(secret).filter(|x| x.is_string()) {
                    *x = serde_json::Value::String("<redacted>".into());
                }
            }
        }
        write!(f, "Response({v})")
    }
}

/// `text` with every control character except `\n` written as a Rust escape (`\u{1b}`, `\t`).
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text.to_string();
    }
    text.chars()
        .map(
            |c| if c.is_control() && c != '\n' { c.escape_default().to_string() } else { c.into() },
        )
        .collect()
}

#[cfg(test)]
mod debug_tests {
    use super::Response;

    #[test]
    fn debug_redacts_one_time_secrets() {
        let creds = Response::Creds {
            user: "alice".into(),
            public_key: "UKEY".into(),
            creds: "-----BEGIN USER NKEY SEED----- SUSECRET".into(),
            revoked: vec![],
        };
        let token =
            Response::Token { user: "alice".into(), id: "tok_1".into(), token: "pbn_x".into() };
        let shown = format!("{creds:?} {token:?}");
        assert!(!shown.contains("SUSECRET") && !shown.contains("pbn_x"), "{shown}");
        assert!(shown.contains("UKEY") && shown.contains("tok_1"), "{shown}");
    }

    #[test]
    fn text_output_escapes_control_characters() {
        let done = Response::Done { message: "evil \u{1b}[31mred\u{7} tab\there\nnext".into() };
        let text = done.to_text();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("evil \\u{1b}[31mred\\u{7} tab\\there\nnext"), "{text:?}");
    }
}
