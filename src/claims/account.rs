//! Account claims (`type: "account"`): limits, signing keys, revocations, imports/exports and
//! the auth-callout `authorization` block.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::KeyKind;

use super::exports::{validate_exports, validate_imports, Export, Import};
use super::json::{is_false, is_zero};
use super::sealed::Hooks;
use super::signing_keys::{validate_signing_keys, SigningKey, UserScope};
use super::types::Permissions;
use super::validate::{
    has_wildcards, is_key, validate_info, validate_subject, FindingKind, Validation,
};
use super::{claim_body, generic_mut, ClaimType, Claims, V1Fields};

/// Go's `NoLimit`: -1 means unlimited wherever a limit is an integer.
pub const NO_LIMIT: i64 = -1;

/// Go's `AnyAccount`: `allowed_accounts: ["*"]` lets the callout place users in any account.
pub const ANY_ACCOUNT: &str = "*";

/// JetStream limits of an account or of one tier (Go's `JetStreamLimits`). All keys are omitted
/// when 0; JetStream is enabled iff `mem_storage` or `disk_storage` is non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JetStreamLimits {
    /// Memory storage bytes (0 disabled, -1 unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub mem_storage: i64,
    /// File storage bytes (0 disabled, -1 unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub disk_storage: i64,
    /// Max streams (only > 0 limits).
    #[serde(skip_serializing_if = "is_zero")]
    pub streams: i64,
    /// Max consumers (only > 0 limits).
    #[serde(skip_serializing_if = "is_zero")]
    pub consumer: i64,
    /// Max ack pending per consumer (only > 0 limits).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    /// Max bytes of one memory stream (≤ 0 unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub mem_max_stream_bytes: i64,
    /// Max bytes of one file stream (≤ 0 unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub disk_max_stream_bytes: i64,
    /// Streams must set `max_bytes`.
    #[serde(skip_serializing_if = "is_false")]
    pub max_bytes_required: bool,
}

impl JetStreamLimits {
    /// True when memory or file storage is allowed.
    pub fn is_enabled(&self) -> bool {
        self.mem_storage != 0 || self.disk_storage != 0
    }
}

/// An account's limits (Go's `OperatorLimits`: NatsLimits, AccountLimits, JetStreamLimits and
/// `tiered_limits`, flattened). Always written; each key omitted when 0/false.
///
/// nats-server reads a missing or 0 `subs`, `payload`, `conn` or `leaf` as "none allowed", so
/// build limits with [`OperatorLimits::unlimited`] (via [`AccountClaims::new`]) and lower them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorLimits {
    /// Max subscriptions across the account.
    #[serde(skip_serializing_if = "is_zero")]
    pub subs: i64,
    /// Max data bytes (not enforced by nats-server).
    #[serde(skip_serializing_if = "is_zero")]
    pub data: i64,
    /// Max message payload bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub payload: i64,
    /// Max imports (checked by validation).
    #[serde(skip_serializing_if = "is_zero")]
    pub imports: i64,
    /// Max exports (checked by validation).
    #[serde(skip_serializing_if = "is_zero")]
    pub exports: i64,
    /// Whether exports may use wildcards.
    #[serde(skip_serializing_if = "is_false")]
    pub wildcards: bool,
    /// Refuse users with `bearer_token`.
    #[serde(skip_serializing_if = "is_false")]
    pub disallow_bearer: bool,
    /// Max client connections.
    #[serde(skip_serializing_if = "is_zero")]
    pub conn: i64,
    /// Max leafnode connections.
    #[serde(skip_serializing_if = "is_zero")]
    pub leaf: i64,
    /// Flat JetStream limits (exclusive with `tiered_limits`).
    #[serde(flatten)]
    pub jetstream: JetStreamLimits,
    /// JetStream limits per tier (`"R1"`, `"R3"`, …).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tiered_limits: BTreeMap<String, JetStreamLimits>,
}

