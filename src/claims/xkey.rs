//! Auth-callout xkey boxes: `xkv1` ‖ 24-byte nonce ‖ NaCl box, as Go's nkeys seals them.
//!
//! nats-server encrypts a callout request to the account's `authorization.xkey` when one is set
//! (the sender's key is in the `Nats-Server-Xkey` header and in `server_id.xkey`); the callout
//! then seals its response back to the server's key.

use crate::keys::{CurvePublicKey, XKeyPair};

use super::ClaimsError;

/// The first bytes of every sealed box.
pub const XKEY_BOX_PREFIX: &[u8] = b"xkv1";

/// True when `body` looks like a sealed box rather than a plain JWT.
pub fn is_sealed(body: &[u8]) -> bool {
    body.starts_with(XKEY_BOX_PREFIX)
}

/// Seals `plain` from `ours` to `recipient`.
pub fn seal(
    ours: &XKeyPair,
    plain: &[u8],
    recipient: &CurvePublicKey,
) -> Result<Vec<u8>, ClaimsError> {
    ours.seal(plain, recipient).map_err(ClaimsError::Xkey)
}

/// Opens a box `sender` sealed to `ours`.
pub fn open(
    ours: &XKeyPair,
    sealed: &[u8],
    sender: &CurvePublicKey,
) -> Result<Vec<u8>, ClaimsError> {
    ours.open(sealed, sender).map_err(ClaimsError::Xkey)
}
