//! Role commands.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::patch::{ListPatch, RolePatch};
use super::view::{Response, RoleView};
use super::{reading, writing, AdminError, Command, Context, Outcome};
use crate::issue;
use crate::model::template;
use crate::model::{
    CloseSessions, Effects, Limit, ModelError, Name, ResponsePermission, Role, SubSubject, Subject,
};
use crate::store::{Store, StoreRead, WriteTx};

/// Reply permission lifetime when a role allows responses without saying how long (the server's
/// own default).
const DEFAULT_RESPONSE_TTL: Duration = Duration::from_secs(120);

fn strings<T: ToString>(v: &Option<Vec<T>>) -> Option<Vec<String>> {
    v.as_ref().map(|v| v.iter().map(ToString::to_string).collect())
}

fn view(tx: &impl StoreRead, r: &Role) -> Result<RoleView, AdminError> {
    let p = &r.permissions;
    Ok(RoleView {
        name: r.name.to_string(),
        description: r.description.clone(),
        pub_allow: strings(&p.pub_allow),
        pub_deny: strings(&p.pub_deny),
        sub_allow: strings(&p.sub_allow),
        sub_deny: strings(&p.sub_deny),
        allow_responses: r.allow_responses.as_ref().map(|x| x.max),
        response_ttl_ms: r
            .allow_responses
            .as_ref()
            .map(|x| u64::try_from(x.ttl.as_millis()).unwrap_or(u64::MAX)),
        max_subscriptions: r.max_subscriptions.get(),
        max_data: r.max_data.get(),
        max_payload: r.max_payload.get(),
        max_connections: r.max_connections.get(),
        jwt_ttl_secs: r.jwt_ttl.map(|t| t.as_secs()),
        source_cidrs: r.source_cidrs.iter().map(ToString::to_string).collect(),
        connection_types: r.connection_types.clone(),
        self_service: r.self_service,
        self_service_creds: r.self_service_creds,
        users: tx.count_users_of_role(r.name.as_str())? as usize,
    })
}

fn subjects(p: &ListPatch, current: &mut Option<Vec<Subject>>) -> Result<(), AdminError> {
    match p {
        ListPatch::Keep => {}
        ListPatch::Default => *current = None,
        ListPatch::Set(v) => {
            *current = Some(v.iter().map(|s| subject(s)).collect::<Result<_, _>>()?)
        }
    }
    Ok(())
}

fn sub_subjects(p: &ListPatch, current: &mut Option<Vec<SubSubject>>) -> Result<(), AdminError> {
    match p {
        ListPatch::Keep => {}
        ListPatch::Default => *current = None,
        ListPatch::Set(v) => {
            *current = Some(v.iter().map(|s| sub_subject(s)).collect::<Result<_, _>>()?)
        }
    }
    Ok(())
}

/// A publish entry: its template checked first, so a bad placeholder is named as such.
fn subject(text: &str) -> Result<Subject, AdminError> {
    template::check_entry(text, false).map_err(ModelError::from)?;
    Ok(Subject::parse(text)?)
}

/// A subscribe entry (`"subject [queue]"`), its template checked first.
fn sub_subject(text: &str) -> Result<SubSubject, AdminError> {
    template::check_entry(text, true).map_err(ModelError::from)?;
    Ok(SubSubject::parse(text)?)
}

fn limit(v: Option<i64>, current: Limit) -> Result<Limit, AdminError> {
    Ok(v.map(Limit::try_from).transpose()?.unwrap_or(current))
}

