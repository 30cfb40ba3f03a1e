//! The journal of a write transaction: every change it made to any table, as raw operations.
//!
//! A replica ships a change to the others as the [`Journal`] of its write transaction: the
//! table name, the key bytes and the value bytes (or a removal), in order, exactly as redb's
//! `Key::as_bytes` / `Value::as_bytes` of the table's own types give them. Values are the bytes
//! the store writes, so seeds travel sealed, never in the clear.
//!
//! Capture cannot be bypassed: a [`WriteTx`](super::WriteTx) holds its redb transaction inside
//! a [`JournaledTxn`], whose transaction is private to this module. The only way to change a
//! table through a `WriteTx` is [`JournaledTxn::open`], whose [`JournaledTable`] records every
//! insert and removal before handing back redb's answer; reads go through
//! [`JournaledTxn::read`], which returns a table that can only be read. (Store creation,
//! schema migration, sealing and rekeying write outside `WriteTx`: they are local to one file
//! and never journaled.)
//!
//! Encoding ([`Journal::encode`]): a version byte, the schema version, the operation count,
//! then per operation the table name, the key and the value (a tag byte: 0 removal, 1 value),
//! each length-prefixed (u8 for table names, u32 little-endian for the rest), and a sha-256 of
//! everything before it. [`Journal::decode`] refuses another version, a bad checksum, a
//! truncated or over-long input and anything beyond [`MAX_JOURNAL_BYTES`].

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

use redb::{AccessGuard, Key, ReadableTable, StorageError, TableDefinition, TableHandle, Value};
use sha2::{Digest, Sha256};

use super::{backend, StoreError};

/// The encoding version this build writes and reads.
pub const JOURNAL_VERSION: u8 = 1;

/// The largest encoded journal: NATS' default `max_payload` (1 MiB), so a journal always fits
/// one message of the log. An admin change writes a few records (a few KiB each); pruning
/// remembered answers or audit entries removes keys of a few dozen bytes each.
pub const MAX_JOURNAL_BYTES: usize = 1024 * 1024;

const CHECKSUM_LEN: usize = 32;

/// Errors of journals: encoding, decoding and applying them.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A journal larger than [`MAX_JOURNAL_BYTES`] encoded.
    #[error("journal of {size} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An encoded journal of another encoding version.
    #[error("journal encoding version {0} is not supported (this build reads {JOURNAL_VERSION})")]
    Version(u8),
    /// An encoded journal whose checksum does not match its contents.
    #[error("journal checksum does not match its {0} bytes")]
    Checksum(usize),
    /// An encoded journal that ends early or has bytes left over.
    #[error("journal is malformed at byte {offset}: {detail}")]
    Malformed {
        /// Where decoding stopped.
        offset: usize,
        /// What was wrong.
        detail: &'static str,
    },
    /// A journal written by a build of another store schema.
    #[error("journal of schema version {found} cannot be applied to schema version {current}")]
    Schema {
        /// The journal's schema version.
        found: u64,
        /// This build's.
        current: u64,
    },
    /// An operation on a table the store does not replicate.
    #[error("journal writes table {0:?}, which is not a replicated table")]
    UnknownTable(String),
    /// An operation whose key or value bytes are not a valid encoding of the table's type.
    #[error("journal holds bytes that are not a valid {what} of table {table}")]
    BadBytes {
        /// The table.
        table: String,
        /// `key` or `value`.
        what: &'static str,
    },
    /// A journal whose log position is not the next one the store expects.
    #[error("journal at log position {got} is out of order: the store expects {expected}")]
    OutOfOrder {
        /// The next position the store expects.
        expected: u64,
        /// The journal's position.
        got: u64,
    },
    /// A second write transaction inside [`Store::prepared`](super::Store::prepared): it
    /// would not see the first one's uncommitted changes.
    #[error("a prepared change may hold one write transaction; a second one was attempted")]
    PreparedTwice,
    /// A local write on a store that is a replica of the log: it would diverge from the others.
    #[error(
        "store {0} is a replica of the log: change it through the admin API \
         (`pbn admin --server`), not in place"
    )]
    ReplicaStore(std::path::PathBuf),
    /// A full-state entry sealed under another store key than the store's.
    #[error(
        "the log's full-state entry was sealed under another store key than store {0}'s: \
         every replica needs the same store key"
    )]
    KeyMismatch(std::path::PathBuf),
    /// A full-state entry at another position than the first, or for a store that applied
    /// entries already.
    #[error("a full-state entry may only start the log (position 1), not position {0}")]
    FullStateMisplaced(u64),
}

