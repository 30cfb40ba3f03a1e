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
    let throttle_key = match &cred {
        Credential::Password { user, .. } => *user,
        Credential::Token(_) => "<token>",
        Credential::Nkey { key, .. } => key,
    };
    let instant = Instant::now();
    p.throttle().check(throttle_key, host, instant).map_err(CalloutError::Throttled)?;
    let result = match cred {
        Credential::Password { user, password } => by_password(p, user, password),
        Credential::Token(token) => by_token(p, token, now),
        Credential::Nkey { key, sig } => by_nkey(p, key, sig, &req.client.nonce),
    };
    match &result {
        Err(e) if e.is_credential_failure() => {
            p.throttle().record_failure(throttle_key, host, instant)
        }
        Ok(_) => p.throttle().record_success(throttle_key),
        Err(_) => {}
    }
    result
}

fn by_password(p: &Pipeline, name: &str, password: &str) -> Result<User, CalloutError> {
    let user = p
        .store()
        .read(|tx| tx.get_user(name))?
        .ok_or_else(|| CalloutError::UnknownUser(name.into()))?;
    let Some(phc) = user.password_hash.as_deref() else {
        return Err(CalloutError::BadPassword(name.into()));
    };
    let secret = Secret::new(password);
    if p.cache().check(name, &secret, phc) {
        return Ok(user);
    }
    let ok = verify_password(&secret, phc).map_err(CalloutError::Auth)?;
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
    // Registered nkeys are few; a scan keeps the store schema free of a rarely used index.
    let user = p
        .store()
        .read(|tx| tx.list_users())?
        .into_iter()
        .find(|u| u.nkey.as_ref() == Some(&public))
        .ok_or_else(|| CalloutError::UnknownNkey(key.into()))?;
    verify_nkey_signature(&public, nonce, sig)
        .map_err(|source| CalloutError::NkeySignature { user: user.name.to_string(), source })?;
    Ok(user)
}
