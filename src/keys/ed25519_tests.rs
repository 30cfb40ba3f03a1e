//! The table verifier against ed25519-dalek: same answer on every input.

use super::*;
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use rand::{Rng, RngCore};

/// ℓ, the order of the basepoint, little-endian.
const ELL: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Encodings of the eight points of small order, with and without the sign bit.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut ys: Vec<[u8; 32]> = vec![[0; 32], [0; 32], [0; 32]];
    ys[0][0] = 1; // the identity, y = 1
    ys[1] = [0xff; 32]; // y = −1 (order 2), written as p − 1
    ys[1][0] = 0xec;
    ys[1][31] = 0x7f;
    // y = 0 (order 4) is ys[2]; the points of order 8 have the two y below.
    let order8 = [
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    ];
    for hex in order8 {
        let bytes = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        ys.push(bytes.try_into().unwrap());
    }
    let mut all = Vec::new();
    for y in ys {
        all.push(y);
        let mut signed = y;
        signed[31] |= 0x80;
        all.push(signed);
    }
    all
}

fn signing_key(rng: &mut impl RngCore) -> SigningKey {
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    SigningKey::from_bytes(&secret)
}

fn dalek_verify(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    key.verify(message, &Signature::from_bytes(signature)).is_ok()
}

fn random_scalar(rng: &mut impl RngCore) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// `[s]B − [k]A` from ed25519-dalek's own double-scalar multiplication.
fn dalek_expected_r(key: &VerifyingKey, s: &Scalar, k: &Scalar) -> EdwardsPoint {
    EdwardsPoint::vartime_double_scalar_mul_basepoint(k, &-key.to_edwards(), s)
}

#[test]
fn signed_digits_sum_to_the_scalar() {
    let mut rng = rand::thread_rng();
    let minus_one = Scalar::ZERO - Scalar::ONE;
    let mut scalars = vec![Scalar::ZERO, Scalar::ONE, minus_one];
    scalars.extend((0..200).map(|_| random_scalar(&mut rng)));
    for width in [4, 5, 6, 7, 8] {
        let half = 1i16 << (width - 1);
        for s in &scalars {
            let digits = signed_digits(s, width);
            assert_eq!(digits.len(), SCALAR_BITS.div_ceil(width));
            let mut sum = Scalar::ZERO;
            let mut weight = Scalar::ONE;
            for &d in &digits {
                assert!((-half..=half).contains(&d), "digit {d} of width {width}");
                let magnitude = Scalar::from(u64::from(d.unsigned_abs()));
                sum += if d < 0 { -(weight * magnitude) } else { weight * magnitude };
                weight *= Scalar::from(1u64 << width);
            }
            assert_eq!(sum, *s, "width {width}");
        }
    }
}

#[test]
fn table_multiplication_equals_dalek_for_any_key_including_small_order_ones() {
    let mut rng = rand::thread_rng();
    let mut keys: Vec<VerifyingKey> =
        (0..8).map(|_| signing_key(&mut rng).verifying_key()).collect();
    for bytes in small_order_encodings() {
        if let Ok(key) = VerifyingKey::from_bytes(&bytes) {
            assert!(key.to_edwards().is_small_order());
            keys.push(key);
        }
    }
    // Mixed order: a prime-order key plus a point of order 8.
    let torsion = CompressedEdwardsY(small_order_encodings()[6]).decompress().unwrap();
    let mixed = signing_key(&mut rng).verifying_key().to_edwards() + torsion;
    keys.push(VerifyingKey::from(mixed));
    assert!(keys.len() >= 14, "small-order keys decode");
    let minus_one = Scalar::ZERO - Scalar::ONE;
    for key in &keys {
        let table = KeyTable::new(key);
        let mut pairs = vec![
            (Scalar::ZERO, Scalar::ZERO),
            (Scalar::ONE, Scalar::ZERO),
            (Scalar::ZERO, Scalar::ONE),
            (minus_one, minus_one),
        ];
        pairs.extend((0..20).map(|_| (random_scalar(&mut rng), random_scalar(&mut rng))));
        for (s, k) in pairs {
            assert_eq!(table.expected_r(&s, &k), dalek_expected_r(key, &s, &k));
        }
    }
}

