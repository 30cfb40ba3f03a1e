//! Decoded ed25519 public keys, kept by their encoded form, and precomputed tables for the
//! hottest of them.
//!
//! Checking a signature starts with decoding the key (base32, CRC) and decompressing its curve
//! point, which costs a noticeable share of the check itself; the same few keys sign most of
//! what pbn verifies (each server's key signs its callout requests, an account's signing key
//! its user JWTs). [`verifying_key`] keeps the decoded key per encoded key, and [`verify`]
//! switches a key that keeps signing to a precomputed table (`keys::ed25519`), which checks a
//! signature in about two thirds of the time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use super::ed25519::{self, KeyTable};
use super::{KeyError, KeyKind};

/// How many decoded keys are kept. Servers, accounts' signing keys and nkey users are the
/// signers; 4,096 covers the working set of a large deployment while bounding memory (about
/// 100 bytes a key) whatever keys arrive. When full, the cache starts over: a miss costs only
/// the decoding it saves.
const MAX_KEYS: usize = 4_096;

/// How many keys have a table. A table is 40 KiB, so this bounds them to 2.5 MiB, and it
/// covers the servers of a cluster and the signing keys of the busiest accounts; when full,
/// the least recently used table makes room.
const MAX_TABLES: usize = 64;

/// A key gets a table on its this-many-th verification within one [`EPOCH`]. Building a table
/// costs about as much as 10 table-less verifications save, so a key earns one only once it
/// has shown that it keeps signing.
const ADMIT_AFTER: u32 = 32;

/// Verifications after which every key's count starts over. Only a key with at least
/// [`ADMIT_AFTER`] of any [`EPOCH`] verifications gets a table, and at most once an epoch:
/// however many distinct keys sign, at most `EPOCH / ADMIT_AFTER` tables (512, at most 3.3 µs
/// of building per verification on average) are built an epoch, and one-off signers (nkey users
/// logging in now and then) never get one.
const EPOCH: u64 = 16_384;

/// A decoded key and how often it was verified without a table this epoch.
struct Known {
    key: VerifyingKey,
    uses: AtomicU32,
}

/// A key's table and when it was last used (a [`verify`] count), for the LRU choice.
struct Hot {
    table: Arc<KeyTable>,
    last_use: AtomicU64,
}

fn cache() -> &'static RwLock<HashMap<String, Arc<Known>>> {
    static CACHE: OnceLock<RwLock<HashMap<String, Arc<Known>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The tables, by the key's 32 raw bytes; at most [`MAX_TABLES`].
fn hot() -> &'static RwLock<HashMap<[u8; 32], Hot>> {
    static HOT: OnceLock<RwLock<HashMap<[u8; 32], Hot>>> = OnceLock::new();
    HOT.get_or_init(Default::default)
}

/// Verifications so far: the clock of the epochs and of the LRU choice.
static VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

fn known(key: &str) -> Result<Arc<Known>, KeyError> {
    if let Some(k) = cache().read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Ok(k.clone());
    }
    let invalid = || KeyError::InvalidPublicKey(key.to_string());
    let (prefix, raw) = nkeys::from_public_key(key).map_err(|_| invalid())?;
    match KeyKind::from_prefix_byte(prefix >> 3) {
        Some(KeyKind::Curve) => {
            return Err(KeyError::WrongKind { key: key.to_string(), expected: KeyKind::User })
        }
        Some(_) => {}
        None => return Err(invalid()),
    }
    let vk = VerifyingKey::from_bytes(&raw).map_err(|_| invalid())?;
    let known = Arc::new(Known { key: vk, uses: AtomicU32::new(0) });
    let mut keys = cache().write().unwrap_or_else(|e| e.into_inner());
    if keys.len() >= MAX_KEYS {
        keys.clear();
    }
    keys.insert(key.to_string(), known.clone());
    Ok(known)
}

/// The decoded ed25519 key of `key` (any ed25519 kind; a curve key is refused).
#[cfg(test)]
pub(super) fn verifying_key(key: &str) -> Result<VerifyingKey, KeyError> {
    Ok(known(key)?.key)
}

/// Whether `signature` is `key`'s signature of `message` (ed25519-dalek's
/// `VerifyingKey::verify`); an error only for a key that is not an ed25519 public key.
pub(super) fn verify(key: &str, message: &[u8], signature: &[u8; 64]) -> Result<bool, KeyError> {
    let known = known(key)?;
    let now = VERIFICATIONS.fetch_add(1, Ordering::Relaxed) + 1;
    if now % EPOCH == 0 {
        start_epoch();
    }
    if let Some(table) = table(known.key.as_bytes(), now) {
        return Ok(ed25519::verify(&table, message, signature));
    }
    // Exactly one verification sees the count reach the mark: one build per key and epoch.
    if known.uses.fetch_add(1, Ordering::Relaxed) + 1 == ADMIT_AFTER {
        admit(&known.key, now);
    }
    Ok(known.key.verify(message, &Signature::from_bytes(signature)).is_ok())
}

