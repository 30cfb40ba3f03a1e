//! Sealing secrets at rest: XChaCha20-Poly1305 under a 32-byte store key.
//!
//! Pure: no files, no store. A sealed value is `[SEAL_VERSION] ++ nonce (24 random bytes) ++
//! ciphertext ++ tag (16 bytes)`; in JSON records it is written as unpadded URL-safe base64. The
//! 24-byte random nonce of XChaCha20 makes nonce reuse under one key negligible without a counter.
//!
//! Every sealed value is bound to where it lives by its associated data, a [`Slot`] (table, record
//! key, field): a sealed seed copied into another record or field does not open there. The
//! associated data starts with a domain tag, so a value sealed for one purpose (a seed, the key
//! check) never opens as another.
//!
//! # How the key reaches the store
//! - The store holds the key as a [`StoreKey`] (zeroized on drop, redacted `Debug`), set once
//!   by `Store::create_with` / `Store::open_for_with(path, command, wait, Option<KeySource>)`
//!   (and `open_read_only_with`). The key comes from a [`KeySource`]: the key itself (a key
//!   file) or a passphrase stretched with argon2id and the salt kept in the store.
//! - The store's `seal` table holds the key check value ([`seal_key_check`]) and, for a
//!   passphrase, the salt. Opening verifies the key with [`open_key_check`] before any record is
//!   read or migrated: an encrypted store without a key, or with another key, fails the open with
//!   its own error (exit 9), so no handle on a half-open store exists.
//! - Records keep their `Seed` fields in memory as plain [`Seed`]s (zeroized strings); the
//!   store's codec seals every seed string of a record on write and opens it on read with the
//!   record's [`Slot`] (table, key, JSON path of the field), so seed text is never in the file.
//! - At the edge, `pbn init` writes a fresh key file beside the store (`<store>.key`, 0600,
//!   never overwriting one) unless `PBN_KEY_PASSPHRASE` is set; every command finds the key in
//!   `--key-file` / `PBN_KEY_FILE`, else `PBN_KEY_PASSPHRASE`, else the file beside the store.
//! - A plain store (no key check) opened for writing with a key is sealed under it in one
//!   transaction; read-only, it is refused (`NotSealed`). A store's key is its key for life
//!   (there is no rekey).

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::BASE64URL_NOPAD;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::keys::Seed;

/// The sealed-value format this build writes (the first byte of every sealed value).
pub const SEAL_VERSION: u8 = 1;
/// Length of a store key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the random XChaCha20 nonce in bytes.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag in bytes.
pub const TAG_LEN: usize = 16;
/// Length of the argon2id salt stored beside a passphrase-derived key.
pub const SALT_LEN: usize = 16;

/// Domain tag of the associated data of a sealed seed.
const SEED_DOMAIN: &str = "pbn-seed-v1";
/// Domain tag and plaintext of the key check value.
const CHECK_DOMAIN: &str = "pbn-key-check-v1";

/// Errors of the seal module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The value does not open under this key and slot: wrong key, tampered bytes, or a value
    /// moved from another slot (AEAD cannot tell these apart).
    #[error("sealed value for {slot} does not open (wrong key, tampered, or moved)")]
    Open {
        /// The slot the value was opened for.
        slot: String,
    },
    /// The first byte is not a seal format this build knows.
    #[error("sealed value for {slot} has unknown format version {version}")]
    UnknownVersion {
        /// The slot the value was opened for.
        slot: String,
        /// The offending version byte.
        version: u8,
    },
    /// Too short to hold a version byte, a nonce and a tag.
    #[error("sealed value for {slot} is truncated ({len} bytes)")]
    Truncated {
        /// The slot the value was opened for.
        slot: String,
        /// Its length.
        len: usize,
    },
    /// The text form is not base64.
    #[error("sealed value for {slot} is not base64")]
    Encoding {
        /// The slot the value was opened for.
        slot: String,
    },
    /// The opened plaintext is not a valid seed.
    #[error("sealed value for {slot} does not hold a valid seed")]
    NotASeed {
        /// The slot the value was opened for.
        slot: String,
    },
    /// Key material of the wrong length.
    #[error("store key has {0} bytes, {KEY_LEN} required")]
    KeyLength(usize),
    /// A key file's text is not a base64 key.
    #[error("store key file text is not a base64 key")]
    KeyText,
    /// The key check value does not open: the key is not this store's key.
    #[error("the store key does not match this store")]
    WrongKey,
    /// Deriving a key from a passphrase failed.
    #[error("passphrase key derivation failed: {0}")]
    Kdf(String),
}

/// The 32-byte key every seed of a store is sealed under.
///
/// Zeroized on drop; `Debug` shows no key material. Not `Clone`: one owner, shared by reference.
pub struct StoreKey(Zeroizing<[u8; KEY_LEN]>);

