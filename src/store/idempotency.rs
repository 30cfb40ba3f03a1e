//! Remembered results of requests by idempotency key, so a retried request is answered with
//! its first result instead of being applied twice.
//!
//! A result is written by the same write transaction as the change it reports, so it exists
//! exactly when the change was committed, and survives a restart. The table is bounded by age
//! and count, pruned oldest first whenever a result is remembered.

use std::cell::RefCell;

use redb::{ReadableTable, ReadableTableMetadata};

use super::read::sealed::Source;
use super::tables;
use super::{backend, Store, StoreError, WriteTx};

/// How long a remembered result is kept: a day covers any sensible retry of a lost reply.
pub const REMEMBER_MAX_AGE_MS: i64 = 24 * 3600 * 1000;
/// How many results are kept at most: bounds the table (results are at most a few KiB) even
/// under a flood of distinct keys within a day.
pub const REMEMBER_MAX_COUNT: u64 = 10_000;

/// The key every write committed on this thread also records, while
/// [`Store::with_idempotency_key`] runs.
struct Tag {
    key: String,
    now_ms: i64,
}

thread_local! {
    static TAG: RefCell<Option<Tag>> = const { RefCell::new(None) };
}

impl Store {
    /// Runs `f` (on this thread) so that every write transaction it commits also records `key`
    /// as applied at `now_ms`, with an empty result: the change and the proof that it was
    /// applied are committed together, so a retry can never apply it twice. Record the result
    /// afterwards with `WriteTx::remember` (a lost result leaves the empty one).
    pub fn with_idempotency_key<T>(&self, key: &str, now_ms: i64, f: impl FnOnce() -> T) -> T {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                TAG.with(|t| t.borrow_mut().take());
            }
        }
        TAG.with(|t| *t.borrow_mut() = Some(Tag { key: key.to_string(), now_ms }));
        let _reset = Reset;
        f()
    }
}

/// Records the current thread's idempotency key (if any) in `tx`, just before it commits.
pub(super) fn record_tag(tx: &mut WriteTx) -> Result<(), StoreError> {
    let tag = TAG.with(|t| t.borrow().as_ref().map(|t| (t.key.clone(), t.now_ms)));
    match tag {
        Some((key, now_ms)) => {
            tx.remember(&key, now_ms, b"", REMEMBER_MAX_AGE_MS, REMEMBER_MAX_COUNT)
        }
        None => Ok(()),
    }
}

/// A result remembered under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// When the request was applied, unix milliseconds.
    pub at_ms: i64,
    /// The encoded result, as the caller stored it.
    pub result: Vec<u8>,
}

impl WriteTx {
    /// Remembers `result` under `key` (applied at `now_ms`), first forgetting results older
    /// than `max_age_ms` and then the oldest ones beyond `max_count - 1`.
    pub fn remember(
        &mut self,
        key: &str,
        now_ms: i64,
        result: &[u8],
        max_age_ms: i64,
        max_count: u64,
    ) -> Result<(), StoreError> {
        self.prune_remembered(now_ms.saturating_sub(max_age_ms), max_count.saturating_sub(1))?;
        let mut table = self.open(tables::IDEMPOTENCY)?;
        let old = table.insert(key, (now_ms, result)).map_err(backend("writing a key"))?;
        let old_at = old.map(|g| g.value().0);
        drop(table);
        let mut by_time = self.open(tables::IDEMPOTENCY_BY_TIME)?;
        if let Some(at) = old_at {
            by_time.remove((at, key)).map_err(backend("writing a key"))?;
        }
        by_time.insert((now_ms, key), ()).map_err(backend("writing a key"))?;
        Ok(())
    }

    /// Forgets results applied before `cutoff_ms`, then the oldest beyond `keep`.
    fn prune_remembered(&mut self, cutoff_ms: i64, keep: u64) -> Result<(), StoreError> {
        let mut by_time = self.open(tables::IDEMPOTENCY_BY_TIME)?;
        let mut table = self.open(tables::IDEMPOTENCY)?;
        let mut excess = table.len().map_err(backend("counting keys"))?.saturating_sub(keep);
        loop {
            let oldest = by_time.first().map_err(backend("reading keys"))?;
            let Some((at, key)) = oldest.map(|(k, _)| {
                let (at, key) = k.value();
                (at, key.to_string())
            }) else {
                break;
            };
            if at >= cutoff_ms && excess == 0 {
                break;
            }
            by_time.remove((at, key.as_str())).map_err(backend("removing a key"))?;
            table.remove(key.as_str()).map_err(backend("removing a key"))?;
            excess = excess.saturating_sub(1);
        }
        Ok(())
    }
}

/// The result remembered under `key` in `src`, if any (pruned ones are gone).
pub(super) fn remembered<S: Source + ?Sized>(
    src: &S,
    key: &str,
) -> Result<Option<Remembered>, StoreError> {
    let table = src.table(tables::IDEMPOTENCY)?;
    let hit = table.get(key).map_err(backend("reading a key"))?;
    Ok(hit.map(|g| {
        let (at_ms, result) = g.value();
        Remembered { at_ms, result: result.to_vec() }
    }))
}
