//! Notifications of settled outbox entries, so a caller waiting for a push is woken when the
//! publisher is done with it instead of polling the outbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::keys::AccountPublicKey;

/// One watch channel per account with a waiter: the publisher bumps it each time it settles
/// (pushes, fails, drops or skips) that account's entry; waiters then read the entry's state.
///
/// Bounded by the number of accounts being waited for: a channel nobody watches any more is
/// dropped at the account's next settle.
#[derive(Debug, Default)]
pub struct PushWatch {
    accounts: Mutex<HashMap<AccountPublicKey, watch::Sender<u64>>>,
    /// Whether the publisher's last push attempt failed (a success clears it).
    failing: AtomicBool,
}

impl PushWatch {
    /// A watch with no waiters.
    pub fn new() -> Self {
        PushWatch::default()
    }

    /// A receiver that changes each time the entry of `account` is settled from now on.
    pub fn subscribe(&self, account: &AccountPublicKey) -> watch::Receiver<u64> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        accounts.entry(account.clone()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Wakes every waiter of `account`.
    pub fn settled(&self, account: &AccountPublicKey) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = accounts.get(account) {
            if tx.receiver_count() == 0 {
                accounts.remove(account);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Records the result of a push attempt (a disconnect is neither).
    pub fn attempted(&self, ok: bool) {
        self.failing.store(!ok, Ordering::Relaxed);
    }

    /// Whether the last push attempt failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// How many accounts have a channel (for tests of the bound).
    pub fn len(&self) -> usize {
        self.accounts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no account has a channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};

    fn key() -> AccountPublicKey {
        AccountPublicKey::parse(KeyPair::generate(KeyKind::Account).public_key()).unwrap()
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_its_accounts_settle_only_and_channels_are_dropped() {
        let watch = PushWatch::new();
        let (a, b) = (key(), key());
        let mut rx = watch.subscribe(&a);
        watch.settled(&b);
        assert!(!rx.has_changed().unwrap(), "another account's settle");
        watch.settled(&a);
        assert!(rx.has_changed().unwrap());
        rx.changed().await.unwrap();
        drop(rx);
        assert_eq!(watch.len(), 1);
        watch.settled(&a);
        assert!(watch.is_empty(), "nobody waits: the channel is gone");
    }

    #[test]
    fn a_failed_push_marks_the_publisher_failing_until_a_push_succeeds() {
        let watch = PushWatch::new();
        assert!(!watch.is_failing());
        watch.attempted(false);
        assert!(watch.is_failing());
        watch.attempted(true);
        assert!(!watch.is_failing());
    }
}
