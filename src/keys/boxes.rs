//! NaCl boxes between one xkey and its peers, precomputed once per peer.
//!
//! A box costs an X25519 shared-key computation plus HSalsa20 before any byte is sealed or
//! opened; the callout opens every request from a server xkey and seals the answer back to it,
//! and a server keeps its xkey for its whole life. [`Boxes`] keeps the precomputed box per peer
//! key, so each login only runs XSalsa20-Poly1305. The wire format is nkeys' (`xkv1` ‖ 24-byte
//! nonce ‖ box), which Go's nkeys and nats-server read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crypto_box::aead::{Aead, AeadCore, OsRng};
use crypto_box::{Nonce, PublicKey, SalsaBox, SecretKey};

/// The first bytes of every box.
const VERSION: &[u8] = b"xkv1";
/// Nonce length of XSalsa20.
const NONCE_LEN: usize = 24;

/// How many peers' boxes are kept. A peer is a nats-server process (each start makes a new
/// xkey), so a deployment has tens of them; 1,024 keeps every live server of a large cluster
/// through many restarts while bounding memory (a box is under 100 bytes) whatever peer keys
/// arrive. When full, the cache starts over: a miss costs only the computation it saves.
const MAX_PEERS: usize = 1_024;

/// Why a box did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BoxError {
    /// No `xkv1` prefix, or too short to hold a nonce and a tag.
    Malformed,
    /// The box was not sealed by that peer to this key, or was changed.
    Open,
}

/// An xkey's secret with the boxes to each peer seen so far.
pub(crate) struct Boxes {
    secret: SecretKey,
    peers: Mutex<HashMap<[u8; 32], Arc<SalsaBox>>>,
}

impl Boxes {
    /// Boxes for the xkey whose raw secret is `secret`.
    pub(crate) fn new(secret: [u8; 32]) -> Self {
        Boxes { secret: SecretKey::from(secret), peers: Mutex::new(HashMap::new()) }
    }

    fn with(&self, peer: &[u8; 32]) -> Arc<SalsaBox> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = peers.get(peer) {
            return b.clone();
        }
        if peers.len() >= MAX_PEERS {
            peers.clear();
        }
        let b = Arc::new(SalsaBox::new(&PublicKey::from(*peer), &self.secret));
        peers.insert(*peer, b.clone());
        b
    }

    /// Seals `plain` to `peer` under a fresh random nonce.
    pub(crate) fn seal(&self, plain: &[u8], peer: &[u8; 32]) -> Vec<u8> {
        let nonce = SalsaBox::generate_nonce(&mut OsRng);
        let sealed =
            self.with(peer).encrypt(&nonce, plain).expect("sealing into a Vec cannot fail");
        let mut out = Vec::with_capacity(VERSION.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a box `peer` sealed to this key.
    pub(crate) fn open(&self, input: &[u8], peer: &[u8; 32]) -> Result<Vec<u8>, BoxError> {
        let body = input.strip_prefix(VERSION).ok_or(BoxError::Malformed)?;
        if body.len() <= NONCE_LEN {
            return Err(BoxError::Malformed);
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        self.with(peer).decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| BoxError::Open)
    }

    #[cfg(test)]
    fn peer_count(&self) -> usize {
        self.peers.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (nkeys::XKey, Boxes, [u8; 32]) {
        let x = nkeys::XKey::new();
        let (_, raw) = nkeys::decode_seed(&x.seed().unwrap()).unwrap();
        let (_, public) = nkeys::from_public_key(&x.public_key()).unwrap();
        (x, Boxes::new(raw), public)
    }

    #[test]
    fn boxes_interoperate_with_nkeys_both_ways() {
        let (a, a_boxes, a_pub) = pair();
        let (b, b_boxes, b_pub) = pair();
        let sealed = a_boxes.seal(b"hello", &b_pub);
        let b_peer = nkeys::XKey::from_public_key(&a.public_key()).unwrap();
        assert_eq!(b.open(&sealed, &b_peer).unwrap(), b"hello");
        let a_peer = nkeys::XKey::from_public_key(&b.public_key()).unwrap();
        let back = a.seal(b"world", &a_peer).unwrap();
        assert_eq!(b_boxes.open(&back, &a_pub).unwrap(), b"world");
        assert_eq!(a_boxes.peer_count(), 1);
        assert_eq!(b_boxes.peer_count(), 1);
    }

    #[test]
    fn a_changed_or_foreign_box_does_not_open() {
        let (_, a_boxes, a_pub) = pair();
        let (_, b_boxes, b_pub) = pair();
        let (_, _, c_pub) = pair();
        let mut sealed = a_boxes.seal(b"hello", &b_pub);
        assert_eq!(b_boxes.open(&sealed, &c_pub), Err(BoxError::Open));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(b_boxes.open(&sealed, &a_pub), Err(BoxError::Open));
        assert_eq!(b_boxes.open(b"xkv1short", &a_pub), Err(BoxError::Malformed));
        assert_eq!(b_boxes.open(&sealed[4..], &a_pub), Err(BoxError::Malformed));
    }

    #[test]
    fn the_peer_cache_is_bounded() {
        let (_, boxes, _) = pair();
        for i in 0..=MAX_PEERS {
            let mut peer = [0u8; 32];
            peer[..8].copy_from_slice(&(i as u64).to_le_bytes());
            boxes.seal(b"x", &peer);
        }
        assert!(boxes.peer_count() <= MAX_PEERS);
    }
}
