//! The redb store: operator, accounts, roles, users, token index, outbox and sessions.
//!
//! redb stays behind this module: callers see [`Store`], [`ReadTx`], [`WriteTx`] and model
//! records. Every operation runs in one transaction: [`Store::write`] commits only when its
//! closure returns `Ok`, so a failed operation changes nothing, and writes are serialized, so a
//! read-modify-write inside one closure (say, adding a revocation) can never lose an update.
//!
//! The file is created `0600`, because it holds the operator and account seeds (sealed under
//! the store key when it has one: see `crate::seal`). Records are stored as a format-version
//! byte plus JSON and validated on every write.
//!
//! Reads are methods of the [`StoreRead`] trait (import it), available on both [`ReadTx`] and
//! [`WriteTx`]; mutators are methods of [`WriteTx`].
//!
//! ```no_run
//! use pbn::keys::UserPublicKey;
//! use pbn::{Store, StoreError, StoreRead};
//!
//! fn revoke(store: &Store, user: &UserPublicKey, now: i64) -> Result<(), StoreError> {
//!     store.write(|tx| {
//!         let mut account = tx.require_account("orders")?;
//!         account.revoke(user, now);
//!         tx.update_account(&account)
//!     })
//! }
//! ```

mod admin_tokens;
mod codec;
mod error;
mod idempotency;
mod idps;
mod journal;
mod keyring;
mod lock;
mod migrate;
#[cfg(test)]
mod open_tests;
mod page;
mod read;
#[cfg(test)]
mod rekey_tests;
mod replicas;
mod replicate;
#[cfg(test)]
mod replicate_tests;
#[cfg(test)]
mod seal_tests;
mod sealing;
mod stamp;
mod tables;
#[cfg(test)]
mod tests;
mod unlock;
mod user_pages;
mod write;
mod write_admins;
mod write_ops;

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Builder, Database, DatabaseError, ReadOnlyDatabase, ReadableDatabase, StorageError};

pub use admin_tokens::{AdminPasswordRecord, AdminTokenRead, AdminTokenRecord};
pub(crate) use error::backend;
pub use error::{RecordKind, StoreError};
pub use idempotency::{Remembered, REMEMBER_MAX_AGE_MS, REMEMBER_MAX_COUNT};
pub use idps::IdpRead;
pub use journal::{Journal, JournalError, Op, JOURNAL_VERSION, MAX_JOURNAL_BYTES};
pub use lock::Holder;
pub use read::{ReadTx, StoreRead};
pub use replicas::{
    get_replica, list_replicas, BundleKey, ReplicaIdentity, ReplicaRecord, SnapshotRows,
};
pub use replicate::{start_entries, Rows, START_ENTRY_BYTES};
pub use user_pages::{UserPages, MAX_PAGE};
pub use write::WriteTx;

use crate::seal::KeySource;

/// The open database: writable, or opened with [`Store::open_read_only`].
enum Db {
    ReadWrite(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::ReadWrite(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
    }
}

/// Writes the clean-close stamp (see `store::stamp`) when dropped, after the database (declared
/// before it) has closed the file; `None` for a read-only handle, which changes nothing.
struct StampOnClose(Option<PathBuf>);

impl Drop for StampOnClose {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            stamp::write(path);
        }
    }
}

/// Removes the lock-info file when dropped (after the database, which is declared before it).
struct HolderFile(Option<PathBuf>);

impl Drop for HolderFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            lock::remove(path);
        }
    }
}

struct Inner {
    db: Db,
    // Declared after `db`: the stamp describes the file as the closed database left it.
    _stamp: StampOnClose,
    path: PathBuf,
    /// Whether this open ran redb's whole-file integrity check (see [`Store::open_for`]).
    checked: bool,
    /// The key the store's seeds are sealed under, set once when the store is opened; unset
    /// for a plain store.
    key: keyring::KeySlot,
    /// Bumped after every committed local write that changed the outbox (see
    /// [`Store::outbox_changes`]).
    outbox: tokio::sync::watch::Sender<u64>,
    // Declared after `db`, so the file goes only once the lock is released.
    _holder: HolderFile,
}

/// The command name the service records as the store's holder ([`Store::open_for`]).
pub const SERVICE_COMMAND: &str = "pbn serve";

