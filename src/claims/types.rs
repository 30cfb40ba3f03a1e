//! Building blocks shared by several bodies: permissions, response permissions, time ranges and
//! the user permission/limit set (Go's `UserPermissionLimits`).

use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::json::is_zero;
use super::validate::{check_permission, validate_cidr, validate_time_range, Validation};

/// Allow and deny subject lists (Go's `Permission`); empty lists are not written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Permission {
    /// Subjects allowed; for subscriptions an entry may be `"subject queue"`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Subjects denied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Permission {
    /// True when neither list has entries.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    fn validate(&self, v: &mut Validation, permit_queue: bool) {
        for subject in self.allow.iter().chain(&self.deny) {
            check_permission(v, subject, permit_queue);
        }
    }
}

/// Permission to publish to reply subjects of received requests (Go's `ResponsePermission`).
///
/// Both keys are always written. nats-server reads `max` 0 as 1 and `ttl` 0 as two minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResponsePermission {
    /// How many responses may be sent per request.
    pub max: i64,
    /// How long the permission lasts, in nanoseconds (Go `time.Duration`).
    pub ttl: i64,
}

impl ResponsePermission {
    /// `max` responses within `ttl` (saturating at `i64::MAX` nanoseconds).
    pub fn new(max: i64, ttl: Duration) -> Self {
        ResponsePermission { max, ttl: i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX) }
    }

    /// `ttl` as a duration (negative values read as zero).
    pub fn ttl_duration(&self) -> Duration {
        Duration::from_nanos(u64::try_from(self.ttl).unwrap_or(0))
    }
}

/// Publish, subscribe and response permissions (Go's `Permissions`); used for an account's
/// `default_permissions`. `pub` and `sub` are always written, `resp` only when set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Permissions {
    /// Publish permissions.
    #[serde(rename = "pub")]
    pub publish: Permission,
    /// Subscribe permissions.
    #[serde(rename = "sub")]
    pub subscribe: Permission,
    /// Response permission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
}

impl Permissions {
    pub(crate) fn validate(&self, v: &mut Validation) {
        self.subscribe.validate(v, true);
        self.publish.validate(v, false);
    }
}

/// A daily time window `HH:MM:SS`–`HH:MM:SS` in which a user may connect.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeRange {
    /// Start, `HH:MM:SS`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End, `HH:MM:SS`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub end: String,
}

/// A user's permissions and limits (Go's `UserPermissionLimits`): the part of a user body a
/// scoped signing key's template replaces.
///
/// Go writes `pub` and `sub` always; this type writes them too unless the whole set is empty
/// ([`is_empty`](Self::is_empty)), which is how a user of a scoped signing key must look (the
/// server requires "no permissions or limits"). Go reads both forms the same way.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct UserPermissionLimits {
    /// Publish permissions (`pub`).
    #[serde(rename = "pub")]
    pub publish: Permission,
    /// Subscribe permissions (`sub`).
    #[serde(rename = "sub")]
    pub subscribe: Permission,
    /// Response permission (`resp`).
    pub resp: Option<ResponsePermission>,
    /// Source networks (CIDRs) the user may connect from; decodes from an array or a
    /// comma-separated string, as Go's `CIDRList` does.
    #[serde(deserialize_with = "deserialize_cidr_list")]
    pub src: Vec<String>,
    /// Time windows in which the user may connect.
    pub times: Vec<TimeRange>,
    /// IANA zone of `times` (`times_location`).
    pub times_location: String,
    /// Max subscriptions: -1 unlimited, 0 none.
    pub subs: i64,
    /// Max data bytes: -1 unlimited (not enforced by nats-server).
    pub data: i64,
    /// Max payload bytes: -1 unlimited, 0 none.
    pub payload: i64,
    /// Skip nonce signing at connect (refused by accounts with `disallow_bearer`).
    pub bearer_token: bool,
    /// Require a trusted proxy (nats-server 2.12+).
    pub proxy_required: bool,
    /// Allowed connection types (`STANDARD`, `WEBSOCKET`, …); empty means all.
    pub allowed_connection_types: Vec<String>,
}

impl UserPermissionLimits {
    /// Go's `NewUserClaims` defaults: no permissions, subs/data/payload -1 (unlimited).
    pub fn unlimited() -> Self {
        UserPermissionLimits { subs: -1, data: -1, payload: -1, ..Default::default() }
    }

    /// True when nothing is set (Go's `HasEmptyPermissions`): what scoped signing keys require.
    pub fn is_empty(&self) -> bool {
        *self == UserPermissionLimits::default()
    }

    pub(crate) fn validate(&self, v: &mut Validation) {
        self.subscribe.validate(v, true);
        self.publish.validate(v, false);
        for cidr in &self.src {
            validate_cidr(v, cidr);
        }
        for range in &self.times {
            validate_time_range(v, range);
        }
        super::validate::validate_location(v, &self.times_location);
    }
}

impl Serialize for UserPermissionLimits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("UserPermissionLimits", 12)?;
        if !self.is_empty() {
            st.serialize_field("pub", &self.publish)?;
            st.serialize_field("sub", &self.subscribe)?;
        }
        if let Some(resp) = &self.resp {
            st.serialize_field("resp", resp)?;
        }
        if !self.src.is_empty() {
            st.serialize_field("src", &self.src)?;
        }
        if !self.times.is_empty() {
            st.serialize_field("times", &self.times)?;
        }
        if !self.times_location.is_empty() {
            st.serialize_field("times_location", &self.times_location)?;
        }
        for (key, value) in [("subs", self.subs), ("data", self.data), ("payload", self.payload)] {
            if !is_zero(&value) {
                st.serialize_field(key, &value)?;
            }
        }
        if self.bearer_token {
            st.serialize_field("bearer_token", &true)?;
        }
        if self.proxy_required {
            st.serialize_field("proxy_required", &true)?;
        }
        if !self.allowed_connection_types.is_empty() {
            st.serialize_field("allowed_connection_types", &self.allowed_connection_types)?;
        }
        st.end()
    }
}

/// Go's `CIDRList` decoding: an array of strings, or one comma-separated string that is
/// lower-cased, trimmed and de-duplicated with empty entries dropped.
fn deserialize_cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Wire::deserialize(d)? {
        Wire::List(list) => list,
        Wire::Text(text) => {
            let mut out: Vec<String> = Vec::new();
            for item in text.to_lowercase().split(',') {
                let item = item.trim();
                if !item.is_empty() && !out.iter().any(|o| o == item) {
                    out.push(item.to_string());
                }
            }
            out
        }
    })
}
