//! Identity providers: OpenID Connect issuers whose tokens log users in, and the rules that map
//! a token's claims to an account and a role.

use serde::{Deserialize, Serialize};

use super::Name;

/// The most identity providers a store holds: the callout keeps the keys of each in memory and
/// refreshes them all on a schedule, so the number stays small on purpose.
pub const MAX_IDPS: usize = 64;

/// The most mapping rules of one provider (they are tried in order on every login).
pub const MAX_MAPPINGS: usize = 256;

/// The claim a provider names its users by when none is configured.
pub const DEFAULT_USERNAME_CLAIM: &str = "sub";

/// Default clock leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// Largest leeway accepted, in seconds: more would let expired tokens in for minutes.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Where the callout gets a provider's signing keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum KeySource {
    /// `jwks_uri` of `<issuer>/.well-known/openid-configuration`.
    Discovery,
    /// A JWKS URL given by the admin.
    Url(String),
    /// A JWKS given by the admin (the JSON text): for providers the service cannot reach.
    Inline(String),
}

/// What a login whose claims match is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingTarget {
    /// The account the user is placed in.
    pub account: Name,
    /// The role giving permissions and limits.
    pub role: Name,
}

/// One mapping rule: a claim (a dotted path such as `realm_access.roles`) whose value equals, or
/// whose array holds, `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimMapping {
    /// Dotted claim path.
    pub claim: String,
    /// The value to match (a string; numbers and booleans match their JSON text).
    pub value: String,
    /// Where a match lands.
    pub target: MappingTarget,
}

/// An OpenID Connect provider whose tokens are accepted as logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProvider {
    /// Unique name.
    pub name: Name,
    /// The exact `iss` of its tokens (a URL); unique among providers.
    pub issuer: String,
    /// The `aud` its tokens must carry for pbn.
    pub audience: String,
    /// Where its keys come from.
    pub keys: KeySource,
    /// The claim the NATS user name comes from.
    pub username_claim: String,
    /// Clock leeway for `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Whether logins create user records (visible in `user list`, deactivatable).
    pub provision: bool,
    /// Rules, tried in order; the first match wins.
    pub mappings: Vec<ClaimMapping>,
    /// Where a login lands when no rule matches; `None` refuses it.
    pub default: Option<MappingTarget>,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

impl IdentityProvider {
    /// Whether logins admitted under `self` might be judged differently under `after`: anything
    /// but the timestamps counts (keys, issuer, audience, leeway, user names and mappings all
    /// decide who gets in where).
    pub fn changes_logins(&self, after: &IdentityProvider) -> bool {
        let mut same = self.clone();
        same.updated = after.updated;
        same != *after
    }
}
