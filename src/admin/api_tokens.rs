//! API tokens of named admins: `pbn admin admin token add|list|revoke`, and how the HTTP API
//! finds the admin behind a bearer token ([`authenticate`]).
//!
//! A token is shown once (in the answer of `add`) and stored only as its SHA-256 hash; it acts
//! as its admin, with the admin's scope and read-only flag, until it expires, is revoked, or
//! its admin is revoked, expires or is deleted.

use serde::{Deserialize, Serialize};

use super::view::{Response, TokenView};
use super::{check_lifetime, reading, writing, AdminError, Command, Context, Outcome};
use crate::auth::{token_hash, ApiTokenSecret};
use crate::model::AdminRecord;
use crate::store::{
    AdminPasswordRecord, AdminTokenRead, AdminTokenRecord, Store, StoreError, StoreRead,
};

/// Create an API token for an admin; the token is in the answer only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenAdd {
    /// Admin name.
    pub name: String,
    /// Label.
    pub label: Option<String>,
    /// Lifetime in seconds; none: until revoked.
    pub expires_secs: Option<u64>,
}

impl Command for AdminTokenAdd {
    const NAME: &'static str = "admin_token_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            if let Some(secs) = self.expires_secs {
                check_lifetime("token lifetime", secs)?;
            }
            let admin = tx.require_admin(&self.name)?;
            if admin.revoked.is_some() || admin.is_expired(ctx.now) {
                let what = format!("admin {} is revoked or expired: no token", self.name);
                return Err(AdminError::Invalid(what));
            }
            let secret = ApiTokenSecret::generate();
            let id = super::tokens::token_id();
            tx.insert_admin_token(&AdminTokenRecord {
                id: id.clone(),
                admin: admin.name.to_string(),
                admin_key: admin.public_key.to_string(),
                label: self.label.clone().unwrap_or_default(),
                hash: secret.hash(),
                created: ctx.now,
                expires: self.expires_secs.map(|s| ctx.now.saturating_add_unsigned(s)),
            })?;
            let token = secret.expose().to_string();
            Ok(Response::Token { user: self.name.clone(), id, token })
        })
    }
}

/// List an admin's API tokens (never the tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenList {
    /// Admin name.
    pub name: String,
}

impl Command for AdminTokenList {
    const NAME: &'static str = "admin_token_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            tx.require_admin(&self.name)?;
            let tokens = tx.admin_tokens_of(&self.name)?.into_iter().map(|t| TokenView {
                id: t.id,
                label: t.label,
                created: t.created,
                expires: t.expires,
            });
            Ok(Response::Tokens(tokens.collect()))
        })
    }
}

/// Revoke an admin's API token: requests bearing it are refused from then on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminTokenRevoke {
    /// Admin name.
    pub name: String,
    /// Token id.
    pub id: String,
}

impl Command for AdminTokenRevoke {
    const NAME: &'static str = "admin_token_revoke";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            tx.require_admin(&self.name)?;
            tx.remove_admin_token(&self.name, &self.id).map_err(|e| match e {
                StoreError::NotFound { .. } => {
                    AdminError::NotFound { what: "token", name: self.id.clone() }
                }
                e => e.into(),
            })?;
            Ok(Response::Done {
                message: format!("token {} of admin {} revoked", self.id, self.name),
            })
        })
    }
}

/// Set an admin's console password (the web console's sign-in). Like user passwords, only
/// its argon2id hash travels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPasswd {
    /// Admin name.
    pub name: String,
    /// The argon2id PHC string of the password.
    pub password_hash: String,
}

impl Command for AdminPasswd {
    const NAME: &'static str = "admin_passwd";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let admin = tx.require_admin(&self.name)?;
            if !self.password_hash.starts_with("$argon2id$") {
                return Err(crate::model::ModelError::PasswordNotHashed(self.name.clone()).into());
            }
            let record = AdminPasswordRecord {
                admin_key: admin.public_key.to_string(),
                hash: self.password_hash.clone(),
            };
            tx.set_admin_password(&self.name, &record)?;
            Ok(Response::Done { message: format!("console password of admin {} set", self.name) })
        })
    }
}

