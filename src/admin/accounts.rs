//! Account commands, and the account view and outbox helpers the other commands share.

use serde::{Deserialize, Serialize};

use super::patch::LimitPatch;
use super::view::{AccountView, LimitsView, Response, ShareView};
use super::{reading, writing, AdminError, Command, Context, Outcome};
use crate::issue;
use crate::model::{
    clip, Account, AccountKind, AccountLimits, CloseSessions, Effects, Export, ExportKind, Import,
    Limit, ModelError, Name, OutboxAction,
};
use crate::store::{Store, StoreRead, WriteTx};

/// The JWT `acc` has now (for display and config files), issued at `iat`.
pub(crate) fn current_jwt(
    tx: &impl StoreRead,
    acc: &Account,
    iat: i64,
) -> Result<String, AdminError> {
    let op = tx.require_operator()?;
    Ok(issue::account_jwt(&op, acc, &tx.allowed_accounts()?, iat)?)
}

pub(super) fn view(
    tx: &impl StoreRead,
    a: &Account,
    jwt: Option<String>,
) -> Result<AccountView, AdminError> {
    let l = &a.limits;
    Ok(AccountView {
        name: a.name.to_string(),
        kind: match a.kind {
            AccountKind::System => "system",
            AccountKind::Auth => "auth",
            AccountKind::Managed => "managed",
        }
        .into(),
        public_key: a.public_key.to_string(),
        description: a.description.clone(),
        active: a.active,
        signing_keys: a.signing_keys.iter().map(|k| k.public().to_string()).collect(),
        limits: LimitsView {
            max_connections: l.max_connections.get(),
            max_subscriptions: l.max_subscriptions.get(),
            max_data: l.max_data.get(),
            max_payload: l.max_payload.get(),
            max_leafnodes: l.max_leafnodes.get(),
            max_imports: l.max_imports.get(),
            max_exports: l.max_exports.get(),
            js_disk: l.js_disk.get(),
            js_memory: l.js_memory.get(),
            js_streams: l.js_streams.get(),
            js_consumers: l.js_consumers.get(),
        },
        disallow_bearer: a.disallow_bearer,
        exports: a.exports.iter().map(export_view).collect(),
        imports: a.imports.iter().map(import_view).collect(),
        revocations: a.revocations.len(),
        users: tx.count_users_of_account(a.name.as_str())? as usize,
        jwt,
    })
}

fn kind_name(k: ExportKind) -> String {
    match k {
        ExportKind::Stream => "stream".into(),
        ExportKind::Service => "service".into(),
    }
}

fn export_view(e: &Export) -> ShareView {
    ShareView {
        subject: e.subject.to_string(),
        kind: kind_name(e.kind),
        name: e.name.clone(),
        account: String::new(),
        local_subject: String::new(),
    }
}

fn import_view(i: &Import) -> ShareView {
    ShareView {
        subject: i.subject.to_string(),
        kind: kind_name(i.kind),
        name: i.name.clone(),
        account: i.account.to_string(),
        local_subject: i.local_subject.as_ref().map(|s| s.to_string()).unwrap_or_default(),
    }
}

fn limit(v: Option<i64>, current: Limit) -> Result<Limit, AdminError> {
    Ok(v.map(Limit::try_from).transpose()?.unwrap_or(current))
}

fn apply_limits(l: &mut AccountLimits, p: &LimitPatch) -> Result<(), AdminError> {
    l.max_connections = limit(p.max_connections, l.max_connections)?;
    l.max_subscriptions = limit(p.max_subscriptions, l.max_subscriptions)?;
    l.max_data = limit(p.max_data, l.max_data)?;
    l.max_payload = limit(p.max_payload, l.max_payload)?;
    l.max_leafnodes = limit(p.max_leafnodes, l.max_leafnodes)?;
    l.max_imports = limit(p.max_imports, l.max_imports)?;
    l.max_exports = limit(p.max_exports, l.max_exports)?;
    l.js_disk = limit(p.js_disk, l.js_disk)?;
    l.js_memory = limit(p.js_memory, l.js_memory)?;
    l.js_streams = limit(p.js_streams, l.js_streams)?;
    l.js_consumers = limit(p.js_consumers, l.js_consumers)?;
    Ok(())
}

