//! Operational records: live callout sessions and the claims outbox.

use serde::{Deserialize, Serialize};

use super::Name;
use crate::keys::{AccountPublicKey, ServerPublicKey, UserPublicKey};

/// Longest `last_error` kept on an outbox entry, in characters.
pub const OUTBOX_ERROR_MAX_LEN: usize = 1000;

/// A connection admitted by the callout, identified by (server id, client id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The server the client is connected to.
    pub server_id: ServerPublicKey,
    /// The client id on that server.
    pub client_id: u64,
    /// The user who logged in.
    pub user: Name,
    /// The account the user JWT placed the client in.
    pub account: AccountPublicKey,
    /// The client's key (the `sub` of its user JWT), revocable in the account; `None` for a
    /// session known only from the servers (they do not report it).
    pub user_nkey: Option<UserPublicKey>,
    /// The signing key that signed the user JWT, when known (the servers report it).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Unix seconds the user JWT was issued (0 for a session known only from the servers).
    pub issued: i64,
    /// Unix seconds the user JWT expires; the session ends by then at the latest (`i64::MAX`
    /// for a session known only from the servers: their disconnect event ends it).
    pub expires: i64,
    /// The client's host as the server reported it (empty when not reported).
    #[serde(default)]
    pub host: String,
    /// How the client logged in (`password`, `token`, `nkey`…); `None` for a session known
    /// only from the servers (they do not report it).
    #[serde(default)]
    pub method: Option<String>,
    /// Unix seconds the connection began (the login, or the server's report); 0 when unknown.
    #[serde(default)]
    pub since: i64,
    /// The identity provider whose token admitted the session (`None` for local users, and
    /// for sessions known only from the servers).
    #[serde(default)]
    pub provider: Option<Name>,
}

impl Session {
    /// Whether the session's JWT has expired at `now` (unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires
    }
}

/// What the publisher must do for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxAction {
    /// Push the current account JWT (`$SYS.REQ.CLAIMS.UPDATE`).
    Upsert,
    /// Delete the account from the servers (`$SYS.REQ.CLAIMS.DELETE`).
    Delete,
}

/// A pending claims push, one per account (coalesced: the latest action wins).
///
/// All times in this record are unix **milliseconds**. `revision` grows with every enqueue, so the
/// publisher can remove an entry only if nobody re-enqueued it while it was being pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The account (kept so a delete works after the account record is gone).
    pub account: AccountPublicKey,
    /// The account name at enqueue time, for messages.
    pub account_name: Name,
    /// Upsert or delete.
    pub action: OutboxAction,
    /// Bumped on every enqueue of this account.
    pub revision: u64,
    /// Failed attempts since the last enqueue.
    pub attempts: u32,
    /// Earliest time of the next attempt (ms).
    pub next_attempt: i64,
    /// The last failure, truncated to [`OUTBOX_ERROR_MAX_LEN`] characters.
    pub last_error: Option<String>,
    /// When the entry was given up (ms); failed entries are not due.
    pub failed_at: Option<i64>,
    /// First enqueue (ms).
    pub created: i64,
    /// Last change (ms).
    pub updated: i64,
}

impl OutboxEntry {
    /// A fresh entry, due at `now_ms`.
    pub fn new(
        account: AccountPublicKey,
        account_name: Name,
        action: OutboxAction,
        now_ms: i64,
    ) -> Self {
        OutboxEntry {
            account,
            account_name,
            action,
            revision: 1,
            attempts: 0,
            next_attempt: now_ms,
            last_error: None,
            failed_at: None,
            created: now_ms,
            updated: now_ms,
        }
    }

    /// Folds a new enqueue into this entry: the new action wins, the retry state resets (also
    /// of a failed entry: the newer change supersedes it) and the revision grows.
    pub fn coalesce(&mut self, account_name: Name, action: OutboxAction, now_ms: i64) {
        self.account_name = account_name;
        self.action = action;
        self.revision = self.revision.wrapping_add(1);
        self.attempts = 0;
        self.next_attempt = now_ms;
        self.last_error = None;
        self.failed_at = None;
        self.updated = now_ms;
    }

    /// Whether the entry should be attempted at `now_ms`.
    pub fn is_due(&self, now_ms: i64) -> bool {
        self.failed_at.is_none() && self.next_attempt <= now_ms
    }

    /// Records a failed attempt: retry at `retry_at_ms`, or, when `None`, mark it failed.
    pub fn record_failure(&mut self, error: &str, retry_at_ms: Option<i64>, now_ms: i64) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_error = Some(error.chars().take(OUTBOX_ERROR_MAX_LEN).collect());
        match retry_at_ms {
            Some(at) => self.next_attempt = at,
            None => self.failed_at = Some(now_ms),
        }
        self.updated = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};

    fn entry() -> OutboxEntry {
        let acc =
            AccountPublicKey::parse(KeyPair::generate(KeyKind::Account).public_key()).unwrap();
        OutboxEntry::new(acc, Name::parse("a").unwrap(), OutboxAction::Upsert, 1_000)
    }

    #[test]
    fn failure_then_coalesce_resets_retry_state() {
        let mut e = entry();
        assert!(e.is_due(1_000));
        e.record_failure(&"x".repeat(5_000), Some(2_000), 1_000);
        assert_eq!(e.attempts, 1);
        assert_eq!(e.last_error.as_ref().unwrap().len(), OUTBOX_ERROR_MAX_LEN);
        assert!(!e.is_due(1_999));
        assert!(e.is_due(2_000));
        e.record_failure("gone", None, 3_000);
        assert_eq!(e.failed_at, Some(3_000));
        assert!(!e.is_due(i64::MAX));
        e.coalesce(Name::parse("a").unwrap(), OutboxAction::Delete, 4_000);
        assert_eq!(e.action, OutboxAction::Delete);
        assert_eq!(e.revision, 2);
        assert_eq!(e.attempts, 0);
        assert!(e.failed_at.is_none() && e.last_error.is_none());
        assert!(e.is_due(4_000));
        assert_eq!(e.created, 1_000);
    }
}
