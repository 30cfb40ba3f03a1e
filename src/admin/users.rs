//! User, password, creds and token operations.

use super::accounts::enqueue;
use super::request::Request;
use super::view::{Response, TokenView, UserView};
use super::{AdminError, Context};
use crate::auth::ApiTokenSecret;
use crate::issue::{self, UserSpec};
use crate::keys::{KeyKind, KeyPair, UserPublicKey};
use crate::model::{Account, AccountKind, ApiToken, IssuedCreds, Name, OutboxAction, User};
use crate::store::{StoreRead, WriteTx};

pub(super) fn list(tx: &impl StoreRead, account: Option<&str>) -> Result<Response, AdminError> {
    let users = match account {
        Some(a) => {
            tx.require_account(a)?;
            tx.list_users_of_account(a)?
        }
        None => tx.list_users()?,
    };
    Ok(Response::Users(users.iter().map(view).collect()))
}

pub(super) fn show(tx: &impl StoreRead, name: &str) -> Result<Response, AdminError> {
    Ok(Response::User(view(&tx.require_user(name)?)))
}

pub(super) fn tokens(tx: &impl StoreRead, name: &str) -> Result<Response, AdminError> {
    let u = tx.require_user(name)?;
    Ok(Response::Tokens(
        u.tokens
            .iter()
            .map(|t| TokenView {
                id: t.id.clone(),
                label: t.label.clone(),
                created: t.created,
                expires: t.expires,
            })
            .collect(),
    ))
}

fn view(u: &User) -> UserView {
    UserView {
        name: u.name.to_string(),
        account: u.account.to_string(),
        role: u.role.to_string(),
        active: u.active,
        email: u.email.clone(),
        description: u.description.clone(),
        has_password: u.password_hash.is_some(),
        tokens: u.tokens.len(),
        nkey: u.nkey.as_ref().map(ToString::to_string),
        creds: u.creds.iter().map(|c| c.public.to_string()).collect(),
        created: u.created,
        updated: u.updated,
    }
}

/// Revokes every creds key handed out to `user` in `acc` (at `now`) and forgets them; the caller
/// stores `user`.
pub(super) fn revoke_creds(
    tx: &mut WriteTx,
    user: &mut User,
    acc: &mut Account,
    ctx: &Context,
) -> Result<Vec<String>, AdminError> {
    if user.creds.is_empty() {
        return Ok(vec![]);
    }
    let revoked: Vec<String> = user.creds.iter().map(|c| c.public.to_string()).collect();
    for c in user.creds.drain(..) {
        acc.revoke(&c.public, ctx.now);
    }
    acc.updated = ctx.now;
    tx.update_account(acc)?;
    enqueue(tx, acc, OutboxAction::Upsert, ctx)?;
    Ok(revoked)
}

pub(super) fn write(
    tx: &mut WriteTx,
    req: &Request,
    ctx: &Context,
) -> Result<Response, AdminError> {
    match req {
        Request::UserAdd { name, account, role, email, description, password_hash } => {
            let acc = tx.require_account(account)?;
            check_user_account(&acc)?;
            let role = tx.require_role(role)?;
            let mut u = User::new(Name::parse(name)?, acc.name.clone(), role.name.clone(), ctx.now);
            u.email = email.clone();
            u.description = description.clone().unwrap_or_default();
            u.password_hash = password_hash.clone();
            tx.insert_user(&u)?;
            Ok(Response::User(view(&u)))
        }
        Request::UserEdit { .. } => edit(tx, req, ctx),
        Request::UserDelete { name } => {
            let mut u = tx.require_user(name)?;
            let mut acc = tx.require_account(u.account.as_str())?;
            let revoked = revoke_creds(tx, &mut u, &mut acc, ctx)?;
            tx.delete_user(name)?;
            let message = format!("user {name} deleted; {} creds revoked", revoked.len());
            Ok(Response::Done { message })
        }
        Request::UserPasswd { name, password_hash } => {
            let mut u = tx.require_user(name)?;
            u.password_hash = Some(password_hash.clone());
            u.updated = ctx.now;
            tx.update_user(&u)?;
            Ok(Response::Done { message: format!("password of {name} changed") })
        }
        Request::UserCreds { name, keep_previous } => creds(tx, name, *keep_previous, ctx),
        Request::TokenAdd { name, label, expires_secs } => {
            if let Some(secs) = expires_secs {
                super::check_lifetime("token lifetime", *secs)?;
            }
            let mut u = tx.require_user(name)?;
            let secret = ApiTokenSecret::generate();
            let id = token_id();
            u.tokens.push(ApiToken {
                id: id.clone(),
                label: label.clone().unwrap_or_default(),
                hash: secret.hash(),
                created: ctx.now,
                expires: expires_secs.map(|s| ctx.now.saturating_add_unsigned(s)),
            });
            u.updated = ctx.now;
            tx.update_user(&u)?;
            let token = secret.expose().to_string();
            Ok(Response::Token { user: name.clone(), id, token })
        }
        Request::TokenRevoke { name, id } => {
            let mut u = tx.require_user(name)?;
            let before = u.tokens.len();
            u.tokens.retain(|t| &t.id != id);
            if u.tokens.len() == before {
                return Err(AdminError::NotFound { what: "token", name: id.clone() });
            }
            u.updated = ctx.now;
            tx.update_user(&u)?;
            Ok(Response::Done { message: format!("token {id} of {name} revoked") })
        }
        _ => Err(AdminError::Invalid("not a user operation".into())),
    }
}