/// Every way to spoil a valid signature, and the valid one first.
fn variants(rng: &mut impl RngCore, sk: &SigningKey, message: &[u8]) -> Vec<(Vec<u8>, [u8; 64])> {
    let sig = sk.sign(message).to_bytes();
    let mut out = vec![(message.to_vec(), sig)];
    let mut flipped_r = sig;
    flipped_r[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8);
    out.push((message.to_vec(), flipped_r));
    let mut flipped_s = sig;
    flipped_s[rng.gen_range(32..63)] ^= 1 << rng.gen_range(0..8);
    out.push((message.to_vec(), flipped_s));
    let mut top_s = sig;
    top_s[63] ^= 0x80;
    out.push((message.to_vec(), top_s));
    let mut altered = message.to_vec();
    if altered.is_empty() {
        altered.push(0);
    } else {
        let i = rng.gen_range(0..altered.len());
        altered[i] ^= 1 << rng.gen_range(0..8);
    }
    out.push((altered, sig));
    // s + ℓ: the same point equation, but a non-canonical s that both must refuse.
    let mut s_plus_ell = sig;
    let mut carry = 0u16;
    for (i, l) in ELL.iter().enumerate() {
        let v = u16::from(s_plus_ell[32 + i]) + u16::from(*l) + carry;
        s_plus_ell[32 + i] = v as u8;
        carry = v >> 8;
    }
    out.push((message.to_vec(), s_plus_ell));
    out.push((message.to_vec(), signing_key(&mut rand::thread_rng()).sign(message).to_bytes()));
    let mut zero_s = sig;
    zero_s[32..].fill(0);
    out.push((message.to_vec(), zero_s));
    out
}

#[test]
fn verify_agrees_with_dalek_on_valid_and_spoiled_signatures() {
    let mut rng = rand::thread_rng();
    let mut accepted = 0;
    for round in 0..40 {
        let sk = signing_key(&mut rng);
        let key = sk.verifying_key();
        let table = KeyTable::new(&key);
        for _ in 0..4 {
            let mut message = vec![0u8; rng.gen_range(0..1200)];
            rng.fill_bytes(&mut message);
            for (i, (m, sig)) in variants(&mut rng, &sk, &message).into_iter().enumerate() {
                let expected = dalek_verify(&key, &m, &sig);
                assert_eq!(verify(&table, &m, &sig), expected, "round {round} variant {i}");
                assert_eq!(expected, i == 0, "variant {i} of a valid signature");
                accepted += usize::from(expected);
            }
        }
        // A flipped bit in the key: a table of the other key, same signature.
        let mut other = key.to_bytes();
        other[rng.gen_range(0..31)] ^= 1 << rng.gen_range(0..8);
        if let Ok(other) = VerifyingKey::from_bytes(&other) {
            let sig = sk.sign(b"message").to_bytes();
            let table = KeyTable::new(&other);
            assert!(!dalek_verify(&other, b"message", &sig));
            assert!(!verify(&table, b"message", &sig));
        }
    }
    assert_eq!(accepted, 40 * 4);
}

/// Small-order keys: any signature made to fit (R = [s]B − [k]A for the hash of that R is out
/// of reach, so R = [s]B, which matches whenever [k]A is the identity) gets the same answer.
#[test]
fn verify_agrees_with_dalek_for_small_order_keys() {
    let mut rng = rand::thread_rng();
    let mut accepted = 0;
    for bytes in small_order_encodings() {
        let Ok(key) = VerifyingKey::from_bytes(&bytes) else { continue };
        let table = KeyTable::new(&key);
        for _ in 0..64 {
            let s = random_scalar(&mut rng);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(EdwardsPoint::mul_base(&s).compress().as_bytes());
            sig[32..].copy_from_slice(s.as_bytes());
            let mut message = [0u8; 16];
            rng.fill_bytes(&mut message);
            let expected = dalek_verify(&key, &message, &sig);
            assert_eq!(verify(&table, &message, &sig), expected);
            accepted += usize::from(expected);
            let mut random = [0u8; 64];
            rng.fill_bytes(&mut random);
            random[63] &= 0x0f;
            assert_eq!(verify(&table, &message, &random), dalek_verify(&key, &message, &random));
        }
    }
    // The identity key accepts every such signature; so must the table.
    assert!(accepted >= 64, "{accepted}");
}
