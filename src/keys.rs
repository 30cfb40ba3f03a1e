//! Typed nkeys: public keys per kind, seeds that never print, signing key pairs and xkeys.
//!
//! Every key that crosses a module boundary is one of these types, so a user key can never be
//! passed where an account key is expected. Parsing checks the base32 encoding, the CRC and the
//! prefix; `nkeys` itself accepts an `SX…` seed as an ed25519 key pair, which [`KeyPair::from_seed`]
//! refuses.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Errors of the keys module.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not a valid nkey public key at all.
    #[error("invalid public key {0:?}")]
    InvalidPublicKey(String),
    /// A valid public key of another kind than expected.
    #[error("public key {key:?} is not a {expected} key")]
    WrongKind {
        /// The offending key.
        key: String,
        /// The expected kind.
        expected: KeyKind,
    },
    /// The text is not a valid seed (the seed itself is never echoed).
    #[error("invalid seed (starts with {prefix:?})")]
    InvalidSeed {
        /// The first two characters, enough to tell the kind without leaking the secret.
        prefix: String,
    },
    /// A valid seed of another kind than expected.
    #[error("seed of kind {found} where a {expected} seed is required")]
    WrongSeedKind {
        /// The kind the seed has.
        found: KeyKind,
        /// The kind the caller asked for.
        expected: KeyKind,
    },
    /// A signature did not verify.
    #[error("signature does not verify for {0}")]
    BadSignature(String),
    /// Sealing or opening an xkey box failed.
    #[error("xkey box could not be {0}")]
    Xkey(&'static str),
}

/// The kinds of nkey pbn deals with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `O…` operator keys.
    Operator,
    /// `A…` account keys.
    Account,
    /// `U…` user keys.
    User,
    /// `N…` server keys (auth-callout requests are signed by one).
    Server,
    /// `C…` cluster keys.
    Cluster,
    /// `X…` curve25519 keys (xkey encryption).
    Curve,
}

impl KeyKind {
    /// The first character of a public key of this kind.
    pub fn prefix(self) -> char {
        match self {
            KeyKind::Operator => 'O',
            KeyKind::Account => 'A',
            KeyKind::User => 'U',
            KeyKind::Server => 'N',
            KeyKind::Cluster => 'C',
            KeyKind::Curve => 'X',
        }
    }

    fn from_prefix_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(KeyKind::Account),
            20 => Some(KeyKind::User), // 'U' = 20 << 3
            14 => Some(KeyKind::Operator),
            13 => Some(KeyKind::Server),
            2 => Some(KeyKind::Cluster),
            23 => Some(KeyKind::Curve),
            _ => None,
        }
    }

    fn nkeys_type(self) -> nkeys::KeyPairType {
        match self {
            KeyKind::Operator => nkeys::KeyPairType::Operator,
            KeyKind::Account => nkeys::KeyPairType::Account,
            KeyKind::User => nkeys::KeyPairType::User,
            KeyKind::Server => nkeys::KeyPairType::Server,
            KeyKind::Cluster => nkeys::KeyPairType::Cluster,
            KeyKind::Curve => nkeys::KeyPairType::Curve,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            KeyKind::Operator => "operator",
            KeyKind::Account => "account",
            KeyKind::User => "user",
            KeyKind::Server => "server",
            KeyKind::Cluster => "cluster",
            KeyKind::Curve => "curve",
        };
        f.write_str(s)
    }
}

/// Decodes a public key of any kind and returns its kind (checks base32, CRC and prefix).
pub fn public_key_kind(key: &str) -> Result<KeyKind, KeyError> {
    let (prefix, _) =
        nkeys::from_public_key(key).map_err(|_| KeyError::InvalidPublicKey(key.to_string()))?;
    KeyKind::from_prefix_byte(prefix >> 3)
        .ok_or_else(|| KeyError::InvalidPublicKey(key.to_string()))
}

