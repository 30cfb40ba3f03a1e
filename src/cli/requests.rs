//! Command-line arguments → typed admin requests. Passwords are read here (never from argv) and
//! hashed with argon2id before they go anywhere.

use crate::admin::{
    AccountAdd, AccountDelete, AccountEdit, AccountList, AccountRotateKeys, AccountShow,
    AccountSigningKeyAdd, AccountSigningKeyRemove, ExportAdd, ExportRemove, ImportAdd,
    ImportRemove, OperatorAdminCreds, OperatorShow, OutboxList, OutboxRetry, RoleAdd, RoleDelete,
    RoleEdit, RoleList, RoleShow, TokenAdd, TokenList, TokenRevoke, UserAdd, UserCreds, UserDelete,
    UserEdit, UserList, UserPasswd, UserShow,
};
use anyhow::{Context as _, Result};

use super::args::{
    AccountCommand, AccountLimitArgs, AdminCommand, ExportCommand, ExportKindArg, ImportCommand,
    OperatorCommand, OutboxCommand, PasswordArgs, RoleArgs, RoleCommand, SigningKeyCommand,
    TokenCommand, UserCommand,
};
use super::secrets::read_password;
use crate::admin::{AdminError, ExportKind, LimitPatch, ListPatch, Request, RolePatch};
use crate::auth::{hash_password, Secret};
use crate::model::template::{check_tag_key, TagPatch};
use crate::model::{clip, ModelError, NAME_MAX_LEN};
use std::collections::BTreeMap;

/// Builds the request for an admin command (reading a password where one is needed).
pub fn build(cmd: &AdminCommand) -> Result<Request> {
    Ok(match cmd {
        AdminCommand::Operator(OperatorCommand::Show { .. }) => {
            Request::OperatorShow(OperatorShow {})
        }
        AdminCommand::Operator(OperatorCommand::AdminCreds { .. }) => {
            Request::OperatorAdminCreds(OperatorAdminCreds {})
        }
        AdminCommand::Account(a) => account(a)?,
        AdminCommand::Role(r) => role(r)?,
        AdminCommand::User(u) => user(u)?,
        AdminCommand::Outbox(OutboxCommand::List) => Request::OutboxList(OutboxList {}),
        AdminCommand::Outbox(OutboxCommand::Retry { id }) => {
            Request::OutboxRetry(OutboxRetry { id: n(id)? })
        }
        AdminCommand::Store(_) => return Err(NotARequest("store").into()),
        AdminCommand::Import(_) => return Err(NotARequest("import").into()),
        AdminCommand::Export(_) => return Err(NotARequest("export").into()),
        AdminCommand::Admin(a) => super::admins::request(a)?,
        AdminCommand::Replica(r) => super::replicas::request(r)?,
        AdminCommand::Idp(i) => super::idp::request(i)?,
        AdminCommand::Audit(a) => super::audit_list::request(a, crate::clock::unix_now_ms())?,
        AdminCommand::Session(s) => super::session::request(s)?,
    })
}

