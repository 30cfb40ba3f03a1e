//! The redb store: operator, accounts, roles, users, token index, outbox and sessions.
//!
//! redb stays behind this module: callers see [`Store`], [`ReadTx`], [`WriteTx`] and model
//! records. Every operation runs in one transaction: [`Store::write`] commits only when its
//! closure returns `Ok`, so a failed operation changes nothing, and writes are serialized, so a
//! read-modify-write inside one closure (say, adding a revocation) can never lose an update.
//!
//! The file is created `0600`, because it holds the operator and account seeds. Records are
//! stored as a format-version byte plus JSON and validated on every write.
//!
//! Reads are methods of the [`StoreRead`] trait (import it), available on both [`ReadTx`] and
//! [`WriteTx`]; mutators are methods of [`WriteTx`].
//!
//! ```no_run
//! use pbn::keys::UserPublicKey;
//! use pbn::store::{Store, StoreError, StoreRead};
//!
//! fn revoke(store: &Store, user: &UserPublicKey, now: i64) -> Result<(), StoreError> {
//!     store.write(|tx| {
//!         let mut account = tx.require_account("orders")?;
//!         account.revoke(user, now);
//!         tx.update_account(&account)
//!     })
//! }
//! ```

mod codec;
mod read;
mod tables;
#[cfg(test)]
mod tests;
mod write;
mod write_ops;

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Builder, Database, DatabaseError, ReadableDatabase, StorageError};

pub use read::{ReadTx, StoreRead, TokenRef};
pub use write::WriteTx;

use crate::model::ModelError;

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
    /// A callout session.
    Session,
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
            RecordKind::Session => "session",
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
    #[error(
        "store file {0} is locked by another process; a running `pbn serve` probably holds it"
    )]
    Locked(PathBuf),
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

struct Inner {
    db: Database,
    path: PathBuf,
}

/// A handle on an open store file. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.inner.path).finish()
    }
}

impl Store {
    /// Creates a new store file (mode `0600`) with every table and the schema version.
    ///
    /// Refuses an existing file with [`StoreError::AlreadyExists`]. If initialization fails
    /// after the file was created, the file is removed again.
    pub fn create(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => StoreError::AlreadyExists(path.to_path_buf()),
                _ => StoreError::Io { path: path.to_path_buf(), source: e },
            })?;
        let result = Self::initialize(path, file);
        if result.is_err() {
            // The file was created exclusively above, so it is ours to remove.
            let _ = std::fs::remove_file(path);
        }
        result
    }

    fn initialize(path: &Path, file: std::fs::File) -> Result<Store, StoreError> {
        // The umask may only clear bits of 0600; setting it again makes the mode exact.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
        let backend_file =
            redb::backends::FileBackend::new(file).map_err(|e| open_error(path, e))?;
        let db =
            Builder::new().create_with_backend(backend_file).map_err(|e| open_error(path, e))?;
        let txn = db.begin_write().map_err(backend("starting the initial transaction"))?;
        tables::create_all(&txn).map_err(backend("creating tables"))?;
        {
            let mut meta = txn.open_table(tables::META).map_err(backend("opening meta"))?;
            meta.insert(tables::SCHEMA_VERSION_KEY, tables::SCHEMA_VERSION)
                .map_err(backend("writing the schema version"))?;
        }
        txn.commit().map_err(backend("committing the initial transaction"))?;
        Ok(Store { inner: Arc::new(Inner { db, path: path.to_path_buf() }) })
    }

    /// Opens an existing store file and checks its schema version.
    ///
    /// Errors: [`StoreError::FileNotFound`], [`StoreError::Locked`] when another handle has it
    /// open, [`StoreError::CorruptFile`] for a file that is not a pbn store, and
    /// [`StoreError::SchemaTooNew`]. The integrity of the whole file is checked on open, so a
    /// damaged file is reported rather than trusted.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::FileNotFound(path.to_path_buf()))
            }
            Err(e) => return Err(StoreError::Io { path: path.to_path_buf(), source: e }),
            Ok(_) => {}
        }
        let db = Builder::new()
            .set_check_integrity_on_open(true)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let store = Store { inner: Arc::new(Inner { db, path: path.to_path_buf() }) };
        store.check_schema()?;
        store.ensure_tables()?;
        Ok(store)
    }

    /// Creates tables a store written by an earlier build of this schema version lacks (index
    /// tables are added without changing record formats).
    fn ensure_tables(&self) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().map_err(backend("starting a write"))?;
        tables::create_all(&txn).map_err(backend("creating tables"))?;
        txn.commit().map_err(backend("committing"))
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let not_pbn = |detail: &str| StoreError::CorruptFile {
            path: self.inner.path.clone(),
            detail: detail.to_string(),
        };
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let meta = match txn.open_table(tables::META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Err(not_pbn("no meta table")),
            Err(e) => return Err(backend("opening meta")(e)),
        };
        let found = meta
            .get(tables::SCHEMA_VERSION_KEY)
            .map_err(backend("reading the schema version"))?
            .ok_or_else(|| not_pbn("no schema version"))?
            .value();
        if found > tables::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: self.inner.path.clone(),
                found,
                supported: tables::SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a consistent snapshot. Blocking; see [`Store::read_async`].
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&ReadTx) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        f(&ReadTx::new(txn))
    }

    /// Runs `f` in one write transaction and commits only if it returns `Ok`; on `Err` nothing
    /// it did is kept. Writers are serialized. Blocking; see [`Store::write_async`].
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E> {
        let txn = self.inner.db.begin_write().map_err(backend("starting a write"))?;
        let mut tx = WriteTx::new(txn);
        let value = f(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`Store::read`] on tokio's blocking pool, so async callers never block the runtime.
    pub async fn read_async<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&ReadTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|e| E::from(StoreError::TaskFailed(e.to_string())))?
    }

    /// [`Store::write`] on tokio's blocking pool, so async callers never block the runtime.
    pub async fn write_async<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| E::from(StoreError::TaskFailed(e.to_string())))?
    }
}

/// Maps an error of opening or creating the database file.
fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    let corrupt = |detail: String| StoreError::CorruptFile { path: path.clone(), detail };
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::Locked(path)
        }
        DatabaseError::UpgradeRequired(v) => corrupt(format!("unsupported file format {v}")),
        DatabaseError::RepairAborted => corrupt("repair aborted".to_string()),
        DatabaseError::Storage(StorageError::Corrupted(detail)) => corrupt(detail),
        DatabaseError::Storage(StorageError::Io(e)) => match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => corrupt(e.to_string()),
            io::ErrorKind::NotFound => StoreError::FileNotFound(path),
            _ => StoreError::Io { path, source: e },
        },
        other => backend("opening the database")(other),
    }
}