/// Why a bearer token was refused. The token itself is never in a message.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefused {
    /// No `Authorization: Bearer` credential was given.
    #[error(
        "no API token: send `Authorization: Bearer <token>` (made by `pbn admin admin token add`)"
    )]
    Missing,
    /// No admin token has this hash (never made, revoked, or its admin deleted).
    #[error("unknown or revoked API token")]
    Unknown,
    /// The token expired.
    #[error("API token {id} expired (at unix time {at})")]
    Expired {
        /// Its id.
        id: String,
        /// When.
        at: i64,
    },
    /// Its admin was revoked or expired, or replaced by another of the same name.
    #[error("the admin of API token {id} is no longer active: {reason}")]
    AdminInactive {
        /// The token's id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `admin` may act now: not revoked, not expired, and `key` is still its key.
fn check_active(admin: &AdminRecord, key: &str, now: i64) -> Result<(), String> {
    if admin.public_key.as_str() != key {
        return Err("it was deleted and made again".into());
    }
    if let Some(at) = admin.revoked {
        return Err(format!("revoked at unix time {at}"));
    }
    if admin.is_expired(now) {
        return Err(format!("expired at unix time {}", admin.expires));
    }
    Ok(())
}

/// The admin named `name` with its console password hash, when it is active and has one
/// (the caller verifies the password: argon2id is slow, and runs outside the transaction).
pub fn console_admin(
    tx: &impl StoreRead,
    name: &str,
    now: i64,
) -> Result<Option<(AdminRecord, String)>, StoreError> {
    let Some(admin) = tx.get_admin(name)? else { return Ok(None) };
    let Some(pw) = tx.admin_password(name)? else { return Ok(None) };
    Ok(check_active(&admin, &pw.admin_key, now).ok().map(|()| (admin, pw.hash)))
}

/// The admin named `name` when it is still active (a console session checks it on every
/// request, so a revoked admin's session ends at once).
pub fn active_admin(
    tx: &impl StoreRead,
    name: &str,
    key: &str,
    now: i64,
) -> Result<Option<AdminRecord>, StoreError> {
    let Some(admin) = tx.get_admin(name)? else { return Ok(None) };
    Ok(check_active(&admin, key, now).ok().map(|()| admin))
}

/// The active admin behind `token` at `now` (unix seconds), or why there is none.
pub fn authenticate(
    tx: &impl StoreRead,
    token: &str,
    now: i64,
) -> Result<AdminRecord, TokenRefused> {
    if !token.starts_with(ApiTokenSecret::PREFIX) || token.len() != ApiTokenSecret::LEN {
        return Err(TokenRefused::Unknown);
    }
    let record = tx.admin_token_by_hash(&token_hash(token))?.ok_or(TokenRefused::Unknown)?;
    if let Some(at) = record.expires.filter(|_| record.is_expired(now)) {
        return Err(TokenRefused::Expired { id: record.id, at });
    }
    let inactive = |reason: String| TokenRefused::AdminInactive { id: record.id.clone(), reason };
    let admin = tx.get_admin(&record.admin)?.ok_or_else(|| inactive("it was deleted".into()))?;
    check_active(&admin, &record.admin_key, now).map_err(inactive)?;
    Ok(admin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{execute, AdminAdd, AdminRevoke, Request};

    /// A fresh store, as `pbn init` makes it.
    fn init(dir: &std::path::Path) -> Store {
        let ctx = Context::now();
        let path = dir.join("pbn.redb");
        crate::admin::init::init_store_with(&path, "test", false, &ctx, None).expect("init").0
    }

    fn token_of(store: &Store, req: AdminTokenAdd) -> String {
        match execute(store, &Request::from(req), &Context::now()).unwrap().response {
            Response::Token { token, .. } => token,
            other => panic!("expected a token, got {other:?}"),
        }
    }

    #[test]
    fn a_token_authenticates_its_admin_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = init(dir.path());
        let ctx = Context::now();
        let add = AdminAdd { name: "ops".into(), ..AdminAdd::default() };
        execute(&store, &Request::from(add), &ctx).unwrap();
        let token = token_of(&store, AdminTokenAdd { name: "ops".into(), ..Default::default() });
        let admin = store.read(|tx| authenticate(tx, &token, ctx.now)).unwrap();
        assert_eq!(admin.name.as_str(), "ops");

        let list = AdminTokenList { name: "ops".into() };
        let Response::Tokens(listed) = execute(&store, &list.into(), &ctx).unwrap().response else {
            panic!("a token list")
        };
        assert_eq!(listed.len(), 1);
        let revoke = AdminTokenRevoke { name: "ops".into(), id: listed[0].id.clone() };
        execute(&store, &revoke.clone().into(), &ctx).unwrap();
        let refused = store.read(|tx| authenticate(tx, &token, ctx.now)).unwrap_err();
        assert!(matches!(refused, TokenRefused::Unknown), "{refused:?}");
        let again = execute(&store, &revoke.into(), &ctx).unwrap_err();
        assert!(matches!(again, AdminError::NotFound { what: "token", .. }), "{again:?}");
    }

    #[test]
    fn expired_tokens_and_tokens_of_revoked_admins_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = init(dir.path());
        let ctx = Context::now();
        let add = AdminAdd { name: "ops".into(), ..AdminAdd::default() };
        execute(&store, &Request::from(add), &ctx).unwrap();
        let short =
            AdminTokenAdd { name: "ops".into(), expires_secs: Some(60), ..Default::default() };
        let short = token_of(&store, short);
        let later = ctx.now + 61;
        let refused = store.read(|tx| authenticate(tx, &short, later)).unwrap_err();
        assert!(matches!(refused, TokenRefused::Expired { .. }), "{refused:?}");

        let token = token_of(&store, AdminTokenAdd { name: "ops".into(), ..Default::default() });
        execute(&store, &AdminRevoke { name: "ops".into() }.into(), &ctx).unwrap();
        let refused = store.read(|tx| authenticate(tx, &token, ctx.now)).unwrap_err();
        assert!(matches!(refused, TokenRefused::AdminInactive { .. }), "{refused:?}");
        let more = AdminTokenAdd { name: "ops".into(), ..Default::default() };
        let err = execute(&store, &more.into(), &ctx).unwrap_err();
        assert!(matches!(err, AdminError::Invalid(_)), "{err:?}");
        for bad in ["", "Bearer", "pbn_short", &token.replace("pbn_", "xyz_")] {
            let refused = store.read(|tx| authenticate(tx, bad, ctx.now)).unwrap_err();
            assert!(matches!(refused, TokenRefused::Unknown), "{bad}: {refused:?}");
        }
    }

    #[test]
    fn a_token_does_not_outlive_its_admin_being_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = init(dir.path());
        let ctx = Context::now();
        let add = AdminAdd { name: "ops".into(), ..AdminAdd::default() };
        execute(&store, &Request::from(add.clone()), &ctx).unwrap();
        let token = token_of(&store, AdminTokenAdd { name: "ops".into(), ..Default::default() });
        // Deleting the admin leaves the token record; a new admin of that name has a new key.
        store.write(|tx| tx.delete_admin("ops")).unwrap();
        execute(&store, &Request::from(add), &ctx).unwrap();
        let refused = store.read(|tx| authenticate(tx, &token, ctx.now)).unwrap_err();
        assert!(matches!(refused, TokenRefused::AdminInactive { .. }), "{refused:?}");
    }
}
