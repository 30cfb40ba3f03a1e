//! Pure functions from records to JWTs: operator, accounts, users, the sentinel, creds.
//!
//! Invariants kept here, whatever the records say:
//! - every account JWT carries explicit limits (an account JWT without limits admits nobody);
//! - an explicitly empty permission list is written as `deny: [">"]`, because NATS reads an empty
//!   allow list as "no restriction";
//! - user JWTs are signed by the account's newest signing key with `issuer_account` set (without
//!   it the server cannot place the user, nor evict it when the key is removed);
//! - an inactive account is issued as a disabled JWT (no connections, every user revoked) rather
//!   than omitted, so that a newer JWT replaces whatever a server still holds.

use std::time::Duration;

use crate::claims::{
    self, AccountClaims, Claims, ClaimsError, ExportType, ExternalAuthorization, OperatorClaims,
    ResponsePermission, UserClaims,
};
use crate::keys::{AccountPublicKey, KeyError, KeyPair, Seed, UserPublicKey};
use crate::model::template::{self, RenderContext, RenderError, UserTags};
use crate::model::{
    Account, AccountKind, ExportKind, ModelError, Operator, PermissionDefaults, Role, SubSubject,
    Subject,
};

/// Errors of issuing JWTs.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Encoding or signing failed.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// A record's key material is unusable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The role's subject templates cannot be filled in for this user.
    #[error("the role's subjects cannot be filled in: {0}")]
    Render(#[from] RenderError),
    /// The record has no signing key to sign with.
    #[error("{0} has no signing key")]
    NoSigningKey(String),
    /// What we built fails the checks nats-server applies; never handed out.
    #[error("issued {what} fails validation: {issues}")]
    Invalid {
        /// What was being issued.
        what: &'static str,
        /// The validation issues.
        issues: String,
    },
}

/// The permission lists a role gets where it leaves a list unset: allow everything in the
/// account (accounts are NATS's isolation boundary, as with `nsc`). An explicitly empty list
/// always means nothing.
pub fn default_permissions() -> PermissionDefaults {
    PermissionDefaults {
        pub_allow: vec![Subject::parse(">").expect("\">\" is a valid subject")],
        pub_deny: vec![],
        sub_allow: vec![SubSubject::parse(">").expect("\">\" is a valid subject")],
        sub_deny: vec![],
    }
}

/// The operator JWT: self-signed by the identity key, listing signing keys and SYS.
pub fn operator_jwt(op: &Operator) -> Result<String, IssueError> {
    let mut body = OperatorClaims::new().with_system_account(op.system_account.as_str());
    for key in &op.signing_keys {
        body = body.with_signing_key(key.public());
    }
    let identity = KeyPair::from_seed(&op.identity)?;
    let mut c = Claims::new(op.public_key.as_str(), body).with_name(&op.name);
    Ok(c.encode(&identity)?)
}

/// The subjects of the system account's standard monitoring exports (as `nsc` creates them).
const SYS_EXPORTS: [(&str, &str, ExportType, u64); 2] = [
    ("account-monitoring-streams", "$SYS.ACCOUNT.*.>", ExportType::Stream, 3),
    ("account-monitoring-services", "$SYS.REQ.ACCOUNT.*.*", ExportType::Service, 4),
];