impl OperatorLimits {
    /// Go's `NewAccountClaims` limits: -1 everywhere, wildcards allowed, JetStream off.
    pub fn unlimited() -> Self {
        OperatorLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            imports: NO_LIMIT,
            exports: NO_LIMIT,
            wildcards: true,
            conn: NO_LIMIT,
            leaf: NO_LIMIT,
            ..Default::default()
        }
    }

    /// True when every limit is 0/false/empty (Go's `IsEmpty`).
    pub fn is_empty(&self) -> bool {
        *self == OperatorLimits::default()
    }

    /// True when JetStream is enabled, flat or in any tier (Go's `IsJSEnabled`).
    pub fn is_jetstream_enabled(&self) -> bool {
        if self.tiered_limits.is_empty() {
            self.jetstream.is_enabled()
        } else {
            self.tiered_limits.values().any(JetStreamLimits::is_enabled)
        }
    }

    fn validate(&self, v: &mut Validation) {
        if self.tiered_limits.is_empty() {
            return;
        }
        if self.jetstream != JetStreamLimits::default() {
            v.error(
                FindingKind::TieredAndFlatJetStream,
                "jetstream limits and tiered jetstream limits are mutually exclusive".into(),
            );
        }
        if self.tiered_limits.contains_key("") {
            v.error(
                FindingKind::BlankTierName,
                "tiered jetstream limits have a blank tier name".into(),
            );
        }
    }
}

/// The auth-callout settings of an account (Go's `ExternalAuthorization`). Always written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalAuthorization {
    /// User keys that bypass the callout (the callout service itself); the callout is on iff
    /// this is non-empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub auth_users: Vec<String>,
    /// Accounts the callout may place users into, or exactly `["*"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_accounts: Vec<String>,
    /// Curve key the server encrypts callout requests to.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub xkey: String,
}

impl ExternalAuthorization {
    /// True when the callout is enabled (there are auth users).
    pub fn is_enabled(&self) -> bool {
        !self.auth_users.is_empty()
    }

    fn validate(&self, v: &mut Validation) {
        if !self.allowed_accounts.is_empty() && self.auth_users.is_empty() {
            v.error(
                FindingKind::AllowedAccountsWithoutUsers,
                "external authorization cannot have allowed accounts without auth users".into(),
            );
        }
        for user in &self.auth_users {
            if !is_key(user, KeyKind::User) {
                v.error(
                    FindingKind::InvalidAuthUser,
                    format!("auth user {user:?} is not a user public key"),
                );
            }
        }
        for account in &self.allowed_accounts {
            if account == ANY_ACCOUNT {
                if self.allowed_accounts.len() > 1 {
                    v.error(
                        FindingKind::InvalidAllowedAccount,
                        "allowed accounts can only be a list of accounts or \"*\"".into(),
                    );
                }
            } else if !is_key(account, KeyKind::Account) {
                v.error(
                    FindingKind::InvalidAllowedAccount,
                    format!("allowed account {account:?} is not an account public key"),
                );
            }
        }
        if !self.xkey.is_empty() && !is_key(&self.xkey, KeyKind::Curve) {
            v.error(
                FindingKind::InvalidXkey,
                format!("xkey {:?} is not a curve public key", self.xkey),
            );
        }
    }
}

/// Distributed message tracing of an account (Go's `MsgTrace`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgTrace {
    /// Subject traces are sent to (no wildcards).
    #[serde(rename = "dest", skip_serializing_if = "String::is_empty")]
    pub destination: String,
    /// Sampling percentage 1..=100 (0 reads as 100).
    #[serde(skip_serializing_if = "is_zero")]
    pub sampling: i64,
}

/// One destination of a subject mapping (Go's `WeightedMapping`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightedMapping {
    /// Destination subject (always written).
    pub subject: String,
    /// Weight in percent; 0 means 100.
    #[serde(skip_serializing_if = "is_zero")]
    pub weight: u8,
    /// Cluster this destination applies to.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
}

