//! Validation results (Go's `ValidationResults`) and the subject, CIDR, time and URL checks the
//! claim bodies share.
//!
//! nats-server refuses a callout response, and the user JWT inside it, when Go's `Validate`
//! reports any finding at all, so pbn validates what it mints with the same rules.

use std::fmt;

use crate::keys::{public_key_kind, KeyKind};

use super::types::TimeRange;
use super::ClaimsError;

/// What a validation finding is about; tests and callers match on this, not on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// `exp` is in the past (time check).
    Expired,
    /// `nbf` is in the future (time check).
    NotYetValid,
    /// A subject is empty, has spaces, or has empty tokens.
    InvalidSubject,
    /// A permission entry has a queue where none is allowed, or too many spaces.
    InvalidPermission,
    /// A `src` entry is not a CIDR.
    InvalidCidr,
    /// A `times` entry is missing or not `HH:MM:SS`.
    InvalidTimeRange,
    /// `times_location` is not a plausible IANA zone name.
    InvalidTimeLocation,
    /// `issuer_account` is not an account public key.
    InvalidIssuerAccount,
    /// Flat and tiered JetStream limits are both set.
    TieredAndFlatJetStream,
    /// A JetStream tier has an empty name.
    BlankTierName,
    /// More imports than the `imports` limit.
    TooManyImports,
    /// More exports than the `exports` limit.
    TooManyExports,
    /// A wildcard export while `wildcards` is false.
    WildcardExport,
    /// An `auth_users` entry is not a user public key.
    InvalidAuthUser,
    /// An `allowed_accounts` entry is not an account key, or `*` is mixed with keys.
    InvalidAllowedAccount,
    /// `allowed_accounts` without `auth_users`.
    AllowedAccountsWithoutUsers,
    /// `authorization.xkey` is not a curve public key.
    InvalidXkey,
    /// A signing key has the wrong kind.
    InvalidSigningKey,
    /// An export or import type is neither stream nor service.
    InvalidExportType,
    /// A service response type is not Singleton, Stream or Chunked, or a stream has one.
    InvalidResponseType,
    /// An option used on the wrong kind of export or import (trace, latency, threshold, share).
    MisplacedOption,
    /// Service latency sampling outside 1..=100, or a bad results subject.
    InvalidLatency,
    /// A negative `response_threshold`.
    NegativeResponseThreshold,
    /// `account_token_position` does not point at a `*` token.
    InvalidAccountTokenPosition,
    /// Two exports of the same kind overlap.
    OverlappingExports,
    /// Two service imports from the same account overlap.
    OverlappingImports,
    /// An import without `account`.
    MissingImportAccount,
    /// An import uses the deprecated `to` field (warning).
    DeprecatedImportTo,
    /// An import's `local_subject` does not fit its subject.
    InvalidLocalSubject,
    /// An import's activation token does not decode or does not match the import.
    InvalidActivation,
    /// A mapping weight above 100, alone or summed.
    InvalidMapping,
    /// An invalid message trace destination or sampling.
    InvalidTrace,
    /// A description or info URL is too long or the URL is unusable.
    InvalidInfo,
    /// `cluster_traffic` is not "", "system" or "owner".
    InvalidClusterTraffic,
    /// A self-signed account carries limits (warning).
    SelfSignedLimits,
    /// An operator's `account_server_url` is unusable.
    InvalidAccountServerUrl,
    /// An operator service URL is unusable.
    InvalidOperatorServiceUrl,
    /// An operator's `system_account` is not an account key.
    InvalidSystemAccount,
    /// `assert_server_version` is not `major.minor.patch`.
    InvalidServerVersion,
    /// `sub` has the wrong kind for this claim type.
    InvalidSubjectKey,
    /// `aud` of a callout response is not a server key.
    InvalidAudience,
    /// A callout response has neither `jwt` nor `error`.
    MissingJwtOrError,
    /// A callout response has both `jwt` and `error`.
    JwtAndError,
    /// A callout request's `user_nkey` is missing or not a user key.
    InvalidUserNkey,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What the finding is about.
    pub kind: FindingKind,
    /// Lower-case description naming the offending value.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Validation results, kept apart the way Go's `ValidationResults` flags them: blocking
/// `errors`, non-blocking `warnings`, and `time` checks (expired / not yet valid).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validation {
    /// Blocking errors.
    pub errors: Vec<Finding>,
    /// Non-blocking warnings.
    pub warnings: Vec<Finding>,
    /// Time checks.
    pub time: Vec<Finding>,
}

