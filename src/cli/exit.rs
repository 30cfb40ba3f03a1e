//! Exit codes, decided in one place.
//!
//! Every error enum of the crate implements [`Classify`] with an exhaustive `match`, so a new
//! variant does not compile until it is given an [`ExitClass`], and every such enum is listed in
//! the `registry!` below (a unit test reads `src/` and fails for an error type that is not), so
//! a new error type cannot fall through to exit 1 unnoticed. [`cli::run`](super::run) returns a
//! [`Failure`]: an error that already carries its class, which is all the binary needs to exit.
//! The codes are documented in [`super::args::EXIT_CODES`] and stable across releases.

use std::error::Error as StdError;
use std::fmt;

use crate::admin::admins::envelope::EnvelopeError;
use crate::admin::admins::guard::{AuthzError, Denied};
use crate::admin::api::ApiError;
use crate::admin::api_tokens::TokenRefused;
use crate::admin::remote::RemoteError;
use crate::admin::{self, AdminError, ErrorClass};
use crate::auth::oidc::OidcError;
use crate::auth::AuthError;
use crate::claims::ClaimsError;
use crate::config::ConfigError;
use crate::console::me::MeError;
use crate::fsutil::FsError;
use crate::issue::IssueError;
use crate::keys::KeyError;
use crate::model::template::{RenderError, TemplateError};
use crate::model::ModelError;
use crate::natsconf::NatsConfError;
use crate::natsd::NatsdError;
use crate::replica::{BundleError, JoinError, ReplicaError, SnapshotError};
use crate::seal::SealError;
use crate::server::callout::CalloutError;
use crate::server::connection::ConnectionError;
use crate::server::http::routes::BuildError;
use crate::server::http::HttpError;
use crate::server::lifecycle::LifecycleError;
use crate::server::publisher::PublisherError;
use crate::server::sessions::SessionsError;
use crate::server::version::VersionError;
use crate::server::ServerError;
use crate::store::{JournalError, StoreError};

use super::audit_tail::AuditTailError;
use super::bulk::BulkCliError;
use super::check::CheckError;
use super::output::{self, OutputClosed};
use super::rekey::RekeyError;
use super::requests::NotARequest;
use super::secrets::PasswordError;
use super::status::StatusError;
use super::store_key::StoreKeyError;
use crate::admin::bulk::BulkError;

/// Why a command failed, as far as the exit code is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// Anything else: I/O, NATS, a corrupt store, ... (exit 1).
    Other,
    /// Bad flags or values (exit 2).
    Usage,
    /// A missing store or record (exit 3).
    NotFound,
    /// The name exists, the record is still in use, the file exists (exit 4).
    Conflict,
    /// The store is held by another process (exit 5).
    Locked,
    /// The store key is missing, wrong, or given to a plain store (exit 9).
    StoreKey,
    /// `pbn check`: the login was refused (exit 6).
    LoginRefused,
    /// `pbn check`: the server reported a permission violation (exit 7).
    PermissionDenied,
    /// `pbn check`: no answer within `--timeout` (exit 8).
    TimedOut,
    /// The admin API: not signed by a known admin (exit 10).
    Unauthenticated,
    /// The admin API: a stale or replayed request (exit 11).
    Replay,
    /// The admin API: the admin was revoked or expired (exit 12).
    AdminInactive,
    /// The admin API: outside the admin's scope (exit 13).
    OutOfScope,
    /// The admin API: a change asked by a read-only admin (exit 14).
    ReadOnlyAdmin,
    /// Replicated mode: a change that kept conflicting with other replicas' (exit 15).
    LogConflict,
    /// Replicated mode: the log is unavailable (no JetStream quorum) (exit 16).
    Unavailable,
    /// Replicated mode: this replica was removed and its creds revoked (exit 17).
    ReplicaRemoved,
    /// Standard output was closed by its reader: a quiet exit, as for SIGPIPE (exit 141).
    OutputClosed,
}

impl ExitClass {
    /// The process exit code of this class.
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Other => 1,
            ExitClass::Usage => 2,
            ExitClass::NotFound => 3,
            ExitClass::Conflict => 4,
            ExitClass::Locked => 5,
            ExitClass::LoginRefused => 6,
            ExitClass::PermissionDenied => 7,
            ExitClass::TimedOut => 8,
            ExitClass::StoreKey => 9,
            ExitClass::Unauthenticated => 10,
            ExitClass::Replay => 11,
            ExitClass::AdminInactive => 12,
            ExitClass::OutOfScope => 13,
            ExitClass::ReadOnlyAdmin => 14,
            ExitClass::LogConflict => 15,
            ExitClass::Unavailable => 16,
            ExitClass::ReplicaRemoved => 17,
            ExitClass::OutputClosed => output::CLOSED_EXIT_CODE,
        }
    }
}

