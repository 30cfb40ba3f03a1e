//! Generic claims: any claim type, with a free-form body. pbn uses them for
//! `$SYS.REQ.CLAIMS.DELETE`, whose payload is an operator-signed JWT with `sub == iss` and
//! `nats.accounts: [...]`.

use serde::{Deserialize, Serialize};

use super::json::is_zero;
use super::sealed::Hooks;
use super::validate::Validation;
use super::{claim_body, generic_mut, ClaimType, Claims};

/// A free-form `nats` body (Go's `GenericClaims` data map). Encoding sets `version: 2` but
/// keeps `type` as given (Go writes none for delete requests). Decoding accepts a token of any
/// claim type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GenericClaims {
    /// Accounts to delete (`$SYS.REQ.CLAIMS.DELETE`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Every other key of the body.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The claim type, if any.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
}

claim_body!(GenericClaims, ClaimType::Generic, issuers: [], subjects: []);

impl GenericClaims {
    /// The body of a `$SYS.REQ.CLAIMS.DELETE` request for `accounts`.
    pub fn delete_accounts<I, S>(accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        GenericClaims {
            accounts: accounts.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }
}

impl Hooks for GenericClaims {
    generic_mut!();

    fn validate_body(_claims: &Claims<Self>, _v: &mut Validation) {}
}
