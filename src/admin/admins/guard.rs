//! Who may run an admin API request: the signature, freshness and nonce of the request
//! ([`check_signed`]), then the admin's read-only flag and scope ([`authorize`]).
//!
//! Local `pbn admin` on the store file is the store's owner and passes none of this.

use std::collections::HashMap;
use std::sync::Mutex;

use super::envelope::{EnvelopeError, Signed};
use crate::admin::init::ADMIN_ROLE;
use crate::admin::{ErrorClass, Request, Response};
use crate::model::{AdminRecord, AdminScope};
use crate::store::{StoreError, StoreRead};

/// How far a request's time may be from the service's clock, either way (milliseconds).
pub const MAX_SKEW_MS: i64 = 30_000;

/// Nonces remembered at most. A nonce is kept only while its request could still be fresh
/// (its time plus [`MAX_SKEW_MS`]), so this bounds requests per minute, not in total: 65,536
/// a minute is far beyond what admins send (each change is a store write), and the memory is a
/// few MiB. A full cache refuses new requests instead of forgetting a nonce, which would let
/// a replay through.
pub const MAX_NONCES: usize = 65_536;

/// Why a request was refused before it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The request carries no usable signature fields.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// No admin has this key.
    #[error("no admin has key {0} (admin creds are minted by `pbn admin admin add`)")]
    UnknownKey(String),
    /// The signature is not the admin's.
    #[error("the signature of the request does not match admin {0}'s key")]
    BadSignature(String),
    /// Signed too long ago, or in the future.
    #[error("the request of admin {admin} is stale: signed {skew_ms} ms away from the service's clock (at most {MAX_SKEW_MS} ms; check the clocks)")]
    Stale {
        /// The admin.
        admin: String,
        /// Its time minus the service's, in ms.
        skew_ms: i64,
    },
    /// A nonce seen before: the same request sent again.
    #[error("the request of admin {admin} was replayed (nonce {nonce} seen before)")]
    Replayed {
        /// The admin.
        admin: String,
        /// The nonce.
        nonce: String,
    },
    /// The nonce cache is full.
    #[error("too many admin requests in the last minute; try again shortly")]
    Busy,
    /// The admin was revoked.
    #[error("admin {admin} was revoked (at unix time {at})")]
    Revoked {
        /// The admin.
        admin: String,
        /// When.
        at: i64,
    },
    /// The admin expired.
    #[error("admin {admin} expired (at unix time {at})")]
    Expired {
        /// The admin.
        admin: String,
        /// When.
        at: i64,
    },
    /// A read-only admin asked for a change.
    #[error("admin {admin} is read-only and may not run {op}")]
    ReadOnly {
        /// The admin.
        admin: String,
        /// The command.
        op: &'static str,
    },
    /// Outside the admin's scope.
    #[error("admin {admin} (scope {scope}) may not {what}")]
    OutOfScope {
        /// The admin.
        admin: String,
        /// Its scope.
        scope: String,
        /// What it asked for.
        what: String,
    },
}

impl Denied {
    /// The class of this refusal (each kind has its own exit code).
    pub fn class(&self) -> ErrorClass {
        match self {
            Denied::Envelope(_) | Denied::UnknownKey(_) | Denied::BadSignature(_) => {
                ErrorClass::Unauthenticated
            }
            Denied::Stale { .. } | Denied::Replayed { .. } | Denied::Busy => ErrorClass::Replay,
            Denied::Revoked { .. } | Denied::Expired { .. } => ErrorClass::AdminInactive,
            Denied::ReadOnly { .. } => ErrorClass::ReadOnlyAdmin,
            Denied::OutOfScope { .. } => ErrorClass::OutOfScope,
        }
    }
}

/// Nonces of recent requests, each kept until its request can no longer be fresh.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<String, i64>>,
}

impl NonceCache {
    /// Records `nonce` of a request signed at `time_ms`; refuses one seen before.
    pub fn check(&self, admin: &str, nonce: &str, time_ms: i64, now_ms: i64) -> Result<(), Denied> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, until| *until >= now_ms);
        }
        if seen.contains_key(nonce) {
            return Err(Denied::Replayed { admin: admin.into(), nonce: nonce.into() });
        }
        if seen.len() >= MAX_NONCES {
            return Err(Denied::Busy);
        }
        seen.insert(nonce.to_string(), time_ms.saturating_add(MAX_SKEW_MS));
        Ok(())
    }
}

/// Checks a signed request against the admin record `admin` (found by its key): not revoked
/// nor expired, the signature right, fresh, and its nonce new. The nonce is recorded only
/// once the signature holds, so forged requests cannot fill the cache.
pub fn check_signed(
    admin: Option<AdminRecord>,
    signed: &Signed,
    idem: &str,
    payload: &[u8],
    nonces: &NonceCache,
    now_ms: i64,
) -> Result<AdminRecord, Denied> {
    let admin = admin.ok_or_else(|| Denied::UnknownKey(signed.key.clone()))?;
    let name = admin.name.to_string();
    if let Some(at) = admin.revoked {
        return Err(Denied::Revoked { admin: name, at });
    }
    if admin.is_expired(now_ms / 1000) {
        return Err(Denied::Expired { admin: name, at: admin.expires });
    }
    if !signed.verifies(idem, payload) {
        return Err(Denied::BadSignature(name));
    }
    let skew_ms = signed.time_ms.saturating_sub(now_ms);
    if skew_ms.abs() > MAX_SKEW_MS {
        return Err(Denied::Stale { admin: name, skew_ms });
    }
    nonces.check(&name, &signed.nonce, signed.time_ms, now_ms)?;
    Ok(admin)
}