/// Queues a push of `acc` (in this transaction). An upsert whose account JWT would exceed
/// nats-server's max payload is refused (the error aborts the transaction): the servers would
/// drop the push and keep the old JWT.
pub(super) fn enqueue(
    tx: &mut WriteTx,
    fx: &mut Effects,
    acc: &Account,
    action: OutboxAction,
    ctx: &Context,
) -> Result<(), AdminError> {
    if action == OutboxAction::Upsert {
        let size = current_jwt(tx, acc, ctx.now.max(acc.last_jwt_iat))?.len();
        let max = issue::DEFAULT_MAX_PAYLOAD;
        if size > max {
            let name = acc.name.to_string();
            return Err(ModelError::JwtTooLarge { what: "account", name, size, max }.into());
        }
    }
    let entry = tx.enqueue_outbox(&acc.public_key, &acc.name, action, ctx.now_ms)?;
    fx.pushed(&entry.account, entry.revision);
    Ok(())
}

/// Queues a push of the AUTH account, whose `allowed_accounts` follows the active accounts.
pub(super) fn enqueue_auth(
    tx: &mut WriteTx,
    fx: &mut Effects,
    ctx: &Context,
) -> Result<(), AdminError> {
    let auth = tx.list_accounts()?.into_iter().find(|a| a.kind == AccountKind::Auth);
    if let Some(auth) = auth {
        enqueue(tx, fx, &auth, OutboxAction::Upsert, ctx)?;
    }
    Ok(())
}

/// Create an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAdd {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Limits (unset ones default to unlimited, JetStream off).
    pub limits: LimitPatch,
    /// Refuse bearer users.
    pub disallow_bearer: bool,
}

impl Command for AccountAdd {
    const NAME: &'static str = "account_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            if crate::model::is_reserved(&self.name) {
                return Err(ModelError::ReservedName(clip(&self.name)).into());
            }
            let name = Name::parse(&self.name)?;
            let mut acc = Account::generate(name, AccountKind::Managed, ctx.now);
            acc.description = self.description.clone().unwrap_or_default();
            apply_limits(&mut acc.limits, &self.limits)?;
            acc.disallow_bearer = self.disallow_bearer;
            tx.insert_account(&acc)?;
            enqueue(tx, fx, &acc, OutboxAction::Upsert, ctx)?;
            enqueue_auth(tx, fx, ctx)?;
            Ok(Response::Account(view(tx, &acc, None)?))
        })
    }
}

/// List accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountList {}

impl Command for AccountList {
    const NAME: &'static str = "account_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let mut out = Vec::new();
            for acc in tx.list_accounts()? {
                out.push(view(tx, &acc, None)?);
            }
            Ok(Response::Accounts(out))
        })
    }
}

/// Show an account, with its current JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountShow {
    /// Name.
    pub name: String,
}

impl Command for AccountShow {
    const NAME: &'static str = "account_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let acc = tx.require_account(&self.name)?;
            let jwt = current_jwt(tx, &acc, ctx.now.max(acc.last_jwt_iat))?;
            Ok(Response::Account(view(tx, &acc, Some(jwt))?))
        })
    }
}

/// Change an account. Deactivating it closes every session in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEdit {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Limits to change.
    pub limits: LimitPatch,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// Refuse bearer users.
    pub disallow_bearer: Option<bool>,
}

impl Command for AccountEdit {
    const NAME: &'static str = "account_edit";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let name = &self.name;
            let mut acc = tx.require_account(name)?;
            if self.active == Some(false) && acc.kind != AccountKind::Managed {
                return Err(AdminError::Protected(format!("account {name:?}"), "deactivated"));
            }
            if let Some(d) = &self.description {
                acc.description = d.clone();
            }
            apply_limits(&mut acc.limits, &self.limits)?;
            acc.disallow_bearer = self.disallow_bearer.unwrap_or(acc.disallow_bearer);
            let toggled = self.active.is_some_and(|a| a != acc.active);
            if toggled && acc.active {
                fx.close(CloseSessions::Account(acc.public_key.clone()));
            }
            acc.active = self.active.unwrap_or(acc.active);
            acc.updated = ctx.now;
            tx.update_account(&acc)?;
            enqueue(tx, fx, &acc, OutboxAction::Upsert, ctx)?;
            if toggled {
                enqueue_auth(tx, fx, ctx)?;
            }
            Ok(Response::Account(view(tx, &acc, None)?))
        })
    }
}

/// Delete an account with no users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDelete {
    /// Name.
    pub name: String,
}

impl Command for AccountDelete {
    const NAME: &'static str = "account_delete";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let name = &self.name;
            let acc = tx.require_account(name)?;
            if acc.kind != AccountKind::Managed {
                return Err(AdminError::Protected(format!("account {name:?}"), "deleted"));
            }
            let acc = tx.delete_account(name)?;
            enqueue(tx, fx, &acc, OutboxAction::Delete, ctx)?;
            enqueue_auth(tx, fx, ctx)?;
            Ok(Response::Done { message: format!("account {name} deleted ({})", acc.public_key) })
        })
    }
}

#[cfg(test)]
mod tests;
