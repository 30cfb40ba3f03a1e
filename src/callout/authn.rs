//! Authentication: which user do the connect options prove to be?

use std::net::IpAddr;
use std::time::Instant;

use super::pipeline::Pipeline;
use super::CalloutError;
use crate::auth::{parse_client_host, token_hash, verify_nkey_signature, verify_password, Secret};
use crate::claims::AuthorizationRequestClaims;
use crate::keys::UserPublicKey;
use crate::model::User;
use crate::store::StoreRead;

/// The credential a client presented.
enum Credential<'a> {
    Password { user: &'a str, password: &'a str },
    Token(&'a str),
    Nkey { key: &'a str, sig: &'a str },
}

fn credential(req: &AuthorizationRequestClaims) -> Result<Credential<'_>, CalloutError> {
    let o = &req.connect_opts;
    if !o.nkey.is_empty() && !o.signed_nonce.is_empty() {
        return Ok(Credential::Nkey { key: &o.nkey, sig: &o.signed_nonce });
    }
    if !o.username.is_empty() && !o.password.is_empty() {
        return Ok(Credential::Password { user: &o.username, password: &o.password });
    }
    if !o.token.is_empty() {
        return Ok(Credential::Token(&o.token));
    }
    Err(CalloutError::NoCredentials)
}

/// The client's address, when the server reported one we can parse.
pub(super) fn client_ip(req: &AuthorizationRequestClaims) -> Option<IpAddr> {
    parse_client_host(&req.client.host).ok()
}

/// Finds and checks the user the request's credentials name; throttles repeated failures per
/// user name and per client host.
pub(super) fn authenticate(
    p: &Pipeline,
    req: &AuthorizationRequestClaims,
    now: i64,
) -> Result<User, CalloutError> {
    let cred = credential(req)?;
    let host = client_ip(req);
    // Tokens name no user: only their host is throttled.
    let throttle_key = match &cred {
        Credential::Password { user, .. } => Some(*user),
        Credential::Token(_) => None,
        Credential::Nkey { key, .. } => Some(*key),
    };
    let instant = Instant::now();
    let throttle = p.throttle();
    match throttle_key {
        Some(key) => throttle.check(key, host, instant),
        None => throttle.check_host(host, instant),
    }
    .map_err(CalloutError::Throttled)?;
    let result = match cred {
        Credential::Password { user, password } => by_password(p, user, password),
        Credential::Token(token) => by_token(p, token, now),
        Credential::Nkey { key, sig } => by_nkey(p, key, sig, &req.client.nonce),
    };
    match (&result, throttle_key) {
        (Err(e), Some(key)) if e.is_credential_failure() => {
            throttle.record_failure(key, host, instant)
        }
        (Err(e), None) if e.is_credential_failure() => throttle.record_host_failure(host, instant),
        (Ok(_), Some(key)) => throttle.record_success(key),
        _ => {}
    }
    result
}

/// A hash no password matches, verified in place of a missing one so that an unknown user (or
/// one without a password) costs as much as a wrong password: timing tells no names.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = crate::auth::ApiTokenSecret::generate();
        // Hashing a fresh random secret with the default parameters cannot fail.
        crate::auth::hash_password(&Secret::new(random.expose())).unwrap_or_default()
    })
}

fn by_password(p: &Pipeline, name: &str, password: &str) -> Result<User, CalloutError> {
    let secret = Secret::new(password);
    let found = p.store().read(|tx| tx.get_user(name))?;
    let (user, phc) = match found {
        Some(u) => match u.password_hash.clone() {
            Some(phc) => (u, phc),
            None => {
                let _permit = p.argon().acquire();
                let _ = verify_password(&secret, decoy_hash());
                return Err(CalloutError::BadPassword(name.into()));
            }
        },
        None => {
            let _permit = p.argon().acquire();
            let _ = verify_password(&secret, decoy_hash());
            return Err(CalloutError::UnknownUser(name.into()));
        }
    };
    let phc = phc.as_str();
    if p.cache().check(name, &secret, phc) {
        return Ok(user);
    }
    let ok = {
        let _permit = p.argon().acquire();
        verify_password(&secret, phc).map_err(CalloutError::Auth)?
    };
    if !ok {
        return Err(CalloutError::BadPassword(name.into()));
    }
    p.cache().insert(name, &secret, phc);
    Ok(user)
}

fn by_token(p: &Pipeline, token: &str, now: i64) -> Result<User, CalloutError> {
    let (user, tok) = p
        .store()
        .read(|tx| tx.user_by_token(&token_hash(token)))?
        .ok_or(CalloutError::UnknownToken)?;
    if tok.is_expired(now) {
        return Err(CalloutError::TokenExpired { user: user.name.to_string(), id: tok.id });
    }
    Ok(user)
}

fn by_nkey(p: &Pipeline, key: &str, sig: &str, nonce: &str) -> Result<User, CalloutError> {
    let public = UserPublicKey::parse(key).map_err(|_| CalloutError::UnknownNkey(key.into()))?;
    let user = p
        .store()
        .read(|tx| tx.user_by_nkey(public.as_str()))?
        .ok_or_else(|| CalloutError::UnknownNkey(key.into()))?;
    verify_nkey_signature(&public, nonce, sig)
        .map_err(|source| CalloutError::NkeySignature { user: user.name.to_string(), source })?;
    Ok(user)
}
