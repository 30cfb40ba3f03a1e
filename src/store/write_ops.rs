//! Write access to operational records: the claims outbox.

use super::read::StoreRead;
use super::tables;
use super::{StoreError, WriteTx};
use crate::keys::AccountPublicKey;
use crate::model::{Name, OutboxAction, OutboxEntry};

impl WriteTx {
    /// Enqueues a claims push for `account`, coalescing with a pending entry: the latest action
    /// wins, the retry state resets and the revision grows. Returns the stored entry.
    pub fn enqueue_outbox(
        &mut self,
        account: &AccountPublicKey,
        account_name: &Name,
        action: OutboxAction,
        now_ms: i64,
    ) -> Result<OutboxEntry, StoreError> {
        let entry = match self.get_outbox(account)? {
            Some(mut pending) => {
                pending.coalesce(account_name.clone(), action, now_ms);
                pending
            }
            None => OutboxEntry::new(account.clone(), account_name.clone(), action, now_ms),
        };
        self.put_record(tables::OUTBOX, account.as_str(), &entry)?;
        Ok(entry)
    }

    /// [`WriteTx::enqueue_outbox`] due at once, whatever the publisher's debounce: its
    /// `next_attempt` is the epoch, a quiet time every debounce has passed. For a writer that
    /// sets an account whole in one transaction (an import), where there is no burst of edits
    /// to wait out and coalesce.
    pub fn enqueue_outbox_at_once(
        &mut self,
        account: &AccountPublicKey,
        account_name: &Name,
        action: OutboxAction,
        now_ms: i64,
    ) -> Result<OutboxEntry, StoreError> {
        let mut entry = self.enqueue_outbox(account, account_name, action, now_ms)?;
        entry.next_attempt = 0;
        self.put_record(tables::OUTBOX, account.as_str(), &entry)?;
        Ok(entry)
    }

    /// Writes back an entry read earlier (after a failed attempt), but only if it is unchanged
    /// since: returns `false` and writes nothing when the entry is gone or was re-enqueued
    /// (its revision differs), so a newer change is never overwritten by stale retry state.
    pub fn update_outbox(&mut self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        match self.get_outbox(&entry.account)? {
            Some(current) if current.revision == entry.revision => {
                self.put_record(tables::OUTBOX, entry.account.as_str(), entry)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Removes the entry of `account` after a successful push, but only if its revision is
    /// still `revision`: returns `false` (and keeps it) when it was re-enqueued meanwhile.
    pub fn complete_outbox(
        &mut self,
        account: &AccountPublicKey,
        revision: u64,
    ) -> Result<bool, StoreError> {
        match self.get_outbox(account)? {
            Some(current) if current.revision == revision => {
                self.remove_record(tables::OUTBOX, account.as_str())
            }
            _ => Ok(false),
        }
    }

    /// Removes the entry of `account` whatever its state (cleanup of failed entries). Returns
    /// whether there was one.
    pub fn delete_outbox(&mut self, account: &AccountPublicKey) -> Result<bool, StoreError> {
        self.remove_record(tables::OUTBOX, account.as_str())
    }
}
