//! Authentication: which user do the connect options prove to be?

use std::net::IpAddr;
use std::time::Instant;

use super::argon::Phc;
use super::pipeline::Pipeline;
use super::CalloutError;
use crate::auth::oidc::{self, OidcLogin};
use crate::auth::{parse_client_host, token_hash, verify_nkey_signature, Secret};
use crate::claims::AuthorizationRequestClaims;
use crate::keys::UserPublicKey;
use crate::model::{Account, Role, User};
use crate::store::StoreRead;

/// The credential a client presented.
enum Credential<'a> {
    Password {
        user: &'a str,
        password: &'a str,
    },
    Token(&'a str),
    Nkey {
        key: &'a str,
        sig: &'a str,
    },
    /// An identity provider's token: a JWT as the NATS `token`, or as the password of the
    /// user [`TOKEN_USER`](crate::auth::oidc::TOKEN_USER).
    Oidc(&'a str),
}

/// Who a login proved to be: a user, and for a provider's token what the token said.
pub(super) struct Identity {
    /// The user (for a provider's token without `--provision`, one that is not stored).
    pub user: User,
    /// The provider's login, when the credential was a provider's token.
    pub oidc: Option<OidcLogin>,
    /// The user's account and role, when they were read in the same snapshot as the user
    /// (token logins: one read transaction instead of two).
    pub records: Option<(Account, Role)>,
}

impl Identity {
    fn local(user: User) -> Self {
        Identity { user, oidc: None, records: None }
    }
}

fn credential(req: &AuthorizationRequestClaims) -> Result<Credential<'_>, CalloutError> {
    let o = &req.connect_opts;
    if !o.nkey.is_empty() && !o.signed_nonce.is_empty() {
        return Ok(Credential::Nkey { key: &o.nkey, sig: &o.signed_nonce });
    }
    if o.username == oidc::TOKEN_USER && !o.password.is_empty() {
        return Ok(Credential::Oidc(&o.password));
    }
    if !o.username.is_empty() && !o.password.is_empty() {
        return Ok(Credential::Password { user: &o.username, password: &o.password });
    }
    if oidc::looks_like_jwt(&o.token) {
        return Ok(Credential::Oidc(&o.token));
    }
    if !o.token.is_empty() {
        return Ok(Credential::Token(&o.token));
    }
    Err(CalloutError::NoCredentials)
}

/// How the request authenticates: `password`, `token`, `nkey`, or `none`.
pub(super) fn method(req: &AuthorizationRequestClaims) -> &'static str {
    match credential(req) {
        Ok(Credential::Password { .. }) => "password",
        Ok(Credential::Token(_)) => "token",
        Ok(Credential::Nkey { .. }) => "nkey",
        Ok(Credential::Oidc(_)) => "oidc",
        Err(_) => "none",
    }
}

/// The user the request names: the user name, or the nkey presented; empty for a token.
pub(super) fn claimed_user(req: &AuthorizationRequestClaims) -> &str {
    match credential(req) {
        Ok(Credential::Password { user, .. }) => user,
        Ok(Credential::Nkey { key, .. }) => key,
        Ok(Credential::Token(_)) | Ok(Credential::Oidc(_)) | Err(_) => "",
    }
}

/// The client's address, when the server reported one we can parse.
pub(super) fn client_ip(req: &AuthorizationRequestClaims) -> Option<IpAddr> {
    parse_client_host(&req.client.host).ok()
}

/// Finds and checks the user the request's credentials name. Failures are throttled per (user,
/// client host), per host and per user (see [`LoginThrottle`](crate::auth::LoginThrottle)); the
/// throttle slot is reserved before any verification, so the limits hold under concurrency.
pub(super) async fn authenticate(
    p: &Pipeline,
    req: &AuthorizationRequestClaims,
    now: i64,
) -> Result<Identity, CalloutError> {
    let cred = credential(req)?;
    // Tokens name no user: only their host is throttled.
    let user = match &cred {
        Credential::Password { user, .. } => Some(*user),
        Credential::Token(_) | Credential::Oidc(_) => None,
        Credential::Nkey { key, .. } => Some(*key),
    };
    let attempt =
        p.throttle().begin_waiting(user, client_ip(req)).await.map_err(CalloutError::Throttled)?;
    let result = match cred {
        Credential::Password { user, password } => {
            by_password(p, user, password).await.map(Identity::local)
        }
        Credential::Token(token) => by_token(p, token, now),
        Credential::Nkey { key, sig } => {
            by_nkey(p, key, sig, &req.client.nonce).map(Identity::local)
        }
        Credential::Oidc(token) => oidc::login(p.oidc(), p.store(), token, now)
            .await
            .map(|l| Identity { user: l.user.clone(), oidc: Some(l), records: None })
            .map_err(CalloutError::from),
    };
    match &result {
        Err(e) if e.is_credential_failure() => attempt.failed(Instant::now()),
        Ok(_) => attempt.succeeded(),
        // Not a verdict on the credential (busy, store error): the slots are given back.
        Err(_) => drop(attempt),
    }
    result
}

async fn by_password(p: &Pipeline, name: &str, password: &str) -> Result<User, CalloutError> {
    let secret = Secret::new(password);
    let found = p.store().read(|tx| tx.get_user(name))?;
    let (user, phc) = match found {
        Some(u) => match u.password_hash.clone() {
            Some(phc) => (u, phc),
            None => {
                p.argon().verify(secret, Phc::Decoy).await?;
                return Err(CalloutError::BadPassword(name.into()));
            }
        },
        None => {
            p.argon().verify(secret, Phc::Decoy).await?;
            return Err(CalloutError::UnknownUser(name.into()));
        }
    };
    let hit = p.cache().check(name, &secret, &phc);
    p.metrics().cache_lookup(hit);
    if hit {
        return Ok(user);
    }
    if !p.argon().verify(secret.clone(), Phc::Stored(phc.clone())).await? {
        return Err(CalloutError::BadPassword(name.into()));
    }
    p.cache().insert(name, &secret, &phc);
    Ok(user)
}

/// The token's user, with its account and role read in the same snapshot.
fn by_token(p: &Pipeline, token: &str, now: i64) -> Result<Identity, CalloutError> {
    let hash = token_hash(token);
    let (user, tok, records) = p.store().read(|tx| -> Result<_, CalloutError> {
        let (user, tok) = tx.user_by_token(&hash)?.ok_or(CalloutError::UnknownToken)?;
        if tok.is_expired(now) {
            return Ok((user, tok, None));
        }
        let records =
            (tx.require_account(user.account.as_str())?, tx.require_role(user.role.as_str())?);
        Ok((user, tok, Some(records)))
    })?;
    if records.is_none() {
        return Err(CalloutError::TokenExpired { user: user.name.to_string(), id: tok.id });
    }
    Ok(Identity { user, oidc: None, records })
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
