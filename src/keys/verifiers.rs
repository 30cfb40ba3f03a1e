//! Decoded ed25519 public keys, kept by their encoded form.
//!
//! Checking a signature starts with decoding the key (base32, CRC) and decompressing its curve
//! point, which costs a noticeable share of the check itself; the same few keys sign most of
//! what pbn verifies (each server's key signs its callout requests, an nkey user signs each of
//! its connects). [`verifying_key`] keeps the decoded key per encoded key.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use ed25519_dalek::VerifyingKey;

use super::{KeyError, KeyKind};

/// How many decoded keys are kept. Servers, accounts' signing keys and nkey users are the
/// signers; 4,096 covers the working set of a large deployment while bounding memory (about
/// 100 bytes a key) whatever keys arrive. When full, the cache starts over: a miss costs only
/// the decoding it saves.
const MAX_KEYS: usize = 4_096;

fn cache() -> &'static RwLock<HashMap<String, VerifyingKey>> {
    static CACHE: OnceLock<RwLock<HashMap<String, VerifyingKey>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The decoded ed25519 key of `key` (any ed25519 kind; a curve key is refused).
pub(super) fn verifying_key(key: &str) -> Result<VerifyingKey, KeyError> {
    if let Some(vk) = cache().read().unwrap_or_else(|e| e.into_inner()).get(key) {
        return Ok(*vk);
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
    let mut keys = cache().write().unwrap_or_else(|e| e.into_inner());
    if keys.len() >= MAX_KEYS {
        keys.clear();
    }
    keys.insert(key.to_string(), vk);
    Ok(vk)
}

#[cfg(test)]
fn cached(key: &str) -> bool {
    cache().read().unwrap().contains_key(key)
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
}