/// The account claims for `acc` with issue time `iat`.
///
/// `allowed_accounts` is used only for the AUTH account: the accounts the callout may place users
/// in (the active managed accounts).
pub fn account_claims(
    acc: &Account,
    allowed_accounts: &[AccountPublicKey],
    iat: i64,
) -> Claims<AccountClaims> {
    let mut body = AccountClaims::new();
    let l = &acc.limits;
    body.limits.conn = l.max_connections.get();
    body.limits.subs = l.max_subscriptions.get();
    body.limits.data = l.max_data.get();
    body.limits.payload = l.max_payload.get();
    body.limits.leaf = l.max_leafnodes.get();
    body.limits.imports = l.max_imports.get();
    body.limits.exports = l.max_exports.get();
    body.limits.disallow_bearer = acc.disallow_bearer;
    if acc.kind != AccountKind::System && l.jetstream_enabled() {
        body.limits.jetstream.disk_storage = l.js_disk.get();
        body.limits.jetstream.mem_storage = l.js_memory.get();
        body.limits.jetstream.streams = l.js_streams.get();
        body.limits.jetstream.consumer = l.js_consumers.get();
    }
    for key in &acc.signing_keys {
        body.add_signing_key(key.public());
    }
    body.revocations = acc.revocations.clone();
    body.description = acc.description.clone();
    body.exports = acc.exports.iter().map(export_claim).collect();
    body.imports = acc.imports.iter().map(import_claim).collect();
    match acc.kind {
        AccountKind::System => add_system_exports(&mut body),
        AccountKind::Auth => body.authorization = authorization(acc, allowed_accounts),
        AccountKind::Managed => {}
    }
    if !acc.active {
        body.limits.conn = 0;
        body.limits.leaf = 0;
        body.revocations.insert("*".into(), iat);
    }
    Claims::new(acc.public_key.as_str(), body).with_name(acc.name.as_str()).with_issued_at(iat)
}

fn add_system_exports(body: &mut AccountClaims) {
    for (name, subject, kind, position) in SYS_EXPORTS {
        if body.exports.iter().any(|e| e.subject == subject) {
            continue;
        }
        let mut e = claims::Export {
            name: name.into(),
            subject: subject.into(),
            export_type: kind,
            account_token_position: position,
            ..Default::default()
        };
        if kind == ExportType::Service {
            e.response_type = "Stream".into();
        }
        body.exports.push(e);
    }
}

fn authorization(acc: &Account, allowed: &[AccountPublicKey]) -> ExternalAuthorization {
    let Some(callout) = &acc.callout else { return ExternalAuthorization::default() };
    let xkey = callout
        .xkey
        .as_ref()
        .and_then(|seed| crate::keys::XKeyPair::from_seed(seed).ok())
        .map(|x| x.public_key().to_string())
        .unwrap_or_default();
    ExternalAuthorization {
        auth_users: callout.auth_users.iter().map(|u| u.to_string()).collect(),
        allowed_accounts: allowed.iter().map(|a| a.to_string()).collect(),
        xkey,
    }
}

fn export_type(kind: ExportKind) -> ExportType {
    match kind {
        ExportKind::Stream => ExportType::Stream,
        ExportKind::Service => ExportType::Service,
    }
}

fn export_claim(e: &crate::model::Export) -> claims::Export {
    claims::Export {
        name: e.name.clone(),
        subject: e.subject.to_string(),
        export_type: export_type(e.kind),
        token_req: e.token_req,
        response_type: e.response_type.map(|r| format!("{r:?}")).unwrap_or_default(),
        account_token_position: e.account_token_position.map_or(0, u64::from),
        advertise: e.advertise,
        description: e.description.clone(),
        ..Default::default()
    }
}

fn import_claim(i: &crate::model::Import) -> claims::Import {
    claims::Import {
        name: i.name.clone(),
        subject: i.subject.to_string(),
        account: i.account.to_string(),
        token: i.token.clone().unwrap_or_default(),
        local_subject: i.local_subject.as_ref().map(|s| s.to_string()).unwrap_or_default(),
        import_type: export_type(i.kind),
        share: i.share,
        ..Default::default()
    }
}

/// Signs account claims with the operator's newest signing key after checking them.
pub fn sign_account(
    op: &Operator,
    claims: &mut Claims<AccountClaims>,
) -> Result<String, IssueError> {
    let signer = op.current_signing_key().ok_or_else(|| NoSigningKey("operator".into()))?;
    let signer = signer.key_pair()?;
    check("account JWT", claims.validate(claims.iat))?;
    Ok(claims.encode(&signer)?)
}

use IssueError::NoSigningKey;

