//! API tokens: generated once, shown once, stored only as a SHA-256 hash.

use std::fmt;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Secret;

/// A freshly generated API token: `pbn_` followed by 32 random bytes in base64url (no padding).
///
/// It is shown to the user once; the store keeps only [`token_hash`] of it. `Debug` is redacted.
#[derive(Clone)]
pub struct ApiTokenSecret(Secret);

impl ApiTokenSecret {
    /// The fixed prefix of every pbn token; it makes tokens recognisable to secret scanners.
    pub const PREFIX: &'static str = "pbn_";
    /// Random bytes per token (256 bits of entropy).
    pub const RANDOM_BYTES: usize = 32;
    /// Length of a token in characters: the prefix plus 43 base64url characters.
    pub const LEN: usize = 4 + 43;

    /// A new random token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; Self::RANDOM_BYTES]);
        OsRng.fill_bytes(bytes.as_mut());
        let mut text = String::with_capacity(Self::LEN);
        text.push_str(Self::PREFIX);
        text.push_str(&BASE64URL_NOPAD.encode(bytes.as_ref()));
        ApiTokenSecret(Secret::new(text))
    }

    /// The token text, to show once. Callers must not log it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The hash to store: [`token_hash`] of this token.
    pub fn hash(&self) -> String {
        token_hash(self.expose())
    }
}

impl fmt::Debug for ApiTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokenSecret(<redacted>)")
    }
}

/// Lower-case hex SHA-256 of a token, the form in which the store keeps and looks up tokens.
///
/// A fast unsalted hash is right here, unlike for passwords: a token carries 256 random bits, so
/// nobody can guess it offline however fast the hash is, and an unsalted hash lets the store find
/// a token by its hash in one index lookup.
pub fn token_hash(token: &str) -> String {
    HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_has_prefix_length_and_entropy() {
        let t = ApiTokenSecret::generate();
        assert!(t.expose().starts_with("pbn_"));
        assert_eq!(t.expose().len(), ApiTokenSecret::LEN);
        let raw = BASE64URL_NOPAD.decode(&t.expose().as_bytes()[4..]).unwrap();
        assert_eq!(raw.len(), ApiTokenSecret::RANDOM_BYTES);
        assert_ne!(t.expose(), ApiTokenSecret::generate().expose());
    }

    #[test]
    fn generate_hash_compare_round_trip() {
        let t = ApiTokenSecret::generate();
        let stored = t.hash();
        assert_eq!(stored.len(), 64);
        assert!(stored.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let presented = t.expose().to_string();
        assert_eq!(token_hash(&presented), stored);
        let other = ApiTokenSecret::generate();
        assert_ne!(token_hash(other.expose()), stored);
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_debug_is_redacted() {
        let t = ApiTokenSecret::generate();
        let shown = format!("{t:?}");
        assert!(!shown.contains(t.expose()), "{shown}");
    }
}