impl WeightedMapping {
    /// The effective weight (0 reads as 100).
    pub fn effective_weight(&self) -> u32 {
        if self.weight == 0 {
            100
        } else {
            u32::from(self.weight)
        }
    }
}

/// The `nats` body of an account JWT (Go's `Account`), fields in Go's order.
///
/// [`Default`] is Go's zero value (what decoding gives for missing keys: zero limits, which
/// lets nobody connect); use [`AccountClaims::new`] for Go's `NewAccountClaims` defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountClaims {
    /// Imports, sorted by subject at encode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    /// Exports, sorted by subject at encode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    /// Limits (always written).
    pub limits: OperatorLimits,
    /// Signing keys, plain or scoped; sorted by key and de-duplicated at encode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    /// Revoked user keys (or `"*"`) → unix seconds; JWTs issued at or before are refused.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// Permissions of users whose JWT has none (always written).
    pub default_permissions: Permissions,
    /// Subject mappings.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<String, Vec<WeightedMapping>>,
    /// Auth-callout settings (always written).
    pub authorization: ExternalAuthorization,
    /// Message tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<MsgTrace>,
    /// `""`, `"system"` or `"owner"`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster_traffic: String,
    /// Free-text description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A link with more information.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub info_url: String,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `"account"` once encoded.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
}

claim_body!(
    AccountClaims,
    ClaimType::Account,
    issuers: [KeyKind::Operator, KeyKind::Account],
    subjects: [KeyKind::Account]
);

impl AccountClaims {
    /// Go's `NewAccountClaims`: unlimited limits (-1), wildcards allowed, JetStream off.
    pub fn new() -> Self {
        AccountClaims { limits: OperatorLimits::unlimited(), ..Default::default() }
    }

    /// Adds a plain signing key (an account public key).
    pub fn add_signing_key(&mut self, key: impl Into<String>) -> &mut Self {
        self.signing_keys.push(SigningKey::Key(key.into()));
        self
    }

    /// Adds a scoped signing key.
    pub fn add_scoped_signing_key(&mut self, scope: UserScope) -> &mut Self {
        self.signing_keys.push(SigningKey::Scoped(Box::new(scope)));
        self
    }

    /// True when `key` is one of the signing keys.
    pub fn has_signing_key(&self, key: &str) -> bool {
        self.signing_keys.iter().any(|k| k.key() == key)
    }

    /// Revokes JWTs of `key` (a user key or `"*"`) issued at or before `at` (unix seconds).
    /// An existing later revocation is kept, as in Go.
    pub fn revoke(&mut self, key: impl Into<String>, at: i64) -> &mut Self {
        let entry = self.revocations.entry(key.into()).or_insert(at);
        *entry = (*entry).max(at);
        self
    }

    /// True when a JWT for `key` issued at `iat` is revoked (Go's `IsRevoked`).
    pub fn is_revoked(&self, key: &str, iat: i64) -> bool {
        let covers = |k: &str| self.revocations.get(k).is_some_and(|&ts| ts >= iat);
        covers(ANY_ACCOUNT) || covers(key)
    }

    fn validate_limits_use(&self, v: &mut Validation) {
        let limits = &self.limits;
        if limits.imports != NO_LIMIT && self.imports.len() as i64 > limits.imports {
            v.error(
                FindingKind::TooManyImports,
                format!("{} imports exceed the limit of {}", self.imports.len(), limits.imports),
            );
        }
        if limits.exports != NO_LIMIT {
            if self.exports.len() as i64 > limits.exports {
                v.error(
                    FindingKind::TooManyExports,
                    format!(
                        "{} exports exceed the limit of {}",
                        self.exports.len(),
                        limits.exports
                    ),
                );
            }
            if !limits.wildcards {
                for export in self.exports.iter().filter(|e| has_wildcards(&e.subject)) {
                    v.error(
                        FindingKind::WildcardExport,
                        format!("wildcard export {:?} is not allowed", export.subject),
                    );
                }
            }
        }
    }

