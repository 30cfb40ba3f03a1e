//! Write access to operational records: the claims outbox and callout sessions.

use redb::ReadableTable;

use super::codec::{decode, encode};
use super::read::{sealed::Source, session_key, StoreRead};
use super::tables;
use super::{backend, StoreError, WriteTx};
use crate::keys::AccountPublicKey;
use crate::model::{Name, OutboxAction, OutboxEntry, Session};

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

    /// Stores (or replaces) a session.
    pub fn put_session(&mut self, session: &Session) -> Result<(), StoreError> {
        let bytes = encode(session)?;
        let mut table =
            self.txn().open_table(tables::SESSIONS).map_err(backend("opening sessions"))?;
        table
            .insert((session.server_id.as_str(), session.client_id), bytes.as_slice())
            .map_err(backend("writing a session"))?;
        Ok(())
    }

    /// Removes a session and returns it, if it existed.
    pub fn delete_session(
        &mut self,
        server_id: &str,
        client_id: u64,
    ) -> Result<Option<Session>, StoreError> {
        let mut table =
            self.txn().open_table(tables::SESSIONS).map_err(backend("opening sessions"))?;
        let old = table.remove((server_id, client_id)).map_err(backend("removing a session"))?;
        old.map(|g| decode("sessions", &session_key(server_id, client_id), g.value())).transpose()
    }

    /// Removes every session whose JWT expired at `now` (unix seconds); returns how many.
    pub fn prune_sessions(&mut self, now: i64) -> Result<usize, StoreError> {
        let expired: Vec<(String, u64)> = {
            let table = self.table(tables::SESSIONS)?;
            let mut out = Vec::new();
            for item in table.iter().map_err(backend("listing sessions"))? {
                let (k, v) = item.map_err(backend("listing sessions"))?;
                let (server, client) = k.value();
                let session: Session = decode("sessions", &session_key(server, client), v.value())?;
                if session.is_expired(now) {
                    out.push((server.to_string(), client));
                }
            }
            out
        };
        let mut table =
            self.txn().open_table(tables::SESSIONS).map_err(backend("opening sessions"))?;
        for (server, client) in &expired {
            table.remove((server.as_str(), *client)).map_err(backend("removing a session"))?;
        }
        Ok(expired.len())
    }
}