impl From<ErrorClass> for ExitClass {
    fn from(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Usage => ExitClass::Usage,
            ErrorClass::NotFound => ExitClass::NotFound,
            ErrorClass::Conflict => ExitClass::Conflict,
            ErrorClass::Locked => ExitClass::Locked,
            ErrorClass::StoreKey => ExitClass::StoreKey,
            ErrorClass::Other => ExitClass::Other,
            ErrorClass::Unauthenticated => ExitClass::Unauthenticated,
            ErrorClass::Replay => ExitClass::Replay,
            ErrorClass::AdminInactive => ExitClass::AdminInactive,
            ErrorClass::OutOfScope => ExitClass::OutOfScope,
            ErrorClass::ReadOnlyAdmin => ExitClass::ReadOnlyAdmin,
            ErrorClass::LogConflict => ExitClass::LogConflict,
            ErrorClass::Unavailable => ExitClass::Unavailable,
        }
    }
}

/// An error type that knows its exit class. Implementations match every variant by name (no
/// `_` arm) so that a new variant must be classified before the crate compiles; a variant that
/// wraps another classified error takes that error's class.
pub trait Classify {
    /// The exit class of this error.
    fn exit_class(&self) -> ExitClass;
}

/// A failed command: the error to report and the class it exits with.
pub struct Failure {
    class: ExitClass,
    error: anyhow::Error,
}

impl Failure {
    /// A failure of `class`, whatever `error` holds.
    pub fn new(class: ExitClass, error: anyhow::Error) -> Self {
        Failure { class, error }
    }

    /// The exit class.
    pub fn class(&self) -> ExitClass {
        self.class
    }

    /// The process exit code.
    pub fn code(&self) -> u8 {
        self.class.code()
    }

    /// The error.
    pub fn error(&self) -> &anyhow::Error {
        &self.error
    }

    /// The message to print on standard error, `None` for a quiet exit (closed output).
    pub fn message(&self) -> Option<String> {
        (self.class != ExitClass::OutputClosed).then(|| format!("{:#}", self.error))
    }
}

/// Classifies an error of the command line: a closed standard output anywhere in the chain
/// ends pbn quietly; otherwise the outermost of pbn's own errors in the chain decides, and an
/// error with none of them (an I/O error with context, a failed runtime start) is
/// [`ExitClass::Other`].
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        let class = if output::is_closed_output(&error) {
            ExitClass::OutputClosed
        } else {
            error.chain().find_map(registered_class).unwrap_or(ExitClass::Other)
        };
        Failure { class, error }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure").field("class", &self.class).field("error", &self.error).finish()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

