//! Account exports and imports (Go's `Export`, `Import`) and their validation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::activation::ActivationClaims;
use super::json::{is_false, is_zero};
use super::validate::{
    has_wildcards, is_contained_in, renaming_to_subject, validate_info, validate_renaming,
    validate_subject, FindingKind, Validation,
};

/// Whether an export/import is a stream or a service. [`ExportType::Unknown`] is Go's zero
/// value: never written, and refused by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportType {
    /// Not set.
    #[default]
    Unknown,
    /// `"stream"`.
    Stream,
    /// `"service"`.
    Service,
}

impl ExportType {
    /// True for [`ExportType::Unknown`] (serde helper mirroring Go's `omitempty`).
    pub fn is_unknown(&self) -> bool {
        *self == ExportType::Unknown
    }
}

impl fmt::Display for ExportType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportType::Unknown => "unknown",
            ExportType::Stream => "stream",
            ExportType::Service => "service",
        })
    }
}

impl Serialize for ExportType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExportType::Unknown => Err(serde::ser::Error::custom("unknown export type")),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for ExportType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "stream" => Ok(ExportType::Stream),
            "service" => Ok(ExportType::Service),
            _ => Err(serde::de::Error::custom(format!("unknown export type {s:?}"))),
        }
    }
}

/// Service latency sampling: a percentage 1..=100, or `"headers"` (Go's `SamplingRate`, where
/// 0 means headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SamplingRate {
    /// Sample when the request carries tracing headers (`"headers"`).
    #[default]
    Headers,
    /// Sample this percentage of requests (1..=100 to be writable).
    Percent(i64),
}

impl Serialize for SamplingRate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            SamplingRate::Headers | SamplingRate::Percent(0) => s.serialize_str("headers"),
            SamplingRate::Percent(p) if (1..=100).contains(&p) => s.serialize_i64(p),
            SamplingRate::Percent(p) => {
                Err(serde::ser::Error::custom(format!("sampling rate {p} is outside 1..=100")))
            }
        }
    }
}

impl<'de> Deserialize<'de> for SamplingRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Int(i64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Int(0) => Ok(SamplingRate::Headers),
            Wire::Int(p) => Ok(SamplingRate::Percent(p)),
            Wire::Text(t) if t.eq_ignore_ascii_case("headers") => Ok(SamplingRate::Headers),
            Wire::Text(t) => Err(serde::de::Error::custom(format!("unknown sampling rate {t:?}"))),
        }
    }
}

/// Latency tracking of a service export; both keys are always written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceLatency {
    /// Sampling rate.
    pub sampling: SamplingRate,
    /// Subject latency results are published to (no wildcards).
    pub results: String,
}

/// One export of an account (Go's `Export`), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Export {
    /// Name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Exported subject (required).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Stream or service (required).
    #[serde(rename = "type", skip_serializing_if = "ExportType::is_unknown")]
    pub export_type: ExportType,
    /// Importers need an activation token.
    #[serde(skip_serializing_if = "is_false")]
    pub token_req: bool,
    /// Revoked activations: importer account key → unix seconds.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// `Singleton` (default), `Stream` or `Chunked`; services only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub response_type: String,
    /// Response threshold in nanoseconds; services only.
    #[serde(skip_serializing_if = "is_zero")]
    pub response_threshold: i64,
    /// Latency tracking; services only.
    #[serde(rename = "service_latency", skip_serializing_if = "Option::is_none")]
    pub latency: Option<ServiceLatency>,
    /// 1-based token of a wildcard subject that must be the importer's account key.
    #[serde(skip_serializing_if = "is_zero")]
    pub account_token_position: u64,
    /// Advertise the export.
    #[serde(skip_serializing_if = "is_false")]
    pub advertise: bool,
    /// Allow message tracing across the export; services only.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_trace: bool,
    /// Description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A link with more information.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub info_url: String,
}

