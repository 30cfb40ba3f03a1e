//! nkey logins: the client signs the server nonce with its user seed and sends the signature.
//!
//! nats-server (CONNECT handling in `server/auth.go`) verifies the ed25519 signature over the
//! ASCII bytes of the nonce string it sent in INFO, decoding `sig` as unpadded base64url first and
//! falling back to padded standard base64. Go's decoders there are not strict about the unused
//! low bits of the last character, so neither are these. The callout sees the same nonce in
//! `client_info.nonce` (present only when the client sent `sig`) and `sig` in `connect_opts.sig`.

use std::sync::LazyLock;

use data_encoding::{Encoding, BASE64, BASE64URL_NOPAD};

use super::AuthError;
use crate::keys::UserPublicKey;

/// Unpadded base64url that ignores non-zero trailing bits, like Go's `base64.RawURLEncoding`.
static RAW_URL: LazyLock<Encoding> = LazyLock::new(|| lenient(&BASE64URL_NOPAD));
/// Padded standard base64 that ignores non-zero trailing bits, like Go's `base64.StdEncoding`.
static STD: LazyLock<Encoding> = LazyLock::new(|| lenient(&BASE64));

fn lenient(base: &Encoding) -> Encoding {
    let mut spec = base.specification();
    spec.check_trailing_bits = false;
    // A specification taken from a valid encoding with one flag relaxed is always valid.
    spec.encoding().expect("relaxing trailing-bit checks keeps a valid base64 specification")
}

/// Decodes a CONNECT `sig` the way nats-server does: base64url without padding, else standard
/// base64 with padding.
pub fn decode_signature(sig_b64: &str) -> Result<Vec<u8>, AuthError> {
    RAW_URL
        .decode(sig_b64.as_bytes())
        .or_else(|_| STD.decode(sig_b64.as_bytes()))
        .map_err(|_| AuthError::SignatureEncoding { len: sig_b64.len() })
}

/// Checks that `sig_b64` is `public`'s ed25519 signature over the server nonce `nonce`.
///
/// The nonce is signed as its ASCII text, exactly as sent in INFO; it is not base64-decoded.
pub fn verify_nkey_signature(
    public: &UserPublicKey,
    nonce: &str,
    sig_b64: &str,
) -> Result<(), AuthError> {
    if nonce.is_empty() {
        return Err(AuthError::MissingNonce { key: public.to_string() });
    }
    if sig_b64.is_empty() {
        return Err(AuthError::MissingSignature { key: public.to_string() });
    }
    let sig = decode_signature(sig_b64)?;
    public
        .verify(nonce.as_bytes(), &sig)
        .map_err(|_| AuthError::BadSignature { key: public.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};

    const NONCE: &str = "nGxHk4yq4yDgZ1c";

    fn user() -> (KeyPair, UserPublicKey) {
        let kp = KeyPair::generate(KeyKind::User);
        let pk = UserPublicKey::parse(kp.public_key()).unwrap();
        (kp, pk)
    }

    #[test]
    fn raw_url_signature_over_nonce_verifies() {
        let (kp, pk) = user();
        let sig = BASE64URL_NOPAD.encode(&kp.sign(NONCE.as_bytes()));
        assert!(!sig.contains('='));
        assert_eq!(verify_nkey_signature(&pk, NONCE, &sig), Ok(()));
    }

    #[test]
    fn padded_standard_base64_is_accepted_too() {
        let (kp, pk) = user();
        // 64 bytes always end in "==" in padded base64, which the unpadded decoder refuses, so
        // this goes through the fallback.
        let sig = BASE64.encode(&kp.sign(NONCE.as_bytes()));
        assert!(sig.ends_with("=="));
        assert_eq!(verify_nkey_signature(&pk, NONCE, &sig), Ok(()));
    }

    #[test]
    fn nonzero_trailing_bits_are_ignored_like_go() {
        let (kp, pk) = user();
        let mut sig = BASE64URL_NOPAD.encode(&kp.sign(NONCE.as_bytes())).into_bytes();
        // 64 bytes leave 4 unused bits in the last of 86 characters; set one of them.
        let last = sig.len() - 1;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|&c| c == sig[last]).unwrap();
        sig[last] = alphabet[pos | 1];
        let sig = String::from_utf8(sig).unwrap();
        assert_eq!(verify_nkey_signature(&pk, NONCE, &sig), Ok(()));
    }

    #[test]
    fn wrong_nonce_or_wrong_key_fails() {
        let (kp, pk) = user();
        let (_, other) = user();
        let sig = BASE64URL_NOPAD.encode(&kp.sign(NONCE.as_bytes()));
        assert_eq!(
            verify_nkey_signature(&pk, "another-nonce", &sig),
            Err(AuthError::BadSignature { key: pk.to_string() })
        );
        assert_eq!(
            verify_nkey_signature(&other, NONCE, &sig),
            Err(AuthError::BadSignature { key: other.to_string() })
        );
    }

    #[test]
    fn missing_or_garbled_input_is_a_distinct_error() {
        let (kp, pk) = user();
        let sig = BASE64URL_NOPAD.encode(&kp.sign(NONCE.as_bytes()));
        assert!(matches!(
            verify_nkey_signature(&pk, "", &sig),
            Err(AuthError::MissingNonce { .. })
        ));
        assert!(matches!(
            verify_nkey_signature(&pk, NONCE, ""),
            Err(AuthError::MissingSignature { .. })
        ));
        assert_eq!(
            verify_nkey_signature(&pk, NONCE, "not base64!"),
            Err(AuthError::SignatureEncoding { len: 11 })
        );
        // Valid base64 of the wrong length is a failed verification, not a panic.
        assert!(matches!(
            verify_nkey_signature(&pk, NONCE, "AAAA"),
            Err(AuthError::BadSignature { .. })
        ));
    }
}
