//! Ed25519 verification with precomputed tables of the public key, for the few keys that sign
//! most of what pbn checks (each server's key signs its callout requests, an account's signing
//! key its user JWTs).
//!
//! The check is exactly ed25519-dalek's `VerifyingKey::verify`: refuse a non-canonical `s`,
//! `k = SHA-512(R ‖ A ‖ M) mod ℓ`, `R' = [s]B − [k]A`, accept iff `R'` compresses to the
//! signature's `R` bytes. Only the way `R'` is computed differs: ed25519-dalek doubles its way
//! through 253 bits of both scalars at once, while [`KeyTable`] and the basepoint table hold the
//! multiples `j·2^(w·i)·P` so that each scalar costs one point addition per digit and
//! (almost) no doubling. Everything here is variable-time, which is sound because a verifier
//! handles only public data: the key, the message and the signature.

use std::sync::OnceLock;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// Scalars below 2^254 in signed digits: `n·w ≥ 254` leaves room for the last carry, so the
/// top digit lies in `0..=2^(w−1)` and every other one in `−2^(w−1)..2^(w−1)`.
const SCALAR_BITS: usize = 254;

/// Digit width of the basepoint table: 32 digits, so 32 additions per `[s]B`. The table is
/// 32·128 points of 160 bytes (640 KiB), built once (about a millisecond) on the first use of
/// any key table and shared by all of them.
const BASE_WIDTH: usize = 8;

/// Digit width of a key table: 64 digits in two interleaved halves (see [`Table::mul_into`]),
/// so 64 additions and 4 doublings per `[k]A` from 32·8 points of 160 bytes (40 KiB a key).
const KEY_WIDTH: usize = 4;

/// How many digits share a row of a key table (see [`Table::mul_into`]).
const KEY_STRIDE: usize = 2;

/// Multiples of one point: `rows[m][j − 1] = j · 2^(w·stride·m) · P` for `j` in `1..=2^(w−1)`.
struct Table {
    width: usize,
    stride: usize,
    rows: Vec<Vec<EdwardsPoint>>,
}

impl Table {
    fn new(point: &EdwardsPoint, width: usize, stride: usize) -> Self {
        let digits = SCALAR_BITS.div_ceil(width);
        let mut rows = Vec::with_capacity(digits.div_ceil(stride));
        let mut base = *point;
        for _ in 0..digits.div_ceil(stride) {
            let mut row = Vec::with_capacity(1 << (width - 1));
            let mut multiple = base;
            for _ in 0..1 << (width - 1) {
                row.push(multiple);
                multiple += base;
            }
            rows.push(row);
            for _ in 0..width * stride {
                base = base + base;
            }
        }
        Table { width, stride, rows }
    }

    /// Adds `[scalar]P` to `acc`, or subtracts it when `negate`.
    ///
    /// With a stride of `t`, digit `i` has weight `2^(w·i)` and row `i / t` holds multiples of
    /// `2^(w·t·(i / t))`: the digits of phase `t − 1` are summed first, the sum is doubled
    /// `w` times, then phase `t − 2` is added, and so on (Horner's rule over the phases).
    fn mul_into(&self, acc: &mut EdwardsPoint, scalar: &Scalar, negate: bool) {
        let digits = signed_digits(scalar, self.width);
        let mut sum = EdwardsPoint::identity();
        for phase in (0..self.stride).rev() {
            if phase + 1 != self.stride {
                for _ in 0..self.width {
                    sum = sum + sum;
                }
            }
            for (i, &d) in digits.iter().enumerate().skip(phase).step_by(self.stride) {
                if d != 0 {
                    let p = &self.rows[i / self.stride][usize::from(d.unsigned_abs()) - 1];
                    sum = if d < 0 { sum - p } else { sum + p };
                }
            }
        }
        *acc = if negate { *acc - sum } else { *acc + sum };
    }
}

/// The digits `d_i` of `scalar = Σ d_i·2^(w·i)` (least significant first), each in
/// `−2^(w−1)..=2^(w−1)`. `scalar` must be below 2^254, as every reduced [`Scalar`] is.
fn signed_digits(scalar: &Scalar, width: usize) -> Vec<i16> {
    let bytes = scalar.as_bytes();
    debug_assert!(bytes[31] >> 6 == 0, "scalar below 2^254");
    let bit = |i: usize| bytes.get(i / 8).map_or(0, |b| i16::from((b >> (i % 8)) & 1));
    let count = SCALAR_BITS.div_ceil(width);
    let half = 1i16 << (width - 1);
    let mut digits = Vec::with_capacity(count);
    let mut carry = 0;
    for i in 0..count {
        let raw: i16 = (0..width).map(|j| bit(i * width + j) << j).sum();
        let mut d = raw + carry;
        carry = 0;
        if d >= half && i + 1 < count {
            d -= 1 << width;
            carry = 1;
        }
        digits.push(d);
    }
    digits
}

fn basepoint_table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table::new(&ED25519_BASEPOINT_POINT, BASE_WIDTH, 1))
}

/// The precomputed multiples of one public key (40 KiB), for [`verify`].
pub(super) struct KeyTable {
    key: VerifyingKey,
    table: Table,
}

impl KeyTable {
    /// Builds the table of `key` (about 100 µs: 256 point additions and 128 doublings).
    pub(super) fn new(key: &VerifyingKey) -> Self {
        KeyTable { key: *key, table: Table::new(&key.to_edwards(), KEY_WIDTH, KEY_STRIDE) }
    }

    /// The key this table is of.
    pub(super) fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// `[s]B − [k]A`.
    fn expected_r(&self, s: &Scalar, k: &Scalar) -> EdwardsPoint {
        let mut r = EdwardsPoint::identity();
        basepoint_table().mul_into(&mut r, s, false);
        self.table.mul_into(&mut r, k, true);
        r
    }
}

/// Whether `signature` is `table`'s key's signature of `message`, with ed25519-dalek's
/// `VerifyingKey::verify` semantics (see the module comment).
pub(super) fn verify(table: &KeyTable, message: &[u8], signature: &[u8; 64]) -> bool {
    let (r_bytes, s_bytes) = signature.split_at(32);
    let s_bytes: [u8; 32] = s_bytes.try_into().expect("a 64-byte signature has a 32-byte s");
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(table.key.as_bytes());
    h.update(message);
    let k = Scalar::from_hash(h);
    table.expected_r(&s, &k).compress().as_bytes() == r_bytes
}

#[cfg(test)]
#[path = "ed25519_tests.rs"]
mod tests;
