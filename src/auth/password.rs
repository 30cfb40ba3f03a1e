//! Passwords: a zeroizing [`Secret`] wrapper and argon2id hashing into PHC strings.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use super::AuthError;

/// Longest password [`hash_password`] accepts, in bytes.
///
/// argon2 itself takes far longer inputs, but nothing legitimate needs more, and nats-server
/// caps the CONNECT line (4 KiB by default) anyway, so a longer password could never log in.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Highest memory cost [`verify_password`] accepts from a stored PHC string, in KiB (256 MiB).
///
/// A corrupted or hostile record must not make one login allocate gigabytes; this is an order of
/// magnitude above the OWASP recommendations, so any sane tuning fits.
const MAX_VERIFY_M_COST_KIB: u32 = 256 * 1024;

/// Bytes of random salt per hash (the PHC string format recommends 16).
const SALT_LEN: usize = 16;

/// A secret string (a password or token) that is wiped from memory on drop and never printed.
///
/// It has no `Display` and its `Debug` is redacted, so it cannot end up in a log line by accident.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(Zeroizing::new(secret.into()))
    }

    /// The secret text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret: nats-server already saw it on the wire).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// argon2id cost parameters for new password hashes.
///
/// Verification always uses the parameters recorded in the stored PHC string, so changing these
/// only affects passwords hashed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes over memory.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).
    pub p_cost: u32,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): tens of milliseconds per hash,
    /// expensive enough for offline guessing, cheap enough that the callout (with its cache)
    /// stays inside nats-server's auth timeout.
    fn default() -> Self {
        PasswordParams { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

impl PasswordParams {
    /// The cheapest parameters argon2 allows (8 KiB, 1 pass, 1 lane), for tests only.
    pub fn for_tests() -> Self {
        PasswordParams { m_cost_kib: Params::MIN_M_COST, t_cost: 1, p_cost: 1 }
    }

    /// The argon2id hasher for these parameters, or why they are out of range.
    fn hasher(&self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None).map_err(|e| {
            AuthError::InvalidParams {
                m_cost_kib: self.m_cost_kib,
                t_cost: self.t_cost,
                p_cost: self.p_cost,
                reason: e.to_string(),
            }
        })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a password with the production [`PasswordParams::default`] into an argon2id PHC string.
pub fn hash_password(password: &Secret) -> Result<String, AuthError> {
    hash_password_with(password, &PasswordParams::default())
}

/// Hashes a password with `params` and a fresh random salt into an argon2id PHC string
/// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
///
/// Empty passwords and passwords over `MAX_PASSWORD_LEN` bytes are refused.
pub fn hash_password_with(password: &Secret, params: &PasswordParams) -> Result<String, AuthError> {
    if password.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AuthError::PasswordTooLong { len: password.len(), max: MAX_PASSWORD_LEN });
    }
    let hasher = params.hasher()?;
    let mut salt_bytes = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt_bytes);
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hashing(e.to_string()))?;
    let hash = hasher
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|e| AuthError::Hashing(e.to_string()))?;
    Ok(hash.to_string())
}

/// Memory blocks (1 KiB each) that hold the argon2 work area of the default
/// [`PasswordParams`]: the size of one pooled verification buffer.
pub fn default_verify_blocks() -> usize {
    let d = PasswordParams::default();
    // The default parameters are valid; block_count is m_cost rounded to the lane layout.
    Params::new(d.m_cost_kib, d.t_cost, d.p_cost, None)
        .map_or(d.m_cost_kib as usize, |p| p.block_count())
}

/// A reusable argon2 work area for [`verify_password_in`]: allocated once, so verifications that
/// reuse it allocate nothing (a fresh 19 MiB area per login is what lets the allocator's
/// per-thread arenas grow without bound under a storm).
pub struct VerifyMemory(Vec<Block>);

impl VerifyMemory {
    /// A zeroed work area of `blocks` KiB.
    pub fn new(blocks: usize) -> Self {
        VerifyMemory(vec![Block::default(); blocks])
    }
}

impl fmt::Debug for VerifyMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyMemory({} KiB)", self.0.len())
    }
}

/// [`verify_password`] in the work area `memory`.
///
/// A stored hash whose parameters need more than `memory` holds (a hash made with a higher
/// memory cost) still verifies correctly: it gets a temporary area of its own for this call,
/// bounded by the 256 MiB cap on stored memory costs. The caller's concurrency bound (one call
/// per pooled area) therefore also bounds these.
pub fn verify_password_in(
    password: &Secret,
    phc: &str,
    memory: &mut VerifyMemory,
) -> Result<bool, AuthError> {
    let hash = parse_phc(phc)?;
    let malformed = |e: &dyn fmt::Display| AuthError::MalformedHash { reason: e.to_string() };
    let params = Params::try_from(&hash).map_err(|e| malformed(&e))?;
    let version = hash
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| malformed(&e))?
        .unwrap_or_default();
    // parse_phc checked that both are present.
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return Err(AuthError::MalformedHash { reason: "salt or hash output missing".into() });
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(|e| malformed(&e))?;
    let needed = params.block_count();
    let argon = Argon2::new(Algorithm::Argon2id, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let pwd = password.expose().as_bytes();
    let result = if needed <= memory.0.len() {
        argon.hash_password_into_with_memory(pwd, salt, &mut out, &mut memory.0[..])
    } else {
        let mut own = vec![Block::default(); needed];
        argon.hash_password_into_with_memory(pwd, salt, &mut out, &mut own[..])
    };
    result.map_err(|e| malformed(&e))?;
    // Output's equality is constant-time.
    let computed = argon2::password_hash::Output::new(&out).map_err(|e| malformed(&e))?;
    Ok(computed == expected)
}