    fn validate_trace(&self, v: &mut Validation) {
        let Some(trace) = &self.trace else { return };
        let mut dest = Validation::default();
        validate_subject(&mut dest, &trace.destination);
        if let Some(first) = dest.errors.first() {
            v.error(FindingKind::InvalidTrace, format!("trace destination: {}", first.message));
        }
        if has_wildcards(&trace.destination) {
            v.error(
                FindingKind::InvalidTrace,
                format!("trace destination {:?} is not a publish subject", trace.destination),
            );
        }
        if !(0..=100).contains(&trace.sampling) {
            v.error(
                FindingKind::InvalidTrace,
                format!("trace sampling {} is outside 1..=100", trace.sampling),
            );
        }
    }

    fn validate_mappings(&self, v: &mut Validation) {
        for (from, targets) in &self.mappings {
            validate_subject(v, from);
            let mut per_cluster: BTreeMap<&str, u32> = BTreeMap::new();
            let mut total = 0u32;
            for target in targets {
                validate_subject(v, &target.subject);
                let weight = target.effective_weight();
                if weight > 100 {
                    v.error(
                        FindingKind::InvalidMapping,
                        format!("mapping {from:?} has weight {weight} above 100"),
                    );
                }
                if target.cluster.is_empty() {
                    total += weight;
                } else {
                    let sum = per_cluster.entry(&target.cluster).or_default();
                    *sum += weight;
                    if *sum > 100 {
                        v.error(
                            FindingKind::InvalidMapping,
                            format!(
                                "mapping {from:?} in cluster {:?} exceeds 100%",
                                target.cluster
                            ),
                        );
                    }
                }
            }
            if total > 100 {
                v.error(FindingKind::InvalidMapping, format!("mapping {from:?} exceeds 100%"));
            }
        }
    }
}

impl Hooks for AccountClaims {
    generic_mut!();

    fn prepare(&mut self) {
        self.imports.sort_by(|a, b| a.subject.cmp(&b.subject));
        self.exports.sort_by(|a, b| a.subject.cmp(&b.subject));
        self.signing_keys.sort_by(|a, b| a.key().cmp(b.key()));
        self.signing_keys.dedup_by(|later, earlier| later.key() == earlier.key());
    }

    fn after_decode(&mut self) {
        if !self.limits.tiered_limits.is_empty() {
            self.limits.jetstream = JetStreamLimits::default();
        }
    }

    /// v1 accounts had no JetStream limits.
    fn migrate_v1(&mut self, v1: V1Fields) {
        self.claim_type = v1.claim_type;
        self.tags = v1.tags;
        self.limits.jetstream = JetStreamLimits::default();
        self.limits.tiered_limits.clear();
    }

    fn validate_body(claims: &Claims<Self>, v: &mut Validation) {
        let a = &claims.nats;
        validate_imports(v, &a.imports, &claims.sub);
        validate_exports(v, &a.exports);
        a.limits.validate(v);
        a.default_permissions.validate(v);
        a.validate_mappings(v);
        a.authorization.validate(v);
        a.validate_trace(v);
        a.validate_limits_use(v);
        validate_signing_keys(v, &a.signing_keys);
        validate_info(v, &a.description, &a.info_url);
        if !matches!(a.cluster_traffic.as_str(), "" | "system" | "owner") {
            v.error(
                FindingKind::InvalidClusterTraffic,
                format!("unknown cluster traffic option {:?}", a.cluster_traffic),
            );
        }
        if is_key(&claims.iss, KeyKind::Account) && !a.limits.is_empty() {
            v.warning(
                FindingKind::SelfSignedLimits,
                "self-signed account jwts should not contain operator limits".into(),
            );
        }
    }
}