impl Validation {
    /// True when there is no finding of any kind (what nats-server requires of callout JWTs).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.warnings.is_empty() && self.time.is_empty()
    }

    /// True when there are blocking errors, or time findings if `include_time` (Go's `IsBlocking`).
    pub fn is_blocking(&self, include_time: bool) -> bool {
        !self.errors.is_empty() || (include_time && !self.time.is_empty())
    }

    /// True when a finding of `kind` was found, in any of the three lists.
    pub fn has(&self, kind: FindingKind) -> bool {
        self.findings().any(|i| i.kind == kind)
    }

    /// All findings: errors, then warnings, then time checks.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.errors.iter().chain(&self.warnings).chain(&self.time)
    }

    /// `Ok` when there is no finding at all, else [`ClaimsError::Invalid`].
    pub fn ensure_clean(self) -> Result<(), ClaimsError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ClaimsError::Invalid(Box::new(self)))
        }
    }

    pub(crate) fn error(&mut self, kind: FindingKind, message: String) {
        self.errors.push(Finding { kind, message });
    }

    pub(crate) fn warning(&mut self, kind: FindingKind, message: String) {
        self.warnings.push(Finding { kind, message });
    }

    pub(crate) fn time(&mut self, kind: FindingKind, message: String) {
        self.time.push(Finding { kind, message });
    }
}

impl fmt::Display for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for finding in self.findings() {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            f.write_str(&finding.message)?;
        }
        if first {
            f.write_str("no findings")?;
        }
        Ok(())
    }
}

/// True when `key` is a valid public key of `kind`.
pub(crate) fn is_key(key: &str, kind: KeyKind) -> bool {
    public_key_kind(key) == Ok(kind)
}

/// Go's `Subject.Validate`: non-empty, no spaces, no leading/trailing or doubled dots.
pub(crate) fn validate_subject(v: &mut Validation, subject: &str) {
    if subject.is_empty() {
        v.error(FindingKind::InvalidSubject, "subject cannot be empty".into());
        return;
    }
    if subject.contains(' ') {
        v.error(FindingKind::InvalidSubject, format!("subject {subject:?} cannot have spaces"));
    }
    if subject.starts_with('.') || subject.ends_with('.') {
        v.error(
            FindingKind::InvalidSubject,
            format!("subject {subject:?} cannot start or end with ."),
        );
    }
    if subject.contains("..") {
        v.error(FindingKind::InvalidSubject, format!("subject {subject:?} cannot contain .."));
    }
}

/// Go's `checkPermission`: a subject, or (where `permit_queue`) `"subject queue"`.
pub(crate) fn check_permission(v: &mut Validation, entry: &str, permit_queue: bool) {
    let parts: Vec<&str> = entry.split(' ').collect();
    match parts.as_slice() {
        [subject] => validate_subject(v, subject),
        [subject, queue] => {
            validate_subject(v, subject);
            validate_subject(v, queue);
            if !permit_queue {
                v.error(
                    FindingKind::InvalidPermission,
                    format!("permission subject {entry:?} is not allowed to contain a queue"),
                );
            }
        }
        _ => v.error(
            FindingKind::InvalidPermission,
            format!("permission subject {entry:?} contains too many spaces"),
        ),
    }
}

/// Go's `Subject.HasWildCards`.
pub(crate) fn has_wildcards(s: &str) -> bool {
    s.ends_with(".>")
        || s.contains(".*.")
        || s.ends_with(".*")
        || s.starts_with("*.")
        || s == "*"
        || s == ">"
}

/// Go's `Subject.IsContainedIn`: whether every subject matching `s` also matches `other`.
pub(crate) fn is_contained_in(s: &str, other: &str) -> bool {
    let theirs: Vec<&str> = other.split('.').collect();
    let mine: Vec<&str> = s.split('.').collect();
    let last_is_gt = theirs.last() == Some(&">");
    if (mine.len() > theirs.len() && !last_is_gt) || mine.len() < theirs.len() {
        return false;
    }
    for (i, tok) in theirs.iter().enumerate() {
        if i == theirs.len() - 1 && *tok == ">" {
            return true;
        }
        if *tok != mine[i] && *tok != "*" {
            return false;
        }
    }
    true
}

fn count_token_wildcards(s: &str) -> usize {
    s.split('.').filter(|t| *t == "*").count()
}

