//! Roles (permissions and per-user limits) and users (credentials, never seeds).

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::template::{self, UserTags};
use super::{
    check_text, clip, Limit, ModelError, Name, Permissions, ResponsePermission, Subject,
    DESCRIPTION_MAX_LEN,
};
use crate::keys::UserPublicKey;

/// The connection types NATS knows, as a role's `connection_types` may list them.
pub const CONNECTION_TYPES: [&str; 7] =
    ["STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"];

/// Longest email address, in characters.
pub const EMAIL_MAX_LEN: usize = 254;

/// Shortest lifetime of a minted user JWT, in seconds (JWT times are whole seconds; a shorter
/// lifetime would expire before the client has connected).
pub const MIN_JWT_TTL_SECS: u64 = 1;

/// Longest API token id, in characters.
pub const TOKEN_ID_MAX_LEN: usize = 64;

/// What users of a role may do: permissions, reply rights, per-user limits and JWT lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Unique role name.
    pub name: Name,
    /// Free-text description.
    pub description: String,
    /// Publish/subscribe permissions (unset lists take the configured defaults).
    pub permissions: Permissions,
    /// Reply permission for request/reply services; `None` = none.
    pub allow_responses: Option<ResponsePermission>,
    /// Subscriptions per connection.
    pub max_subscriptions: Limit,
    /// Bytes in flight per connection.
    pub max_data: Limit,
    /// Largest payload per message.
    pub max_payload: Limit,
    /// Concurrent connections per user (enforced by pbn at callout time).
    pub max_connections: Limit,
    /// Lifetime of minted user JWTs; `None` = the configured default.
    pub jwt_ttl: Option<Duration>,
    /// Allowed connection types (see `CONNECTION_TYPES`); empty = any.
    pub connection_types: Vec<String>,
    /// Source networks users may connect from; empty = any.
    #[serde(with = "cidr_strings")]
    pub source_cidrs: Vec<IpNet>,
    /// Its users may sign in to the web console with their NATS password to change it and
    /// manage their own API tokens. Absent from records written before it existed (and left
    /// out when off, so such records encode as before): off.
    #[serde(default, skip_serializing_if = "is_false")]
    pub self_service: bool,
    /// With `self_service`: its users may also download their own creds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub self_service_creds: bool,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl Role {
    /// A role with unset permissions (configured defaults), unlimited limits and no extras.
    pub fn new(name: Name, now: i64) -> Self {
        Role {
            name,
            description: String::new(),
            permissions: Permissions::default(),
            allow_responses: None,
            max_subscriptions: Limit::UNLIMITED,
            max_data: Limit::UNLIMITED,
            max_payload: Limit::UNLIMITED,
            max_connections: Limit::UNLIMITED,
            jwt_ttl: None,
            connection_types: vec![],
            source_cidrs: vec![],
            self_service: false,
            self_service_creds: false,
            created: now,
            updated: now,
        }
    }

    /// Checks the description, reply permission, JWT lifetime and connection types.
    pub fn validate(&self) -> Result<(), ModelError> {
        check_text("role description", &self.description, DESCRIPTION_MAX_LEN)?;
        if let Some(resp) = &self.allow_responses {
            resp.validate()?;
        }
        if self.jwt_ttl.is_some_and(|t| t.as_secs() < MIN_JWT_TTL_SECS) {
            return Err(ModelError::JwtTtlTooShort(self.name.to_string()));
        }
        self.check_templates()?;
        if let Some(bad) =
            self.connection_types.iter().find(|t| !CONNECTION_TYPES.contains(&t.as_str()))
        {
            return Err(ModelError::ConnectionType(clip(bad)));
        }
        Ok(())
    }
}

impl Role {
    /// Checks every permission entry as a subject template (see [`super::template`]).
    fn check_templates(&self) -> Result<(), ModelError> {
        let p = &self.permissions;
        let subjects = p.pub_allow.iter().chain(&p.pub_deny).flatten();
        for s in subjects {
            template::check_entry(s.as_str(), false)?;
        }
        for s in p.sub_allow.iter().chain(&p.sub_deny).flatten() {
            template::check_entry(&s.to_string(), true)?;
        }
        Ok(())
    }

    /// Whether any permission entry holds a placeholder (the minted subjects depend on the user).
    pub fn is_templated(&self) -> bool {
        let p = &self.permissions;
        let subjects = p.pub_allow.iter().chain(&p.pub_deny).flatten();
        subjects.map(Subject::as_str).any(template::is_template)
            || p.sub_allow.iter().chain(&p.sub_deny).flatten().any(|s| {
                s.subject().as_str().contains("{{")
                    || s.queue().is_some_and(|q| q.as_str().contains("{{"))
            })
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Serializes networks as their text form (`"10.0.0.0/8"`).
mod cidr_strings {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| t.parse().map_err(serde::de::Error::custom)).collect()
    }
}

