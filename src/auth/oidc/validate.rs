//! The checks of a provider's token, pure: the caller passes the keys and the time.

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::cache::KeySet;
use super::{OidcError, MAX_TOKEN_BYTES};

/// What the unverified token says of itself: enough to find the provider and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peeked {
    /// Its algorithm (an allowed one).
    pub alg: Algorithm,
    /// Its key id, if it names one.
    pub kid: Option<String>,
    /// Its issuer.
    pub iss: String,
}

/// What the verified claims must satisfy.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    /// The provider's name (for messages).
    pub provider: &'a str,
    /// The audience the token must name.
    pub audience: &'a str,
    /// Clock leeway for `nbf` and `iat`, in seconds.
    pub leeway: i64,
    /// Unix seconds.
    pub now: i64,
}

/// The algorithm `alg` names, when it is an allowed (asymmetric) one.
pub fn allowed_algorithm(alg: &str) -> Result<Algorithm, OidcError> {
    Ok(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => return Err(OidcError::AlgorithmNotAllowed(crate::model::clip(other))),
    })
}

fn part(text: &str, what: &str) -> Result<Value, OidcError> {
    let bytes = BASE64URL_NOPAD
        .decode(text.as_bytes())
        .map_err(|_| OidcError::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed(format!("{what} is not JSON")))
}

/// Reads the header and the issuer of `token` without verifying anything but its size, its
/// shape and that its algorithm is allowed.
pub fn peek(token: &str) -> Result<Peeked, OidcError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(OidcError::TooLarge { size: token.len(), max: MAX_TOKEN_BYTES });
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(OidcError::Malformed(format!("{} parts instead of 3", parts.len())));
    }
    let header = part(parts[0], "header")?;
    let alg = header["alg"].as_str().ok_or(OidcError::Malformed("header has no alg".into()))?;
    let alg = allowed_algorithm(alg)?;
    let kid = header["kid"].as_str().map(String::from);
    let payload = part(parts[1], "payload")?;
    let iss = payload["iss"].as_str().ok_or(OidcError::Malformed("no iss claim".into()))?;
    Ok(Peeked { alg, kid, iss: iss.to_string() })
}

/// Verifies the signature of `token` with the keys of `keys` that fit its `kid` and
/// algorithm, then its claims; returns the claims.
pub fn verify(
    token: &str,
    peeked: &Peeked,
    keys: &KeySet,
    rules: &Rules<'_>,
) -> Result<Value, OidcError> {
    let candidates = keys.matching(peeked.kid.as_deref(), peeked.alg);
    if candidates.is_empty() {
        return Err(OidcError::UnknownKey {
            provider: rules.provider.to_string(),
            kid: peeked.kid.clone().unwrap_or_default(),
            alg: format!("{:?}", peeked.alg),
        });
    }
    // The library checks the signature only: the claims are checked below, with the time
    // passed in and with a reason each.
    let mut validation = Validation::new(peeked.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    for key in candidates {
        match jsonwebtoken::decode::<Value>(token, key, &validation) {
            Ok(data) => return check_claims(data.claims, rules),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
            Err(e) => return Err(OidcError::Malformed(e.to_string())),
        }
    }
    Err(OidcError::BadSignature(rules.provider.to_string()))
}

fn audiences(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|s| s.as_str().map(String::from)).collect(),
        _ => vec![],
    }
}

fn time(claims: &Value, name: &str) -> Result<Option<i64>, OidcError> {
    match &claims[name] {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| OidcError::Malformed(format!("{name} is not a time"))),
        _ => Err(OidcError::Malformed(format!("{name} is not a number"))),
    }
}

/// Checks `aud` and the times: `exp` strictly (a user JWT is never minted past it), `nbf` and
/// `iat` with the leeway (a provider's clock a little ahead).
pub fn check_claims(claims: Value, rules: &Rules<'_>) -> Result<Value, OidcError> {
    let found = audiences(&claims["aud"]);
    if !found.iter().any(|a| a == rules.audience) {
        return Err(OidcError::WrongAudience {
            provider: rules.provider.to_string(),
            found,
            expected: rules.audience.to_string(),
        });
    }
    let now = rules.now;
    let exp = time(&claims, "exp")?.ok_or(OidcError::NoExpiry)?;
    if now >= exp {
        return Err(OidcError::Expired { exp, now });
    }
    if let Some(nbf) = time(&claims, "nbf")? {
        if nbf > now + rules.leeway {
            return Err(OidcError::NotYetValid { nbf, now });
        }
    }
    if let Some(iat) = time(&claims, "iat")? {
        if iat > now + rules.leeway {
            return Err(OidcError::IssuedInFuture { iat, now });
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests;
