use super::*;
use crate::keys::{KeyKind, KeyPair};

const SLOT: Slot<'static> = Slot { table: "accounts", key: "APP", field: "identity" };

fn seed() -> Seed {
    KeyPair::generate(KeyKind::Account).seed()
}

#[test]
fn a_sealed_seed_opens_to_the_same_seed_and_does_not_contain_it() {
    let key = StoreKey::generate();
    let seed = seed();
    let sealed = seal_seed(&key, SLOT, &seed);
    assert!(!sealed.contains(seed.expose()));
    let raw = BASE64URL_NOPAD.decode(sealed.as_bytes()).unwrap();
    assert_eq!(raw[0], SEAL_VERSION);
    assert_eq!(raw.len(), 1 + NONCE_LEN + seed.expose().len() + TAG_LEN);
    assert_eq!(open_seed(&key, SLOT, &sealed).unwrap().expose(), seed.expose());
}

#[test]
fn sealing_twice_uses_fresh_nonces() {
    let key = StoreKey::generate();
    let seed = seed();
    assert_ne!(seal_seed(&key, SLOT, &seed), seal_seed(&key, SLOT, &seed));
}

#[test]
fn another_key_does_not_open() {
    let seed = seed();
    let sealed = seal_seed(&StoreKey::generate(), SLOT, &seed);
    let err = open_seed(&StoreKey::generate(), SLOT, &sealed).unwrap_err();
    assert_eq!(err, SealError::Open { slot: "accounts/APP/identity".into() });
}

#[test]
fn every_tampered_byte_is_refused() {
    let key = StoreKey::generate();
    let sealed = seal_seed(&key, SLOT, &seed());
    let raw = BASE64URL_NOPAD.decode(sealed.as_bytes()).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        let err = open_seed(&key, SLOT, &BASE64URL_NOPAD.encode(&bad)).unwrap_err();
        if i == 0 {
            assert!(matches!(err, SealError::UnknownVersion { version: 0, .. }), "{err:?}");
        } else {
            assert!(matches!(err, SealError::Open { .. }), "byte {i}: {err:?}");
        }
    }
}

#[test]
fn a_seed_moved_to_another_slot_does_not_open() {
    let key = StoreKey::generate();
    let sealed = seal_seed(&key, SLOT, &seed());
    for other in [
        Slot { table: "operator", ..SLOT },
        Slot { key: "OTHER", ..SLOT },
        Slot { field: "signing_keys.0", ..SLOT },
        // Length prefixes: moving a character between parts is another slot.
        Slot { table: "accountsA", key: "PP", field: "identity" },
    ] {
        let err = open_seed(&key, other, &sealed).unwrap_err();
        assert!(matches!(err, SealError::Open { .. }), "{other}: {err:?}");
    }
}

#[test]
fn truncated_or_non_base64_values_are_refused() {
    let key = StoreKey::generate();
    assert!(matches!(open_seed(&key, SLOT, ""), Err(SealError::Truncated { len: 0, .. })));
    let short = BASE64URL_NOPAD.encode(&[SEAL_VERSION; 1 + NONCE_LEN + TAG_LEN - 1]);
    assert!(matches!(open_seed(&key, SLOT, &short), Err(SealError::Truncated { .. })));
    assert!(matches!(open_seed(&key, SLOT, "not base64!"), Err(SealError::Encoding { .. })));
}

#[test]
fn a_sealed_non_seed_is_not_a_seed() {
    let key = StoreKey::generate();
    let ad = SLOT.associated_data(SEED_DOMAIN);
    let sealed = BASE64URL_NOPAD.encode(&seal_bytes(&key, &ad, b"hello"));
    assert!(matches!(open_seed(&key, SLOT, &sealed), Err(SealError::NotASeed { .. })));
}

#[test]
fn debug_shows_no_key_material() {
    let key = StoreKey::from_slice(&[0xab; KEY_LEN]).unwrap();
    let shown = format!("{key:?} {key:#?}");
    assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    assert!(!shown.contains("171"), "{shown}");
    let text = key.to_file_text();
    assert!(!shown.contains(text.trim()), "{shown}");
    assert!(shown.contains("redacted"));
}

#[test]
fn key_file_text_round_trips_and_bad_text_is_refused() {
    let key = StoreKey::generate();
    let back = StoreKey::from_file_text(&key.to_file_text()).unwrap();
    let sealed = seal_seed(&key, SLOT, &seed());
    assert!(open_seed(&back, SLOT, &sealed).is_ok());
    assert_eq!(StoreKey::from_file_text("***").unwrap_err(), SealError::KeyText);
    assert_eq!(StoreKey::from_file_text("AAAA").unwrap_err(), SealError::KeyLength(3));
    assert_eq!(StoreKey::from_slice(&[0; 31]).unwrap_err(), SealError::KeyLength(31));
}

#[test]
fn the_key_check_tells_the_right_key_from_a_wrong_one() {
    let key = StoreKey::generate();
    let check = seal_key_check(&key);
    assert_eq!(open_key_check(&key, &check), Ok(()));
    assert_eq!(open_key_check(&StoreKey::generate(), &check), Err(SealError::WrongKey));
    let mut bad = check.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(open_key_check(&key, &bad), Err(SealError::WrongKey));
    // A sealed seed is not a key check, whatever it holds.
    let ad = SLOT.associated_data(SEED_DOMAIN);
    let foreign = seal_bytes(&key, &ad, CHECK_DOMAIN.as_bytes());
    assert_eq!(open_key_check(&key, &foreign), Err(SealError::WrongKey));
}

#[test]
fn a_passphrase_derives_the_same_key_with_the_same_salt_only() {
    let salt = StoreKey::generate_salt();
    let a = StoreKey::from_passphrase(b"correct horse", &salt).unwrap();
    let b = StoreKey::from_passphrase(b"correct horse", &salt).unwrap();
    let check = seal_key_check(&a);
    assert_eq!(open_key_check(&b, &check), Ok(()));
    let other_salt =
        StoreKey::from_passphrase(b"correct horse", &StoreKey::generate_salt()).unwrap();
    assert_eq!(open_key_check(&other_salt, &check), Err(SealError::WrongKey));
    let other_pass = StoreKey::from_passphrase(b"correct horsf", &salt).unwrap();
    assert_eq!(open_key_check(&other_pass, &check), Err(SealError::WrongKey));
}
