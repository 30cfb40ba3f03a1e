//! User claims (`type: "user"`): what a connection may do.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::keys::KeyKind;

use super::sealed::Hooks;
use super::types::{ResponsePermission, TimeRange, UserPermissionLimits};
use super::validate::{is_key, FindingKind, Validation};
use super::{claim_body, generic_mut, json, ClaimType, Claims, V1Fields};

/// The `nats` body of a user JWT (Go's `User`).
///
/// Wire order: `pub, sub, resp, src, times, times_location, subs, data, payload, bearer_token,
/// proxy_required, allowed_connection_types, issuer_account, tags, type, version`.
/// [`Default`] is Go's zero value (what decoding a body without those keys gives: subs 0 means
/// no subscriptions allowed); use [`UserClaims::new`] for Go's `NewUserClaims` defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UserClaims {
    /// Permissions and limits (flattened into the body, as in Go).
    #[serde(flatten)]
    pub limits: UserPermissionLimits,
    /// The account a signing key issued this user for; required when `iss` is a signing key.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `"user"` once encoded.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "json::is_zero")]
    pub version: i64,
}

claim_body!(UserClaims, ClaimType::User, issuers: [KeyKind::Account], subjects: [KeyKind::User]);

impl UserClaims {
    /// Go's `NewUserClaims`: no permissions (the account's defaults apply) and unlimited
    /// subs/data/payload (-1).
    pub fn new() -> Self {
        UserClaims { limits: UserPermissionLimits::unlimited(), ..Default::default() }
    }

    /// A user for a scoped signing key (Go's `SetScoped(true)`): no permission or limit keys
    /// at all, since the key's template supplies them and the server refuses anything else.
    pub fn scoped() -> Self {
        UserClaims::default()
    }

    /// True when the user carries no permissions or limits (what scoped keys require).
    pub fn is_scoped(&self) -> bool {
        self.limits.is_empty()
    }

    /// Adds a subject the user may publish to.
    pub fn allow_pub(mut self, subject: impl Into<String>) -> Self {
        self.limits.publish.allow.push(subject.into());
        self
    }

    /// Adds a subject the user may not publish to.
    pub fn deny_pub(mut self, subject: impl Into<String>) -> Self {
        self.limits.publish.deny.push(subject.into());
        self
    }

    /// Adds a subject (or `"subject queue"`) the user may subscribe to.
    pub fn allow_sub(mut self, subject: impl Into<String>) -> Self {
        self.limits.subscribe.allow.push(subject.into());
        self
    }

    /// Adds a subject the user may not subscribe to.
    pub fn deny_sub(mut self, subject: impl Into<String>) -> Self {
        self.limits.subscribe.deny.push(subject.into());
        self
    }

    /// Lets the user answer requests: `max` responses within `ttl` per request.
    pub fn with_resp(mut self, max: i64, ttl: Duration) -> Self {
        self.limits.resp = Some(ResponsePermission::new(max, ttl));
        self
    }

    /// Sets `issuer_account` (needed when a signing key, not the account key, signs).
    pub fn with_issuer_account(mut self, account: impl Into<String>) -> Self {
        self.issuer_account = account.into();
        self
    }

    /// Adds a source network (CIDR) the user may connect from.
    pub fn allow_src(mut self, cidr: impl Into<String>) -> Self {
        self.limits.src.push(cidr.into());
        self
    }

    /// Adds a daily connect window (`HH:MM:SS`).
    pub fn allow_times(mut self, start: impl Into<String>, end: impl Into<String>) -> Self {
        self.limits.times.push(TimeRange { start: start.into(), end: end.into() });
        self
    }

    /// Sets subs/data/payload (-1 unlimited, 0 none).
    pub fn with_limits(mut self, subs: i64, data: i64, payload: i64) -> Self {
        self.limits.subs = subs;
        self.limits.data = data;
        self.limits.payload = payload;
        self
    }

    /// Marks the user as a bearer token user (no nonce signature at connect).
    pub fn with_bearer_token(mut self, bearer: bool) -> Self {
        self.limits.bearer_token = bearer;
        self
    }

    /// Adds an allowed connection type (`STANDARD`, `WEBSOCKET`, …).
    pub fn allow_connection_type(mut self, kind: impl Into<String>) -> Self {
        self.limits.allowed_connection_types.push(kind.into());
        self
    }
}

impl Hooks for UserClaims {
    generic_mut!();

    /// v1 users had no subs/data/payload; Go reads them as unlimited.
    fn migrate_v1(&mut self, v1: V1Fields) {
        self.claim_type = v1.claim_type;
        self.tags = v1.tags;
        self.issuer_account = v1.issuer_account;
        for limit in [&mut self.limits.subs, &mut self.limits.data, &mut self.limits.payload] {
            if *limit == 0 {
                *limit = -1;
            }
        }
    }

    fn validate_body(claims: &Claims<Self>, v: &mut Validation) {
        claims.nats.limits.validate(v);
        let account = &claims.nats.issuer_account;
        if !account.is_empty() && !is_key(account, KeyKind::Account) {
            v.error(
                FindingKind::InvalidIssuerAccount,
                format!("issuer_account {account:?} is not an account public key"),
            );
        }
    }
}