/// The first pause between attempts to open a busy store; doubled up to [`MAX_LOCK_BACKOFF`].
const FIRST_LOCK_BACKOFF: Duration = Duration::from_millis(20);
/// The longest pause between attempts to open a busy store.
const MAX_LOCK_BACKOFF: Duration = Duration::from_millis(500);

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
        Store::create_with(path, None)
    }

    /// [`Store::create`] with a store key: every seed written is sealed under `key`, and the
    /// key check value is stored so later opens tell a wrong key at once. `None` makes a
    /// plain store.
    pub fn create_with(
        path: impl AsRef<Path>,
        key: Option<KeySource>,
    ) -> Result<Store, StoreError> {
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
        let result = Self::initialize(path, file, key);
        if result.is_err() {
            // The file was created exclusively above, so it is ours to remove.
            let _ = std::fs::remove_file(path);
        }
        result
    }

    fn initialize(
        path: &Path,
        file: std::fs::File,
        source: Option<KeySource>,
    ) -> Result<Store, StoreError> {
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
        let key = source.map(|s| unlock::seal_new(&txn, s)).transpose()?;
        txn.commit().map_err(backend("committing the initial transaction"))?;
        let holder = lock::write(path, "pbn init");
        let store = Store::with_db(Db::ReadWrite(db), path, holder, false);
        if let Some(key) = key {
            store.inner.key.set(key);
        }
        Ok(store)
    }

    fn with_db(db: Db, path: &Path, holder: Option<PathBuf>, checked: bool) -> Store {
        let key = keyring::KeySlot::default();
        let outbox = tokio::sync::watch::Sender::new(0);
        let stamp = StampOnClose(matches!(db, Db::ReadWrite(_)).then(|| path.to_path_buf()));
        let inner = Inner {
            db,
            _stamp: stamp,
            path: path.to_path_buf(),
            checked,
            key,
            outbox,
            _holder: HolderFile(holder),
        };
        Store { inner: Arc::new(inner) }
    }

    /// Opens an existing store file for writing, upgrading an older schema (see
    /// [`Store::open_for`]); fails at once if the store is busy.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_for(path, "pbn", Duration::ZERO)
    }

    /// Opens an existing store file for writing as `command` (e.g. `pbn admin`), waiting up to
    /// `wait` (polling with backoff) while another process holds it.
    ///
    /// A store of an older schema is migrated in one write transaction (see
    /// `store::migrate`). While open, a lock-info file beside the store names `command`, so
    /// a process that finds the store busy can say who holds it.
    ///
    /// Errors: [`StoreError::FileNotFound`], [`StoreError::Locked`] (naming the holder when
    /// known), [`StoreError::CorruptFile`] for a file that is not a pbn store, and
    /// [`StoreError::SchemaTooNew`].
    ///
    /// Integrity: a file that was not shut down cleanly (a crash, a kill, a power loss) is
    /// repaired by redb itself on open, which verifies the checksum of every page and falls back
    /// to the previous commit if the last one is torn, or fails with
    /// [`StoreError::CorruptFile`]. A file that was shut down cleanly gets the same whole-file
    /// check (redb's `check_integrity_on_open`) unless its clean-close stamp (see
    /// `store::stamp`) shows that nothing but pbn has written it since pbn closed it: then the
    /// check, which takes one to two seconds at a million users, is skipped. So damage done to the
    /// file from outside pbn is found on open; damage that leaves the file's metadata as it was
    /// (bits flipped by the storage medium) is found only by the next full check.
    pub fn open_for(
        path: impl AsRef<Path>,
        command: &str,
        wait: Duration,
    ) -> Result<Store, StoreError> {
        Store::open_for_with(path, command, wait, None)
    }

    /// [`Store::open_for`] with the store key of an encrypted store (`None` for a plain one).
    ///
    /// The key is checked against the store's key check value before anything else is read
    /// or migrated: [`StoreError::KeyRequired`] for an encrypted store opened without a key,
    /// [`StoreError::WrongKey`] for another key. A plain store opened with a key is sealed
    /// under it first, in one transaction (see `store::unlock`). On any error no store handle
    /// exists.
    pub fn open_for_with(
        path: impl AsRef<Path>,
        command: &str,
        wait: Duration,
        key: Option<KeySource>,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let started = Instant::now();
        let mut checked = true;
        let db = retry_while_locked(path, wait, || {
            checked = !stamp::matches(path);
            Builder::new().set_check_integrity_on_open(checked).open(path)
        })?;
        // Open for writing: the file changes from now on, until the close stamps it again.
        stamp::remove(path);
        let holder = lock::write(path, command);
        let store = Store::with_db(Db::ReadWrite(db), path, holder, checked);
        tracing::info!(store = %path.display(), integrity_checked = checked,
            ms = started.elapsed().as_millis() as u64, "store opened");
        let found = store.check_schema()?;
        store.unlock(key)?;
        if found < tables::SCHEMA_VERSION {
            store.migrate(found)?;
        }
        Ok(store)
    }

    /// Opens an existing store file read-only: nothing is written, so a `0444` file or one on
    /// a full disk can be read. [`Store::write`] on it fails with [`StoreError::ReadOnly`].
    ///
    /// redb refuses a read-only open while a writer holds the file (and a writer while readers
    /// do), so this waits like [`Store::open_for`]. A store of an older schema is refused with
    /// [`StoreError::SchemaTooOld`]: only a writer can migrate it.
    pub fn open_read_only(path: impl AsRef<Path>, wait: Duration) -> Result<Store, StoreError> {
        Store::open_read_only_with(path, wait, None)
    }

    /// [`Store::open_read_only`] with the store key of an encrypted store, checked like
    /// [`Store::open_for_with`] does.
    pub fn open_read_only_with(
        path: impl AsRef<Path>,
        wait: Duration,
        key: Option<KeySource>,
    ) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let db = retry_while_locked(path, wait, || Builder::new().open_read_only(path))?;
        let store = Store::with_db(Db::ReadOnly(db), path, None, false);
        let found = store.check_schema()?;
        store.unlock(key)?;
        if found < tables::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooOld {
                path: path.to_path_buf(),
                found,
                current: tables::SCHEMA_VERSION,
            });
        }
        Ok(store)
    }

    fn migrate(&self, found: u64) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        let txn = db.begin_write().map_err(backend("starting a migration"))?;
        migrate::run(&txn, found)?;
        txn.commit().map_err(backend("committing a migration"))
    }

    /// The schema version of the open file; refuses one newer than this build.
    fn check_schema(&self) -> Result<u64, StoreError> {
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
        Ok(found)
    }

    /// Whether this handle's open ran redb's whole-file integrity check: false for a store
    /// trusted by its clean-close stamp, a new store and a read-only open (see
    /// [`Store::open_for`]).
    pub fn integrity_checked(&self) -> bool {
        self.inner.checked
    }

    /// Whether the store's seeds are sealed under a store key.
    pub fn is_sealed(&self) -> bool {
        self.inner.key.current().is_some()
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
        let (txn, key) = self.inner.key.begin_read(|| self.inner.db.begin_read());
        let txn = txn.map_err(backend("starting a read"))?;
        f(&ReadTx::new(txn, key))
    }

    /// Runs `f` in one write transaction and commits only if it returns `Ok`; on `Err` nothing
    /// it did is kept. Writers are serialized. Blocking; see [`Store::write_async`].
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, E>,
    ) -> Result<T, E> {
        let commit = Store::capture_commits();
        let (value, journal) = self.write_with(f, commit)?;
        if commit
            && journal.ops.iter().any(|op| op.table == redb::TableHandle::name(&tables::OUTBOX))
        {
            self.inner.outbox.send_modify(|n| *n = n.wrapping_add(1));
        }
        Store::captured(journal)?;
        Ok(value)
    }

    /// A receiver that changes after each write committed through this handle (or a clone)
    /// that changed the outbox, so the publisher pushes a new entry without waiting for its
    /// next poll. Writes a replica applies from the log are not counted (the poll finds them).
    pub fn outbox_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.outbox.subscribe()
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