/// The class of the first of pbn's errors in the chain starting at `err`, `Other` without one
/// (for an error held as `Box<dyn Error>`, e.g. a credentials provider's).
fn chain_class(err: &(dyn StdError + 'static)) -> ExitClass {
    std::iter::successors(Some(err), |&e| e.source())
        .find_map(registered_class)
        .unwrap_or(ExitClass::Other)
}

/// Lists every error type of the crate: generates [`registered_class`] (the class of an error
/// when it is one of them) and, for the test, their names.
macro_rules! registry {
    ($($ty:ty),+ $(,)?) => {
        /// The class of `err` itself when it is one of pbn's error types.
        fn registered_class(err: &(dyn StdError + 'static)) -> Option<ExitClass> {
            $(
                if let Some(e) = err.downcast_ref::<$ty>() {
                    return Some(e.exit_class());
                }
            )+
            None
        }

        /// The names of the registered types.
        #[cfg(test)]
        const REGISTERED: &[&str] = &[$(stringify!($ty)),+];
    };
}

registry!(
    OutputClosed,
    StatusError,
    AuditTailError,
    NatsdError,
    HttpError,
    CheckError,
    PasswordError,
    AdminError,
    Denied,
    AuthzError,
    EnvelopeError,
    RemoteError,
    ApiError,
    BuildError,
    TokenRefused,
    ConfigError,
    NatsConfError,
    FsError,
    StoreError,
    JournalError,
    ReplicaError,
    BundleError,
    JoinError,
    SnapshotError,
    ServerError,
    VersionError,
    ConnectionError,
    CalloutError,
    PublisherError,
    LifecycleError,
    SessionsError,
    IssueError,
    ClaimsError,
    ModelError,
    TemplateError,
    RenderError,
    KeyError,
    SealError,
    StoreKeyError,
    RekeyError,
    NotARequest,
    AuthError,
    BulkError,
    BulkCliError,
    OidcError,
    MeError,
);

impl Classify for MeError {
    fn exit_class(&self) -> ExitClass {
        self.class().into()
    }
}

impl Classify for BulkError {
    fn exit_class(&self) -> ExitClass {
        self.class().into()
    }
}

impl Classify for BulkCliError {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Usage
    }
}

impl Classify for OutputClosed {
    fn exit_class(&self) -> ExitClass {
        ExitClass::OutputClosed
    }
}

impl Classify for CheckError {
    fn exit_class(&self) -> ExitClass {
        match self {
            CheckError::LoginRefused { .. } => ExitClass::LoginRefused,
            CheckError::PermissionDenied { .. } => ExitClass::PermissionDenied,
            CheckError::TimedOut { .. } => ExitClass::TimedOut,
            CheckError::Unreachable { .. } | CheckError::Unexpected { .. } => ExitClass::Other,
        }
    }
}

impl Classify for AuditTailError {
    fn exit_class(&self) -> ExitClass {
        match self {
            AuditTailError::NeedsServer | AuditTailError::NotAudit(_) => ExitClass::Usage,
        }
    }
}

impl Classify for StatusError {
    fn exit_class(&self) -> ExitClass {
        match self {
            StatusError::Unreachable { .. } | StatusError::BadAnswer { .. } => ExitClass::Other,
        }
    }
}

impl Classify for PasswordError {
    fn exit_class(&self) -> ExitClass {
        match self {
            PasswordError::NotGiven
            | PasswordError::Mismatch
            | PasswordError::TooShort(_)
            | PasswordError::TooLong(_) => ExitClass::Usage,
        }
    }
}

/// The admin layer's own classification, shared with the admin API's error replies.
impl Classify for AdminError {
    fn exit_class(&self) -> ExitClass {
        self.class().into()
    }
}

/// Each refusal of the admin API has its own class.
impl Classify for Denied {
    fn exit_class(&self) -> ExitClass {
        self.class().into()
    }
}

impl Classify for AuthzError {
    fn exit_class(&self) -> ExitClass {
        match self {
            AuthzError::Denied(d) => d.exit_class(),
            AuthzError::Store(e) => e.exit_class(),
        }
    }
}

/// An unsigned or malformed request is not authenticated.
impl Classify for EnvelopeError {
    fn exit_class(&self) -> ExitClass {
        match self {
            EnvelopeError::Missing(_) | EnvelopeError::Malformed(_) => ExitClass::Unauthenticated,
        }
    }
}

/// The admin client's classification (a refusal carries the server's class).
impl Classify for RemoteError {
    fn exit_class(&self) -> ExitClass {
        self.class().into()
    }
}

impl Classify for ApiError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ApiError::TooLarge { .. } | ApiError::BadIdempotencyKey(_) => ExitClass::Usage,
            ApiError::Malformed(_) | ApiError::UnknownOp(_) => ExitClass::Other,
        }
    }
}

/// An HTTP request that makes no admin request is bad input.
impl Classify for BuildError {
    fn exit_class(&self) -> ExitClass {
        match self {
            BuildError::Body(_) | BuildError::Query { .. } | BuildError::Conflict(_) => {
                ExitClass::Usage
            }
        }
    }
}

impl Classify for TokenRefused {
    fn exit_class(&self) -> ExitClass {
        match self {
            TokenRefused::Missing | TokenRefused::Unknown => ExitClass::Unauthenticated,
            TokenRefused::Expired { .. } | TokenRefused::AdminInactive { .. } => {
                ExitClass::AdminInactive
            }
            TokenRefused::Store(e) => e.exit_class(),
        }
    }
}

/// Every config error is a bad setting (exit 2), an unreadable `--config` file included.
impl Classify for ConfigError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ConfigError::Read { .. }
            | ConfigError::Parse { .. }
            | ConfigError::Env { .. }
            | ConfigError::Invalid { .. } => ExitClass::Usage,
        }
    }
}