/// An API token of a user. The token itself is shown once; only its hash is stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Identifier, unique per user: 1..=64 characters of `[A-Za-z0-9_-]`.
    pub id: String,
    /// Free-text label.
    pub label: String,
    /// Lower-case hex SHA-256 of the token (see [`ApiToken::hash_secret`]). Never printed.
    pub hash: String,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds after which the token is refused; `None` = never.
    pub expires: Option<i64>,
}

impl ApiToken {
    /// The stored form of a token: lower-case hex SHA-256 of its text.
    pub fn hash_secret(token: &str) -> String {
        data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
    }

    /// Whether the token is expired at `now` (unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// Checks the id format, the label length and that `hash` looks like a SHA-256 hex digest.
    pub fn validate(&self) -> Result<(), ModelError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= TOKEN_ID_MAX_LEN
            && self.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !id_ok {
            return Err(ModelError::TokenId(clip(&self.id)));
        }
        check_text("token label", &self.label, DESCRIPTION_MAX_LEN)?;
        let hash_ok =
            self.hash.len() == 64 && self.hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
        if !hash_ok {
            return Err(ModelError::TokenHash(self.id.clone()));
        }
        Ok(())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("hash", &"<redacted>")
            .field("created", &self.created)
            .field("expires", &self.expires)
            .finish()
    }
}

/// A creds file handed out for a user: its fresh public key (the seed went to the user only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCreds {
    /// The user key in the creds file.
    pub public: UserPublicKey,
    /// Unix seconds of issue.
    pub issued: i64,
}

/// A user: belongs to one account, has one role, logs in with a password, a token or an nkey.
///
/// No user seed is ever stored: JWTs are minted per connection for the client's own key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique user name (the login name).
    pub name: Name,
    /// Contact address.
    pub email: Option<String>,
    /// Free-text description.
    pub description: String,
    /// The account the user's JWTs are placed in.
    pub account: Name,
    /// The role giving permissions and limits.
    pub role: Name,
    /// argon2id PHC string of the password; never the password. Never printed.
    pub password_hash: Option<String>,
    /// API tokens (hashed).
    pub tokens: Vec<ApiToken>,
    /// A registered nkey the user may log in with by signing the server nonce.
    pub nkey: Option<UserPublicKey>,
    /// Inactive users cannot log in.
    pub active: bool,
    /// Creds files issued for this user (public keys only), for revocation.
    pub creds: Vec<IssuedCreds>,
    /// Tags that subject templates refer to (`{{tag:KEY}}`). Absent in records written before
    /// tags existed: they read as none.
    #[serde(default, skip_serializing_if = "UserTags::is_empty")]
    pub tags: UserTags,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl User {
    /// An active user without credentials yet.
    pub fn new(name: Name, account: Name, role: Name, now: i64) -> Self {
        User {
            name,
            email: None,
            description: String::new(),
            account,
            role,
            password_hash: None,
            tokens: vec![],
            nkey: None,
            active: true,
            creds: vec![],
            tags: UserTags::new(),
            created: now,
            updated: now,
        }
    }

    /// The token with `id`, if any.
    pub fn token(&self, id: &str) -> Option<&ApiToken> {
        self.tokens.iter().find(|t| t.id == id)
    }

    /// Checks email, description, the password hash format and the tokens (unique ids and hashes).
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(email) = &self.email {
            check_email(email)?;
        }
        check_text("user description", &self.description, DESCRIPTION_MAX_LEN)?;
        if let Some(hash) = &self.password_hash {
            if !hash.starts_with("$argon2id$") {
                return Err(ModelError::PasswordNotHashed(self.name.to_string()));
            }
        }
        template::check_tags(&self.tags)?;
        let mut ids = HashSet::new();
        let mut hashes = HashSet::new();
        for token in &self.tokens {
            token.validate()?;
            if !ids.insert(token.id.as_str()) || !hashes.insert(token.hash.as_str()) {
                return Err(ModelError::DuplicateToken(token.id.clone()));
            }
        }
        Ok(())
    }
}