/// One raw operation of a write transaction.
#[derive(Clone, PartialEq, Eq)]
pub struct Op {
    /// The table's name.
    pub table: String,
    /// The key, as the table's key type encodes it.
    pub key: Vec<u8>,
    /// The value written, as the table's value type encodes it; `None` for a removal.
    pub value: Option<Vec<u8>>,
}

/// Values may hold password hashes and sealed seeds: only their sizes are shown.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("table", &self.table)
            .field("key_len", &self.key.len())
            .field("value_len", &self.value.as_ref().map(Vec::len))
            .finish()
    }
}

/// Every change of one write transaction, in order, with the schema it was written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The store schema version of the writer.
    pub schema: u64,
    /// The operations, in the order they were made.
    pub ops: Vec<Op>,
}

impl Journal {
    /// An empty journal of this build's schema.
    pub fn new() -> Self {
        Journal { schema: super::tables::SCHEMA_VERSION, ops: Vec::new() }
    }

    /// Whether the transaction changed nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The versioned, checksummed bytes of the journal (see the module docs).
    pub fn encode(&self) -> Result<Vec<u8>, JournalError> {
        let mut out = vec![JOURNAL_VERSION];
        out.extend_from_slice(&self.schema.to_le_bytes());
        out.extend_from_slice(&len32(self.ops.len())?.to_le_bytes());
        for op in &self.ops {
            let name = u8::try_from(op.table.len())
                .map_err(|_| JournalError::BadBytes { table: op.table.clone(), what: "name" })?;
            out.push(name);
            out.extend_from_slice(op.table.as_bytes());
            put_bytes(&mut out, &op.key)?;
            match &op.value {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    put_bytes(&mut out, v)?;
                }
            }
            if out.len() + CHECKSUM_LEN > MAX_JOURNAL_BYTES {
                return Err(JournalError::TooLarge { size: out.len(), max: MAX_JOURNAL_BYTES });
            }
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Decodes bytes made by [`Journal::encode`]; any other input is refused with an error.
    pub fn decode(bytes: &[u8]) -> Result<Journal, JournalError> {
        if bytes.len() > MAX_JOURNAL_BYTES {
            return Err(JournalError::TooLarge { size: bytes.len(), max: MAX_JOURNAL_BYTES });
        }
        match bytes.first() {
            None => return Err(JournalError::Malformed { offset: 0, detail: "empty" }),
            Some(&JOURNAL_VERSION) => {}
            Some(&v) => return Err(JournalError::Version(v)),
        }
        let Some(body_len) = bytes.len().checked_sub(CHECKSUM_LEN) else {
            return Err(JournalError::Malformed { offset: bytes.len(), detail: "too short" });
        };
        let (body, sum) = bytes.split_at(body_len);
        if Sha256::digest(body).as_slice() != sum {
            return Err(JournalError::Checksum(bytes.len()));
        }
        let mut r = Reader { bytes: body, at: 1 };
        let schema = u64::from_le_bytes(r.array()?);
        let count = u32::from_le_bytes(r.array()?);
        let mut ops = Vec::new();
        for _ in 0..count {
            let name_len = r.take(1)?[0] as usize;
            let table = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| r.error("table name is not utf-8"))?
                .to_string();
            let key = r.bytes()?.to_vec();
            let value = match r.take(1)?[0] {
                0 => None,
                1 => Some(r.bytes()?.to_vec()),
                _ => return Err(r.error("bad value tag")),
            };
            ops.push(Op { table, key, value });
        }
        if r.at != body.len() {
            return Err(r.error("bytes after the last operation"));
        }
        Ok(Journal { schema, ops })
    }
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new()
    }
}

