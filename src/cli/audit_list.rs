//! `pbn admin audit list`: the audit trail (arguments and their request).

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use crate::admin::{AuditList, Request};

/// `pbn admin audit <command>`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List recorded admin changes, oldest first.
    List(AuditListArgs),
    /// Follow the audit events of a running `pbn serve` live (needs --server and --creds).
    Tail(super::audit_tail::TailArgs),
}

/// `pbn admin audit list`.
#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// Only entries of the last DURATION (e.g. `1h`) or since TIME (RFC 3339, e.g.
    /// `2026-01-31T12:00:00Z`).
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Only entries of this admin.
    #[arg(long, value_name = "NAME")]
    pub admin: Option<String>,
}

/// The request of an audit command, at `now_ms`.
pub fn request(cmd: &AuditCommand, now_ms: i64) -> Result<Request> {
    let a = match cmd {
        AuditCommand::List(a) => a,
        AuditCommand::Tail(_) => return Err(super::requests::NotARequest("audit tail").into()),
    };
    let since_ms = a.since.as_deref().map(|s| since(s, now_ms)).transpose()?;
    Ok(Request::AuditList(AuditList { since_ms, admin: a.admin.clone() }))
}

/// `text` as unix ms: a duration before `now_ms`, or an RFC 3339 time.
fn since(text: &str, now_ms: i64) -> Result<i64> {
    if let Ok(d) = humantime::parse_duration(text) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ms));
    }
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|_| {
            crate::admin::AdminError::Invalid(format!(
                "--since {text:?} is neither a duration (1h) nor a time (2026-01-31T12:00:00Z)"
            ))
        })
        .context("bad --since")?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        assert_eq!(since("1s", 10_000).unwrap(), 9_000);
        assert_eq!(since("1970-01-01T00:00:02Z", 0).unwrap(), 2_000);
        assert!(since("yesterday-ish", 0).is_err());
    }
}
