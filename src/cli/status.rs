//! `pbn status`: what a running `pbn serve` is doing, read from its HTTP listener (`GET
//! /status`, the default) or through NATS (`--server URL --creds FILE`, a request on
//! [`STATUS_SUBJECT`] as the admin creds' user).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::output::outln;
use crate::server::status::{Status, STATUS_SUBJECT};

/// How long `pbn status` waits for the service.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `pbn status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The service's HTTP listener (`pbn serve --http`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8222", conflicts_with = "server")]
    pub http: String,
    /// Ask through this NATS server instead of the HTTP listener.
    #[arg(long, value_name = "URL", requires = "creds")]
    pub server: Option<String>,
    /// Admin creds for --server (the `admin.creds` written by `pbn init`).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub creds: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Errors of `pbn status`.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Nothing answered.
    #[error("no pbn serve answered at {at}: {reason}")]
    Unreachable {
        /// Where it asked.
        at: String,
        /// Why.
        reason: String,
    },
    /// The answer was not a status.
    #[error("unreadable status from {at}: {reason}")]
    BadAnswer {
        /// Where it asked.
        at: String,
        /// Why.
        reason: String,
    },
}

/// Runs `pbn status`.
pub fn status(a: StatusArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (at, body) = runtime.block_on(async {
        match (&a.server, &a.creds) {
            (Some(url), Some(creds)) => {
                let at = crate::config::redact_url(url);
                let body = by_nats(url, creds).await;
                (at.clone(), body.map_err(|reason| StatusError::Unreachable { at, reason }))
            }
            _ => {
                let at = format!("http://{}/status", a.http);
                let body = by_http(&a.http).await;
                (at.clone(), body.map_err(|reason| StatusError::Unreachable { at, reason }))
            }
        }
    });
    let body = body?;
    let status: Status = serde_json::from_slice(&body)
        .map_err(|e| StatusError::BadAnswer { at, reason: e.to_string() })?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&status)?)
    } else {
        super::output::out(&text(&status))
    }
}

async fn by_http(addr: &str) -> Result<Vec<u8>, String> {
    let get = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!("GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP answer")?;
        Ok(raw[split + 4..].to_vec())
    };
    tokio::time::timeout(TIMEOUT, get).await.map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}

async fn by_nats(url: &str, creds: &std::path::Path) -> Result<Vec<u8>, String> {
    let opts = async_nats::ConnectOptions::with_credentials_file(creds)
        .await
        .map_err(|e| format!("cannot read creds {}: {e}", creds.display()))?;
    let client = opts
        .name("pbn-status")
        .connection_timeout(TIMEOUT)
        .request_timeout(Some(TIMEOUT))
        .connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let reply = client.request(STATUS_SUBJECT, "".into()).await.map_err(|e| e.to_string())?;
    Ok(reply.payload.to_vec())
}

/// The human-readable status.
fn text(s: &Status) -> String {
    let server = |c: &crate::server::status::ConnectionStatus| match &c.server {
        Some(name) => format!("{} (server {name})", c.state),
        None => c.state.clone(),
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    [
        format!("version:             {}", s.version),
        format!(
            "uptime:              {}",
            humantime::format_duration(Duration::from_secs(s.uptime_seconds))
        ),
        format!("callout connection:  {}", server(&s.callout)),
        format!("system connection:   {}", server(&s.system)),
        format!("callout subscribed:  {}", yes(s.callout_subscribed)),
        format!("publisher failing:   {}", yes(s.publisher_failing)),
        format!(
            "outbox:              {} entries, oldest {} s",
            s.outbox_entries, s.outbox_oldest_seconds
        ),
        format!("sessions:            {}", s.sessions),
        format!(
            "last minute:         {} logins, {} refused",
            s.logins_last_minute, s.refusals_last_minute
        ),
    ]
    .join("\n")
        + "\n"
}