/// One import of an account (Go's `Import`), fields in Go's order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Import {
    /// Name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Subject, from the publisher's point of view.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Exporting account (required).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Activation JWT when the export requires one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Deprecated rename (use `local_subject`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// Local subject; may use `$N` references to wildcards of `subject`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub local_subject: String,
    /// Stream or service (required).
    #[serde(rename = "type", skip_serializing_if = "ExportType::is_unknown")]
    pub import_type: ExportType,
    /// Share latency information; services only.
    #[serde(skip_serializing_if = "is_false")]
    pub share: bool,
    /// Allow message tracing; streams only.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_trace: bool,
}

/// Type-dependent checks: a known type, response types for services only, trace on services.
fn validate_export_kind(v: &mut Validation, e: &Export) {
    let subject = &e.subject;
    let response_type = &e.response_type;
    match e.export_type {
        ExportType::Unknown => {
            v.error(FindingKind::InvalidExportType, format!("export {subject:?} has no valid type"))
        }
        ExportType::Service => {
            if !matches!(response_type.as_str(), "" | "Singleton" | "Stream" | "Chunked") {
                v.error(
                    FindingKind::InvalidResponseType,
                    format!("invalid response type {response_type:?} for service {subject:?}"),
                );
            }
        }
        ExportType::Stream => {
            if !response_type.is_empty() {
                v.error(
                    FindingKind::InvalidResponseType,
                    format!("invalid response type {response_type:?} for stream {subject:?}"),
                );
            }
            if e.allow_trace {
                v.error(
                    FindingKind::MisplacedOption,
                    format!("allow_trace on stream export {subject:?}"),
                );
            }
        }
    }
}

/// Go's `ServiceLatency.Validate`, plus "services only".
fn validate_latency(v: &mut Validation, e: &Export, latency: &ServiceLatency) {
    if e.export_type != ExportType::Service {
        v.error(
            FindingKind::MisplacedOption,
            format!("latency tracking on non-service {:?}", e.subject),
        );
    }
    if let SamplingRate::Percent(p) = latency.sampling {
        if !(0..=100).contains(&p) {
            v.error(FindingKind::InvalidLatency, format!("sampling {p} is outside 1..=100"));
        }
    }
    validate_subject(v, &latency.results);
    if has_wildcards(&latency.results) {
        v.error(
            FindingKind::InvalidLatency,
            format!("results subject {:?} has wildcards", latency.results),
        );
    }
}

/// Go's `Export.Validate`.
fn validate_export(v: &mut Validation, e: &Export) {
    let subject = &e.subject;
    validate_export_kind(v, e);
    if let Some(latency) = &e.latency {
        validate_latency(v, e, latency);
    }
    if e.response_threshold < 0 {
        v.error(
            FindingKind::NegativeResponseThreshold,
            format!("negative response threshold {} on {subject:?}", e.response_threshold),
        );
    }
    if e.response_threshold > 0 && e.export_type != ExportType::Service {
        v.error(
            FindingKind::MisplacedOption,
            format!("response threshold on non-service {subject:?}"),
        );
    }
    validate_subject(v, subject);
    validate_token_position(v, subject, e.account_token_position);
    validate_info(v, &e.description, &e.info_url);
}

fn validate_token_position(v: &mut Validation, subject: &str, position: u64) {
    if position == 0 {
        return;
    }
    if !has_wildcards(subject) {
        v.error(
            FindingKind::InvalidAccountTokenPosition,
            format!("account token position needs a wildcard subject, not {subject:?}"),
        );
        return;
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    match usize::try_from(position).ok().and_then(|p| tokens.get(p - 1)) {
        None => v.error(
            FindingKind::InvalidAccountTokenPosition,
            format!("account token position {position} exceeds the length of {subject:?}"),
        ),
        Some(tok) if *tok != "*" => v.error(
            FindingKind::InvalidAccountTokenPosition,
            format!("account token position {position} matches {tok:?}, not * in {subject:?}"),
        ),
        Some(_) => {}
    }
}

fn report_overlaps(v: &mut Validation, kind: ExportType, subjects: &[&str]) {
    let mut found: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, inner) in subjects.iter().enumerate() {
        for (j, outer) in subjects.iter().enumerate() {
            if i != j && is_contained_in(inner, outer) {
                found.entry(outer).or_insert(inner);
            }
        }
    }
    for (outer, inner) in found {
        v.error(
            FindingKind::OverlappingExports,
            format!("{kind} export subject {outer:?} already exports {inner:?}"),
        );
    }
}

