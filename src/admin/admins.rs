//! Named admins: `pbn admin admin add|list|show|revoke|delete`.
//!
//! An admin is a user of the system account whose JWT carries only the admin role's
//! permissions and expires when the admin does; its record (see [`AdminRecord`]) keeps the
//! public key the admin API checks every request's signature against ([`envelope`]) and what
//! the admin may do ([`guard`]). Revoking or deleting an admin revokes its key in the system
//! account's JWT and queues that JWT for a push: once the servers apply it they close the
//! admin's connections, and the admin API refuses its requests at once.

pub mod envelope;
pub mod guard;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::accounts::enqueue;
use super::init::{ADMIN_ROLE, SYS_ACCOUNT};
use super::remote;
use super::{check_lifetime, reading, writing, AdminError, Command, Context, Outcome, Response};
use crate::issue;
use crate::keys::{KeyKind, KeyPair, UserPublicKey};
use crate::model::{AccountKind, AdminRecord, AdminScope, Effects, Name, OutboxAction, SubSubject};
use crate::store::{Store, StoreRead, WriteTx};

/// An admin as shown by `list` and `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminView {
    /// Name.
    pub name: String,
    /// Public key of its creds.
    pub public_key: String,
    /// `operator` or `account:NAME`.
    pub scope: String,
    /// May it only read.
    pub read_only: bool,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// Created (unix seconds).
    pub created: i64,
    /// Expires (unix seconds); `0` never.
    pub expires: i64,
    /// Revoked at (unix seconds).
    pub revoked: Option<i64>,
}

fn view(a: &AdminRecord, now: i64) -> AdminView {
    let state = match (a.revoked, a.is_expired(now)) {
        (Some(_), _) => "revoked",
        (None, true) => "expired",
        (None, false) => "active",
    };
    AdminView {
        name: a.name.to_string(),
        public_key: a.public_key.to_string(),
        scope: a.scope.to_string(),
        read_only: a.read_only,
        state: state.into(),
        created: a.created,
        expires: a.expires,
        revoked: a.revoked,
    }
}

/// The text table of admins.
pub(super) fn text(s: &mut String, admins: &[AdminView]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "{:<24} {:<8} {:<24} {:<9} {:<11} PUBLIC KEY",
        "NAME", "STATE", "SCOPE", "READ-ONLY", "EXPIRES"
    );
    for a in admins {
        let expires = if a.expires == 0 { "never".to_string() } else { a.expires.to_string() };
        let _ = writeln!(
            s,
            "{:<24} {:<8} {:<24} {:<9} {:<11} {}",
            a.name, a.state, a.scope, a.read_only, expires, a.public_key
        );
    }
}

/// Add a named admin and mint its creds (shown once, never stored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAdd {
    /// Name.
    pub name: String,
    /// `operator` (the default) or `account:NAME`.
    pub scope: Option<String>,
    /// May it only read.
    pub read_only: bool,
    /// Lifetime in seconds; none: it never expires.
    pub expires_secs: Option<u64>,
}

impl Command for AdminAdd {
    const NAME: &'static str = "admin_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let (record, creds) = self.add(tx, ctx)?;
            Ok(Response::Creds {
                user: record.name.to_string(),
                public_key: record.public_key.to_string(),
                creds: creds.to_string(),
                revoked: vec![],
            })
        })
    }
}

impl AdminAdd {
    /// Stores the admin in `tx` and returns it with its creds text (which holds the seed).
    pub fn add(
        &self,
        tx: &mut WriteTx,
        ctx: &Context,
    ) -> Result<(AdminRecord, Zeroizing<String>), AdminError> {
        let name = Name::parse(&self.name)?;
        let scope = AdminScope::parse(self.scope.as_deref().unwrap_or("operator"))?;
        let mut tenant = None;
        if let Some(account) = scope.account() {
            let acc = tx.require_account(account.as_str())?;
            if acc.kind != AccountKind::Managed {
                let what = format!("account {:?}", acc.name.as_str());
                return Err(AdminError::Protected(what, "given a scoped admin"));
            }
            tenant = Some(acc.public_key.to_string());
        }
        if let Some(secs) = self.expires_secs {
            check_lifetime("admin lifetime", secs)?;
            if secs == 0 {
                return Err(AdminError::Invalid("admin lifetime must be above 0 s".into()));
            }
        }
        let expires = self.expires_secs.map_or(0, |s| ctx.now.saturating_add_unsigned(s));
        let sys = tx.require_account(SYS_ACCOUNT)?;
        let mut role = tx.require_role(ADMIN_ROLE)?;
        let kp = KeyPair::generate(KeyKind::User);
        let key = UserPublicKey::parse(kp.public_key())?;
        if let Some(account) = &tenant {
            role.permissions.sub_allow = Some(tenant_subscriptions(&key, account)?);
        }
        let record = AdminRecord {
            name,
            public_key: key.clone(),
            scope,
            read_only: self.read_only,
            created: ctx.now,
            expires,
            revoked: None,
        };
        tx.insert_admin(&record)?;
        let spec = issue::UserSpec {
            account: &sys,
            role: &role,
            user_key: &key,
            name: record.name.as_str(),
            iat: ctx.now,
            exp: expires,
            defaults: &ctx.defaults,
        };
        let jwt = issue::user_jwt(&spec)?;
        Ok((record, issue::creds(&jwt, &kp.seed())))
    }
}