/// The account JWT for `acc` (see [`account_claims`]), signed by the operator.
pub fn account_jwt(
    op: &Operator,
    acc: &Account,
    allowed_accounts: &[AccountPublicKey],
    iat: i64,
) -> Result<String, IssueError> {
    sign_account(op, &mut account_claims(acc, allowed_accounts, iat))
}

fn check(what: &'static str, v: claims::Validation) -> Result<(), IssueError> {
    if v.is_empty() {
        return Ok(());
    }
    let findings = v.findings().map(|i| i.to_string()).collect::<Vec<_>>().join("; ");
    Err(IssueError::Invalid { what, issues: findings })
}

/// What a user JWT is minted from.
#[derive(Debug, Clone, Copy)]
pub struct UserSpec<'a> {
    /// The account the user is placed in.
    pub account: &'a Account,
    /// The user's role.
    pub role: &'a Role,
    /// The user's public key (the callout's `user_nkey`, or a fresh creds key).
    pub user_key: &'a UserPublicKey,
    /// The JWT `name` (the user name; nats-server shows it as the connection's user).
    pub name: &'a str,
    /// Issue time.
    pub iat: i64,
    /// Expiry (0 = never).
    pub exp: i64,
    /// Lists for permission lists the role leaves unset.
    pub defaults: &'a PermissionDefaults,
}

/// What a role's subject templates are filled with beyond the user name and account name
/// (see [`crate::model::template`]): the user's tags and, for an identity-provider login, its
/// verified claims.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserVars<'a> {
    /// The user's tags (`None`: none).
    pub tags: Option<&'a UserTags>,
    /// The verified claims of the login (`None`: not an identity-provider login).
    pub claims: Option<&'a serde_json::Value>,
}

/// Renders subjects into JWT permission entries with `ctx`: one allocation per entry, as for
/// a plain subject (placeholders are filled in straight into the output).
fn render_subjects(list: &[Subject], ctx: &RenderContext<'_>) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let text = entry.as_str();
        let mut rendered = String::with_capacity(text.len() + RENDER_SLACK);
        template::render_into(text, ctx, &mut rendered)?;
        out.push(rendered);
    }
    Ok(out)
}

/// [`render_subjects`] for subscribe entries (`"subject queue"`: both parts may be templates).
fn render_sub_entries(
    list: &[SubSubject],
    ctx: &RenderContext<'_>,
) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let subject = entry.subject().as_str();
        let mut rendered = String::with_capacity(subject.len() + RENDER_SLACK);
        template::render_into(subject, ctx, &mut rendered)?;
        if let Some(queue) = entry.queue() {
            rendered.push(' ');
            template::render_into(queue.as_str(), ctx, &mut rendered)?;
        }
        out.push(rendered);
    }
    Ok(out)
}

/// Room for placeholder values beyond an entry's own length, so a typical rendering does not
/// reallocate.
const RENDER_SLACK: usize = 16;

/// The JWT permission lists for `role` and one user: the role's lists with the defaults
/// applied and every placeholder filled in. Fails (never widens) when a value is missing or
/// is not one subject token.
pub fn rendered_permissions(
    role: &Role,
    defaults: &PermissionDefaults,
    ctx: &RenderContext<'_>,
) -> Result<RenderedPermissions, RenderError> {
    let perms = role.permissions.resolve(defaults);
    let mut out = RenderedPermissions::default();
    if perms.publishes_nothing() {
        out.pub_deny.push(">".into());
    } else {
        out.pub_allow = render_subjects(&perms.pub_allow, ctx)?;
        out.pub_deny = render_subjects(&perms.pub_deny, ctx)?;
    }
    if perms.subscribes_nothing() {
        out.sub_deny.push(">".into());
    } else {
        out.sub_allow = render_sub_entries(&perms.sub_allow, ctx)?;
        out.sub_deny = render_sub_entries(&perms.sub_deny, ctx)?;
    }
    Ok(out)
}