/// Parses and sanity-checks a stored PHC string: argon2id, salt and output present, parameters
/// in range.
fn parse_phc(phc: &str) -> Result<PasswordHash<'_>, AuthError> {
    let hash =
        PasswordHash::new(phc).map_err(|e| AuthError::MalformedHash { reason: e.to_string() })?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(AuthError::UnsupportedAlgorithm { algorithm: hash.algorithm.to_string() });
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(AuthError::MalformedHash { reason: "salt or hash output missing".into() });
    }
    let params =
        Params::try_from(&hash).map_err(|e| AuthError::MalformedHash { reason: e.to_string() })?;
    if params.m_cost() > MAX_VERIFY_M_COST_KIB {
        return Err(AuthError::MalformedHash {
            reason: format!(
                "memory cost {} KiB above the limit of {MAX_VERIFY_M_COST_KIB} KiB",
                params.m_cost()
            ),
        });
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`verify_password_in`] with a fresh work area of the default size.
    fn verify_password(password: &Secret, phc: &str) -> Result<bool, AuthError> {
        verify_password_in(password, phc, &mut VerifyMemory::new(default_verify_blocks()))
    }

    fn hash(pw: &str) -> String {
        hash_password_with(&Secret::from(pw), &PasswordParams::for_tests()).unwrap()
    }

    #[test]
    fn right_password_verifies_and_wrong_does_not() {
        let phc = hash("correct horse");
        assert_eq!(verify_password(&Secret::from("correct horse"), &phc), Ok(true));
        assert_eq!(verify_password(&Secret::from("correct horsE"), &phc), Ok(false));
        assert_eq!(verify_password(&Secret::from(""), &phc), Ok(false));
    }

    #[test]
    fn phc_string_is_argon2id_with_given_params_and_random_salt() {
        let phc = hash("pw");
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert_ne!(phc, hash("pw"), "salt must be random");
        let default = PasswordParams::default();
        assert_eq!((default.m_cost_kib, default.t_cost, default.p_cost), (19456, 2, 1));
    }

    #[test]
    fn malformed_phc_is_an_error_not_false() {
        let pw = Secret::from("pw");
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=8,t=1,p=1",
            "$argon2id$v=19$m=x,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert!(
                matches!(verify_password(&pw, bad), Err(AuthError::MalformedHash { .. })),
                "{bad:?}"
            );
        }
        let truncated = hash("pw");
        let (head, _) = truncated.rsplit_once('$').unwrap();
        assert!(matches!(verify_password(&pw, head), Err(AuthError::MalformedHash { .. })));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let phc = hash("pw").replacen("argon2id", "argon2i", 1);
        assert_eq!(
            verify_password(&Secret::from("pw"), &phc),
            Err(AuthError::UnsupportedAlgorithm { algorithm: "argon2i".into() })
        );
    }

    #[test]
    fn huge_memory_cost_in_stored_hash_is_refused() {
        let phc = hash("pw").replacen("m=8,", "m=4194304,", 1);
        assert!(matches!(
            verify_password(&Secret::from("pw"), &phc),
            Err(AuthError::MalformedHash { .. })
        ));
    }

    #[test]
    fn empty_and_overlong_passwords_are_not_hashed() {
        let params = PasswordParams::for_tests();
        assert_eq!(hash_password_with(&Secret::from(""), &params), Err(AuthError::EmptyPassword));
        let long = Secret::new("x".repeat(MAX_PASSWORD_LEN + 1));
        assert!(matches!(
            hash_password_with(&long, &params),
            Err(AuthError::PasswordTooLong { len, .. }) if len == MAX_PASSWORD_LEN + 1
        ));
    }

    #[test]
    fn bad_params_are_an_error() {
        let params = PasswordParams { m_cost_kib: 1, t_cost: 0, p_cost: 1 };
        assert!(matches!(
            hash_password_with(&Secret::from("pw"), &params),
            Err(AuthError::InvalidParams { m_cost_kib: 1, t_cost: 0, .. })
        ));
    }

    #[test]
    fn pooled_memory_verifies_like_the_plain_check() {
        let phc = hash("correct horse");
        let mut memory = VerifyMemory::new(8);
        let right = Secret::from("correct horse");
        assert_eq!(verify_password_in(&right, &phc, &mut memory), Ok(true));
        assert_eq!(verify_password_in(&Secret::from("wrong"), &phc, &mut memory), Ok(false));
        // A hash needing more memory than the area still verifies, with an area of its own.
        let params = PasswordParams { m_cost_kib: 64, t_cost: 1, p_cost: 2 };
        let bigger = hash_password_with(&right, &params).unwrap();
        assert_eq!(verify_password_in(&right, &bigger, &mut memory), Ok(true));
        assert_eq!(verify_password_in(&Secret::from("x"), &bigger, &mut memory), Ok(false));
        assert_eq!(memory.0.len(), 8, "the pooled area keeps its size");
        let huge = phc.replacen("m=8,", "m=4194304,", 1);
        assert!(matches!(
            verify_password_in(&right, &huge, &mut memory),
            Err(AuthError::MalformedHash { .. })
        ));
        assert!(default_verify_blocks() >= 19 * 1024);
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn errors_never_echo_the_password_or_hash() {
        let phc = hash("pw").replacen("m=8,", "m=4194304,", 1);
        let err = verify_password(&Secret::from("hunter2"), &phc).unwrap_err().to_string();
        assert!(!err.contains("hunter2") && !err.contains(&phc), "{err}");
    }
}
