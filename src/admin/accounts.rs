//! Operator and account operations.

use super::request::{ExportKind as ReqKind, LimitPatch, Request};
use super::view::{AccountView, LimitsView, OperatorView, Response, ShareView};
use super::{AdminError, Context};
use crate::issue;
use crate::keys::{AccountPublicKey, KeyKind};
use crate::model::{
    clip, Account, AccountKind, AccountLimits, Export, ExportKind, Import, Limit, ModelError, Name,
    OutboxAction, SigningKey, Subject,
};
use crate::store::{StoreRead, WriteTx};

pub(super) fn operator_show(tx: &impl StoreRead) -> Result<Response, AdminError> {
    let op = tx.require_operator()?;
    Ok(Response::Operator(OperatorView {
        name: op.name.clone(),
        public_key: op.public_key.to_string(),
        signing_keys: op.signing_keys.iter().map(|k| k.public().to_string()).collect(),
        system_account: op.system_account.to_string(),
        jwt: issue::operator_jwt(&op)?,
    }))
}

pub(super) fn list(tx: &impl StoreRead) -> Result<Response, AdminError> {
    let mut out = Vec::new();
    for acc in tx.list_accounts()? {
        out.push(view(tx, &acc, None)?);
    }
    Ok(Response::Accounts(out))
}

pub(super) fn show(tx: &impl StoreRead, name: &str, ctx: &Context) -> Result<Response, AdminError> {
    let acc = tx.require_account(name)?;
    let jwt = current_jwt(tx, &acc, ctx.now.max(acc.last_jwt_iat))?;
    Ok(Response::Account(view(tx, &acc, Some(jwt))?))
}

/// The JWT `acc` has now (for display and config files), issued at `iat`.
pub(crate) fn current_jwt(
    tx: &impl StoreRead,
    acc: &Account,
    iat: i64,
) -> Result<String, AdminError> {
    let op = tx.require_operator()?;
    Ok(issue::account_jwt(&op, acc, &allowed_accounts(tx)?, iat)?)
}

/// The accounts the callout may place users in: the active managed accounts.
pub(crate) fn allowed_accounts(tx: &impl StoreRead) -> Result<Vec<AccountPublicKey>, AdminError> {
    Ok(tx
        .list_accounts()?
        .into_iter()
        .filter(|a| a.kind == AccountKind::Managed && a.active)
        .map(|a| a.public_key)
        .collect())
}