macro_rules! public_key_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The kind every value of this type has.
            pub const KIND: KeyKind = $kind;

            /// Parses and checks a public key of this kind.
            pub fn parse(key: &str) -> Result<Self, KeyError> {
                let kind = public_key_kind(key)?;
                if kind != Self::KIND {
                    return Err(KeyError::WrongKind { key: key.to_string(), expected: Self::KIND });
                }
                Ok(Self(key.to_string()))
            }

            /// The encoded key.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Verifies an ed25519 signature made by this key.
            pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
                verify(&self.0, message, signature)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(k: $name) -> String {
                k.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

public_key_type!(
    /// An operator public key (`O…`).
    OperatorPublicKey,
    KeyKind::Operator
);
public_key_type!(
    /// An account public key (`A…`), also used for account signing keys.
    AccountPublicKey,
    KeyKind::Account
);
public_key_type!(
    /// A user public key (`U…`).
    UserPublicKey,
    KeyKind::User
);
public_key_type!(
    /// A server public key (`N…`); nats-server's id.
    ServerPublicKey,
    KeyKind::Server
);
public_key_type!(
    /// A curve25519 public key (`X…`) for xkey encryption.
    CurvePublicKey,
    KeyKind::Curve
);

/// Verifies an ed25519 signature by the public key `key` (any ed25519 kind), with
/// ed25519-dalek's `VerifyingKey::verify` semantics. The key is decoded once and kept, and a
/// key that keeps signing gets a precomputed table (see `keys::verifiers`).
pub fn verify(key: &str, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    let bad = || KeyError::BadSignature(key.to_string());
    let signature: &[u8; 64] = signature.try_into().map_err(|_| bad())?;
    if verifiers::verify(key, message, signature)? {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A seed (`S…`) held in memory that is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Seed(Zeroizing<String>);

impl Seed {
    /// Wraps seed text after checking that it decodes; the kind is checked by the users of it.
    pub fn new(seed: impl Into<String>) -> Result<Self, KeyError> {
        let seed = Zeroizing::new(seed.into());
        nkeys::decode_seed(seed.trim()).map_err(|_| invalid_seed(&seed))?;
        Ok(Seed(Zeroizing::new(seed.trim().to_string())))
    }

    /// The seed text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The kind of key this seed makes.
    pub fn kind(&self) -> Result<KeyKind, KeyError> {
        let (prefix, _) = nkeys::decode_seed(&self.0).map_err(|_| invalid_seed(&self.0))?;
        KeyKind::from_prefix_byte(prefix >> 3).ok_or_else(|| invalid_seed(&self.0))
    }
}

fn invalid_seed(seed: &str) -> KeyError {
    KeyError::InvalidSeed { prefix: seed.chars().take(2).collect() }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        Seed::new(s.as_str()).map_err(serde::de::Error::custom)
    }
}

/// An ed25519 key pair with its seed: operator, account, user or server.
///
/// `Debug` shows only the public key.
pub struct KeyPair {
    inner: nkeys::KeyPair,
    kind: KeyKind,
    public: String,
}

impl KeyPair {
    /// A fresh random key pair of `kind` (not `Curve`: use [`XKeyPair`]).
    pub fn generate(kind: KeyKind) -> Self {
        assert!(kind != KeyKind::Curve, "curve keys are XKeyPair");
        let inner = nkeys::KeyPair::new(kind.nkeys_type());
        let public = inner.public_key();
        KeyPair { inner, kind, public }
    }

    /// Loads a key pair from a seed; curve (`SX…`) seeds are refused.
    pub fn from_seed(seed: &Seed) -> Result<Self, KeyError> {
        let kind = seed.kind()?;
        if kind == KeyKind::Curve {
            return Err(KeyError::WrongSeedKind { found: kind, expected: KeyKind::Account });
        }
        let inner =
            nkeys::KeyPair::from_seed(seed.expose()).map_err(|_| invalid_seed(seed.expose()))?;
        let public = inner.public_key();
        Ok(KeyPair { inner, kind, public })
    }

    /// Loads a key pair and requires it to be of `kind`.
    pub fn from_seed_of(seed: &Seed, kind: KeyKind) -> Result<Self, KeyError> {
        let kp = Self::from_seed(seed)?;
        if kp.kind != kind {
            return Err(KeyError::WrongSeedKind { found: kp.kind, expected: kind });
        }
        Ok(kp)
    }

    /// The kind of this key pair.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The encoded public key.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The seed, for storing or writing into a creds file.
    pub fn seed(&self) -> Seed {
        // A key pair built by generate/from_seed always has its seed.
        Seed(Zeroizing::new(self.inner.seed().expect("key pair has a seed")))
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.inner.sign(message).expect("key pair has a seed")
    }
}

impl Clone for KeyPair {
    fn clone(&self) -> Self {
        KeyPair::from_seed(&self.seed()).expect("own seed is valid")
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair").field("kind", &self.kind).field("public", &self.public).finish()
    }
}

mod boxes;
mod ed25519;
mod verifiers;

/// A curve25519 key pair for xkey sealing (`SX…` seed). The box to each peer is computed once
/// and kept (see `keys::boxes`).
pub struct XKeyPair {
    inner: nkeys::XKey,
    public: String,
    boxes: boxes::Boxes,
}

impl XKeyPair {
    /// A fresh random xkey.
    pub fn generate() -> Self {
        XKeyPair::from_inner(nkeys::XKey::new())
    }

    fn from_inner(inner: nkeys::XKey) -> Self {
        let seed = Zeroizing::new(inner.seed().expect("a generated or loaded xkey has a seed"));
        let (_, raw) = nkeys::decode_seed(&seed).expect("nkeys encodes a valid seed");
        let raw = Zeroizing::new(raw);
        let public = inner.public_key();
        XKeyPair { inner, public, boxes: boxes::Boxes::new(*raw) }
    }

    /// Loads an xkey from an `SX…` seed; other seeds are refused.
    pub fn from_seed(seed: &Seed) -> Result<Self, KeyError> {
        let kind = seed.kind()?;
        if kind != KeyKind::Curve {
            return Err(KeyError::WrongSeedKind { found: kind, expected: KeyKind::Curve });
        }
        let inner =
            nkeys::XKey::from_seed(seed.expose()).map_err(|_| invalid_seed(seed.expose()))?;
        Ok(XKeyPair::from_inner(inner))
    }

    /// The encoded public key (`X…`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The seed (`SX…`).
    pub fn seed(&self) -> Seed {
        Seed(Zeroizing::new(self.inner.seed().expect("xkey has a seed")))
    }

    /// Seals `plain` to `recipient`: `xkv1` ‖ 24-byte nonce ‖ box, as Go's nkeys does.
    pub fn seal(&self, plain: &[u8], recipient: &CurvePublicKey) -> Result<Vec<u8>, KeyError> {
        Ok(self.boxes.seal(plain, &curve_raw(recipient)?))
    }

    /// Opens a box sealed by `sender` to this key.
    pub fn open(&self, sealed: &[u8], sender: &CurvePublicKey) -> Result<Vec<u8>, KeyError> {
        self.boxes.open(sealed, &curve_raw(sender)?).map_err(|_| KeyError::Xkey("opened"))
    }
}

/// The raw 32 bytes of a curve public key.
fn curve_raw(key: &CurvePublicKey) -> Result<[u8; 32], KeyError> {
    let (_, raw) = nkeys::from_public_key(key.as_str())
        .map_err(|_| KeyError::InvalidPublicKey(key.to_string()))?;
    Ok(raw)
}

impl Clone for XKeyPair {
    fn clone(&self) -> Self {
        XKeyPair::from_seed(&self.seed()).expect("own seed is valid")
    }
}

impl fmt::Debug for XKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XKeyPair").field("public", &self.public).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_kinds_are_checked() {
        let a = KeyPair::generate(KeyKind::Account);
        let u = KeyPair::generate(KeyKind::User);
        assert!(AccountPublicKey::parse(a.public_key()).is_ok());
        assert!(matches!(
            AccountPublicKey::parse(u.public_key()),
            Err(KeyError::WrongKind { expected: KeyKind::Account, .. })
        ));
        assert!(matches!(UserPublicKey::parse("UNOTAKEY"), Err(KeyError::InvalidPublicKey(_))));
        let x = XKeyPair::generate();
        assert!(CurvePublicKey::parse(x.public_key()).is_ok());
        assert_eq!(public_key_kind(x.public_key()), Ok(KeyKind::Curve));
    }

    #[test]
    fn curve_seed_is_not_an_ed25519_key_pair() {
        let x = XKeyPair::generate();
        let err = KeyPair::from_seed(&x.seed()).unwrap_err();
        assert!(matches!(err, KeyError::WrongSeedKind { found: KeyKind::Curve, .. }));
        let a = KeyPair::generate(KeyKind::Account);
        assert!(matches!(XKeyPair::from_seed(&a.seed()), Err(KeyError::WrongSeedKind { .. })));
    }

    #[test]
    fn seeds_are_redacted_in_debug() {
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let shown = format!("{seed:?} {kp:?}");
        assert!(!shown.contains(seed.expose()), "{shown}");
        assert!(shown.contains(kp.public_key()));
        let x = XKeyPair::generate();
        assert!(!format!("{x:?}").contains(x.seed().expose()));
    }

    #[test]
    fn invalid_seed_error_does_not_echo_secret() {
        let err =
            Seed::new("SUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap_err();
        assert_eq!(err, KeyError::InvalidSeed { prefix: "SU".into() });
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let kp = KeyPair::generate(KeyKind::Account);
        let sig = kp.sign(b"hello");
        let pk = AccountPublicKey::parse(kp.public_key()).unwrap();
        assert!(pk.verify(b"hello", &sig).is_ok());
        assert!(matches!(pk.verify(b"hellO", &sig), Err(KeyError::BadSignature(_))));
    }

    #[test]
    fn xkey_seal_open_round_trip() {
        let a = XKeyPair::generate();
        let b = XKeyPair::generate();
        let bp = CurvePublicKey::parse(b.public_key()).unwrap();
        let ap = CurvePublicKey::parse(a.public_key()).unwrap();
        let sealed = a.seal(b"secret", &bp).unwrap();
        assert!(sealed.starts_with(b"xkv1"));
        assert_eq!(b.open(&sealed, &ap).unwrap(), b"secret");
        let c = XKeyPair::generate();
        assert!(matches!(c.open(&sealed, &ap), Err(KeyError::Xkey(_))));
    }
}
