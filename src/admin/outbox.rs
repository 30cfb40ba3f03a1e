//! The claims outbox as admin operations: list it, re-queue an entry.

use super::view::{OutboxView, Response};
use super::{AdminError, Context};
use crate::model::{OutboxAction, OutboxEntry};
use crate::store::{StoreRead, WriteTx};

fn view(e: &OutboxEntry) -> OutboxView {
    OutboxView {
        account: e.account.to_string(),
        account_name: e.account_name.to_string(),
        action: match e.action {
            OutboxAction::Upsert => "upsert",
            OutboxAction::Delete => "delete",
        }
        .into(),
        state: if e.failed_at.is_some() { "failed" } else { "pending" }.into(),
        attempts: e.attempts,
        next_attempt: e.next_attempt,
        last_error: e.last_error.clone(),
        failed_at: e.failed_at,
        created: e.created,
        updated: e.updated,
    }
}

/// Every entry, pending and failed, in account-key order.
pub(super) fn list(tx: &impl StoreRead) -> Result<Response, AdminError> {
    Ok(Response::Outbox(tx.list_outbox()?.iter().map(view).collect()))
}

/// Re-queues the entry of the account named (or keyed) `id`: due at once, attempts and error
/// reset, revision bumped (a push in flight for it then cannot complete it).
pub(super) fn retry(tx: &mut WriteTx, id: &str, ctx: &Context) -> Result<Response, AdminError> {
    let entry = tx
        .list_outbox()?
        .into_iter()
        .find(|e| e.account.as_str() == id || e.account_name.as_str() == id)
        .ok_or_else(|| AdminError::NotFound { what: "outbox entry", name: id.to_string() })?;
    let was = if entry.failed_at.is_some() { "failed" } else { "pending" };
    tx.enqueue_outbox(&entry.account, &entry.account_name, entry.action, ctx.now * 1000)?;
    Ok(Response::Done {
        message: format!("outbox entry of account {} ({was}) re-queued", entry.account_name),
    })
}
