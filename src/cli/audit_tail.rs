//! `pbn admin audit tail`: follows the audit events a running `pbn serve` publishes on NATS
//! (`pbn.audit.>`), one JSON event per line, as the admin creds' user (the `pbn-admin` role may
//! subscribe to them).

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Args;
use futures::StreamExt;

use super::output::outln;

/// `pbn admin audit tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Stop after this many events (default: follow until interrupted).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Only events on subjects matching this, e.g. `pbn.audit.login.*.refused`.
    #[arg(long, default_value = crate::server::audit::AUDIT_SUBJECTS)]
    pub subject: String,
}

/// Errors of `pbn admin audit tail`.
#[derive(Debug, thiserror::Error)]
pub enum AuditTailError {
    /// Events are on NATS only: a server and creds are needed.
    #[error("`audit tail` follows a running service: give --server URL and --creds FILE")]
    NeedsServer,
    /// The subject filter is not under `pbn.audit.`.
    #[error("subject {0:?} is not an audit subject (pbn.audit.…)")]
    NotAudit(String),
}

/// Follows events through `server` as the user of `creds`, printing each one's JSON.
pub fn run(server: Option<&str>, creds: Option<&Path>, args: &TailArgs) -> Result<()> {
    let (Some(url), Some(creds)) = (server, creds) else {
        return Err(AuditTailError::NeedsServer.into());
    };
    if !args.subject.starts_with("pbn.audit.") {
        return Err(AuditTailError::NotAudit(args.subject.clone()).into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(follow(url, creds, args))
}

async fn follow(url: &str, creds: &Path, args: &TailArgs) -> Result<()> {
    let opts = async_nats::ConnectOptions::with_credentials_file(creds)
        .await
        .with_context(|| format!("cannot read creds {}", creds.display()))?;
    let client = opts
        .name("pbn-audit-tail")
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", crate::config::redact_url(url)))?;
    let mut sub = client.subscribe(args.subject.clone()).await.context("cannot subscribe")?;
    client.flush().await.context("cannot subscribe")?;
    eprintln!("following {} (interrupt to stop)", args.subject);
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) {
        let Some(msg) = sub.next().await else { break };
        outln!("{}", String::from_utf8_lossy(&msg.payload))?;
        seen += 1;
    }
    Ok(())
}