/// Permission lists as a user JWT carries them (see [`rendered_permissions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderedPermissions {
    /// Publish allow.
    pub pub_allow: Vec<String>,
    /// Publish deny.
    pub pub_deny: Vec<String>,
    /// Subscribe allow.
    pub sub_allow: Vec<String>,
    /// Subscribe deny.
    pub sub_deny: Vec<String>,
}

/// The user claims for `spec`: role permissions, response permission, limits, CIDRs, types;
/// subject templates filled in with the user name, the account name and no tags.
#[cfg(test)]
pub fn user_claims(spec: &UserSpec<'_>) -> Result<Claims<UserClaims>, IssueError> {
    user_claims_with(spec, UserVars::default())
}

/// [`user_claims`] with the user's tags and login claims for the role's subject templates.
pub fn user_claims_with(
    spec: &UserSpec<'_>,
    vars: UserVars<'_>,
) -> Result<Claims<UserClaims>, IssueError> {
    let role = spec.role;
    let none = UserTags::new();
    let ctx = RenderContext {
        name: spec.name,
        account: spec.account.name.as_str(),
        tags: vars.tags.unwrap_or(&none),
        claims: vars.claims,
        any: None,
    };
    let perms = rendered_permissions(role, spec.defaults, &ctx)?;
    Ok(claims_from(spec, perms))
}

fn claims_from(spec: &UserSpec<'_>, perms: RenderedPermissions) -> Claims<UserClaims> {
    let role = spec.role;
    let mut body = UserClaims::new();
    let l = &mut body.limits;
    l.publish.allow = perms.pub_allow;
    l.publish.deny = perms.pub_deny;
    l.subscribe.allow = perms.sub_allow;
    l.subscribe.deny = perms.sub_deny;
    l.resp = role.allow_responses.as_ref().map(|r| ResponsePermission::new(r.max, r.ttl));
    l.subs = role.max_subscriptions.get();
    l.data = role.max_data.get();
    l.payload = role.max_payload.get();
    l.src = role.source_cidrs.iter().map(|n| n.to_string()).collect();
    l.allowed_connection_types = role.connection_types.clone();
    body.issuer_account = spec.account.public_key.to_string();
    Claims::new(spec.user_key.as_str(), body)
        .with_name(spec.name)
        .with_issued_at(spec.iat)
        .with_expires(spec.exp)
}

/// The account's newest signing key pair.
pub fn account_signer(acc: &Account) -> Result<KeyPair, IssueError> {
    let key = acc.current_signing_key().ok_or_else(|| NoSigningKey(acc.name.to_string()))?;
    Ok(key.key_pair()?)
}

/// Signs user claims with the account's newest signing key after the server's checks.
pub fn sign_user(
    acc: &Account,
    signer: &KeyPair,
    claims: &mut Claims<UserClaims>,
) -> Result<String, IssueError> {
    debug_assert_eq!(claims.nats.issuer_account, acc.public_key.as_str());
    check("user JWT", claims.validate(claims.iat))?;
    Ok(claims.encode(signer)?)
}

/// A user JWT for `spec`, signed by the account's newest signing key.
pub fn user_jwt(spec: &UserSpec<'_>) -> Result<String, IssueError> {
    user_jwt_with(spec, UserVars::default())
}

/// [`user_jwt`] with the user's tags and login claims for the role's subject templates.
pub fn user_jwt_with(spec: &UserSpec<'_>, vars: UserVars<'_>) -> Result<String, IssueError> {
    let signer = account_signer(spec.account)?;
    sign_user(spec.account, &signer, &mut user_claims_with(spec, vars)?)
}

/// The bearer sentinel of the AUTH account: deny everything; it only selects the callout.
pub fn sentinel_jwt(auth: &Account, iat: i64) -> Result<String, IssueError> {
    let sentinel = KeyPair::generate(crate::keys::KeyKind::User);
    let mut body = UserClaims::new().deny_pub(">").deny_sub(">").with_bearer_token(true);
    body.issuer_account = auth.public_key.to_string();
    let mut c = Claims::new(sentinel.public_key(), body).with_name("sentinel").with_issued_at(iat);
    let signer = account_signer(auth)?;
    check("sentinel JWT", c.validate(iat))?;
    Ok(c.encode(&signer)?)
}