/// Users live in managed accounts only: a user of SYS would have the system account's powers, and
/// one of AUTH could read every callout request (passwords included).
fn check_user_account(acc: &Account) -> Result<(), AdminError> {
    if acc.kind != AccountKind::Managed {
        return Err(AdminError::Protected(
            format!("account {:?}", acc.name.as_str()),
            "given users",
        ));
    }
    Ok(())
}

fn token_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!("tok_{}", data_encoding::BASE32_NOPAD.encode(&b).to_ascii_lowercase())
}

fn edit(tx: &mut WriteTx, req: &Request, ctx: &Context) -> Result<Response, AdminError> {
    let Request::UserEdit { name, account, role, active, email, description, nkey } = req else {
        return Err(AdminError::Invalid("not a user edit".into()));
    };
    let mut u = tx.require_user(name)?;
    let mut old_acc = tx.require_account(u.account.as_str())?;
    let new_acc = account.as_deref().map(|a| tx.require_account(a)).transpose()?;
    new_acc.as_ref().map(check_user_account).transpose()?;
    let new_role = role.as_deref().map(|r| tx.require_role(r)).transpose()?;
    let moves = new_acc.as_ref().is_some_and(|a| a.name != u.account);
    let role_changes = new_role.as_ref().is_some_and(|r| r.name != u.role);
    let deactivates = active == &Some(false) && u.active;
    if moves || role_changes || deactivates {
        revoke_creds(tx, &mut u, &mut old_acc, ctx)?;
    }
    if let Some(a) = new_acc {
        u.account = a.name;
    }
    if let Some(r) = new_role {
        u.role = r.name;
    }
    u.active = active.unwrap_or(u.active);
    if let Some(e) = email {
        u.email = if e.is_empty() { None } else { Some(e.clone()) };
    }
    if let Some(d) = description {
        u.description = d.clone();
    }
    if let Some(k) = nkey {
        u.nkey = if k.is_empty() { None } else { Some(UserPublicKey::parse(k)?) };
    }
    u.updated = ctx.now;
    tx.update_user(&u)?;
    Ok(Response::User(view(&u)))
}

fn creds(
    tx: &mut WriteTx,
    name: &str,
    keep_previous: bool,
    ctx: &Context,
) -> Result<Response, AdminError> {
    let mut u = tx.require_user(name)?;
    if !u.active {
        return Err(AdminError::Invalid(format!("user {name} is inactive; activate it first")));
    }
    let mut acc = tx.require_account(u.account.as_str())?;
    let role = tx.require_role(u.role.as_str())?;
    let revoked = if keep_previous { vec![] } else { revoke_creds(tx, &mut u, &mut acc, ctx)? };
    let kp = KeyPair::generate(KeyKind::User);
    let key = UserPublicKey::parse(kp.public_key())?;
    // The revocations written above name the old keys only, so the new key is unaffected.
    let iat = ctx.now;
    let exp = role.jwt_ttl.map_or(0, |t| iat.saturating_add_unsigned(t.as_secs()));
    let spec = UserSpec {
        account: &acc,
        role: &role,
        user_key: &key,
        name,
        iat,
        exp,
        defaults: &ctx.defaults,
    };
    let jwt = issue::user_jwt(&spec)?;
    u.creds.push(IssuedCreds { public: key.clone(), issued: iat });
    u.updated = ctx.now;
    tx.update_user(&u)?;
    let creds = issue::creds(&jwt, &kp.seed()).to_string();
    Ok(Response::Creds { user: name.into(), public_key: key.to_string(), creds, revoked })
}
