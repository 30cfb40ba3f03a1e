//! The signature on an admin API request: who sends it, when, and a nonce, signed with the
//! admin's nkey (the seed in its creds file).
//!
//! A NATS message does not say who published it, so the request says it itself, in headers
//! beside the unchanged JSON payload: [`KEY_HEADER`] (the admin's public key),
//! [`TIME_HEADER`] (unix milliseconds), [`NONCE_HEADER`] (128 random bits, hex) and
//! [`SIGNATURE_HEADER`] (ed25519, hex) over [`signed_bytes`]: a fixed label, the three
//! values, the idempotency key and the payload. Changing any of them breaks the signature.

use crate::keys::KeyPair;

/// Header with the admin's public key (`U…`).
pub const KEY_HEADER: &str = "Pbn-Admin-Key";
/// Header with the request's time, unix milliseconds.
pub const TIME_HEADER: &str = "Pbn-Admin-Time";
/// Header with the request's nonce (32 lower-case hex digits).
pub const NONCE_HEADER: &str = "Pbn-Admin-Nonce";
/// Header with the signature (hex).
pub const SIGNATURE_HEADER: &str = "Pbn-Admin-Signature";
/// What every signed message starts with, so a signature made for anything else (a callout
/// nonce, say) is never a valid admin request signature.
const LABEL: &[u8] = b"pbn-admin-request/v1\n";

/// The signature fields of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The admin's public key.
    pub key: String,
    /// Unix milliseconds when it was signed.
    pub time_ms: i64,
    /// Random, unique per request.
    pub nonce: String,
    /// ed25519 signature of [`signed_bytes`], hex.
    pub signature: String,
}

/// Why the signature fields of a request are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// A header is missing.
    #[error("the request is not signed: header {0} is missing (use admin creds minted by `pbn admin admin add`)")]
    Missing(&'static str),
    /// A header is malformed.
    #[error("the request's {0} header is malformed")]
    Malformed(&'static str),
}

/// The bytes a request's signature covers.
pub fn signed_bytes(key: &str, time_ms: i64, nonce: &str, idem: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LABEL.len() + 160 + payload.len());
    out.extend_from_slice(LABEL);
    for part in [key, &time_ms.to_string(), nonce, idem] {
        out.extend_from_slice(part.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(payload);
    out
}

impl Signed {
    /// Signs `payload` (sent with idempotency key `idem`) as `kp` at `time_ms`, with a fresh
    /// nonce.
    pub fn sign(kp: &KeyPair, time_ms: i64, idem: &str, payload: &[u8]) -> Signed {
        let nonce = hex(&rand::random::<[u8; 16]>());
        let key = kp.public_key().to_string();
        let signature = hex(&kp.sign(&signed_bytes(&key, time_ms, &nonce, idem, payload)));
        Signed { key, time_ms, nonce, signature }
    }

    /// Reads the fields from message headers (`get` returns a header's value).
    pub fn from_headers<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Signed, EnvelopeError> {
        let field = |name: &'static str| get(name).ok_or(EnvelopeError::Missing(name));
        let key = field(KEY_HEADER)?.to_string();
        let time_ms = field(TIME_HEADER)?
            .parse::<i64>()
            .map_err(|_| EnvelopeError::Malformed(TIME_HEADER))?;
        let nonce = field(NONCE_HEADER)?.to_string();
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EnvelopeError::Malformed(NONCE_HEADER));
        }
        let signature = field(SIGNATURE_HEADER)?.to_string();
        if signature.len() > 256 {
            return Err(EnvelopeError::Malformed(SIGNATURE_HEADER));
        }
        Ok(Signed { key, time_ms, nonce, signature })
    }

    /// The header pairs carrying the fields.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (KEY_HEADER, self.key.clone()),
            (TIME_HEADER, self.time_ms.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }

    /// Whether the signature is the key's over this request.
    pub fn verifies(&self, idem: &str, payload: &[u8]) -> bool {
        let Some(sig) = unhex(&self.signature) else { return false };
        let msg = signed_bytes(&self.key, self.time_ms, &self.nonce, idem, payload);
        crate::keys::verify(&self.key, &msg, &sig).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    #[test]
    fn a_signature_covers_every_field_and_the_payload() {
        let kp = KeyPair::generate(KeyKind::User);
        let s = Signed::sign(&kp, 1_000, "idem", b"{\"op\":\"user_list\"}");
        assert!(s.verifies("idem", b"{\"op\":\"user_list\"}"));
        assert!(!s.verifies("idem", b"{\"op\":\"user_delete\"}"), "payload");
        assert!(!s.verifies("other", b"{\"op\":\"user_list\"}"), "idempotency key");
        let p = b"{\"op\":\"user_list\"}";
        assert!(!Signed { time_ms: 1_001, ..s.clone() }.verifies("idem", p), "time");
        assert!(!Signed { nonce: "0".repeat(32), ..s.clone() }.verifies("idem", p), "nonce");
        let other = KeyPair::generate(KeyKind::User).public_key().to_string();
        assert!(!Signed { key: other, ..s.clone() }.verifies("idem", p), "key");
        assert!(!Signed { signature: "zz".into(), ..s.clone() }.verifies("idem", p));
        assert_ne!(s.nonce, Signed::sign(&kp, 1_000, "idem", p).nonce, "fresh nonces");
    }

    #[test]
    fn headers_round_trip_and_bad_ones_are_refused() {
        let kp = KeyPair::generate(KeyKind::User);
        let s = Signed::sign(&kp, 5, "", b"{}");
        let h = s.headers();
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(Signed::from_headers(get), Ok(s));
        assert_eq!(Signed::from_headers(|_| None), Err(EnvelopeError::Missing(KEY_HEADER)));
        let bad_time = |n: &str| if n == TIME_HEADER { Some("soon") } else { get(n) };
        assert_eq!(Signed::from_headers(bad_time), Err(EnvelopeError::Malformed(TIME_HEADER)));
        let bad_nonce = |n: &str| if n == NONCE_HEADER { Some("x") } else { get(n) };
        assert_eq!(Signed::from_headers(bad_nonce), Err(EnvelopeError::Malformed(NONCE_HEADER)));
    }
}
