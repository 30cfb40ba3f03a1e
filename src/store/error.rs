//! The store's errors and the record kinds they name.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::{Holder, JournalError};
use crate::model::ModelError;
use crate::seal::SealError;

/// The kinds of record the store holds, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// The operator.
    Operator,
    /// An account.
    Account,
    /// A role.
    Role,
    /// A user.
    User,
    /// An API token.
    Token,
    /// An outbox entry.
    OutboxEntry,
    /// A named admin.
    Admin,
    /// An identity provider.
    Idp,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::Operator => "operator",
            RecordKind::Account => "account",
            RecordKind::Role => "role",
            RecordKind::User => "user",
            RecordKind::Token => "token",
            RecordKind::OutboxEntry => "outbox entry",
            RecordKind::Admin => "admin",
            RecordKind::Idp => "identity provider",
        })
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// [`Store::create`] found a file at the path.
    #[error("store file {0} already exists")]
    AlreadyExists(PathBuf),
    /// [`Store::open`] found no file at the path.
    #[error("store file {0} does not exist (create it with `pbn init`)")]
    FileNotFound(PathBuf),
    /// Another process (or handle) has the store open.
    #[error("store file {path} is locked by {}", holder_text(.holder))]
    Locked {
        /// The file.
        path: PathBuf,
        /// Who holds it, when its lock-info file names a live process.
        holder: Option<Holder>,
    },
    /// A write on a store opened with [`Store::open_read_only`].
    #[error("store file {0} is open read-only")]
    ReadOnly(PathBuf),
    /// A read-only open of a store that needs a migration, which only a writer can run.
    #[error(
        "store file {path} has schema version {found}, older than the current {current}; \
         open it once for writing (any change with `pbn admin`, or `pbn serve`) to upgrade it"
    )]
    SchemaTooOld {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: u64,
        /// The version this build writes.
        current: u64,
    },
    /// The file is not a pbn store or is damaged.
    #[error("store file {path} is not a valid pbn store: {detail}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The store was written by a newer pbn.
    #[error("store file {path} has schema version {found}, newer than the supported {supported}")]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// A stored value that cannot be decoded (unknown format version or damaged).
    #[error("corrupt record in table {table} under key {key:?}")]
    Corrupt {
        /// The table.
        table: String,
        /// The key.
        key: String,
    },
    /// An insert of a record that exists already (or whose unique key is taken).
    #[error("{kind} {name:?} already exists")]
    Conflict {
        /// The kind of record.
        kind: RecordKind,
        /// Its name or key.
        name: String,
    },
    /// A required record that does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The kind of record.
        kind: RecordKind,
        /// Its name or key.
        name: String,
    },
    /// A delete of a record that users still refer to.
    #[error("{kind} {name:?} still has {users} user(s)")]
    InUse {
        /// The kind of record (account or role).
        kind: RecordKind,
        /// Its name.
        name: String,
        /// How many users refer to it.
        users: u64,
    },
    /// A record that breaks a model rule.
    #[error("invalid record: {0}")]
    Invalid(#[from] ModelError),
    /// A record that could not be serialized.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// A file-system error on the store file.
    #[error("store file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// An error of the database engine.
    #[error("database error while {op}: {source}")]
    Backend {
        /// What the store was doing.
        op: &'static str,
        /// The engine's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A sealed store opened without a store key.
    #[error("store file {0} is encrypted: give its key (--key-file, PBN_KEY_FILE or PBN_KEY_PASSPHRASE)")]
    KeyRequired(PathBuf),
    /// The store key given is not the key the store was sealed with.
    #[error("the store key does not open store file {0}")]
    WrongKey(PathBuf),
    /// A store of plain seeds opened read-only with a store key: only a writer can seal it.
    #[error(
        "store file {0} is not encrypted yet; open it once for writing with the key to encrypt it"
    )]
    NotSealed(PathBuf),
    /// A sealed seed of a record that does not open under the store key.
    #[error("sealed seed in table {table} under key {key:?} does not open")]
    Unseal {
        /// The table.
        table: String,
        /// The record key.
        key: String,
        /// Why it does not open.
        source: SealError,
    },
    /// A journal that cannot be encoded, decoded or applied.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A background store task panicked or was cancelled.
    #[error("store task failed: {0}")]
    TaskFailed(String),
}

/// Wraps an engine error with what the store was doing.
pub(crate) fn backend<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend { op, source: Box::new(e) }
}

fn holder_text(holder: &Option<Holder>) -> String {
    match holder {
        Some(h) => h.to_string(),
        None => "another process".to_string(),
    }
}
