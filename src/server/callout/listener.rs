//! The callout on NATS: a queue subscription on `$SYS.REQ.USER.AUTH` with bounded concurrency.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use super::Pipeline;
use crate::server::audit::LoginEvent;

/// The subject nats-server sends authorization requests to (in the callout account).
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// The header that carries the server's xkey on encrypted requests.
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// Answers callout requests on `client` until `shutdown` turns true or the subscription ends,
/// then waits for the requests in flight.
///
/// At most `max_concurrent` requests are handled at once: each spawned handler holds a
/// semaphore permit, and the subscription is not read while none is free, so a burst queues in
/// the (bounded) subscription buffer instead of in unbounded tasks. A handler waits for an argon2
/// permit as a task and uses a blocking thread only for the hash itself, in a pooled work area,
/// so argon2 memory is bounded by the number of argon2 permits, not by `max_concurrent`.
pub async fn serve(
    client: async_nats::Client,
    pipeline: Arc<Pipeline>,
    queue_group: &str,
    max_concurrent: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), async_nats::SubscribeError> {
    let mut sub = client.queue_subscribe(CALLOUT_SUBJECT, queue_group.to_string()).await?;
    info!(subject = CALLOUT_SUBJECT, queue_group, "callout subscribed");
    pipeline.metrics().subscribed(true);
    let permits = Arc::new(Semaphore::new(max_concurrent));
    loop {
        let msg = tokio::select! {
            msg = sub.next() => msg,
            _ = crate::shutdown::requested(&mut shutdown) => None,
        };
        let Some(msg) = msg else { break };
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let (client, pipeline) = (client.clone(), pipeline.clone());
        tokio::spawn(async move {
            handle(client, pipeline, msg).await;
            drop(permit);
        });
    }
    pipeline.metrics().subscribed(false);
    let _ = sub.unsubscribe().await;
    // Every permit back means every handler finished.
    let _ = permits.acquire_many(max_concurrent as u32).await;
    info!("callout stopped");
    Ok(())
}

async fn handle(client: async_nats::Client, pipeline: Arc<Pipeline>, msg: async_nats::Message) {
    let Some(reply_to) = msg.reply.clone() else {
        debug!("callout request without reply subject dropped");
        return;
    };
    let header =
        msg.headers.as_ref().and_then(|h| h.get(XKEY_HEADER)).map(|v| v.as_str().to_string());
    let now = crate::clock::unix_now();
    let payload = msg.payload;
    // The negotiated max payload (an atomic the client updates from each INFO), not
    // `server_info()`, which copies the whole INFO per request.
    let max_reply = match client.max_payload() {
        0 => usize::MAX,
        max => max,
    };
    let started = std::time::Instant::now();
    let outcome = pipeline.handle(&payload, header.as_deref(), now, max_reply).await;
    let reason = outcome.error.as_ref().map(|e| e.reason());
    pipeline.metrics().login(outcome.method, reason, started.elapsed());
    let method = outcome.method;
    match (&outcome.error, &outcome.admitted) {
        (None, Some(s)) => {
            debug!(user = %s.user, method, client = s.client_id, "callout admitted")
        }
        (Some(e), _) if e.is_request_failure() => {
            warn!(reason = e.reason(), error = %e, "callout request refused")
        }
        (Some(e), _) => info!(reason = e.reason(), method, error = %e, "callout login refused"),
        _ => {}
    }
    if let Some(audit) = pipeline.audit() {
        audit.login(login_event(&outcome));
    }
    if let Some(reply) = outcome.reply {
        if let Err(e) = client.publish(reply_to, reply.into()).await {
            warn!(error = %e, "cannot send callout response");
            // The client will never get this JWT: its session must not count against a cap.
            if let Some(s) = &outcome.admitted {
                pipeline.sessions().remove(s.server_id.as_str(), s.client_id);
            }
        }
    }
}

/// The audit event of a handled request: who, how, from where, and the decision.
fn login_event(outcome: &super::Handled) -> LoginEvent {
    let client = outcome.client.clone().unwrap_or(super::LoginClient {
        user: String::new(),
        host: String::new(),
        server_id: String::new(),
    });
    let (user, account) = match &outcome.admitted {
        Some(s) => (s.user.to_string(), s.account.to_string()),
        None => (client.user, String::new()),
    };
    LoginEvent {
        user,
        account,
        method: outcome.method,
        client_host: client.host,
        server_id: client.server_id,
        outcome: if outcome.error.is_none() { "admitted" } else { "refused" },
        reason: outcome.error.as_ref().map_or("", |e| e.reason()),
    }
}