/// Applies `p` to `r`; validation of the whole role follows in the store.
pub(super) fn apply(r: &mut Role, p: &RolePatch) -> Result<(), AdminError> {
    if let Some(d) = &p.description {
        r.description = d.clone();
    }
    let perms = &mut r.permissions;
    subjects(&p.pub_allow, &mut perms.pub_allow)?;
    subjects(&p.pub_deny, &mut perms.pub_deny)?;
    sub_subjects(&p.sub_allow, &mut perms.sub_allow)?;
    sub_subjects(&p.sub_deny, &mut perms.sub_deny)?;
    if let Some(ms) = p.response_ttl_ms {
        super::check_lifetime("reply permission lifetime", ms / 1000)?;
    }
    if let Some(max) = p.allow_responses {
        let ttl = p.response_ttl_ms.map_or(DEFAULT_RESPONSE_TTL, Duration::from_millis);
        r.allow_responses = Some(ResponsePermission { max, ttl });
    } else if let (Some(ms), Some(resp)) = (p.response_ttl_ms, r.allow_responses.as_mut()) {
        resp.ttl = Duration::from_millis(ms);
    }
    r.max_subscriptions = limit(p.max_subscriptions, r.max_subscriptions)?;
    r.max_data = limit(p.max_data, r.max_data)?;
    r.max_payload = limit(p.max_payload, r.max_payload)?;
    r.max_connections = limit(p.max_connections, r.max_connections)?;
    if let Some(secs) = p.jwt_ttl_secs {
        super::check_lifetime("JWT lifetime", secs)?;
        r.jwt_ttl = Some(Duration::from_secs(secs));
    }
    if let Some(cidrs) = &p.source_cidrs {
        r.source_cidrs = cidrs
            .iter()
            .map(|c| {
                c.parse().map_err(|_| {
                    AdminError::Invalid(format!("invalid CIDR {:?}", crate::model::clip(c)))
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(types) = &p.connection_types {
        r.connection_types = types.iter().map(|t| t.to_ascii_uppercase()).collect();
    }
    apply_self_service(r, p);
    Ok(())
}

/// The self-service flags: creds need self-service, so turning creds on turns it on and
/// turning self-service off turns creds off.
fn apply_self_service(r: &mut Role, p: &RolePatch) {
    if let Some(on) = p.self_service {
        r.self_service = on;
        r.self_service_creds &= on;
    }
    if let Some(on) = p.self_service_creds {
        r.self_service_creds = on;
        r.self_service |= on;
    }
}

/// Whether user JWTs minted for `after` differ from those for `before`, or the callout would now
/// judge a login differently (sources, types). The description, the per-user connection cap
/// and the console self-service flags change nothing for a live session.
fn changes_user_jwts(before: &Role, after: &Role) -> bool {
    let mut same = before.clone();
    same.description.clone_from(&after.description);
    same.max_connections = after.max_connections;
    same.self_service = after.self_service;
    same.self_service_creds = after.self_service_creds;
    same.updated = after.updated;
    same != *after
}

/// Revokes the creds of every user of role `name` and closes their sessions: creds carry the
/// role's permissions and limits in their JWT, so a narrowed role would not bind them
/// otherwise; callout users reconnect and get JWTs with the role as it is now.
fn revoke_creds_of_role(
    tx: &mut WriteTx,
    fx: &mut Effects,
    name: &str,
    ctx: &Context,
) -> Result<(), AdminError> {
    let mut revoked = 0;
    for mut user in tx.list_users_of_role(name)? {
        fx.close(CloseSessions::User(user.name.clone()));
        if user.creds.is_empty() {
            continue;
        }
        let mut acc = tx.require_account(user.account.as_str())?;
        revoked += super::users::revoke_creds(tx, fx, &mut user, &mut acc, ctx)?.len();
        user.updated = ctx.now;
        tx.update_user(&user)?;
    }
    super::idps::close_sessions_of_role(tx, fx, name)?;
    if revoked > 0 {
        tracing::warn!(
            role = name,
            revoked,
            "role changed: creds of its users revoked; issue new ones with `pbn admin user creds`"
        );
    }
    Ok(())
}

/// Refuses a role whose callout responses would exceed nats-server's max payload (run after
/// the store accepted the role, so model errors come first; the error aborts the transaction).
fn check_size(r: &Role, ctx: &Context) -> Result<(), AdminError> {
    let size = issue::callout_response_size(r, &ctx.defaults, ctx.now)?;
    let max = issue::DEFAULT_MAX_PAYLOAD;
    if size > max {
        let name = r.name.to_string();
        return Err(ModelError::JwtTooLarge { what: "role", name, size, max }.into());
    }
    Ok(())
}

/// Create a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAdd {
    /// Name.
    pub name: String,
    /// Fields.
    pub role: RolePatch,
}

impl Command for RoleAdd {
    const NAME: &'static str = "role_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let mut r = Role::new(Name::parse(&self.name)?, ctx.now);
            apply(&mut r, &self.role)?;
            tx.insert_role(&r)?;
            check_size(&r, ctx)?;
            Ok(Response::Role(view(tx, &r)?))
        })
    }
}

/// List roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleList {}

impl Command for RoleList {
    const NAME: &'static str = "role_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let mut out = Vec::new();
            for r in tx.list_roles()? {
                out.push(view(tx, &r)?);
            }
            Ok(Response::Roles(out))
        })
    }
}

/// Show a role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleShow {
    /// Name.
    pub name: String,
}

impl Command for RoleShow {
    const NAME: &'static str = "role_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| Ok(Response::Role(view(tx, &tx.require_role(&self.name)?)?)))
    }
}

/// Change a role. When what it grants changes, its users' creds are revoked and their
/// sessions closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleEdit {
    /// Name.
    pub name: String,
    /// Fields to change.
    pub role: RolePatch,
}

impl Command for RoleEdit {
    const NAME: &'static str = "role_edit";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let before = tx.require_role(&self.name)?;
            let mut r = before.clone();
            apply(&mut r, &self.role)?;
            r.updated = ctx.now;
            tx.update_role(&r)?;
            check_size(&r, ctx)?;
            if changes_user_jwts(&before, &r) {
                revoke_creds_of_role(tx, fx, &self.name, ctx)?;
            }
            Ok(Response::Role(view(tx, &r)?))
        })
    }
}

/// Delete a role nobody has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDelete {
    /// Name.
    pub name: String,
}

impl Command for RoleDelete {
    const NAME: &'static str = "role_delete";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, _| {
            let name = &self.name;
            if name == super::init::ADMIN_ROLE {
                return Err(AdminError::Protected(format!("role {name:?}"), "deleted"));
            }
            tx.delete_role(name)?;
            Ok(Response::Done { message: format!("role {name} deleted") })
        })
    }
}
