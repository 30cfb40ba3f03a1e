//! The live effects of an admin change, decided inside the change's write transaction.
//!
//! An admin command knows exactly what it changed while it runs: which accounts it queued for a
//! push, whose sessions its change invalidates, which creds keys it revoked. It records that
//! here, and the runtime applies it (waits for the pushes, closes the sessions) without reading
//! the store again or knowing which command ran. Effects are plain data, so a replica that
//! applies the same change derives the same effects.

use crate::keys::{AccountPublicKey, UserPublicKey};

use super::{Name, Session};

/// Everything an admin change asks the runtime to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Account JWTs queued for a push, as the outbox entries the change left.
    pub pushes: Vec<QueuedPush>,
    /// Live sessions the change invalidates.
    pub close: Vec<CloseSessions>,
    /// Creds keys revoked (in the account JWTs being pushed).
    pub revoked: Vec<UserPublicKey>,
}

/// One outbox entry a change queued: the push is done once the entry is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPush {
    /// The account.
    pub account: AccountPublicKey,
    /// The entry's revision after the change.
    pub revision: u64,
}

/// Which live sessions to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseSessions {
    /// Every session of this user (deleted, deactivated, moved, given another role, or whose
    /// role now grants something else).
    User(Name),
    /// Every session in this account (deactivated).
    Account(AccountPublicKey),
    /// Every session this identity provider admitted (provider changed or deleted).
    Provider(Name),
    /// Sessions of `account` whose JWT was signed by a signing key the change removed, judged
    /// by issue time (see `signed_by_removed`).
    SignedBy {
        /// The account.
        account: AccountPublicKey,
        /// Its signing keys before the change, as (public key, created) in stored order.
        keys: Vec<(String, i64)>,
        /// The keys the change removed.
        removed: Vec<String>,
        /// When the change ran (unix seconds): JWTs issued from then on use a remaining key.
        at: i64,
    },
}

impl Effects {
    /// Notes a push queued as revision `revision` of `account`'s outbox entry (a later push of
    /// the same account in the same change replaces the earlier one).
    pub fn pushed(&mut self, account: &AccountPublicKey, revision: u64) {
        self.pushes.retain(|p| &p.account != account);
        self.pushes.push(QueuedPush { account: account.clone(), revision });
    }

    /// Notes sessions to close.
    pub fn close(&mut self, sessions: CloseSessions) {
        if !self.close.contains(&sessions) {
            self.close.push(sessions);
        }
    }

    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.pushes.is_empty() && self.close.is_empty() && self.revoked.is_empty()
    }
}

impl CloseSessions {
    /// Whether `session` is one of these.
    pub fn matches(&self, session: &Session) -> bool {
        match self {
            CloseSessions::User(name) => session.user == *name,
            CloseSessions::Account(key) => session.account == *key,
            CloseSessions::Provider(name) => session.provider.as_ref() == Some(name),
            CloseSessions::SignedBy { account, keys, removed, at } => {
                session.account == *account
                    && match &session.issuer {
                        Some(issuer) => removed.contains(issuer),
                        None => {
                            session.issued < *at && signed_by_removed(keys, removed, session.issued)
                        }
                    }
            }
        }
    }
}

/// Whether a user JWT issued at `issued` was certainly signed by one of `removed`. `keys` are
/// the account's keys before the change as (public key, created) in stored order: the newest
/// signs (the later entry on a tie), so key `k` signed from its creation until the next newer
/// key was created. A JWT issued in the very second a key was added may come from either key:
/// it is not counted, and is left to the pushed account JWT, on which the server closes exactly
/// the connections of removed keys.
pub fn signed_by_removed(keys: &[(String, i64)], removed: &[String], issued: i64) -> bool {
    let mut order: Vec<(usize, &(String, i64))> = keys.iter().enumerate().collect();
    order.sort_by_key(|(i, (_, created))| (*created, *i));
    order.iter().enumerate().any(|(pos, (_, (key, created)))| {
        // The oldest key also stands for anything older (keys removed earlier, clock skew).
        let after_start = pos == 0 || *created < issued;
        let before_next = order.get(pos + 1).is_none_or(|(_, (_, next))| issued < *next);
        removed.contains(key) && after_start && before_next
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signer_of_a_session_follows_key_creation_times() {
        let k = |v: &[(&str, i64)]| v.iter().map(|(k, c)| (k.to_string(), *c)).collect::<Vec<_>>();
        let a = || vec!["A".to_string()];
        let b = || vec!["B".to_string()];
        assert!(signed_by_removed(&k(&[("A", 100)]), &a(), 50), "the only key signed everything");
        assert!(signed_by_removed(&k(&[("A", 100)]), &a(), 500));

        let two = k(&[("A", 100), ("B", 200)]);
        assert!(signed_by_removed(&two, &a(), 150));
        assert!(signed_by_removed(&two, &a(), 199));
        assert!(!signed_by_removed(&two, &a(), 200), "same second as B: either may have signed");
        assert!(!signed_by_removed(&two, &b(), 200), "same second as B: either may have signed");
        assert!(!signed_by_removed(&two, &a(), 201));
        assert!(!signed_by_removed(&two, &b(), 150));
        assert!(signed_by_removed(&two, &b(), 201));
        assert!(signed_by_removed(&two, &b(), 900));
        // Stored order does not matter, creation time does.
        let swapped = k(&[("B", 200), ("A", 100)]);
        assert!(signed_by_removed(&swapped, &a(), 150));
        assert!(!signed_by_removed(&swapped, &a(), 201));
        assert!(!signed_by_removed(&two, &[], 150), "nothing removed");

        // A tie: the later entry signs from then on; the earlier one only ever before it.
        let tie = k(&[("A", 100), ("B", 100)]);
        assert!(signed_by_removed(&tie, &a(), 99));
        assert!(!signed_by_removed(&tie, &a(), 100));
        assert!(!signed_by_removed(&tie, &a(), 101));
        assert!(signed_by_removed(&tie, &b(), 101));
    }
}
