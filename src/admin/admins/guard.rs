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
    let outside = match by_kind(req, own.as_str()) {
        Some(verdict) => verdict,
        None => by_record(tx, req, own.as_str())?,
    };
    match outside {
        None => Ok(()),
        Some(what) => Err(Denied::OutOfScope {
            admin: admin.name.to_string(),
            scope: admin.scope.to_string(),
            what,
        }
        .into()),
    }
}

/// The verdict on `req` for an admin of account `own` when its kind and fields decide it:
/// `Some(None)` allowed, `Some(Some(what))` refused, `None` when the records it names decide.
fn by_kind(req: &Request, own: &str) -> Option<Option<String>> {
    use Request as R;
    let refuse = |what: &str| Some(Some(what.to_string()));
    match req {
        R::AccountList(_) | R::RoleList(_) | R::RoleShow(_) | R::RoleAdd(_) | R::OutboxList(_) => {
            Some(None)
        }
        R::AccountShow(a) if a.name == own => Some(None),
        R::AccountShow(a) => refuse(&format!("see account {}", a.name)),
        R::AccountAdd(_) | R::AccountDelete(_) | R::AccountEdit(_) => {
            refuse("add, edit or delete accounts (limits included)")
        }
        R::ExportAdd(_) | R::ExportRemove(_) | R::ImportAdd(_) | R::ImportRemove(_) => {
            refuse("change exports or imports")
        }
        R::AccountRotateKeys(_) | R::AccountSigningKeyAdd(_) | R::AccountSigningKeyRemove(_) => {
            refuse("manage signing keys")
        }
        R::OperatorShow(_) | R::OperatorAdminCreds(_) | R::NatsConfTrust(_) => {
            refuse("touch the operator")
        }
        R::AdminAdd(_)
        | R::AdminList(_)
        | R::AdminShow(_)
        | R::AdminRevoke(_)
        | R::AdminDelete(_)
        | R::AdminTokenAdd(_)
        | R::AdminTokenList(_)
        | R::AdminTokenRevoke(_)
        | R::AdminPasswd(_) => refuse("manage admins"),
        R::AuditList(_) => refuse("read the audit trail"),
        R::ReplicaAdd(_) | R::ReplicaList(_) | R::ReplicaShow(_) | R::ReplicaRemove(_) => {
            refuse("manage replicas")
        }
        R::BulkCheck(_) | R::BulkImport(_) | R::BulkExport(_) => refuse("import or export in bulk"),
        R::IdpAdd(_)
        | R::IdpList(_)
        | R::IdpShow(_)
        | R::IdpEdit(_)
        | R::IdpDelete(_)
        | R::IdpMap(_)
        | R::IdpUnmap(_) => refuse("manage identity providers"),
        R::UserAdd(u) if u.account == own => Some(None),
        R::UserAdd(u) => refuse(&format!("add users to account {}", u.account)),
        R::UserList(u) => match &u.account {
            Some(a) if a != own => refuse(&format!("list users of account {a}")),
            _ => Some(None),
        },
        R::UserEdit(u) => match &u.account {
            Some(a) if a != own => refuse(&format!("move user {} to account {a}", u.name)),
            _ => None,
        },
        _ => None,
    }
}

/// What `req` asks outside account `own`, judged by the records it names (users, roles,
/// outbox entries).
fn by_record(tx: &impl StoreRead, req: &Request, own: &str) -> Result<Option<String>, StoreError> {
    use Request as R;
    let user = match req {
        R::UserEdit(u) => &u.name,
        R::UserShow(u) => &u.name,
        R::UserDelete(u) => &u.name,
        R::UserPasswd(u) => &u.name,
        R::UserCreds(u) => &u.name,
        R::TokenAdd(t) => &t.name,
        R::TokenList(t) => &t.name,
        R::TokenRevoke(t) => &t.name,
        R::RoleEdit(r) => return role_in(tx, &r.name, own),
        R::RoleDelete(r) => return role_in(tx, &r.name, own),
        R::OutboxRetry(o) => {
            let acc = tx.get_account(&o.id)?.or(account_by_key(tx, &o.id)?);
            return Ok(acc
                .filter(|a| a.name.as_str() != own)
                .map(|a| format!("retry the outbox entry of account {}", a.name.as_str())));
        }
        // Every other kind is decided by `by_kind`.
        _ => return Ok(None),
    };
    Ok(tx
        .get_user(user)?
        .filter(|u| u.account.as_str() != own)
        .map(|u| format!("manage user {user} of account {}", u.account.as_str())))
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
fn role_in(tx: &impl StoreRead, role: &str, own: &str) -> Result<Option<String>, StoreError> {
    if role == ADMIN_ROLE {
        return Ok(Some(format!("change role {role}")));
    }
    let users = tx.list_users_of_role(role)?;
    Ok(users.iter().find(|u| u.account.as_str() != own).map(|u| {
        format!(
            "change role {role}: user {} of account {} holds it",
            u.name.as_str(),
            u.account.as_str()
        )
    }))
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
