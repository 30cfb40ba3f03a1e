//! One login with a provider's token, as the callout runs it: find the provider by `iss`,
//! verify with its keys, map the claims, and find (or create, with `--provision`) the user.

use serde_json::Value;

use super::cache::KeyCache;
use super::validate::{peek, verify, Rules};
use super::{mapping, OidcError};
use crate::model::{IdentityProvider, MappingTarget, Name, User};
use crate::store::{IdpRead, Store, StoreError, StoreRead};

impl From<StoreError> for OidcError {
    fn from(e: StoreError) -> Self {
        OidcError::Store(e.to_string())
    }
}

/// A login a provider's token proved.
#[derive(Debug, Clone)]
pub struct OidcLogin {
    /// The user: the record the provider's logins created, or (without `--provision`) a user
    /// made for this login only, never stored.
    pub user: User,
    /// Whether `user` is a stored record.
    pub stored: bool,
    /// The provider as it was when the token was checked.
    pub idp: IdentityProvider,
    /// The token's verified claims (for subject templates and audit).
    pub claims: Value,
    /// The token's `exp`: the minted user JWT expires by then at the latest.
    pub expires: i64,
}

/// Checks `token` at time `now` and returns the login it proves.
pub async fn login(
    cache: &KeyCache,
    store: &Store,
    token: &str,
    now: i64,
) -> Result<OidcLogin, OidcError> {
    let peeked = peek(token)?;
    let iss = peeked.iss.clone();
    let idp = store
        .read(|tx| tx.idp_by_issuer(&iss))?
        .ok_or_else(|| OidcError::UnknownIssuer(crate::model::clip(&iss)))?;
    let keys = cache.keys_for(&idp, peeked.kid.as_deref()).await?;
    let leeway = i64::try_from(idp.leeway_secs).unwrap_or(0);
    let rules = Rules { provider: idp.name.as_str(), audience: &idp.audience, leeway, now };
    let claims = verify(token, &peeked, &keys, &rules)?;
    let name = mapping::user_name(&claims, &idp.username_claim)?;
    let target = mapping::target(&idp, &claims).cloned().ok_or_else(|| OidcError::NoMapping {
        provider: idp.name.to_string(),
        user: name.to_string(),
    })?;
    check_target(store, &idp, &target)?;
    let expires = claims["exp"].as_i64().unwrap_or(now);
    let (user, stored) = user_for(store, &idp, name, target, now).await?;
    Ok(OidcLogin { user, stored, idp, claims, expires })
}

fn check_target(store: &Store, idp: &IdentityProvider, t: &MappingTarget) -> Result<(), OidcError> {
    let (acc, role) = store.read(|tx| -> Result<_, StoreError> {
        Ok((tx.get_account(t.account.as_str())?.is_some(), tx.get_role(t.role.as_str())?.is_some()))
    })?;
    let missing = |what, name: &Name| OidcError::MissingTarget {
        provider: idp.name.to_string(),
        what,
        name: name.to_string(),
    };
    match (acc, role) {
        (false, _) => Err(missing("account", &t.account)),
        (_, false) => Err(missing("role", &t.role)),
        _ => Ok(()),
    }
}

/// The user of a login named `name` landing at `target`. A stored user is used only when this
/// provider's logins created it (its account and role follow the mapping); a local user's name
/// is refused. Without one, `--provision` creates the record, else the user is made up for
/// this login.
async fn user_for(
    store: &Store,
    idp: &IdentityProvider,
    name: Name,
    target: MappingTarget,
    now: i64,
) -> Result<(User, bool), OidcError> {
    let key = name.to_string();
    let (found, by) = store.read(|tx| -> Result<_, StoreError> {
        Ok((tx.get_user(&key)?, tx.provisioned_by(&key)?))
    })?;
    let ours = by.as_deref() == Some(idp.name.as_str());
    match found {
        Some(_) if !ours => Err(OidcError::NameTaken(key)),
        Some(u) if u.account == target.account && u.role == target.role => Ok((u, true)),
        Some(_) => Ok((retarget(store, idp, key, target, now).await?, true)),
        None if idp.provision => Ok((provision(store, idp, name, target, now).await?, true)),
        None => Ok((User::new(name, target.account, target.role, now), false)),
    }
}

/// Moves the user `key` this provider created to `target` (the mapping changed).
async fn retarget(
    store: &Store,
    idp: &IdentityProvider,
    key: String,
    target: MappingTarget,
    now: i64,
) -> Result<User, OidcError> {
    let provider = idp.name.to_string();
    store
        .write_async(move |tx| -> Result<User, OidcError> {
            let mut u = tx.require_user(&key)?;
            if tx.provisioned_by(&key)?.as_deref() != Some(provider.as_str()) {
                return Err(OidcError::NameTaken(key));
            }
            u.account = target.account;
            u.role = target.role;
            u.updated = now;
            tx.update_user(&u)?;
            Ok(u)
        })
        .await
}

/// Creates the user record of a provider's first login of `name`.
async fn provision(
    store: &Store,
    idp: &IdentityProvider,
    name: Name,
    target: MappingTarget,
    now: i64,
) -> Result<User, OidcError> {
    let provider = idp.name.to_string();
    let mut u = User::new(name, target.account, target.role, now);
    u.description = format!("created by a login through identity provider {provider}");
    let user = store
        .write_async(move |tx| -> Result<User, OidcError> {
            // A concurrent login of the same new user may have created it.
            if let Some(existing) = tx.get_user(u.name.as_str())? {
                return match tx.provisioned_by(u.name.as_str())? {
                    Some(p) if p == provider => Ok(existing),
                    _ => Err(OidcError::NameTaken(u.name.to_string())),
                };
            }
            tx.insert_user(&u)?;
            tx.link_idp_user(u.name.as_str(), Some(&provider))?;
            Ok(u)
        })
        .await?;
    tracing::info!(user = %user.name, provider = %idp.name, "user provisioned by an identity provider login");
    Ok(user)
}