/// Runs `open` until it succeeds, fails other than by a held lock, or `wait` has passed; a
/// final lock error names the holder from its lock-info file.
fn retry_while_locked<T>(
    path: &Path,
    wait: Duration,
    mut open: impl FnMut() -> Result<T, DatabaseError>,
) -> Result<T, StoreError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::FileNotFound(path.to_path_buf()))
        }
        Err(e) => return Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        Ok(_) => {}
    }
    let deadline = Instant::now() + wait;
    let mut pause = FIRST_LOCK_BACKOFF;
    loop {
        match open().map_err(|e| open_error(path, e)) {
            // A running service keeps the store until it stops: waiting for it is pointless.
            Err(StoreError::Locked { .. })
                if Instant::now() < deadline
                    && lock::holder(path).is_none_or(|h| h.command != SERVICE_COMMAND) =>
            {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(MAX_LOCK_BACKOFF);
            }
            Err(StoreError::Locked { path, .. }) => {
                let holder = lock::holder(&path);
                return Err(StoreError::Locked { path, holder });
            }
            other => return other,
        }
    }
}

/// Maps an error of opening or creating the database file.
fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    let corrupt = |detail: String| StoreError::CorruptFile { path: path.clone(), detail };
    match err {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            StoreError::Locked { path, holder: None }
        }
        DatabaseError::UpgradeRequired(v) => corrupt(format!("unsupported file format {v}")),
        DatabaseError::RepairAborted => {
            corrupt("it was not closed cleanly and needs a repair (open it for writing)".into())
        }
        DatabaseError::Storage(StorageError::Corrupted(detail)) => corrupt(detail),
        DatabaseError::Storage(StorageError::Io(e)) => match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => corrupt(e.to_string()),
            io::ErrorKind::NotFound => StoreError::FileNotFound(path),
            _ => StoreError::Io { path, source: e },
        },
        other => backend("opening the database")(other),
    }
}
