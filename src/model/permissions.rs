//! Publish/subscribe permissions with an explicit difference between *unset* and *empty*.
//!
//! # The fail-closed rule
//!
//! Each of the four lists (publish allow/deny, subscribe allow/deny) is an `Option<Vec<_>>`:
//! - `None` means *unset*: the list takes the configured default;
//! - `Some(vec![])` means *explicitly nothing*: it never turns into a default.
//!
//! So an empty allow list allows nothing. NATS itself reads an empty or absent allow list in a JWT
//! as "allow everything"; whoever renders [`ResolvedPermissions`] into a JWT must therefore turn
//! an empty allow list into something that allows nothing (for example deny `>`), never omit it.
//! pb-nats turned an empty list into `>` (fail-open); this model cannot express that.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ModelError, SubSubject, Subject};

/// The permissions a role grants. See the module docs for the unset-versus-empty rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Subjects the user may publish to; `None` takes the configured default.
    pub pub_allow: Option<Vec<Subject>>,
    /// Subjects the user may not publish to; `None` takes the configured default.
    pub pub_deny: Option<Vec<Subject>>,
    /// Subjects (optionally with a queue) the user may subscribe to; `None` takes the default.
    pub sub_allow: Option<Vec<SubSubject>>,
    /// Subjects (optionally with a queue) the user may not subscribe to; `None` takes the default.
    pub sub_deny: Option<Vec<SubSubject>>,
}

/// The configured defaults that unset permission lists fall back to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDefaults {
    /// Default publish allow list.
    pub pub_allow: Vec<Subject>,
    /// Default publish deny list.
    pub pub_deny: Vec<Subject>,
    /// Default subscribe allow list.
    pub sub_allow: Vec<SubSubject>,
    /// Default subscribe deny list.
    pub sub_deny: Vec<SubSubject>,
}

/// Permissions after defaults were applied. An empty allow list here means *nothing allowed*.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedPermissions {
    /// Publish allow list; empty = may publish nothing.
    pub pub_allow: Vec<Subject>,
    /// Publish deny list.
    pub pub_deny: Vec<Subject>,
    /// Subscribe allow list; empty = may subscribe to nothing.
    pub sub_allow: Vec<SubSubject>,
    /// Subscribe deny list.
    pub sub_deny: Vec<SubSubject>,
}

impl ResolvedPermissions {
    /// True when nothing may be published (the JWT must then deny `>` rather than omit the list).
    pub fn publishes_nothing(&self) -> bool {
        self.pub_allow.is_empty()
    }

    /// True when nothing may be subscribed to (same rendering rule as for publishing).
    pub fn subscribes_nothing(&self) -> bool {
        self.sub_allow.is_empty()
    }
}

fn effective<'a, T>(list: &'a Option<Vec<T>>, default: &'a [T]) -> &'a [T] {
    match list {
        Some(explicit) => explicit,
        None => default,
    }
}

impl Permissions {
    /// Permissions that allow nothing at all: both allow lists explicitly empty.
    pub fn nothing() -> Self {
        Permissions {
            pub_allow: Some(vec![]),
            pub_deny: None,
            sub_allow: Some(vec![]),
            sub_deny: None,
        }
    }

    /// The publish allow list, or `default` when unset. An explicit empty list stays empty.
    pub fn effective_pub_allow<'a>(&'a self, default: &'a [Subject]) -> &'a [Subject] {
        effective(&self.pub_allow, default)
    }

    /// The publish deny list, or `default` when unset.
    pub fn effective_pub_deny<'a>(&'a self, default: &'a [Subject]) -> &'a [Subject] {
        effective(&self.pub_deny, default)
    }

    /// The subscribe allow list, or `default` when unset. An explicit empty list stays empty.
    pub fn effective_sub_allow<'a>(&'a self, default: &'a [SubSubject]) -> &'a [SubSubject] {
        effective(&self.sub_allow, default)
    }

    /// The subscribe deny list, or `default` when unset.
    pub fn effective_sub_deny<'a>(&'a self, default: &'a [SubSubject]) -> &'a [SubSubject] {
        effective(&self.sub_deny, default)
    }

    /// All four lists with `defaults` applied to the unset ones.
    pub fn resolve(&self, defaults: &PermissionDefaults) -> ResolvedPermissions {
        ResolvedPermissions {
            pub_allow: self.effective_pub_allow(&defaults.pub_allow).to_vec(),
            pub_deny: self.effective_pub_deny(&defaults.pub_deny).to_vec(),
            sub_allow: self.effective_sub_allow(&defaults.sub_allow).to_vec(),
            sub_deny: self.effective_sub_deny(&defaults.sub_deny).to_vec(),
        }
    }
}

/// Lets a user publish replies to the inboxes of requests it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    /// Replies allowed per request: `-1` unlimited, `N > 0` at most N (`0` means NATS' default
    /// of one).
    pub max: i64,
    /// How long after the request replies are allowed; zero means no time limit.
    pub ttl: Duration,
}

impl ResponsePermission {
    /// Checks `max >= -1`.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.max < -1 {
            return Err(ModelError::ResponseMaxBelowMinusOne(self.max));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subjects(list: &[&str]) -> Vec<Subject> {
        list.iter().map(|s| Subject::parse(s).unwrap()).collect()
    }

    fn defaults() -> PermissionDefaults {
        PermissionDefaults {
            pub_allow: subjects(&[">"]),
            pub_deny: vec![],
            sub_allow: vec![SubSubject::parse(">").unwrap()],
            sub_deny: vec![SubSubject::parse("$SYS.>").unwrap()],
        }
    }

    #[test]
    fn unset_lists_take_the_default() {
        let p = Permissions::default();
        let r = p.resolve(&defaults());
        assert_eq!(r.pub_allow, subjects(&[">"]));
        assert_eq!(r.sub_deny, vec![SubSubject::parse("$SYS.>").unwrap()]);
        assert!(!r.publishes_nothing());
    }

    #[test]
    fn explicit_empty_never_becomes_the_default() {
        let p = Permissions::nothing();
        let d = defaults();
        assert!(p.effective_pub_allow(&d.pub_allow).is_empty());
        assert!(p.effective_sub_allow(&d.sub_allow).is_empty());
        let r = p.resolve(&d);
        assert!(r.publishes_nothing());
        assert!(r.subscribes_nothing());
    }

    #[test]
    fn explicit_lists_replace_the_default() {
        let p = Permissions { pub_allow: Some(subjects(&["orders.>"])), ..Permissions::default() };
        assert_eq!(p.effective_pub_allow(&defaults().pub_allow), subjects(&["orders.>"]));
    }

    #[test]
    fn serde_keeps_unset_and_empty_apart() {
        let p = Permissions { pub_allow: Some(vec![]), ..Permissions::default() };
        let json = serde_json::to_string(&p).unwrap();
        let back: Permissions = serde_json::from_str(&json).unwrap();
        assert_eq!(back.pub_allow, Some(vec![]));
        assert_eq!(back.sub_allow, None);
    }

    #[test]
    fn response_max_below_minus_one_is_invalid() {
        let ok = ResponsePermission { max: -1, ttl: Duration::ZERO };
        assert!(ok.validate().is_ok());
        let bad = ResponsePermission { max: -3, ttl: Duration::ZERO };
        assert_eq!(bad.validate(), Err(ModelError::ResponseMaxBelowMinusOne(-3)));
    }
}
