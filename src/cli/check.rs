//! `pbn check`: log in as a user through the callout and round-trip one message, reporting the
//! server's own reason once — a refused login or a permission violation the moment it arrives.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::args::CheckArgs;

/// Why a check failed. Each variant has its own exit code (see [`super::exit`]).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The server refused the login: wrong password, or an unknown or disabled user.
    #[error("login as {user} refused: wrong password, or the user is unknown or disabled")]
    LoginRefused {
        /// The user name tried.
        user: String,
    },
    /// The server reported a permission violation for the check's subject.
    #[error("permission denied for {user}: {reason}")]
    PermissionDenied {
        /// The user name.
        user: String,
        /// The server's message, e.g. `Permissions Violation for Subscription to "x"`.
        reason: String,
    },
    /// The server could not be reached or broke off the connection.
    #[error("cannot reach {server}: {reason}")]
    Unreachable {
        /// The server URL.
        server: String,
        /// What failed.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("no {what} within {} ms", after.as_millis())]
    TimedOut {
        /// What was awaited.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// A message other than the one sent arrived on the subject.
    #[error("received an unexpected message on {subject}")]
    Unexpected {
        /// The check's subject.
        subject: String,
    },
}

/// Server errors seen by the connection's event callback. The check does one subscribe and one
/// publish, so a handful of events at most; only the first permission violation matters, so a
/// full queue drops the rest.
const EVENT_QUEUE: usize = 16;

/// The log filter for `pbn check`: the client library's own connection errors are silenced
/// (the check reports the server's reason once) unless the filter names the library.
pub fn log_filter(filter: &str) -> String {
    if filter.contains("async_nats") {
        filter.to_string()
    } else {
        format!("{filter},async_nats=off")
    }
}

/// `pbn check`.
pub fn check(a: CheckArgs) -> Result<()> {
    let password = super::secrets::read_existing_password(&a.password)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let report = runtime.block_on(round_trip(&a, password.as_str()))?;
    println!(
        "ok: logged in as {} in {} ms, round trip on {} in {} ms",
        a.user,
        report.0.as_millis(),
        a.subject,
        report.1.as_millis()
    );
    Ok(())
}

/// Logs in and round-trips one message; returns the login time and the round-trip time.
async fn round_trip(a: &CheckArgs, password: &str) -> Result<(Duration, Duration), CheckError> {
    let started = Instant::now();
    let (tx, mut events) = mpsc::channel::<String>(EVENT_QUEUE);
    let opts = async_nats::ConnectOptions::with_user_and_password(a.user.clone(), password.into())
        .event_callback(move |ev| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(msg)) = ev {
                    let _ = tx.try_send(msg);
                }
            }
        });
    let client = tokio::time::timeout(a.timeout, opts.connect(&a.server))
        .await
        .map_err(|_| CheckError::TimedOut { what: "login", after: a.timeout })?
        .map_err(|e| login_error(a, &e))?;
    let connected = started.elapsed();
    let result = exchange(a, &client, &mut events).await;
    // Best effort: the process ends right after.
    let _ = client.drain().await;
    result?;
    Ok((connected, started.elapsed() - connected))
}

/// Maps a connect failure to the check's error.
fn login_error(a: &CheckArgs, e: &async_nats::ConnectError) -> CheckError {
    use async_nats::ConnectErrorKind as K;
    match e.kind() {
        K::AuthorizationViolation | K::Authentication => {
            CheckError::LoginRefused { user: a.user.clone() }
        }
        K::TimedOut => CheckError::TimedOut { what: "login", after: a.timeout },
        _ => CheckError::Unreachable { server: a.server.clone(), reason: e.to_string() },
    }
}

/// Subscribes, publishes and waits for the message, failing at the first permission violation.
async fn exchange(
    a: &CheckArgs,
    client: &async_nats::Client,
    events: &mut mpsc::Receiver<String>,
) -> Result<(), CheckError> {
    let broken = |e: &dyn std::fmt::Display| CheckError::Unreachable {
        server: a.server.clone(),
        reason: e.to_string(),
    };
    let mut sub = client.subscribe(a.subject.clone()).await.map_err(|e| broken(&e))?;
    client.publish(a.subject.clone(), "pbn check".into()).await.map_err(|e| broken(&e))?;
    client.flush().await.map_err(|e| broken(&e))?;
    let deadline = tokio::time::sleep(a.timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            msg = sub.next() => {
                let msg = msg.ok_or_else(|| broken(&"subscription closed"))?;
                return if msg.payload.as_ref() == b"pbn check" {
                    Ok(())
                } else {
                    Err(CheckError::Unexpected { subject: a.subject.clone() })
                };
            }
            Some(reason) = events.recv() => {
                if reason.to_lowercase().contains("permissions violation") {
                    return Err(CheckError::PermissionDenied { user: a.user.clone(), reason });
                }
            }
            _ = &mut deadline => {
                return Err(CheckError::TimedOut { what: "round trip", after: a.timeout });
            }
        }
    }
}
