//! Seeds sealed inside records: the codec's pass over a record's JSON on a keyed store.
//!
//! On write, every string of the record that is a valid nkey seed is replaced by
//! `sealed:` + [`seal::seal_seed`] for the slot (table, record key, JSON path of the field, e.g.
//! `signing_keys.0.seed`); on read, every `sealed:` string is opened for the same slot. The pass
//! works on any record type, so a seed field added later is sealed without being listed here.
//! The JSON tree's strings are wiped after use, so plain seed text lives only in the record's
//! zeroized `Seed`s.

use serde_json::Value;
use zeroize::Zeroize;

use crate::keys::Seed;
use crate::seal::{self, Slot, StoreKey};

/// The marker of a sealed string; no seed starts with it (seeds start with `S`).
pub(crate) const SEALED_PREFIX: &str = "sealed:";

/// What a record's seeds are sealed under and bound to.
#[derive(Clone, Copy)]
pub(crate) struct Sealer<'a> {
    /// The store key.
    pub key: &'a StoreKey,
    /// The table of the record.
    pub table: &'a str,
    /// The record's key.
    pub record: &'a str,
}

impl Sealer<'_> {
    fn slot<'p>(&'p self, path: &'p str) -> Slot<'p> {
        Slot { table: self.table, key: self.record, field: path }
    }
}

/// Whether `bytes` (an encoded record) holds a sealed string.
pub(crate) fn holds_sealed(bytes: &[u8]) -> bool {
    let marker = SEALED_PREFIX.as_bytes();
    bytes.windows(marker.len()).any(|w| w == marker)
}

/// Replaces every seed string of `value` by its sealed form, wiping the plain text.
pub(crate) fn seal_tree(sealer: Sealer<'_>, value: &mut Value) {
    let _ = walk(value, &mut String::new(), &mut |path, s| {
        if let Ok(seed) = Seed::new(s.as_str()) {
            let sealed = seal::seal_seed(sealer.key, sealer.slot(path), &seed);
            let mut plain = std::mem::replace(s, format!("{SEALED_PREFIX}{sealed}"));
            plain.zeroize();
        }
        Ok::<(), std::convert::Infallible>(())
    });
}

/// Opens every sealed string of `value` in place.
pub(crate) fn open_tree(sealer: Sealer<'_>, value: &mut Value) -> Result<(), seal::SealError> {
    walk(value, &mut String::new(), &mut |path, s| {
        if let Some(sealed) = s.strip_prefix(SEALED_PREFIX) {
            let seed = seal::open_seed(sealer.key, sealer.slot(path), sealed)?;
            let mut old = std::mem::replace(s, seed.expose().to_string());
            old.zeroize();
        }
        Ok(())
    })
}

/// Overwrites every string of `value` with zeros before it is dropped.
pub(crate) fn wipe(mut value: Value) {
    let _ = walk(&mut value, &mut String::new(), &mut |_, s| {
        s.zeroize();
        Ok::<(), ()>(())
    });
}

/// Calls `f` on every string of `value` with its JSON path (`a.b.0.c`).
fn walk<E>(
    value: &mut Value,
    path: &mut String,
    f: &mut impl FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    let mut child = |path: &mut String, part: &str, v: &mut Value| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(part);
        let r = walk(v, path, f);
        path.truncate(len);
        r
    };
    match value {
        Value::String(s) => f(path, s),
        Value::Array(items) => {
            items.iter_mut().enumerate().try_for_each(|(i, v)| child(path, &i.to_string(), v))
        }
        Value::Object(map) => map.iter_mut().try_for_each(|(k, v)| child(path, k, v)),
        _ => Ok(()),
    }
}
