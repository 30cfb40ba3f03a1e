//! Writing checked records in batched write transactions.
//!
//! A batch is as many records as fit [`BATCH_BYTES`] of encoded records: one transaction per
//! batch keeps the commit cost (an fsync) per record small, and a batch's journal (its records
//! plus their index entries) stays under the 1 MiB a replica log message holds.

use super::plan::Planned;
use super::Counts;
use crate::admin::{AdminError, Context};
use crate::model::{Account, AccountKind, Effects, OutboxAction};
use crate::store::StoreRead;
use crate::store::{Store, WriteTx};

/// Estimated journal bytes per write transaction (records plus [`RECORD_OVERHEAD`] each for
/// their index entries): about 1,000 users a commit, so the commit's fsync is shared widely,
/// while the journal stays under the 1 MiB a replica log message may hold (the estimate runs
/// close to the journal's real size; a unit test checks every batch's journal).
pub const BATCH_BYTES: usize = 640 * 1024;

/// What a record adds to a batch besides its JSON: index entries and journal framing.
const RECORD_OVERHEAD: usize = 256;

/// Splits `records` into batches of about [`BATCH_BYTES`] (at least one record each).
fn batches<T: serde::Serialize>(records: &[T]) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let size = serde_json::to_vec(r).map_or(0, |v| v.len()) + RECORD_OVERHEAD;
        if i > start && bytes + size > BATCH_BYTES {
            out.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// Writes `planned`: accounts (each push queued in the outbox, and one push of the AUTH
/// account, whose JWT lists the accounts), then roles, then users. Returns what was written.
pub fn write(
    store: &Store,
    planned: Planned,
    ctx: &Context,
    fx: &mut Effects,
) -> Result<Counts, AdminError> {
    for batch in batches(&planned.accounts) {
        store.write(|tx| -> Result<(), AdminError> {
            for acc in batch {
                tx.insert_account(acc)?;
                queue(tx, fx, acc, ctx)?;
            }
            Ok(())
        })?;
    }
    if !planned.accounts.is_empty() {
        store.write(|tx| -> Result<(), AdminError> {
            let auth = tx.list_accounts()?.into_iter().find(|a| a.kind == AccountKind::Auth);
            auth.map_or(Ok(()), |auth| queue(tx, fx, &auth, ctx))
        })?;
    }
    for batch in batches(&planned.roles) {
        store.write(|tx| batch.iter().try_for_each(|r| tx.insert_role(r)))?;
    }
    for batch in batches(&planned.users) {
        store.write(|tx| batch.iter().try_for_each(|u| tx.insert_user(u)))?;
    }
    Ok(Counts {
        accounts: planned.accounts.len() as u64,
        roles: planned.roles.len() as u64,
        users: planned.users.len() as u64,
    })
}

/// Queues the push of an account (a new one, whose JWT size was checked when the import was
/// planned, or AUTH, whose JWT lists the accounts), due at once: an import writes each account
/// whole in one transaction, so there is no burst of edits for the debounce to wait out.
fn queue(
    tx: &mut WriteTx,
    fx: &mut Effects,
    acc: &Account,
    ctx: &Context,
) -> Result<(), AdminError> {
    let action = OutboxAction::Upsert;
    let entry = tx.enqueue_outbox_at_once(&acc.public_key, &acc.name, action, ctx.now_ms)?;
    fx.pushed(&entry.account, entry.revision);
    Ok(())
}
