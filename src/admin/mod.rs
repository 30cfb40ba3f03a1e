//! Admin commands: each its own type ([`Command`]), executed against the store in one
//! transaction, returning its answer and its effects ([`Outcome`]) as data.
//!
//! A write command decides inside its transaction what its change means live: the account JWT
//! pushes it queued, the sessions it invalidates, the creds it revoked ([`Effects`]). The
//! runtime applies them; it never looks at which command ran.
//!
//! The same [`execute`] serves `pbn admin` on a local store file and the admin API of a running
//! service ([`api`] is its wire format, [`remote`] its client), so local and remote answers are
//! identical. Every change that alters an account
//! JWT enqueues an outbox entry in the same transaction, so nothing is lost between the store and
//! the servers. Creating the store is [`init::init_store`].

mod accounts;
pub mod admins;
pub mod api;
pub mod api_tokens;
pub mod audit;
pub mod bulk;
mod idps;
pub mod init;
mod outbox;
mod patch;
pub mod remote;
pub mod replicas;
mod request;
mod roles;
pub mod sessions;
mod shares;
mod signing_keys;
mod tokens;
mod users;
mod view;

pub use accounts::{AccountAdd, AccountDelete, AccountEdit, AccountList, AccountShow};
pub use admins::{AdminAdd, AdminDelete, AdminList, AdminRevoke, AdminShow, AdminView};
pub use api_tokens::{AdminPasswd, AdminTokenAdd, AdminTokenList, AdminTokenRevoke};
pub use audit::AuditList;
pub use idps::{IdpAdd, IdpDelete, IdpEdit, IdpList, IdpMap, IdpShow, IdpUnmap, IdpView};
pub use init::{NatsConfTrust, OperatorAdminCreds, OperatorShow};
pub use outbox::{OutboxList, OutboxRetry};
pub use patch::{ExportKind, LimitPatch, ListPatch, RolePatch};
pub use replicas::{ReplicaAdd, ReplicaList, ReplicaRemove, ReplicaShow, ReplicaView};
pub use request::Request;
pub use roles::{RoleAdd, RoleDelete, RoleEdit, RoleList, RoleShow};
pub use sessions::{SessionKick, SessionList, SessionView};
pub use shares::{ExportAdd, ExportRemove, ImportAdd, ImportRemove};
pub use signing_keys::{AccountRotateKeys, AccountSigningKeyAdd, AccountSigningKeyRemove};
pub use tokens::{TokenAdd, TokenList, TokenRevoke};
pub use users::{UserAdd, UserCreds, UserDelete, UserEdit, UserList, UserPasswd, UserShow};
pub use view::{
    AccountView, LimitsView, OperatorView, OutboxView, Response, RoleView, ShareView, TokenView,
    UserView,
};

use crate::issue::IssueError;
use crate::keys::KeyError;
use crate::model::{Effects, ModelError, PermissionDefaults};
use crate::store::{ReadTx, Store, StoreError, WriteTx};

/// Errors of admin operations.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An input value breaks a model rule (bad name, subject, limit...).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A key given as input is not valid.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Issuing a JWT failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// Hashing a secret failed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A record pbn needs to operate may not be changed this way.
    #[error("{0} is built in and cannot be {1}")]
    Protected(String, &'static str),
    /// A token, export or import that does not exist.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// Its name or id.
        name: String,
    },
    /// An export or import that exists already.
    #[error("{what} {name:?} already exists")]
    Conflict {
        /// What was added.
        what: &'static str,
        /// Its name or subject.
        name: String,
    },
    /// A user's role has subject templates that cannot be filled in for it (creds are not
    /// minted).
    #[error("cannot mint for user {user:?}: {source}")]
    Subjects {
        /// The user.
        user: String,
        /// Why.
        source: crate::model::template::RenderError,
    },
    /// A request that makes no sense as given.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The admin API refused the request for its sender (signature, freshness, scope).
    #[error(transparent)]
    Denied(#[from] admins::guard::Denied),
    /// A bulk import file or export failed (naming the line or entry).
    #[error(transparent)]
    Bulk(bulk::BulkError),
}

/// How errors map to the documented exit codes of `pbn` (and, in snake case, the `class` of an
/// error reply of the admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Bad input (exit 2).
    Usage,
    /// Missing record or store (exit 3).
    NotFound,
    /// Exists already or still in use (exit 4).
    Conflict,
    /// The store is held by another process (exit 5).
    Locked,
    /// The store key is missing, wrong, or given to a plain store (exit 9).
    StoreKey,
    /// Anything else (exit 1).
    Other,
    /// Not signed by a known admin's key (exit 10).
    Unauthenticated,
    /// Stale or replayed (exit 11).
    Replay,
    /// The admin was revoked or expired (exit 12).
    AdminInactive,
    /// Outside the admin's scope (exit 13).
    OutOfScope,
    /// A change asked by a read-only admin (exit 14).
    ReadOnlyAdmin,
    /// Replicated mode: the change kept conflicting with changes of other replicas (exit 15).
    LogConflict,
    /// Replicated mode: the log is unavailable (no JetStream quorum); nothing changed (exit 16).
    Unavailable,
}