impl StoreKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        StoreKey(bytes)
    }

    /// Wraps key bytes; anything but exactly [`KEY_LEN`] bytes is refused.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SealError> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| SealError::KeyLength(bytes.len()))?;
        Ok(StoreKey(Zeroizing::new(arr)))
    }

    /// Derives a key from a passphrase with argon2id (the crate's default parameters: 19 MiB,
    /// 2 passes, 1 lane, the OWASP minimum) and the store's salt.
    pub fn from_passphrase(passphrase: &[u8], salt: &[u8; SALT_LEN]) -> Result<Self, SealError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        argon2::Argon2::default()
            .hash_password_into(passphrase, salt, bytes.as_mut())
            .map_err(|e| SealError::Kdf(e.to_string()))?;
        Ok(StoreKey(bytes))
    }

    /// A fresh random salt for [`StoreKey::from_passphrase`].
    pub fn generate_salt() -> [u8; SALT_LEN] {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        salt
    }

    /// The key as the text of a key file: unpadded URL-safe base64 and a newline.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}\n", BASE64URL_NOPAD.encode(self.0.as_ref())))
    }

    /// Parses the text of a key file written by [`StoreKey::to_file_text`] (surrounding
    /// whitespace ignored).
    pub fn from_file_text(text: &str) -> Result<Self, SealError> {
        let bytes = Zeroizing::new(
            BASE64URL_NOPAD.decode(text.trim().as_bytes()).map_err(|_| SealError::KeyText)?,
        );
        StoreKey::from_slice(&bytes)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// Where a store's key comes from: the key itself (a key file) or a passphrase, stretched with
/// argon2id and the salt kept in the store (so the same passphrase opens only its own store).
pub enum KeySource {
    /// The key (read from a key file).
    Key(StoreKey),
    /// A passphrase. Never printed.
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeySource::Key(_) => "KeySource::Key(<redacted>)",
            KeySource::Passphrase(_) => "KeySource::Passphrase(<redacted>)",
        })
    }
}

/// Where a sealed value lives: its associated data. Names, not secrets, so it may be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot<'a> {
    /// The store table.
    pub table: &'a str,
    /// The record key in that table.
    pub key: &'a str,
    /// The field of the record (with an index for lists, e.g. `signing_keys.2`).
    pub field: &'a str,
}

impl Slot<'_> {
    /// The associated data: domain, table, key and field, each length-prefixed so no two slots
    /// encode alike.
    fn associated_data(&self, domain: &str) -> Vec<u8> {
        let mut ad = Vec::with_capacity(64);
        for part in [domain, self.table, self.key, self.field] {
            ad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            ad.extend_from_slice(part.as_bytes());
        }
        ad
    }
}

impl fmt::Display for Slot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.table, self.key, self.field)
    }
}

fn seal_bytes(key: &StoreKey, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = key
        .cipher()
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: ad })
        .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_bytes(
    key: &StoreKey,
    ad: &[u8],
    sealed: &[u8],
    slot: &dyn fmt::Display,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let slot = || slot.to_string();
    match sealed.first() {
        None => return Err(SealError::Truncated { slot: slot(), len: 0 }),
        Some(&SEAL_VERSION) => {}
        Some(&version) => return Err(SealError::UnknownVersion { slot: slot(), version }),
    }
    if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
        return Err(SealError::Truncated { slot: slot(), len: sealed.len() });
    }
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    key.cipher()
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open { slot: slot() })
}

/// Seals `seed` for `slot`: the text stored in the record in place of the seed.
pub fn seal_seed(key: &StoreKey, slot: Slot<'_>, seed: &Seed) -> String {
    let ad = slot.associated_data(SEED_DOMAIN);
    BASE64URL_NOPAD.encode(&seal_bytes(key, &ad, seed.expose().as_bytes()))
}

/// Opens a value written by [`seal_seed`] for the same `slot` under the same key.
pub fn open_seed(key: &StoreKey, slot: Slot<'_>, sealed: &str) -> Result<Seed, SealError> {
    let bytes = BASE64URL_NOPAD
        .decode(sealed.as_bytes())
        .map_err(|_| SealError::Encoding { slot: slot.to_string() })?;
    let ad = slot.associated_data(SEED_DOMAIN);
    let plain = open_bytes(key, &ad, &bytes, &slot)?;
    let text =
        std::str::from_utf8(&plain).map_err(|_| SealError::NotASeed { slot: slot.to_string() })?;
    Seed::new(text).map_err(|_| SealError::NotASeed { slot: slot.to_string() })
}

/// The key check value kept in a sealed store's metadata: a known plaintext sealed under the
/// key, so opening the store tells a wrong key before reading any record.
pub fn seal_key_check(key: &StoreKey) -> Vec<u8> {
    let slot = Slot { table: "metadata", key: "key_check", field: "" };
    seal_bytes(key, &slot.associated_data(CHECK_DOMAIN), CHECK_DOMAIN.as_bytes())
}

/// Verifies a value written by [`seal_key_check`]: [`SealError::WrongKey`] when `key` is not
/// the key it was made with (or the value was tampered with).
pub fn open_key_check(key: &StoreKey, check: &[u8]) -> Result<(), SealError> {
    let slot = Slot { table: "metadata", key: "key_check", field: "" };
    let plain = open_bytes(key, &slot.associated_data(CHECK_DOMAIN), check, &slot)
        .map_err(|_| SealError::WrongKey)?;
    if plain.as_slice() == CHECK_DOMAIN.as_bytes() {
        Ok(())
    } else {
        Err(SealError::WrongKey)
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