/// Go's `RenamingSubject.Validate` of an import's `local_subject` against its `subject`.
pub(crate) fn validate_renaming(v: &mut Validation, local: &str, from: &str) {
    validate_subject(v, local);
    if from.is_empty() {
        v.error(FindingKind::InvalidLocalSubject, "import subject cannot be empty".into());
    }
    let ends_gt = |s: &str| s == ">" || s.ends_with(".>");
    if ends_gt(local) != ends_gt(from) {
        v.error(
            FindingKind::InvalidLocalSubject,
            format!("local subject {local:?} and subject {from:?} must both end in > or neither"),
        );
    }
    let from_count = count_token_wildcards(from);
    let mut refs = 0;
    for tok in local.split('.') {
        if tok == "*" {
            refs += 1;
        }
        if tok.len() < 2 || !tok.starts_with('$') {
            continue;
        }
        if let Ok(idx) = tok[1..].parse::<i64>() {
            if idx > from_count as i64 {
                v.error(
                    FindingKind::InvalidLocalSubject,
                    format!("reference ${idx} in {local:?} has no matching * in {from:?}"),
                );
            } else {
                refs += 1;
            }
        }
    }
    if refs != from_count {
        v.error(
            FindingKind::InvalidLocalSubject,
            format!("local subject {local:?} does not use every wildcard of {from:?}"),
        );
    }
}

/// Go's `RenamingSubject.ToSubject`: `$N` references become `*`.
pub(crate) fn renaming_to_subject(local: &str) -> String {
    if !local.contains('$') {
        return local.to_string();
    }
    let tokens: Vec<&str> = local
        .split('.')
        .map(|t| {
            if t.len() > 1 && t.starts_with('$') && t[1..].parse::<i64>().is_ok() {
                "*"
            } else {
                t
            }
        })
        .collect();
    tokens.join(".")
}

/// A CIDR as Go's `net.ParseCIDR` accepts it (address and prefix length).
pub(crate) fn validate_cidr(v: &mut Validation, cidr: &str) {
    if cidr.parse::<ipnet::IpNet>().is_err() {
        v.error(FindingKind::InvalidCidr, format!("invalid cidr {cidr:?} in user src limits"));
    }
}

/// Go's `time.Parse("15:04:05", s)`: 1–2 digit hour 0–23, 2-digit minute and second.
fn parse_clock(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts.as_slice() else { return false };
    let digits = |t: &str, min: usize, max: usize, limit: u32| {
        (min..=max).contains(&t.len())
            && t.bytes().all(|b| b.is_ascii_digit())
            && t.parse::<u32>().is_ok_and(|n| n <= limit)
    };
    digits(h, 1, 2, 23) && digits(m, 2, 2, 59) && digits(sec, 2, 2, 59)
}

/// Go's `TimeRange.Validate`.
pub(crate) fn validate_time_range(v: &mut Validation, range: &TimeRange) {
    for (what, value) in [("start", &range.start), ("end", &range.end)] {
        if value.is_empty() {
            v.error(FindingKind::InvalidTimeRange, format!("time range has no {what}"));
        } else if !parse_clock(value) {
            v.error(
                FindingKind::InvalidTimeRange,
                format!("{what} {value:?} in time range is invalid"),
            );
        }
    }
}

/// A syntactic stand-in for Go's `time.LoadLocation` (pure code has no zone database): an
/// empty value, `UTC`, `Local`, or `Area/Location` names of letters, digits, `_+-`.
pub(crate) fn validate_location(v: &mut Validation, location: &str) {
    if location.is_empty() {
        return;
    }
    let plausible = !location.starts_with('/')
        && !location.ends_with('/')
        && !location.contains("..")
        && !location.contains("//")
        && location.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-/".contains(&b));
    if !plausible {
        v.error(
            FindingKind::InvalidTimeLocation,
            format!("time zone {location:?} is not an iana name"),
        );
    }
}

/// The parts of a URL Go's checks look at.
pub(crate) struct UrlParts<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) user_info: bool,
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
}

/// A small subset of Go's `url.Parse`: scheme, user info, host name and path.
pub(crate) fn parse_url(url: &str) -> UrlParts<'_> {
    let (scheme, rest) = match url.split_once(':') {
        Some((s, r))
            if s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (s, r)
        }
        _ => ("", url),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => r.split_at(r.find('/').unwrap_or(r.len())),
        None => ("", rest),
    };
    let (user_info, host_port) = match authority.rsplit_once('@') {
        Some((_, h)) => (true, h),
        None => (false, authority),
    };
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    UrlParts { scheme, user_info, host, path }
}