/// Whether `admin` may run `req` (as rewritten by [`scoped`]); reads the store for the
/// records a request names. A record that does not exist passes (the command says it is not
/// found).
pub fn authorize(
    tx: &impl StoreRead,
    admin: &AdminRecord,
    req: &Request,
) -> Result<(), AuthzError> {
    if admin.read_only && !req.is_read_only() {
        return Err(Denied::ReadOnly { admin: admin.name.to_string(), op: req.name() }.into());
    }
    let AdminScope::Account(own) = &admin.scope else { return Ok(()) };
    let own = own.as_str();
    let deny = |what: String| -> Result<(), AuthzError> {
        Err(Denied::OutOfScope {
            admin: admin.name.to_string(),
            scope: admin.scope.to_string(),
            what,
        }
        .into())
    };
    let user_in = |name: &str| -> Result<Result<(), AuthzError>, StoreError> {
        Ok(match tx.get_user(name)? {
            Some(u) if u.account.as_str() != own => {
                deny(format!("manage user {name} of account {}", u.account.as_str()))
            }
            _ => Ok(()),
        })
    };
    use Request as R;
    match req {
        R::AccountList(_) | R::RoleList(_) | R::RoleShow(_) | R::RoleAdd(_) | R::OutboxList(_) => {
            Ok(())
        }
        R::AccountShow(a) if a.name == own => Ok(()),
        R::AccountShow(a) => deny(format!("see account {}", a.name)),
        R::AccountAdd(_) | R::AccountDelete(_) | R::AccountEdit(_) => {
            deny("add, edit or delete accounts (limits included)".into())
        }
        R::ExportAdd(_) | R::ExportRemove(_) | R::ImportAdd(_) | R::ImportRemove(_) => {
            deny("change exports or imports".into())
        }
        R::AccountRotateKeys(_) | R::AccountSigningKeyAdd(_) | R::AccountSigningKeyRemove(_) => {
            deny("manage signing keys".into())
        }
        R::OperatorShow(_) | R::OperatorAdminCreds(_) | R::NatsConfTrust(_) => {
            deny("touch the operator".into())
        }
        R::AdminAdd(_)
        | R::AdminList(_)
        | R::AdminShow(_)
        | R::AdminRevoke(_)
        | R::AdminDelete(_) => deny("manage admins".into()),
        R::AuditList(_) => deny("read the audit trail".into()),
        R::OutboxRetry(o) => match tx.get_account(&o.id)?.or(account_by_key(tx, &o.id)?) {
            Some(acc) if acc.name.as_str() != own => {
                deny(format!("retry the outbox entry of account {}", acc.name.as_str()))
            }
            _ => Ok(()),
        },
        R::RoleEdit(r) => role_in(tx, &r.name, own, deny),
        R::RoleDelete(r) => role_in(tx, &r.name, own, deny),
        R::UserAdd(u) if u.account == own => Ok(()),
        R::UserAdd(u) => deny(format!("add users to account {}", u.account)),
        R::UserList(u) => match &u.account {
            Some(a) if a != own => deny(format!("list users of account {a}")),
            _ => Ok(()),
        },
        R::UserEdit(u) => match &u.account {
            Some(a) if a != own => deny(format!("move user {} to account {a}", u.name)),
            _ => user_in(&u.name)?,
        },
        R::UserShow(u) => user_in(&u.name)?,
        R::UserDelete(u) => user_in(&u.name)?,
        R::UserPasswd(u) => user_in(&u.name)?,
        R::UserCreds(u) => user_in(&u.name)?,
        R::TokenAdd(t) => user_in(&t.name)?,
        R::TokenList(t) => user_in(&t.name)?,
        R::TokenRevoke(t) => user_in(&t.name)?,
    }
}

fn account_by_key(
    tx: &impl StoreRead,
    id: &str,
) -> Result<Option<crate::model::Account>, StoreError> {
    match crate::keys::AccountPublicKey::parse(id) {
        Ok(key) => tx.get_account_by_key(&key),
        Err(_) => Ok(None),
    }
}

/// A role is the scoped admin's to change when it is not the admin role and every user
/// holding it is in the admin's account (roles are shared by accounts).
fn role_in(
    tx: &impl StoreRead,
    role: &str,
    own: &str,
    deny: impl Fn(String) -> Result<(), AuthzError>,
) -> Result<(), AuthzError> {
    if role == ADMIN_ROLE {
        return deny(format!("change role {role}"));
    }
    let users = tx.list_users_of_role(role)?;
    match users.iter().find(|u| u.account.as_str() != own) {
        Some(u) => deny(format!(
            "change role {role}: user {} of account {} holds it",
            u.name.as_str(),
            u.account.as_str()
        )),
        None => Ok(()),
    }
}

/// A refusal, or a store failure while deciding.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// Refused.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `req` as a scoped admin runs it: a user list without an account lists its account's.
pub fn scoped(admin: &AdminRecord, req: Request) -> Request {
    match (&admin.scope, req) {
        (AdminScope::Account(own), Request::UserList(mut u)) => {
            u.account.get_or_insert_with(|| own.to_string());
            Request::UserList(u)
        }
        (_, req) => req,
    }
}

/// `resp` as a scoped admin sees it: lists keep only its account's records.
pub fn filtered(admin: &AdminRecord, resp: Response) -> Response {
    let AdminScope::Account(own) = &admin.scope else { return resp };
    let own = own.as_str();
    match resp {
        Response::Accounts(v) => {
            Response::Accounts(v.into_iter().filter(|a| a.name == own).collect())
        }
        Response::Outbox(v) => {
            Response::Outbox(v.into_iter().filter(|e| e.account_name == own).collect())
        }
        Response::Users(v) => Response::Users(v.into_iter().filter(|u| u.account == own).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests;
