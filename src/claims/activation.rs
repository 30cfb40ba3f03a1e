//! Activation claims (`type: "activation"`): the token an exporter gives an importer.

use serde::{Deserialize, Serialize};

use crate::keys::KeyKind;

use super::exports::ExportType;
use super::json::is_zero;
use super::sealed::Hooks;
use super::validate::{is_key, validate_subject, FindingKind, Validation};
use super::{claim_body, generic_mut, ClaimType, Claims, V1Fields};

/// The `nats` body of an activation JWT (Go's `Activation`). `iss` is the exporting account
/// (or its signing key, with `issuer_account`), `sub` the importing account.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivationClaims {
    /// The exported subject the token grants.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Stream or service.
    #[serde(skip_serializing_if = "ExportType::is_unknown")]
    pub kind: ExportType,
    /// The exporting account when a signing key signs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    /// Go's `tags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `"activation"` once encoded.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub claim_type: String,
    /// 2 once encoded.
    #[serde(skip_serializing_if = "is_zero")]
    pub version: i64,
}

claim_body!(
    ActivationClaims,
    ClaimType::Activation,
    issuers: [KeyKind::Account, KeyKind::Operator],
    subjects: [KeyKind::Account]
);

impl ActivationClaims {
    /// An activation for `subject` of `kind`.
    pub fn new(subject: impl Into<String>, kind: ExportType) -> Self {
        ActivationClaims { subject: subject.into(), kind, ..Default::default() }
    }
}

/// Go's `Activation.Validate` plus the `issuer_account` check (no time checks).
pub(crate) fn validate_activation_body(a: &ActivationClaims, v: &mut Validation) {
    if a.kind == ExportType::Unknown {
        v.error(
            FindingKind::InvalidExportType,
            format!("activation for {:?} has no valid kind", a.subject),
        );
    }
    validate_subject(v, &a.subject);
    if !a.issuer_account.is_empty() && !is_key(&a.issuer_account, KeyKind::Account) {
        v.error(
            FindingKind::InvalidIssuerAccount,
            format!("issuer_account {:?} is not an account public key", a.issuer_account),
        );
    }
}

impl Hooks for ActivationClaims {
    generic_mut!();

    /// In v1 the export kind was `nats.type`; it decoded into `claim_type` and moves to `kind`.
    fn migrate_v1(&mut self, v1: V1Fields) {
        if self.kind == ExportType::Unknown {
            self.kind = match self.claim_type.as_str() {
                "stream" => ExportType::Stream,
                "service" => ExportType::Service,
                _ => ExportType::Unknown,
            };
        }
        self.claim_type = v1.claim_type;
        self.tags = v1.tags;
        self.issuer_account = v1.issuer_account;
    }

    fn validate_body(claims: &Claims<Self>, v: &mut Validation) {
        validate_activation_body(&claims.nats, v);
    }
}