/// Go's `Info.Validate`: description and info URL at most 8 KiB; the URL needs scheme and host.
pub(crate) fn validate_info(v: &mut Validation, description: &str, info_url: &str) {
    const MAX_INFO: usize = 8 * 1024;
    if description.len() > MAX_INFO {
        v.error(
            FindingKind::InvalidInfo,
            format!("description of {} bytes is too long", description.len()),
        );
    }
    if info_url.is_empty() {
        return;
    }
    if info_url.len() > MAX_INFO {
        v.error(
            FindingKind::InvalidInfo,
            format!("info url of {} bytes is too long", info_url.len()),
        );
    }
    let u = parse_url(info_url);
    if u.scheme.is_empty() || u.host.is_empty() {
        v.error(FindingKind::InvalidInfo, format!("info url {info_url:?} has no scheme or host"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_rules_follow_go() {
        for bad in ["", "a b", ".a", "a.", "a..b"] {
            let mut v = Validation::default();
            validate_subject(&mut v, bad);
            assert!(v.has(FindingKind::InvalidSubject), "{bad:?} accepted");
        }
        let mut v = Validation::default();
        validate_subject(&mut v, "a.*.>");
        assert!(v.is_empty());
    }

    #[test]
    fn queue_only_in_subscribe_permissions() {
        let mut v = Validation::default();
        check_permission(&mut v, "foo.> workers", true);
        assert!(v.is_empty());
        check_permission(&mut v, "foo.> workers", false);
        assert!(v.has(FindingKind::InvalidPermission));
        let mut v = Validation::default();
        check_permission(&mut v, "a b c", true);
        assert!(v.has(FindingKind::InvalidPermission));
    }

    #[test]
    fn containment_and_wildcards() {
        assert!(is_contained_in("a.b.c", "a.>"));
        assert!(is_contained_in("a.b", "a.*"));
        assert!(!is_contained_in("a", "a.*"));
        assert!(!is_contained_in("b.c", "a.>"));
        assert!(has_wildcards("a.*") && has_wildcards(">") && !has_wildcards("a.b"));
        assert_eq!(renaming_to_subject("x.$1.$2"), "x.*.*");
    }

    #[test]
    fn renaming_subject_checks() {
        let mut v = Validation::default();
        validate_renaming(&mut v, "local.$1", "remote.*");
        assert!(v.is_empty(), "{v}");
        validate_renaming(&mut v, "local.$2", "remote.*");
        assert!(v.has(FindingKind::InvalidLocalSubject));
        let mut v = Validation::default();
        validate_renaming(&mut v, "local.>", "remote.x");
        assert!(v.has(FindingKind::InvalidLocalSubject));
    }

    #[test]
    fn cidr_times_and_location() {
        let mut v = Validation::default();
        validate_cidr(&mut v, "10.0.0.0/8");
        validate_cidr(&mut v, "::1/128");
        validate_time_range(&mut v, &TimeRange { start: "8:00:00".into(), end: "17:30:00".into() });
        validate_location(&mut v, "Europe/Berlin");
        assert!(v.is_empty(), "{v}");
        validate_cidr(&mut v, "10.0.0.1");
        assert!(v.has(FindingKind::InvalidCidr));
        validate_time_range(&mut v, &TimeRange { start: "24:00:00".into(), end: String::new() });
        assert_eq!(v.errors.iter().filter(|i| i.kind == FindingKind::InvalidTimeRange).count(), 2);
        validate_location(&mut v, "../etc/passwd");
        assert!(v.has(FindingKind::InvalidTimeLocation));
    }

    #[test]
    fn url_parts() {
        let u = parse_url("nats://user:pw@host:4222/path?x");
        assert_eq!((u.scheme, u.user_info, u.host, u.path), ("nats", true, "host", "/path"));
        let u = parse_url("tls://[::1]:4222");
        assert_eq!((u.scheme, u.host, u.path), ("tls", "::1", ""));
        let u = parse_url("no-scheme/x");
        assert_eq!((u.scheme, u.host), ("", ""));
        let mut v = Validation::default();
        validate_info(&mut v, "d", "https://docs.nats.io/x");
        assert!(v.is_empty());
        validate_info(&mut v, "d", "docs.nats.io");
        assert!(v.has(FindingKind::InvalidInfo));
    }

    #[test]
    fn validation_buckets() {
        let mut v = Validation::default();
        assert!(v.is_empty() && !v.is_blocking(true));
        v.time(FindingKind::Expired, "expired".into());
        assert!(!v.is_blocking(false) && v.is_blocking(true));
        v.warning(FindingKind::DeprecatedImportTo, "w".into());
        v.error(FindingKind::InvalidSubject, "e".into());
        assert!(v.is_blocking(false));
        assert_eq!(v.to_string(), "e; w; expired");
        assert!(matches!(v.ensure_clean(), Err(ClaimsError::Invalid(_))));
    }
}