/// A JWT for one of pbn's own users (service user, system user, admin): no permission limits
/// inside its account unless `allow` lists are given.
pub fn internal_user_jwt(
    acc: &Account,
    user_key: &str,
    name: &str,
    pub_allow: &[&str],
    sub_allow: &[&str],
    iat: i64,
    ttl: Option<Duration>,
) -> Result<String, IssueError> {
    let mut body = UserClaims::new();
    body.limits.publish.allow = pub_allow.iter().map(|s| s.to_string()).collect();
    body.limits.subscribe.allow = sub_allow.iter().map(|s| s.to_string()).collect();
    body.issuer_account = acc.public_key.to_string();
    let exp = ttl.map_or(0, |t| iat.saturating_add_unsigned(t.as_secs()));
    let mut c = Claims::new(user_key, body).with_name(name).with_issued_at(iat).with_expires(exp);
    let signer = account_signer(acc)?;
    check("internal user JWT", c.validate(iat))?;
    Ok(c.encode(&signer)?)
}

/// nats-server's default `max_payload` (1 MiB). The configs pbn writes keep it, so it bounds
/// every callout response (which carries a user JWT) and every account JWT pushed with
/// `$SYS.REQ.CLAIMS.UPDATE`; a larger one is dropped by the server and the login or push hangs.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// The size in bytes of the largest callout response a login with `role` can produce: a user
/// JWT minted for a user name of the longest length, inside the signed authorization response
/// JWT, sealed for an encrypting server. Every variable part (keys, times, names) takes its
/// longest form, so a real response is never larger.
pub fn callout_response_size(
    role: &Role,
    defaults: &PermissionDefaults,
    now: i64,
) -> Result<usize, IssueError> {
    use crate::claims::AuthorizationResponseClaims;
    use crate::keys::{CurvePublicKey, KeyKind, XKeyPair};
    use crate::model::{Name, NAME_MAX_LEN};
    let longest = "x".repeat(NAME_MAX_LEN);
    let account = Account::generate(Name::parse(&longest)?, AccountKind::Managed, now);
    let user = KeyPair::generate(KeyKind::User);
    let user_key = UserPublicKey::parse(user.public_key())?;
    // Ten years from now, the longest lifetime accepted: as many digits as any real expiry.
    let exp = now.saturating_add(10 * 366 * 24 * 3600);
    let spec = UserSpec {
        account: &account,
        role,
        user_key: &user_key,
        name: &longest,
        iat: now,
        exp,
        defaults,
    };
    // Every placeholder takes the longest value a tag may have.
    let longest_value = "x".repeat(template::TAG_VALUE_MAX_LEN);
    let tags = UserTags::new();
    let ctx = RenderContext {
        name: &longest,
        account: &longest,
        tags: &tags,
        claims: None,
        any: Some(&longest_value),
    };
    let perms = rendered_permissions(role, defaults, &ctx)?;
    let jwt = sign_user(&account, &account_signer(&account)?, &mut claims_from(&spec, perms))?;
    let body =
        AuthorizationResponseClaims::success(jwt).with_issuer_account(account.public_key.as_str());
    let server = KeyPair::generate(KeyKind::Server);
    let mut c =
        Claims::new(user_key.as_str(), body).with_audience(server.public_key()).with_issued_at(now);
    let token = c.encode(&account_signer(&account)?)?;
    let (ours, theirs) = (XKeyPair::generate(), XKeyPair::generate());
    let recipient = CurvePublicKey::parse(theirs.public_key())?;
    Ok(ours.seal(token.as_bytes(), &recipient)?.len())
}

/// Creds file text for a user JWT and its seed.
pub fn creds(jwt: &str, seed: &Seed) -> zeroize::Zeroizing<String> {
    claims::format_user_creds(jwt, seed)
}

#[cfg(test)]
mod tests;