fn len32(len: usize) -> Result<u32, JournalError> {
    u32::try_from(len).map_err(|_| JournalError::TooLarge { size: len, max: MAX_JOURNAL_BYTES })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), JournalError> {
    out.extend_from_slice(&len32(bytes.len())?.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A cursor over an encoded journal's body.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, detail: &'static str) -> JournalError {
        JournalError::Malformed { offset: self.at, detail }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], JournalError> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| self.error("ends early"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], JournalError> {
        let slice = self.take(N)?;
        slice.try_into().map_err(|_| self.error("ends early"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], JournalError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }
}

/// A redb write transaction that records every change made through it (see the module docs).
pub(crate) struct JournaledTxn {
    txn: redb::WriteTransaction,
    journal: RefCell<Journal>,
}

impl JournaledTxn {
    pub(crate) fn new(txn: redb::WriteTransaction) -> Self {
        JournaledTxn { txn, journal: RefCell::new(Journal::new()) }
    }

    /// Opens `def` for writing; every change through the returned table is journaled.
    pub(crate) fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<JournaledTable<'_, K, V>, StoreError> {
        let table = self.txn.open_table(def).map_err(backend("opening a table"))?;
        Ok(JournaledTable { table, journal: &self.journal })
    }

    /// Opens `def` for reading only.
    pub(crate) fn read<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<impl ReadableTable<K, V> + '_, StoreError> {
        self.txn.open_table(def).map_err(backend("opening a table"))
    }

    /// Commits the transaction and returns its journal.
    pub(crate) fn commit(self) -> Result<Journal, StoreError> {
        self.txn.commit().map_err(backend("committing"))?;
        Ok(self.journal.into_inner())
    }

    /// Drops the transaction without committing it and returns what it would have changed.
    pub(crate) fn abort(self) -> Result<Journal, StoreError> {
        self.txn.abort().map_err(backend("aborting"))?;
        Ok(self.journal.into_inner())
    }
}

/// A table open for writing whose inserts and removals are journaled. Reads go through
/// `Deref` to redb's table, which offers no mutation through a shared reference.
pub(crate) struct JournaledTable<'t, K: Key + 'static, V: Value + 'static> {
    table: redb::Table<'t, K, V>,
    journal: &'t RefCell<Journal>,
}

impl<K: Key + 'static, V: Value + 'static> JournaledTable<'_, K, V> {
    fn record(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let table = self.table.name().to_string();
        self.journal.borrow_mut().ops.push(Op { table, key, value });
    }

    /// redb's `insert`, journaled.
    pub(crate) fn insert<'k, 'v>(
        &mut self,
        key: impl std::borrow::Borrow<K::SelfType<'k>>,
        value: impl std::borrow::Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        let (key, value) = (key.borrow(), value.borrow());
        let raw_key = K::as_bytes(key).as_ref().to_vec();
        let raw_value = V::as_bytes(value).as_ref().to_vec();
        self.record(raw_key, Some(raw_value));
        self.table.insert(key, value)
    }

    /// redb's `remove`, journaled when it removed something.
    pub(crate) fn remove<'a>(
        &mut self,
        key: impl std::borrow::Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        let key = key.borrow();
        let raw_key = K::as_bytes(key).as_ref().to_vec();
        let removed = self.table.get(key)?.is_some();
        if removed {
            self.record(raw_key, None);
        }
        self.table.remove(key)
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for JournaledTable<'t, K, V> {
    type Target = redb::Table<'t, K, V>;

    fn deref(&self) -> &Self::Target {
        &self.table
    }
}
