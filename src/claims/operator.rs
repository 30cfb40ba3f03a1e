//! Operator claims (`type: "operator"`): the trust root, normally self-signed.

use serde::{Deserialize, Serialize};

use crate::keys::KeyKind;

use super::json::{is_false, is_zero};
use super::sealed::Hooks;
use super::validate::{is_key, parse_url, FindingKind, Validation};
use super::{claim_body, generic_mut, ClaimType, Claims, ClaimsError};

/// The `nats` body of an operator JWT (Go's `Operator`), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorClaims {
    /// Operator signing keys (`O…`) that may sign accounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// Account server URL (needs a scheme).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_server_url: String,
    /// NATS URLs tools may connect to (`nats`, `tls`, `ws`, `wss`; no user info, no path).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operator_service_urls: Vec<String>,
    /// The system account's public key.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// Minimum server version, `major.minor.patch`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub assert_server_version: String,
    /// Accounts must be signed by signing keys, and users by account signing keys.
    #[serde(skip_serializing_if = "is_false")]
    pub strict_signing_key_usage: bool,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `"operator"` once encoded.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
}

claim_body!(
    OperatorClaims,
    ClaimType::Operator,
    issuers: [KeyKind::Operator],
    subjects: [KeyKind::Operator]
);

impl OperatorClaims {
    /// An empty operator body.
    pub fn new() -> Self {
        OperatorClaims::default()
    }

    /// Sets the system account.
    pub fn with_system_account(mut self, account: impl Into<String>) -> Self {
        self.system_account = account.into();
        self
    }

    /// Adds an operator signing key.
    pub fn with_signing_key(mut self, key: impl Into<String>) -> Self {
        self.signing_keys.push(key.into());
        self
    }

    fn account_server_url_ok(&self) -> bool {
        self.account_server_url.is_empty() || !parse_url(&self.account_server_url).scheme.is_empty()
    }
}

fn service_url_problem(url: &str) -> Option<&'static str> {
    let u = parse_url(url);
    if u.user_info {
        Some("credentials are not supported")
    } else if !u.path.is_empty() {
        Some("paths are not supported")
    } else if !["nats", "tls", "ws", "wss"].iter().any(|s| u.scheme.eq_ignore_ascii_case(s)) {
        Some("only nats, tls, ws and wss are supported")
    } else {
        None
    }
}

fn server_version_ok(version: &str) -> bool {
    if version.is_empty() {
        return true;
    }
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| p.parse::<i64>().is_ok_and(|n| n >= 0))
}

impl Hooks for OperatorClaims {
    generic_mut!();

    fn check_encode(&self) -> Result<(), ClaimsError> {
        if self.account_server_url_ok() {
            Ok(())
        } else {
            Err(ClaimsError::AccountServerUrl { url: self.account_server_url.clone() })
        }
    }

    fn validate_body(claims: &Claims<Self>, v: &mut Validation) {
        let o = &claims.nats;
        if !o.account_server_url_ok() {
            v.error(
                FindingKind::InvalidAccountServerUrl,
                format!("account server url {:?} requires a scheme", o.account_server_url),
            );
        }
        for url in o.operator_service_urls.iter().filter(|u| !u.is_empty()) {
            if let Some(problem) = service_url_problem(url) {
                v.error(
                    FindingKind::InvalidOperatorServiceUrl,
                    format!("operator service url {url:?}: {problem}"),
                );
            }
        }
        for key in &o.signing_keys {
            if !is_key(key, KeyKind::Operator) {
                v.error(
                    FindingKind::InvalidSigningKey,
                    format!("{key:?} is not an operator public key"),
                );
            }
        }
        if !o.system_account.is_empty() && !is_key(&o.system_account, KeyKind::Account) {
            v.error(
                FindingKind::InvalidSystemAccount,
                format!("system account {:?} is not an account public key", o.system_account),
            );
        }
        if !server_version_ok(&o.assert_server_version) {
            v.error(
                FindingKind::InvalidServerVersion,
                format!(
                    "asserted server version {:?} is not major.minor.patch",
                    o.assert_server_version
                ),
            );
        }
    }
}