/// What an `account:` admin may subscribe to in the system account: the replies to its own
/// requests only (its client's inbox prefix is `_INBOX.<its key>`, see `admin::remote`), and
/// the login events of its account. Never `_INBOX.>` or `pbn.audit.>`: those would show it the
/// replies (creds among them) and events of every other admin and account.
fn tenant_subscriptions(
    admin: &UserPublicKey,
    account: &str,
) -> Result<Vec<SubSubject>, AdminError> {
    Ok(vec![
        SubSubject::parse(&format!("{}.>", remote::inbox_prefix(admin.as_str())))?,
        SubSubject::parse(&format!("pbn.audit.login.{account}.>"))?,
    ])
}

/// A free admin name: `base`, else `base-2`, `base-3`, …
pub(super) fn free_name(tx: &impl StoreRead, base: &str) -> Result<String, AdminError> {
    if tx.get_admin(base)?.is_none() {
        return Ok(base.to_string());
    }
    for n in 2.. {
        let name = format!("{base}-{n}");
        if tx.get_admin(&name)?.is_none() {
            return Ok(name);
        }
    }
    unreachable!("an unbounded range always yields a free name")
}

/// List admins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminList {}

impl Command for AdminList {
    const NAME: &'static str = "admin_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            Ok(Response::Admins(tx.list_admins()?.iter().map(|a| view(a, ctx.now)).collect()))
        })
    }
}

/// Show an admin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminShow {
    /// Name.
    pub name: String,
}

impl Command for AdminShow {
    const NAME: &'static str = "admin_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            Ok(Response::Admins(vec![view(&tx.require_admin(&self.name)?, ctx.now)]))
        })
    }
}

/// Revoke an admin: its key is revoked in the system account's JWT (pushed), so the servers
/// close its connections, and the admin API refuses it. The record stays, marked revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRevoke {
    /// Name.
    pub name: String,
}

impl Command for AdminRevoke {
    const NAME: &'static str = "admin_revoke";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let mut admin = tx.require_admin(&self.name)?;
            revoke(tx, fx, &mut admin, ctx)?;
            tx.update_admin(&admin)?;
            Ok(Response::Done { message: format!("admin {} revoked", self.name) })
        })
    }
}

/// Delete an admin: revoked as by [`AdminRevoke`] first, then its record removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminDelete {
    /// Name.
    pub name: String,
}

impl Command for AdminDelete {
    const NAME: &'static str = "admin_delete";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let mut admin = tx.require_admin(&self.name)?;
            revoke(tx, fx, &mut admin, ctx)?;
            tx.delete_admin(&self.name)?;
            Ok(Response::Done { message: format!("admin {} deleted (its key revoked)", self.name) })
        })
    }
}

/// Revokes `admin`'s key in the system account (at `now`) and queues the account for a push;
/// marks the record revoked (the caller stores or deletes it). The pushed revocation is what
/// closes the admin's live connections: they are system-account users connected with creds,
/// which the servers drop when the account JWT revokes their key.
fn revoke(
    tx: &mut WriteTx,
    fx: &mut Effects,
    admin: &mut AdminRecord,
    ctx: &Context,
) -> Result<(), AdminError> {
    let mut sys = tx.require_account(SYS_ACCOUNT)?;
    sys.revoke(&admin.public_key, ctx.now);
    sys.updated = ctx.now;
    tx.update_account(&sys)?;
    enqueue(tx, fx, &sys, OutboxAction::Upsert, ctx)?;
    fx.revoked.push(admin.public_key.clone());
    admin.revoked = Some(admin.revoked.unwrap_or(ctx.now));
    Ok(())
}