fn check_email(email: &str) -> Result<(), ModelError> {
    let shape_ok = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    let chars_ok = !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !shape_ok || !chars_ok || email.chars().count() > EMAIL_MAX_LEN {
        return Err(ModelError::Email(clip(email)));
    }
    Ok(())
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("description", &self.description)
            .field("account", &self.account)
            .field("role", &self.role)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .field("tokens", &self.tokens)
            .field("nkey", &self.nkey)
            .field("active", &self.active)
            .field("creds", &self.creds)
            .field("tags", &self.tags)
            .field("created", &self.created)
            .field("updated", &self.updated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn token(id: &str, secret: &str) -> ApiToken {
        ApiToken {
            id: id.into(),
            label: "ci".into(),
            hash: ApiToken::hash_secret(secret),
            created: 1,
            expires: None,
        }
    }

    fn user() -> User {
        User::new(name("alice"), name("orders"), name("writer"), 10)
    }

    #[test]
    fn new_role_is_unlimited_with_unset_permissions() {
        let role = Role::new(name("writer"), 1);
        role.validate().unwrap();
        assert_eq!(role.max_connections, Limit::UNLIMITED);
        assert_eq!(role.max_payload, Limit::UNLIMITED);
        assert_eq!(role.permissions, Permissions::default());
    }

    #[test]
    fn role_rejects_unknown_connection_type_and_zero_ttl() {
        let mut role = Role::new(name("r"), 1);
        role.connection_types = vec!["STANDARD".into(), "TELNET".into()];
        assert!(matches!(role.validate(), Err(ModelError::ConnectionType(t)) if t == "TELNET"));
        role.connection_types = CONNECTION_TYPES.iter().map(|s| s.to_string()).collect();
        role.validate().unwrap();
        role.jwt_ttl = Some(Duration::ZERO);
        assert!(matches!(role.validate(), Err(ModelError::JwtTtlTooShort(_))));
    }

    #[test]
    fn role_cidrs_serialize_as_text() {
        let mut role = Role::new(name("r"), 1);
        role.source_cidrs = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let json = serde_json::to_string(&role).unwrap();
        assert!(json.contains("\"10.0.0.0/8\""));
        assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
    }

    #[test]
    fn self_service_flags_default_off_and_leave_old_records_unchanged() {
        let role = Role::new(name("r"), 1);
        let json = serde_json::to_value(&role).unwrap();
        assert!(json.get("self_service").is_none() && json.get("self_service_creds").is_none());
        let back: Role = serde_json::from_value(json).unwrap();
        assert!(!back.self_service && !back.self_service_creds);
        let mut on = role.clone();
        (on.self_service, on.self_service_creds) = (true, true);
        let json = serde_json::to_string(&on).unwrap();
        assert!(json.contains("\"self_service\":true"), "{json}");
        assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), on);
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        let h = ApiToken::hash_secret("abc");
        assert_eq!(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        token("t1", "abc").validate().unwrap();
        let mut bad = token("t1", "abc");
        bad.hash = "abc".into();
        assert!(matches!(bad.validate(), Err(ModelError::TokenHash(id)) if id == "t1"));
        let bad_id = token("bad id", "x");
        assert!(matches!(bad_id.validate(), Err(ModelError::TokenId(_))));
    }

    #[test]
    fn token_expiry() {
        let mut t = token("t", "s");
        assert!(!t.is_expired(i64::MAX));
        t.expires = Some(100);
        assert!(!t.is_expired(99));
        assert!(t.is_expired(100));
    }

    #[test]
    fn user_validation() {
        let mut u = user();
        u.validate().unwrap();
        u.email = Some("alice@example.com".into());
        u.validate().unwrap();
        u.email = Some("not an email".into());
        assert!(matches!(u.validate(), Err(ModelError::Email(_))));
        u.email = None;
        u.password_hash = Some("hunter2".into());
        let err = u.validate().unwrap_err();
        assert!(matches!(err, ModelError::PasswordNotHashed(_)));
        assert!(!err.to_string().contains("hunter2"));
        u.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        u.validate().unwrap();
        u.tokens = vec![token("a", "s1"), token("a", "s2")];
        assert!(matches!(u.validate(), Err(ModelError::DuplicateToken(_))));
        u.tokens = vec![token("a", "s1"), token("b", "s1")];
        assert!(matches!(u.validate(), Err(ModelError::DuplicateToken(_))));
    }

    #[test]
    fn a_user_record_written_before_tags_reads_with_none() {
        let mut u = user();
        let json = serde_json::to_value(&u).unwrap();
        assert!(json.get("tags").is_none(), "no tags, no field: older builds read it too");
        let back: User = serde_json::from_value(json).unwrap();
        assert!(back.tags.is_empty());
        u.tags.insert("site".into(), "berlin".into());
        let back: User = serde_json::from_value(serde_json::to_value(&u).unwrap()).unwrap();
        assert_eq!(back.tags, u.tags);
    }

    #[test]
    fn role_templates_are_checked_on_validation() {
        let mut role = Role::new(name("device"), 1);
        role.permissions.pub_allow = Some(vec![Subject::parse("devices.{{name}}.>").unwrap()]);
        role.validate().unwrap();
        assert!(role.is_templated());
        role.permissions.pub_allow = Some(vec![Subject::parse("devices.{{nme}}.>").unwrap()]);
        assert!(matches!(role.validate(), Err(ModelError::Template(_))));
        assert!(!Role::new(name("plain"), 1).is_templated());
    }

    #[test]
    fn user_debug_redacts_password_and_token_hashes() {
        let mut u = user();
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
        u.password_hash = Some(phc.into());
        u.tokens = vec![token("t", "secret")];
        let text = format!("{u:?}");
        assert!(!text.contains(phc));
        assert!(!text.contains(&ApiToken::hash_secret("secret")));
        assert!(text.contains("alice"));
    }
}