/// Go's `Exports.Validate`: each export, then overlaps among services and among streams.
pub(crate) fn validate_exports(v: &mut Validation, exports: &[Export]) {
    let mut services = Vec::new();
    let mut streams = Vec::new();
    for e in exports {
        if e.export_type == ExportType::Service {
            services.push(e.subject.as_str());
        } else {
            streams.push(e.subject.as_str());
        }
        validate_export(v, e);
    }
    report_overlaps(v, ExportType::Service, &services);
    report_overlaps(v, ExportType::Stream, &streams);
}

fn validate_import(v: &mut Validation, i: &Import, account: &str) {
    let subject = &i.subject;
    if i.import_type == ExportType::Unknown {
        v.error(FindingKind::InvalidExportType, format!("import {subject:?} has no valid type"));
    }
    if i.import_type == ExportType::Service && i.allow_trace {
        v.error(FindingKind::MisplacedOption, format!("allow_trace on service import {subject:?}"));
    }
    if i.account.is_empty() {
        v.error(FindingKind::MissingImportAccount, format!("import {subject:?} names no account"));
    }
    if !i.to.is_empty() {
        v.warning(
            FindingKind::DeprecatedImportTo,
            format!("import {subject:?} uses deprecated to"),
        );
    }
    validate_subject(v, subject);
    if !i.local_subject.is_empty() {
        validate_renaming(v, &i.local_subject, subject);
        if !i.to.is_empty() {
            v.error(
                FindingKind::InvalidLocalSubject,
                format!("import {subject:?} has local_subject and to"),
            );
        }
    }
    if i.share && i.import_type != ExportType::Service {
        v.error(FindingKind::MisplacedOption, format!("share on non-service import {subject:?}"));
    }
    if !i.token.is_empty() {
        validate_activation(v, i, account);
    }
}

fn validate_activation(v: &mut Validation, i: &Import, account: &str) {
    let subject = &i.subject;
    let act = match super::decode::<ActivationClaims>(&i.token) {
        Ok(act) => act,
        Err(e) => {
            v.error(
                FindingKind::InvalidActivation,
                format!("import {subject:?} has an invalid activation token: {e}"),
            );
            return;
        }
    };
    if act.iss != i.account && act.nats.issuer_account != i.account {
        v.error(
            FindingKind::InvalidActivation,
            format!("activation token of {subject:?} is not from {:?}", i.account),
        );
    }
    if act.sub != account {
        v.error(
            FindingKind::InvalidActivation,
            format!("activation token of {subject:?} is for {:?}", act.sub),
        );
    }
    if act.nats.kind != i.import_type {
        v.error(
            FindingKind::InvalidActivation,
            format!(
                "activation token kind {} differs from import type {}",
                act.nats.kind, i.import_type
            ),
        );
    }
    super::activation::validate_activation_body(&act.nats, v);
    let checked =
        if i.import_type == ExportType::Service && !i.to.is_empty() { &i.to } else { subject };
    if !is_contained_in(checked, &act.nats.subject) {
        v.error(
            FindingKind::InvalidActivation,
            format!("activation subject {:?} does not cover import {subject:?}", act.nats.subject),
        );
    }
}

/// Go's `Imports.Validate`: overlapping service imports per account, then each import.
pub(crate) fn validate_imports(v: &mut Validation, imports: &[Import], account: &str) {
    let mut by_account: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for i in imports {
        if i.import_type == ExportType::Service {
            let local = if !i.to.is_empty() {
                i.to.clone()
            } else if !i.local_subject.is_empty() {
                renaming_to_subject(&i.local_subject)
            } else {
                i.subject.clone()
            };
            let seen = by_account.entry(&i.account).or_default();
            for other in seen.iter() {
                if is_contained_in(&local, other) || is_contained_in(other, &local) {
                    v.error(
                        FindingKind::OverlappingImports,
                        format!(
                            "service imports {local:?} and {other:?} from {:?} overlap",
                            i.account
                        ),
                    );
                }
            }
            seen.insert(local);
        }
        validate_import(v, i, account);
    }
}
