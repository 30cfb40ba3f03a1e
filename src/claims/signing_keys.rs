//! Account signing keys: plain keys and scoped keys with a user template (Go's `SigningKeys`).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::KeyKind;

use super::types::UserPermissionLimits;
use super::validate::{is_key, FindingKind, Validation};

/// One entry of an account's `signing_keys`: a plain key (written as a string) or a scoped
/// key (written as a `user_scope` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// An unscoped signing key: an account public key.
    Key(String),
    /// A scoped signing key whose users get the scope's template.
    Scoped(Box<UserScope>),
}

impl SigningKey {
    /// The signing key's public key.
    pub fn key(&self) -> &str {
        match self {
            SigningKey::Key(k) => k,
            SigningKey::Scoped(s) => &s.key,
        }
    }
}

impl Serialize for SigningKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SigningKey::Key(k) => s.serialize_str(k),
            SigningKey::Scoped(scope) => scope.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SigningKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signing key string or a user_scope object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SigningKey, E> {
                Ok(SigningKey::Key(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SigningKey, A::Error> {
                let scope = UserScope::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(SigningKey::Scoped(Box::new(scope)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The only scope kind Go knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ScopeKind {
    /// `"user_scope"`.
    #[default]
    #[serde(rename = "user_scope")]
    UserScope,
}

/// A scoped signing key (Go's `UserScope`); all five keys are always written.
///
/// Users signed by `key` must carry no permissions or limits ([`super::UserClaims::scoped`]);
/// the server applies `template` instead. Decoding mirrors Go, which starts from
/// `NewUserScope`: a template without `subs`/`data`/`payload` reads them as -1, so a 0 limit
/// cannot be expressed in a template (Go omits it on write and reads it back as -1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// Always `user_scope`.
    pub kind: ScopeKind,
    /// The signing key (an account public key).
    #[serde(default)]
    pub key: String,
    /// A role name.
    #[serde(default)]
    pub role: String,
    /// Permissions and limits given to users of this key.
    #[serde(
        default = "UserPermissionLimits::unlimited",
        deserialize_with = "deserialize_template"
    )]
    pub template: UserPermissionLimits,
    /// Free-text description.
    #[serde(default)]
    pub description: String,
}

impl UserScope {
    /// Go's `NewUserScope` for `key`: template with unlimited subs/data/payload.
    pub fn new(key: impl Into<String>, role: impl Into<String>) -> Self {
        UserScope {
            kind: ScopeKind::UserScope,
            key: key.into(),
            role: role.into(),
            template: UserPermissionLimits::unlimited(),
            description: String::new(),
        }
    }
}

fn deserialize_template<'de, D: Deserializer<'de>>(d: D) -> Result<UserPermissionLimits, D::Error> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(flatten)]
        base: UserPermissionLimits,
        subs: Option<i64>,
        data: Option<i64>,
        payload: Option<i64>,
    }
    let w = Wire::deserialize(d)?;
    Ok(UserPermissionLimits {
        subs: w.subs.unwrap_or(-1),
        data: w.data.unwrap_or(-1),
        payload: w.payload.unwrap_or(-1),
        ..w.base
    })
}

/// Go's `SigningKeys.Validate`: every key, plain or scoped, is an account public key.
pub(crate) fn validate_signing_keys(v: &mut Validation, keys: &[SigningKey]) {
    for k in keys {
        if !is_key(k.key(), KeyKind::Account) {
            v.error(
                FindingKind::InvalidSigningKey,
                format!("signing key {:?} is not an account public key", k.key()),
            );
        }
    }
}