impl AdminError {
    /// The class of this error, for exit codes and remote error replies.
    pub fn class(&self) -> ErrorClass {
        match self {
            AdminError::Store(e) => store_class(e),
            AdminError::Model(_)
            | AdminError::Key(_)
            | AdminError::Invalid(_)
            | AdminError::Subjects { .. } => ErrorClass::Usage,
            AdminError::NotFound { .. } => ErrorClass::NotFound,
            AdminError::Conflict { .. } | AdminError::Protected(..) => ErrorClass::Conflict,
            AdminError::Issue(_) | AdminError::Auth(_) => ErrorClass::Other,
            AdminError::Denied(d) => d.class(),
            AdminError::Bulk(b) => b.class(),
        }
    }
}

/// The class of a store error.
pub fn store_class(e: &StoreError) -> ErrorClass {
    match e {
        StoreError::NotFound { .. } | StoreError::FileNotFound(_) => ErrorClass::NotFound,
        StoreError::Conflict { .. } | StoreError::InUse { .. } | StoreError::AlreadyExists(_) => {
            ErrorClass::Conflict
        }
        StoreError::Invalid(_) => ErrorClass::Usage,
        StoreError::Locked { .. } => ErrorClass::Locked,
        StoreError::KeyRequired(_) | StoreError::WrongKey(_) | StoreError::NotSealed(_) => {
            ErrorClass::StoreKey
        }
        StoreError::ReadOnly(_)
        | StoreError::SchemaTooOld { .. }
        | StoreError::CorruptFile { .. }
        | StoreError::SchemaTooNew { .. }
        | StoreError::Corrupt { .. }
        | StoreError::Unseal { .. }
        | StoreError::Encode(_)
        | StoreError::Io { .. }
        | StoreError::Backend { .. }
        | StoreError::Journal(_)
        | StoreError::TaskFailed(_) => ErrorClass::Other,
    }
}

/// Longest lifetime accepted for a JWT, a reply permission or an API token: ten years. Longer
/// values are typing mistakes, and keeping them bounded keeps unix-time arithmetic far from
/// overflow.
pub const MAX_LIFETIME_SECS: u64 = 10 * 366 * 24 * 3600;

/// Refuses a lifetime above [`MAX_LIFETIME_SECS`].
fn check_lifetime(what: &str, secs: u64) -> Result<(), AdminError> {
    if secs > MAX_LIFETIME_SECS {
        return Err(AdminError::Invalid(format!(
            "{what} of {secs} s is longer than the maximum of {MAX_LIFETIME_SECS} s (10 years)"
        )));
    }
    Ok(())
}

/// What an operation needs besides the request: the clock and the permission defaults.
#[derive(Debug, Clone)]
pub struct Context {
    /// Unix seconds.
    pub now: i64,
    /// The same instant in unix milliseconds (outbox times; the publisher's debounce).
    pub now_ms: i64,
    /// Lists for permission lists a role leaves unset.
    pub defaults: PermissionDefaults,
}

impl Context {
    /// The current time and the built-in defaults.
    pub fn now() -> Self {
        let now_ms = crate::clock::unix_now_ms();
        Context { now: now_ms / 1000, now_ms, defaults: crate::issue::default_permissions() }
    }
}

/// What a command produced: its answer and the live effects of its change (nothing for reads
/// and failures), both decided inside its one transaction.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The answer.
    pub response: Response,
    /// What the runtime must do now (pushes to wait for, sessions to close).
    pub effects: Effects,
}

/// One admin command: its own type (fields as given on the wire), its name and how it runs.
pub trait Command {
    /// The `op` of its JSON form.
    const NAME: &'static str;
    /// Whether it only reads.
    const READ_ONLY: bool;
    /// Runs it against `store`: one read or one write transaction (see `reading`,
    /// `writing`).
    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError>;
}

/// Runs `f` in one read transaction: an answer with no effects.
fn reading(
    store: &Store,
    f: impl FnOnce(&ReadTx) -> Result<Response, AdminError>,
) -> Result<Outcome, AdminError> {
    let response = store.read(f)?;
    Ok(Outcome { response, effects: Effects::default() })
}

/// Runs `f` in one write transaction, which commits only when `f` succeeds; `f` records the
/// change's effects as it makes it.
fn writing(
    store: &Store,
    f: impl FnOnce(&mut WriteTx, &mut Effects) -> Result<Response, AdminError>,
) -> Result<Outcome, AdminError> {
    store.write(|tx| {
        let mut effects = Effects::default();
        let response = f(tx, &mut effects)?;
        Ok(Outcome { response, effects })
    })
}

/// Executes one request: one read or one write transaction. The outcome carries the response
/// and the change's effects, decided inside that transaction.
pub fn execute(store: &Store, req: &Request, ctx: &Context) -> Result<Outcome, AdminError> {
    req.run(store, ctx).map_err(|e| match e {
        // A record the store refused for a model rule is that rule's error, said once.
        AdminError::Store(StoreError::Invalid(m)) => AdminError::Model(m),
        e => e,
    })
}

#[cfg(test)]
mod tests;
