//! The claims outbox as admin commands: list it, re-queue an entry.

use serde::{Deserialize, Serialize};

use super::view::{OutboxView, Response};
use super::{reading, writing, AdminError, Command, Context, Outcome};
use crate::model::{OutboxAction, OutboxEntry};
use crate::store::{Store, StoreRead};

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

/// List the claims outbox: pending and failed pushes with their last error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxList {}

impl Command for OutboxList {
    const NAME: &'static str = "outbox_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| Ok(Response::Outbox(tx.list_outbox()?.iter().map(view).collect())))
    }
}

/// Re-queue an outbox entry (a failed one, typically) for an immediate push: due at once,
/// attempts and error reset, revision bumped (a push in flight for it then cannot complete it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRetry {
    /// The account's name or public key.
    pub id: String,
}

impl Command for OutboxRetry {
    const NAME: &'static str = "outbox_retry";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let id = &self.id;
            let entry = tx
                .list_outbox()?
                .into_iter()
                .find(|e| e.account.as_str() == id || e.account_name.as_str() == id)
                .ok_or_else(|| AdminError::NotFound { what: "outbox entry", name: id.clone() })?;
            let was = if entry.failed_at.is_some() { "failed" } else { "pending" };
            let queued =
                tx.enqueue_outbox(&entry.account, &entry.account_name, entry.action, ctx.now_ms)?;
            fx.pushed(&queued.account, queued.revision);
            let name = &entry.account_name;
            Ok(Response::Done {
                message: format!("outbox entry of account {name} ({was}) re-queued"),
            })
        })
    }
}