fn table(key: &[u8; 32], now: u64) -> Option<Arc<KeyTable>> {
    let hot = hot().read().unwrap_or_else(|e| e.into_inner());
    let entry = hot.get(key)?;
    entry.last_use.store(now, Ordering::Relaxed);
    Some(entry.table.clone())
}

/// Builds `key`'s table (outside the lock) and keeps it, evicting the least recently used one
/// when [`MAX_TABLES`] are kept.
fn admit(key: &VerifyingKey, now: u64) {
    let table = Arc::new(KeyTable::new(key));
    let mut hot = hot().write().unwrap_or_else(|e| e.into_inner());
    if hot.len() >= MAX_TABLES && !hot.contains_key(key.as_bytes()) {
        let oldest = hot.iter().min_by_key(|(_, h)| h.last_use.load(Ordering::Relaxed));
        if let Some(oldest) = oldest.map(|(k, _)| *k) {
            hot.remove(&oldest);
        }
    }
    hot.insert(*table.key().as_bytes(), Hot { table, last_use: AtomicU64::new(now) });
}

fn start_epoch() {
    for known in cache().read().unwrap_or_else(|e| e.into_inner()).values() {
        known.uses.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
fn cached(key: &str) -> bool {
    cache().read().unwrap().contains_key(key)
}

#[cfg(test)]
fn has_table(key: &VerifyingKey) -> bool {
    hot().read().unwrap().contains_key(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    #[test]
    fn a_key_is_decoded_once_and_bad_keys_are_refused() {
        let kp = KeyPair::generate(KeyKind::Account);
        let first = verifying_key(kp.public_key()).unwrap();
        assert!(cached(kp.public_key()));
        assert_eq!(verifying_key(kp.public_key()).unwrap(), first);
        let x = crate::keys::XKeyPair::generate();
        assert!(matches!(verifying_key(x.public_key()), Err(KeyError::WrongKind { .. })));
        assert!(!cached(x.public_key()));
        assert!(matches!(verifying_key("ANOTAKEY"), Err(KeyError::InvalidPublicKey(_))));
    }

    #[test]
    fn the_cache_is_bounded() {
        for _ in 0..MAX_KEYS + 10 {
            verifying_key(KeyPair::generate(KeyKind::User).public_key()).unwrap();
        }
        assert!(cache().read().unwrap().len() <= MAX_KEYS);
    }

    fn signature(kp: &KeyPair, message: &[u8]) -> [u8; 64] {
        kp.sign(message).try_into().unwrap()
    }

    #[test]
    fn a_key_that_keeps_signing_gets_a_table_and_still_refuses_bad_signatures() {
        let kp = KeyPair::generate(KeyKind::Server);
        let vk = verifying_key(kp.public_key()).unwrap();
        let sig = signature(&kp, b"request");
        for _ in 0..ADMIT_AFTER {
            assert_eq!(verify(kp.public_key(), b"request", &sig), Ok(true));
        }
        // Another test's epoch boundary may have reset the count once: a second round admits.
        for _ in 0..ADMIT_AFTER {
            if has_table(&vk) {
                break;
            }
            assert_eq!(verify(kp.public_key(), b"request", &sig), Ok(true));
        }
        assert!(has_table(&vk));
        assert_eq!(verify(kp.public_key(), b"request", &sig), Ok(true));
        assert_eq!(verify(kp.public_key(), b"requesT", &sig), Ok(false));
        let mut bad = sig;
        bad[40] ^= 1;
        assert_eq!(verify(kp.public_key(), b"request", &bad), Ok(false));
        let other = KeyPair::generate(KeyKind::Server);
        assert_eq!(verify(kp.public_key(), b"request", &signature(&other, b"request")), Ok(false));
    }

    #[test]
    fn the_tables_are_bounded() {
        let keys: Vec<KeyPair> =
            (0..MAX_TABLES + 3).map(|_| KeyPair::generate(KeyKind::Account)).collect();
        for kp in &keys {
            admit(&verifying_key(kp.public_key()).unwrap(), 0);
        }
        assert!(hot().read().unwrap().len() <= MAX_TABLES);
    }
}