fn view(tx: &impl StoreRead, a: &Account, jwt: Option<String>) -> Result<AccountView, AdminError> {
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
pub(crate) fn enqueue(
    tx: &mut WriteTx,
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
    tx.enqueue_outbox(&acc.public_key, &acc.name, action, ctx.now_ms)?;
    Ok(())
}

/// Queues a push of the AUTH account, whose `allowed_accounts` follows the active accounts.
pub(crate) fn enqueue_auth(tx: &mut WriteTx, ctx: &Context) -> Result<(), AdminError> {
    let auth = tx.list_accounts()?.into_iter().find(|a| a.kind == AccountKind::Auth);
    if let Some(auth) = auth {
        enqueue(tx, &auth, OutboxAction::Upsert, ctx)?;
    }
    Ok(())
}

pub(super) fn write(
    tx: &mut WriteTx,
    req: &Request,
    ctx: &Context,
) -> Result<Response, AdminError> {
    match req {
        Request::AccountAdd { name, description, limits, disallow_bearer } => {
            if crate::model::is_reserved(name) {
                return Err(ModelError::ReservedName(clip(name)).into());
            }
            let mut acc = Account::generate(Name::parse(name)?, AccountKind::Managed, ctx.now);
            acc.description = description.clone().unwrap_or_default();
            apply_limits(&mut acc.limits, limits)?;
            acc.disallow_bearer = *disallow_bearer;
            tx.insert_account(&acc)?;
            enqueue(tx, &acc, OutboxAction::Upsert, ctx)?;
            enqueue_auth(tx, ctx)?;
            Ok(Response::Account(view(tx, &acc, None)?))
        }
        Request::AccountEdit { name, description, limits, active, disallow_bearer } => {
            let mut acc = tx.require_account(name)?;
            if active == &Some(false) && acc.kind != AccountKind::Managed {
                return Err(AdminError::Protected(format!("account {name:?}"), "deactivated"));
            }
            if let Some(d) = description {
                acc.description = d.clone();
            }
            apply_limits(&mut acc.limits, limits)?;
            acc.disallow_bearer = disallow_bearer.unwrap_or(acc.disallow_bearer);
            let toggled = active.is_some_and(|a| a != acc.active);
            acc.active = active.unwrap_or(acc.active);
            acc.updated = ctx.now;
            tx.update_account(&acc)?;
            enqueue(tx, &acc, OutboxAction::Upsert, ctx)?;
            if toggled {
                enqueue_auth(tx, ctx)?;
            }
            Ok(Response::Account(view(tx, &acc, None)?))
        }
        Request::AccountDelete { name } => delete(tx, name, ctx),
        Request::AccountRotateKeys { name } => rotate_keys(tx, name, ctx),
        Request::AccountSigningKeyAdd { name } => add_signing_key(tx, name, ctx),
        Request::AccountSigningKeyRemove { name, key } => remove_signing_key(tx, name, key, ctx),
        _ => shares(tx, req, ctx),
    }
}

fn delete(tx: &mut WriteTx, name: &str, ctx: &Context) -> Result<Response, AdminError> {
    let acc = tx.require_account(name)?;
    if acc.kind != AccountKind::Managed {
        return Err(AdminError::Protected(format!("account {name:?}"), "deleted"));
    }
    let acc = tx.delete_account(name)?;
    enqueue(tx, &acc, OutboxAction::Delete, ctx)?;
    enqueue_auth(tx, ctx)?;
    Ok(Response::Done { message: format!("account {name} deleted ({})", acc.public_key) })
}

/// A managed account about to get new signing keys. SYS and AUTH are refused: AUTH's key signs
/// the sentinel in every server config and the callout responses, SYS's the service's own users.
fn rekeyable(tx: &WriteTx, name: &str) -> Result<Account, AdminError> {
    let acc = tx.require_account(name)?;
    if acc.kind != AccountKind::Managed {
        return Err(AdminError::Protected(format!("account {name:?}"), "re-keyed"));
    }
    Ok(acc)
}

/// A fresh account signing key that is the newest of `acc` (so it signs), created at `now` or,
/// should a stored key claim a later time, at that time (the later entry wins a tie).
fn newest_key(acc: &Account, now: i64) -> SigningKey {
    let created = acc.signing_keys.iter().map(|k| k.created).fold(now, i64::max);
    SigningKey::generate(KeyKind::Account, created)
}

/// Stores `acc` with its new signing keys and queues its push.
fn store_rekeyed(tx: &mut WriteTx, acc: &mut Account, ctx: &Context) -> Result<(), AdminError> {
    acc.updated = ctx.now;
    tx.update_account(acc)?;
    enqueue(tx, acc, OutboxAction::Upsert, ctx)
}

/// Emergency rotation: one new key replaces all. Connections signed by an old key are closed by
/// the servers when the push arrives; creds were signed by an old key, so their holders are
/// listed (creds stay recorded so their revocation stays possible).
fn rotate_keys(tx: &mut WriteTx, name: &str, ctx: &Context) -> Result<Response, AdminError> {
    let mut acc = rekeyable(tx, name)?;
    let key = newest_key(&acc, ctx.now);
    let signing_key = key.public().to_string();
    let removed = std::mem::replace(&mut acc.signing_keys, vec![key]);
    store_rekeyed(tx, &mut acc, ctx)?;
    let creds_users = tx
        .list_users_of_account(name)?
        .into_iter()
        .filter(|u| !u.creds.is_empty())
        .map(|u| u.name.to_string())
        .collect();
    Ok(Response::KeysRotated {
        account: name.to_string(),
        signing_key,
        removed: removed.iter().map(|k| k.public().to_string()).collect(),
        creds_users,
    })
}

fn add_signing_key(tx: &mut WriteTx, name: &str, ctx: &Context) -> Result<Response, AdminError> {
    let mut acc = rekeyable(tx, name)?;
    let key = newest_key(&acc, ctx.now);
    acc.signing_keys.push(key);
    store_rekeyed(tx, &mut acc, ctx)?;
    Ok(Response::Account(view(tx, &acc, None)?))
}

fn remove_signing_key(
    tx: &mut WriteTx,
    name: &str,
    key: &str,
    ctx: &Context,
) -> Result<Response, AdminError> {
    let mut acc = rekeyable(tx, name)?;
    let Some(pos) = acc.signing_keys.iter().position(|k| k.public() == key) else {
        return Err(AdminError::NotFound { what: "signing key", name: clip(key) });
    };
    if acc.signing_keys.len() == 1 {
        return Err(AdminError::Invalid(format!(
            "signing key {key} is the last one of account {name}; add another first \
             (or use `account rotate-keys`)"
        )));
    }
    acc.signing_keys.remove(pos);
    store_rekeyed(tx, &mut acc, ctx)?;
    Ok(Response::Account(view(tx, &acc, None)?))
}

fn export_kind(k: ReqKind) -> ExportKind {
    match k {
        ReqKind::Stream => ExportKind::Stream,
        ReqKind::Service => ExportKind::Service,
    }
}

fn shares(tx: &mut WriteTx, req: &Request, ctx: &Context) -> Result<Response, AdminError> {
    let (name, subject) = match req {
        Request::ExportAdd { account, subject, .. }
        | Request::ExportRemove { account, subject }
        | Request::ImportAdd { account, subject, .. }
        | Request::ImportRemove { account, subject } => (account, Subject::parse(subject)?),
        _ => return Err(AdminError::Invalid("not an account operation".into())),
    };
    let mut acc = tx.require_account(name)?;
    match req {
        Request::ExportAdd { kind, name: export_name, token_req, .. } => {
            if acc.exports.iter().any(|e| e.subject == subject) {
                return Err(AdminError::Conflict { what: "export", name: clip(subject.as_str()) });
            }
            acc.exports.push(Export {
                name: export_name.clone().unwrap_or_default(),
                subject,
                kind: export_kind(*kind),
                token_req: *token_req,
                response_type: None,
                account_token_position: None,
                description: String::new(),
                advertise: false,
            });
        }
        Request::ExportRemove { .. } => {
            let before = acc.exports.len();
            acc.exports.retain(|e| e.subject != subject);
            if acc.exports.len() == before {
                return Err(AdminError::NotFound { what: "export", name: clip(subject.as_str()) });
            }
        }
        Request::ImportAdd { from, kind, local_subject, name: import_name, .. } => {
            let exporter = match AccountPublicKey::parse(from) {
                Ok(key) => key,
                Err(_) => tx.require_account(from)?.public_key,
            };
            if exporter == acc.public_key {
                return Err(AdminError::Invalid(format!(
                    "account {name} cannot import from itself"
                )));
            }
            if acc.imports.iter().any(|i| i.subject == subject && i.account == exporter) {
                return Err(AdminError::Conflict { what: "import", name: clip(subject.as_str()) });
            }
            acc.imports.push(Import {
                name: import_name.clone().unwrap_or_default(),
                subject,
                account: exporter,
                kind: export_kind(*kind),
                local_subject: local_subject.as_deref().map(Subject::parse).transpose()?,
                share: false,
                token: None,
            });
        }
        _ => {
            let before = acc.imports.len();
            acc.imports.retain(|i| i.subject != subject);
            if acc.imports.len() == before {
                return Err(AdminError::NotFound { what: "import", name: clip(subject.as_str()) });
            }
        }
    }
    acc.updated = ctx.now;
    tx.update_account(&acc)?;
    enqueue(tx, &acc, OutboxAction::Upsert, ctx)?;
    Ok(Response::Account(view(tx, &acc, None)?))
}

#[cfg(test)]
mod tests;