/// A command that works on the store file and has no admin request.
#[derive(Debug, thiserror::Error)]
#[error("pbn admin {0} has no admin request")]
pub struct NotARequest(pub &'static str);

/// A record name or id from the command line. One longer than any name can be is refused here
/// (quoted cut short), so no error message echoes a flood of input; the rest of the name rules
/// are the store's.
fn n(text: &str) -> Result<String> {
    if text.chars().count() > NAME_MAX_LEN {
        return Err(AdminError::Model(ModelError::NameLength(clip(text))).into());
    }
    Ok(text.to_string())
}

/// `--tag KEY=VALUE` flags as a map; a flag without `=`, or a bad key, is refused here with
/// the flag named (values are checked by the store).
fn tag_pairs(flags: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for flag in flags {
        let (k, v) = flag.split_once('=').ok_or_else(|| {
            AdminError::Invalid(format!("--tag {:?} is not KEY=VALUE", clip(flag)))
        })?;
        check_tag_key(k).map_err(AdminError::Model)?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// `--untag KEY` flags, each a valid key.
fn tag_keys(flags: &[String]) -> Result<Vec<String>> {
    for k in flags {
        check_tag_key(k).map_err(AdminError::Model)?;
    }
    Ok(flags.to_vec())
}

/// [`n`], for the other command files.
pub(super) fn name_arg(text: &str) -> Result<String> {
    n(text)
}

/// [`n`] for an optional name.
fn opt(text: &Option<String>) -> Result<Option<String>> {
    text.as_deref().map(n).transpose()
}

fn limits(a: &AccountLimitArgs) -> LimitPatch {
    LimitPatch {
        max_connections: a.max_connections,
        max_subscriptions: a.max_subscriptions,
        max_data: a.max_data,
        max_payload: a.max_payload,
        max_leafnodes: a.max_leafnodes,
        max_imports: a.max_imports,
        max_exports: a.max_exports,
        js_disk: a.js_disk,
        js_memory: a.js_memory,
        js_streams: a.js_streams,
        js_consumers: a.js_consumers,
    }
}

fn kind(k: ExportKindArg) -> ExportKind {
    match k {
        ExportKindArg::Stream => ExportKind::Stream,
        ExportKindArg::Service => ExportKind::Service,
    }
}

fn account(a: &AccountCommand) -> Result<Request> {
    Ok(match a {
        AccountCommand::Add { name, description, limits: l, disallow_bearer } => {
            Request::AccountAdd(AccountAdd {
                name: n(name)?,
                description: description.clone(),
                limits: limits(l),
                disallow_bearer: *disallow_bearer,
            })
        }
        AccountCommand::List => Request::AccountList(AccountList {}),
        AccountCommand::Show { name, .. } => Request::AccountShow(AccountShow { name: n(name)? }),
        AccountCommand::Edit { name, description, limits: l, active, disallow_bearer } => {
            Request::AccountEdit(AccountEdit {
                name: n(name)?,
                description: description.clone(),
                limits: limits(l),
                active: *active,
                disallow_bearer: *disallow_bearer,
            })
        }
        AccountCommand::Delete { name } => Request::AccountDelete(AccountDelete { name: n(name)? }),
        AccountCommand::RotateKeys { name } => {
            Request::AccountRotateKeys(AccountRotateKeys { name: n(name)? })
        }
        AccountCommand::SigningKey(SigningKeyCommand::Add { name }) => {
            Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: n(name)? })
        }
        AccountCommand::SigningKey(SigningKeyCommand::Remove { name, key }) => {
            Request::AccountSigningKeyRemove(AccountSigningKeyRemove {
                name: n(name)?,
                key: key.clone(),
            })
        }
        AccountCommand::Export(ExportCommand::Add {
            account,
            subject,
            kind: k,
            name,
            token_req,
        }) => Request::ExportAdd(ExportAdd {
            account: n(account)?,
            subject: subject.clone(),
            kind: kind(*k),
            name: name.clone(),
            token_req: *token_req,
        }),
        AccountCommand::Export(ExportCommand::Remove { account, subject }) => {
            Request::ExportRemove(ExportRemove { account: n(account)?, subject: subject.clone() })
        }
        AccountCommand::Import(ImportCommand::Add {
            account,
            subject,
            from,
            kind: k,
            local_subject,
            name,
        }) => Request::ImportAdd(ImportAdd {
            account: n(account)?,
            subject: subject.clone(),
            from: n(from)?,
            kind: kind(*k),
            local_subject: local_subject.clone(),
            name: name.clone(),
        }),
        AccountCommand::Import(ImportCommand::Remove { account, subject }) => {
            Request::ImportRemove(ImportRemove { account: n(account)?, subject: subject.clone() })
        }
    })
}

fn list(values: &[String], nothing: bool) -> ListPatch {
    if nothing {
        ListPatch::Set(vec![])
    } else if values.is_empty() {
        ListPatch::Keep
    } else {
        ListPatch::Set(values.to_vec())
    }
}

fn role_patch(a: &RoleArgs) -> RolePatch {
    RolePatch {
        description: a.description.clone(),
        pub_allow: list(&a.pub_allow, a.no_pub),
        pub_deny: list(&a.pub_deny, false),
        sub_allow: list(&a.sub_allow, a.no_sub),
        sub_deny: list(&a.sub_deny, false),
        allow_responses: a.allow_responses,
        response_ttl_ms: a.response_ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        max_subscriptions: a.max_subscriptions,
        max_data: a.max_data,
        max_payload: a.max_payload,
        max_connections: a.max_connections,
        jwt_ttl_secs: a.jwt_ttl.map(|d| d.as_secs()),
        source_cidrs: (!a.source_cidr.is_empty()).then(|| a.source_cidr.clone()),
        connection_types: (!a.connection_type.is_empty()).then(|| a.connection_type.clone()),
        self_service: a.self_service,
        self_service_creds: a.self_service_creds,
    }
}

fn role(r: &RoleCommand) -> Result<Request> {
    Ok(match r {
        RoleCommand::Add { name, args } => {
            Request::RoleAdd(RoleAdd { name: n(name)?, role: role_patch(args) })
        }
        RoleCommand::List => Request::RoleList(RoleList {}),
        RoleCommand::Show { name } => Request::RoleShow(RoleShow { name: n(name)? }),
        RoleCommand::Edit { name, args } => {
            Request::RoleEdit(RoleEdit { name: n(name)?, role: role_patch(args) })
        }
        RoleCommand::Delete { name } => Request::RoleDelete(RoleDelete { name: n(name)? }),
    })
}

fn password_hash(p: &PasswordArgs) -> Result<String> {
    let pw = read_password(p)?;
    let secret = Secret::new(pw.as_str());
    hash_password(&secret).context("cannot hash the password")
}

fn user(u: &UserCommand) -> Result<Request> {
    Ok(match u {
        UserCommand::Add {
            name,
            account,
            role,
            email,
            description,
            password,
            no_password,
            tags,
        } => {
            let tags = tag_pairs(tags)?;
            Request::UserAdd(UserAdd {
                name: n(name)?,
                account: n(account)?,
                role: n(role)?,
                email: email.clone(),
                description: description.clone(),
                password_hash: if *no_password { None } else { Some(password_hash(password)?) },
                tags,
            })
        }
        UserCommand::List { account } => Request::UserList(UserList { account: opt(account)? }),
        UserCommand::Show { name } => Request::UserShow(UserShow { name: n(name)? }),
        UserCommand::Edit {
            name,
            account,
            role,
            active,
            email,
            description,
            nkey,
            tags,
            untags,
        } => Request::UserEdit(UserEdit {
            name: n(name)?,
            account: opt(account)?,
            role: opt(role)?,
            active: *active,
            email: email.clone(),
            description: description.clone(),
            nkey: nkey.clone(),
            tags: TagPatch { set: tag_pairs(tags)?, unset: tag_keys(untags)? },
        }),
        UserCommand::Delete { name } => Request::UserDelete(UserDelete { name: n(name)? }),
        UserCommand::Passwd { name, password } => Request::UserPasswd(UserPasswd {
            name: n(name)?,
            password_hash: password_hash(password)?,
        }),
        UserCommand::Creds { name, keep_previous, .. } => {
            Request::UserCreds(UserCreds { name: n(name)?, keep_previous: *keep_previous })
        }
        UserCommand::Token(TokenCommand::Add { name, label, expires }) => {
            Request::TokenAdd(TokenAdd {
                name: n(name)?,
                label: label.clone(),
                expires_secs: expires.map(|d| d.as_secs()),
            })
        }
        UserCommand::Token(TokenCommand::List { name }) => {
            Request::TokenList(TokenList { name: n(name)? })
        }
        UserCommand::Token(TokenCommand::Revoke { name, id }) => {
            Request::TokenRevoke(TokenRevoke { name: n(name)?, id: n(id)? })
        }
    })
}
