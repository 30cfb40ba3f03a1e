//! Self-service for end users, off unless their role has `--self-service`: a user signs in
//! with the password they use for NATS (the same argon2id verification, throttled like admin
//! sign-ins), changes it (the old one required), lists, adds and revokes their own API tokens,
//! and, when the role has `--self-service-creds`, downloads their own creds. Nothing else: the
//! requests are built here for the signed-in user, never taken from the client, and run
//! through the admin API's path without an admin (`admin_api::run_for_user`: same validation,
//! audit trail as `user NAME`, same live effects as the CLI).
//!
//! The console pages are in [`super::me_pages`], the JSON API (`/api/v1/me`) in
//! [`super::me_api`]; this module is what they share.

use crate::admin::api::Reply;
use crate::admin::{ErrorClass, Request, TokenAdd, TokenList, TokenRevoke, UserCreds, UserPasswd};
use crate::model::{Role, User};
use crate::store::{StoreError, StoreRead};

use super::Console;

/// Fewest characters of a new password, as `pbn admin user passwd` asks.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Why a self-service request is refused.
#[derive(Debug, thiserror::Error)]
pub enum MeError {
    /// No such user, a deactivated one, or a role without self-service; or a wrong password.
    #[error("wrong user name or password, or no self-service for user {0}")]
    SignIn(String),
    /// Too many wrong passwords.
    #[error("sign-in of user {user} throttled: {reason}")]
    Throttled {
        /// The user.
        user: String,
        /// The throttle's answer.
        reason: String,
    },
    /// The old password given with a change is wrong.
    #[error("the current password of user {0} is wrong")]
    OldPassword(String),
    /// The new password is too short.
    #[error("password too short: {0} characters, at least {MIN_PASSWORD_LEN} needed")]
    TooShort(usize),
    /// The new password cannot be hashed.
    #[error("cannot hash the new password of user {user}: {reason}")]
    Hash {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// The role does not let its users download creds.
    #[error("role {role} of user {user} has no self-service creds")]
    NoCreds {
        /// The user.
        user: String,
        /// Its role.
        role: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MeError {
    /// The admin API's class of this refusal (its HTTP status by the one table).
    pub fn class(&self) -> ErrorClass {
        match self {
            MeError::SignIn(_) => ErrorClass::Unauthenticated,
            MeError::Throttled { .. } => ErrorClass::Replay,
            MeError::OldPassword(_) | MeError::TooShort(_) => ErrorClass::Usage,
            MeError::NoCreds { .. } => ErrorClass::OutOfScope,
            MeError::Hash { .. } | MeError::Store(_) => ErrorClass::Other,
        }
    }

    /// The HTTP status of this refusal: its class's, except 429 for a throttled sign-in.
    pub fn status(&self) -> u16 {
        match self {
            MeError::Throttled { .. } => 429,
            _ => self.reply().error_code().unwrap_or(500),
        }
    }

    /// The error reply.
    pub fn reply(&self) -> Reply {
        Reply::error(self.class(), self.to_string())
    }
}

/// A signed-in self-service user: the user and its role as they are now.
#[derive(Debug, Clone)]
pub struct Me {
    /// The user.
    pub user: User,
    /// Its role.
    pub role: Role,
}

impl Me {
    /// A fingerprint of the user's password hash: a console session remembers it, so a
    /// password set by an admin (or by the user elsewhere) ends the sessions started with the
    /// old one.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.user.password_hash.as_deref().unwrap_or(""))
    }
}

/// SHA-256 (hex) of `phc`.
pub fn fingerprint(phc: &str) -> String {
    crate::auth::token_hash(phc)
}

/// User `name` when it is active, in an active account, and its role allows self-service.
pub async fn load(c: &Console, name: &str) -> Result<Option<Me>, StoreError> {
    let name = name.to_string();
    c.health
        .store
        .read_async(move |tx| {
            let Some(user) = tx.get_user(&name)? else { return Ok(None) };
            let account_active = tx.get_account(user.account.as_str())?.is_some_and(|a| a.active);
            let Some(role) = tx.get_role(user.role.as_str())? else { return Ok(None) };
            let allowed = user.active && account_active && role.self_service;
            Ok(allowed.then_some(Me { user, role }))
        })
        .await
}

/// The self-service user behind a user API token (`Authorization: Bearer`), if any.
pub async fn by_token(c: &Console, token: &str) -> Result<Option<Me>, StoreError> {
    let hash = crate::auth::token_hash(token);
    let now = crate::clock::unix_now();
    let found = c.health.store.read_async(move |tx| tx.user_by_token(&hash)).await?;
    match found {
        Some((user, t)) if !t.is_expired(now) => load(c, user.name.as_str()).await,
        _ => Ok(None),
    }
}

/// Checks `password` for self-service user `name`, throttled like every sign-in (keyed apart
/// from admins of the same name) from `host`; the user on success.
pub async fn sign_in(
    c: &Console,
    name: &str,
    password: String,
    host: std::net::IpAddr,
) -> Result<Me, MeError> {
    let key = format!("user {name}");
    let attempt = c.throttle.begin_waiting(Some(&key), Some(host)).await.map_err(|e| {
        tracing::warn!(user = %name, %host, "self-service sign-in throttled");
        MeError::Throttled { user: name.to_string(), reason: e.to_string() }
    })?;
    let me = load(c, name).await?;
    let phc = me.as_ref().and_then(|m| m.user.password_hash.clone());
    let ok = match phc {
        Some(phc) => verify(c, password, phc).await,
        None => false,
    };
    match (ok, me) {
        (true, Some(me)) => {
            attempt.succeeded();
            Ok(me)
        }
        _ => {
            attempt.failed(std::time::Instant::now());
            tracing::warn!(user = %name, %host, "self-service sign-in refused");
            Err(MeError::SignIn(name.to_string()))
        }
    }
}

/// argon2id verification of `password` against `phc`, off the async threads and at most
/// [`super::VERIFY_IN_FLIGHT`] at once.
async fn verify(c: &Console, password: String, phc: String) -> bool {
    let Ok(_permit) = c.verify.acquire().await else { return false };
    let ok = tokio::task::spawn_blocking(move || {
        let secret = crate::auth::Secret::new(password);
        let mut memory = crate::auth::VerifyMemory::new(crate::auth::default_verify_blocks());
        crate::auth::verify_password_in(&secret, &phc, &mut memory)
    })
    .await;
    matches!(ok, Ok(Ok(true)))
}

/// Changes `me`'s password to `new` once `old` checks out (throttled as a sign-in); returns
/// the new hash's fingerprint with the reply.
pub async fn change_password(
    c: &Console,
    me: &Me,
    old: String,
    new: String,
    host: std::net::IpAddr,
) -> Result<(Reply, String), MeError> {
    let name = me.user.name.to_string();
    let n = new.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(MeError::TooShort(n));
    }
    match sign_in(c, &name, old, host).await {
        Ok(_) => {}
        Err(MeError::SignIn(_)) => return Err(MeError::OldPassword(name)),
        Err(e) => return Err(e),
    }
    let secret = crate::auth::Secret::new(new);
    let hashed = tokio::task::spawn_blocking(move || crate::auth::hash_password(&secret)).await;
    let phc = match hashed {
        Ok(Ok(phc)) => phc,
        Ok(Err(e)) => return Err(MeError::Hash { user: name, reason: e.to_string() }),
        Err(e) => return Err(MeError::Hash { user: name, reason: e.to_string() }),
    };
    let print = fingerprint(&phc);
    let req = Request::UserPasswd(UserPasswd { name: name.clone(), password_hash: phc });
    Ok((run(c, &name, req).await, print))
}

/// What a self-service user may ask besides a password change.
#[derive(Debug, Clone)]
pub enum Ask {
    /// Their API tokens.
    Tokens,
    /// A new API token (shown once).
    TokenAdd {
        /// Its label.
        label: Option<String>,
        /// Its lifetime in seconds.
        expires_secs: Option<u64>,
    },
    /// Revoke their token `id`.
    TokenRevoke(String),
    /// New creds (shown once; with `--self-service-creds` only); the previous ones revoked
    /// (their sessions closed) unless `keep_previous`, as `pbn admin user creds` does.
    Creds {
        /// Keep previous creds valid.
        keep_previous: bool,
    },
}

/// Runs `ask` for `me`.
pub async fn ask(c: &Console, me: &Me, ask: Ask) -> Result<Reply, MeError> {
    let name = me.user.name.to_string();
    let req = match ask {
        Ask::Tokens => Request::TokenList(TokenList { name: name.clone() }),
        Ask::TokenAdd { label, expires_secs } => {
            Request::TokenAdd(TokenAdd { name: name.clone(), label, expires_secs })
        }
        Ask::TokenRevoke(id) => Request::TokenRevoke(TokenRevoke { name: name.clone(), id }),
        Ask::Creds { .. } if !me.role.self_service_creds => {
            return Err(MeError::NoCreds { user: name, role: me.role.name.to_string() })
        }
        Ask::Creds { keep_previous } => {
            Request::UserCreds(UserCreds { name: name.clone(), keep_previous })
        }
    };
    Ok(run(c, &name, req).await)
}

async fn run(c: &Console, name: &str, req: Request) -> Reply {
    let client = c.health.system.borrow().clone();
    let api = &c.health.admin;
    crate::server::admin_api::run_for_user(client.as_ref(), api, name, req).await.0
}
