//! User commands: create, change, delete, password, creds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::accounts::enqueue;
use super::view::{Response, UserView};
use super::{reading, writing, AdminError, Command, Context, Outcome};
use crate::issue::{self, UserSpec};
use crate::keys::{KeyKind, KeyPair, UserPublicKey};
use crate::model::template::{RenderContext, TagPatch};
use crate::model::{
    Account, AccountKind, CloseSessions, Effects, IssuedCreds, Name, OutboxAction, User,
};
use crate::store::{Store, StoreRead, WriteTx};

pub(super) fn view(u: &User) -> UserView {
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
        tags: u.tags.clone(),
        created: u.created,
        updated: u.updated,
    }
}

/// Revokes every creds key handed out to `user` in `acc` (at `now`) and forgets them; the caller
/// stores `user`.
pub(super) fn revoke_creds(
    tx: &mut WriteTx,
    fx: &mut Effects,
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
        fx.revoked.push(c.public);
    }
    acc.updated = ctx.now;
    tx.update_account(acc)?;
    enqueue(tx, fx, acc, OutboxAction::Upsert, ctx)?;
    Ok(revoked)
}

/// Create a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAdd {
    /// Name.
    pub name: String,
    /// Account name.
    pub account: String,
    /// Role name.
    pub role: String,
    /// E-mail.
    pub email: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// argon2id PHC string of the password (hashed by the client).
    pub password_hash: Option<String>,
    /// Tags (`KEY=VALUE`) for the role's subject templates.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Command for UserAdd {
    const NAME: &'static str = "user_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let acc = tx.require_account(&self.account)?;
            check_user_account(&acc)?;
            let role = tx.require_role(&self.role)?;
            let name = Name::parse(&self.name)?;
            let mut u = User::new(name, acc.name.clone(), role.name.clone(), ctx.now);
            u.email = self.email.clone();
            u.description = self.description.clone().unwrap_or_default();
            u.password_hash = self.password_hash.clone();
            u.tags = self.tags.clone();
            tx.insert_user(&u)?;
            Ok(Response::User(view(&u)))
        })
    }
}

/// List users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserList {
    /// Only this account's users.
    pub account: Option<String>,
}

impl Command for UserList {
    const NAME: &'static str = "user_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let users = match &self.account {
                Some(a) => {
                    tx.require_account(a)?;
                    tx.list_users_of_account(a)?
                }
                None => tx.list_users()?,
            };
            Ok(Response::Users(users.iter().map(view).collect()))
        })
    }
}

/// Show a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserShow {
    /// Name.
    pub name: String,
}

impl Command for UserShow {
    const NAME: &'static str = "user_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| Ok(Response::User(view(&tx.require_user(&self.name)?))))
    }
}

/// Change a user. Moving, deactivating or giving it another role revokes its creds and closes
/// its sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEdit {
    /// Name.
    pub name: String,
    /// New account.
    pub account: Option<String>,
    /// New role.
    pub role: Option<String>,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// E-mail.
    pub email: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Registered nkey.
    pub nkey: Option<String>,
    /// Tags to set and remove. When the user's rendered permissions change with them, its
    /// creds are revoked and its sessions closed.
    #[serde(default)]
    pub tags: TagPatch,
}

impl Command for UserEdit {
    const NAME: &'static str = "user_edit";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| self.apply(tx, fx, ctx))
    }
}

impl UserEdit {
    /// Whether the tag patch changes what the user's role renders for it (a role whose
    /// templates cannot be rendered either way counts as changed: sessions are closed rather
    /// than kept on a guess).
    fn retags(
        &self,
        tx: &WriteTx,
        u: &User,
        acc: &Account,
        ctx: &Context,
    ) -> Result<bool, AdminError> {
        if self.tags.is_empty() {
            return Ok(false);
        }
        let mut after = u.tags.clone();
        self.tags.apply(&mut after);
        if after == u.tags {
            return Ok(false);
        }
        let role = tx.require_role(u.role.as_str())?;
        if !role.is_templated() {
            return Ok(false);
        }
        let render = |tags| {
            let c = RenderContext {
                name: u.name.as_str(),
                account: acc.name.as_str(),
                tags,
                claims: None,
                any: None,
            };
            issue::rendered_permissions(&role, &ctx.defaults, &c)
        };
        Ok(match (render(&u.tags), render(&after)) {
            (Ok(before), Ok(now)) => before != now,
            _ => true,
        })
    }