impl Classify for NatsConfError {
    fn exit_class(&self) -> ExitClass {
        match self {
            NatsConfError::Io { .. } => ExitClass::Other,
            NatsConfError::File(f) => f.exit_class(),
            NatsConfError::ClusterTooSmall(_)
            | NatsConfError::PortRange(..)
            | NatsConfError::AuthTimeout(_)
            | NatsConfError::Invalid { .. }
            | NatsConfError::Missing { .. }
            | NatsConfError::PortClash { .. }
            | NatsConfError::Unreadable { .. }
            | NatsConfError::ConfigFile { .. } => ExitClass::Usage,
        }
    }
}

/// An existing output file is a conflict (exit 4); a link or a folder where a file should go
/// is a bad `--out` value (exit 2).
impl Classify for FsError {
    fn exit_class(&self) -> ExitClass {
        match self {
            FsError::Exists(_) => ExitClass::Conflict,
            FsError::Symlink(_) | FsError::NotAFile(_) | FsError::NoFileName(_) => ExitClass::Usage,
            FsError::Kept { source, .. } => source.exit_class(),
            FsError::Io { .. } => ExitClass::Other,
        }
    }
}

/// The admin layer's classification of store errors, shared with the admin API's replies.
impl Classify for StoreError {
    fn exit_class(&self) -> ExitClass {
        admin::store_class(self).into()
    }
}

impl Classify for JournalError {
    fn exit_class(&self) -> ExitClass {
        match self {
            JournalError::OutOfOrder { .. } => ExitClass::Conflict,
            JournalError::TooLarge { .. }
            | JournalError::Version(_)
            | JournalError::Checksum(_)
            | JournalError::Malformed { .. }
            | JournalError::Schema { .. }
            | JournalError::UnknownTable(_)
            | JournalError::BadBytes { .. }
            | JournalError::PreparedTwice
            | JournalError::ReplicaStore(_)
            | JournalError::KeyMismatch(_)
            | JournalError::FullStateMisplaced(_) => ExitClass::Other,
        }
    }
}

impl Classify for ReplicaError {
    fn exit_class(&self) -> ExitClass {
        match self {
            ReplicaError::Conflict { .. } | ReplicaError::Conflicts(_) => ExitClass::LogConflict,
            ReplicaError::Unavailable(_) | ReplicaError::NoAnswer { .. } => ExitClass::Unavailable,
            ReplicaError::Diverged { .. } | ReplicaError::ForeignStart { .. } => ExitClass::Other,
            ReplicaError::Store(e) => e.exit_class(),
            ReplicaError::Snapshot(e) => e.exit_class(),
            ReplicaError::Compacted { .. } => ExitClass::Other,
            ReplicaError::Removed { .. } | ReplicaError::Revoked { .. } => {
                ExitClass::ReplicaRemoved
            }
            ReplicaError::Request { .. } | ReplicaError::BadAnswer { .. } => ExitClass::Other,
        }
    }
}

/// A bad bundle is bad input (exit 2), a missing one not found (3), an existing file a
/// conflict (4).
impl Classify for BundleError {
    fn exit_class(&self) -> ExitClass {
        match self {
            BundleError::Exists(_) => ExitClass::Conflict,
            BundleError::Missing(_) => ExitClass::NotFound,
            BundleError::TooLarge { .. }
            | BundleError::Malformed { .. }
            | BundleError::Version { .. }
            | BundleError::Incomplete { .. } => ExitClass::Usage,
            BundleError::Io { .. } => ExitClass::Other,
        }
    }
}

impl Classify for JoinError {
    fn exit_class(&self) -> ExitClass {
        match self {
            JoinError::StoreExists(_) | JoinError::KeyFileExists(_) => ExitClass::Conflict,
            JoinError::Bundle(e) => e.exit_class(),
            JoinError::BadKey { .. } | JoinError::BadGenesis { .. } => ExitClass::Usage,
            JoinError::PassphraseRequired(_) => ExitClass::StoreKey,
            JoinError::Log(e) => e.exit_class(),
            JoinError::Snapshot(e) => e.exit_class(),
            JoinError::Store(e) => e.exit_class(),
            JoinError::Connect { .. }
            | JoinError::LogTruncated { .. }
            | JoinError::StartIncomplete { .. }
            | JoinError::EmptyLog
            | JoinError::KeyFile { .. } => ExitClass::Other,
        }
    }
}

impl Classify for SnapshotError {
    fn exit_class(&self) -> ExitClass {
        match self {
            SnapshotError::Store(e) => e.exit_class(),
            SnapshotError::Corrupt { .. }
            | SnapshotError::Request { .. }
            | SnapshotError::Superseded(_) => ExitClass::Other,
        }
    }
}

mod layers;
mod runtime;

#[cfg(test)]
mod tests;