    fn apply(
        &self,
        tx: &mut WriteTx,
        fx: &mut Effects,
        ctx: &Context,
    ) -> Result<Response, AdminError> {
        let mut u = tx.require_user(&self.name)?;
        let mut old_acc = tx.require_account(u.account.as_str())?;
        let new_acc = self.account.as_deref().map(|a| tx.require_account(a)).transpose()?;
        new_acc.as_ref().map(check_user_account).transpose()?;
        let new_role = self.role.as_deref().map(|r| tx.require_role(r)).transpose()?;
        let moves = new_acc.as_ref().is_some_and(|a| a.name != u.account);
        let role_changes = new_role.as_ref().is_some_and(|r| r.name != u.role);
        let deactivates = self.active == Some(false) && u.active;
        let retags = !moves && !role_changes && self.retags(tx, &u, &old_acc, ctx)?;
        if moves || role_changes || deactivates || retags {
            let revoked = revoke_creds(tx, fx, &mut u, &mut old_acc, ctx)?;
            fx.close(CloseSessions::User(u.name.clone()));
            if retags && !revoked.is_empty() {
                tracing::warn!(
                    user = self.name,
                    revoked = revoked.len(),
                    "tags changed the user's subjects: its creds were revoked; issue new ones \
                     with `pbn admin user creds`"
                );
            }
        }
        self.tags.apply(&mut u.tags);
        if let Some(a) = new_acc {
            u.account = a.name;
        }
        if let Some(r) = new_role {
            u.role = r.name;
        }
        u.active = self.active.unwrap_or(u.active);
        if let Some(e) = &self.email {
            u.email = if e.is_empty() { None } else { Some(e.clone()) };
        }
        if let Some(d) = &self.description {
            u.description = d.clone();
        }
        if let Some(k) = &self.nkey {
            u.nkey = if k.is_empty() { None } else { Some(UserPublicKey::parse(k)?) };
        }
        u.updated = ctx.now;
        tx.update_user(&u)?;
        Ok(Response::User(view(&u)))
    }
}

/// Delete a user: its creds are revoked and its sessions closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDelete {
    /// Name.
    pub name: String,
}

impl Command for UserDelete {
    const NAME: &'static str = "user_delete";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let name = &self.name;
            let mut u = tx.require_user(name)?;
            let mut acc = tx.require_account(u.account.as_str())?;
            let revoked = revoke_creds(tx, fx, &mut u, &mut acc, ctx)?;
            tx.delete_user(name)?;
            fx.close(CloseSessions::User(u.name));
            let message = format!("user {name} deleted; {} creds revoked", revoked.len());
            Ok(Response::Done { message })
        })
    }
}

/// Set a password (sessions stay: they logged in with a password that was right then).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPasswd {
    /// Name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

impl Command for UserPasswd {
    const NAME: &'static str = "user_passwd";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let name = &self.name;
            let mut u = tx.require_user(name)?;
            u.password_hash = Some(self.password_hash.clone());
            u.updated = ctx.now;
            tx.update_user(&u)?;
            Ok(Response::Done { message: format!("password of {name} changed") })
        })
    }
}

/// Mint creds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreds {
    /// Name.
    pub name: String,
    /// Keep previous creds valid.
    pub keep_previous: bool,
}

impl Command for UserCreds {
    const NAME: &'static str = "user_creds";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| creds(tx, fx, &self.name, self.keep_previous, ctx))
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

fn creds(
    tx: &mut WriteTx,
    fx: &mut Effects,
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
    let revoked = if keep_previous { vec![] } else { revoke_creds(tx, fx, &mut u, &mut acc, ctx)? };
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
    let vars = issue::UserVars { tags: Some(&u.tags), claims: None };
    let jwt = issue::user_jwt_with(&spec, vars).map_err(|e| match e {
        issue::IssueError::Render(source) => AdminError::Subjects { user: name.into(), source },
        e => AdminError::Issue(e),
    })?;
    u.creds.push(IssuedCreds { public: key.clone(), issued: iat });
    u.updated = ctx.now;
    tx.update_user(&u)?;
    let creds = issue::creds(&jwt, &kp.seed()).to_string();
    Ok(Response::Creds { user: name.into(), public_key: key.to_string(), creds, revoked })
}
