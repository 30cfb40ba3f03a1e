//! Identity provider commands: OpenID Connect issuers whose tokens log users in, and the
//! rules mapping their claims to accounts and roles.
//!
//! Every change that can judge a login differently (issuer, audience, keys, leeway, user-name
//! claim, provisioning, a mapping) closes the sessions the provider admitted: their users
//! reconnect with their tokens and are mapped as the provider now says. Deleting a provider
//! also deletes the users its logins created.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::view::Response;
use super::{AdminError, Context};
use crate::auth::oidc::KeySet;
use crate::model::{
    AccountKind, CloseSessions, Effects, IdentityProvider, KeySource, MappingTarget, Name,
    MAX_LEEWAY_SECS,
};
use crate::store::{IdpRead, StoreRead, WriteTx};

/// Longest issuer, audience, URL, claim path or mapping value, in characters.
const TEXT_MAX_LEN: usize = 512;

/// Largest inline JWKS accepted, in bytes.
const JWKS_MAX_LEN: usize = 64 * 1024;

/// A mapping rule as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingView {
    /// Dotted claim path (empty for the default).
    pub claim: String,
    /// The value matched.
    pub value: String,
    /// Account.
    pub account: String,
    /// Role.
    pub role: String,
}

/// An identity provider as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpView {
    /// Name.
    pub name: String,
    /// Issuer (`iss`).
    pub issuer: String,
    /// Audience (`aud`).
    pub audience: String,
    /// `discovery`, `url` or `inline`.
    pub keys: String,
    /// The JWKS URL (for `url`).
    pub jwks_url: Option<String>,
    /// The claim naming the user.
    pub username_claim: String,
    /// Clock leeway in seconds.
    pub leeway_secs: u64,
    /// Whether logins create user records.
    pub provision: bool,
    /// Rules in order.
    pub mappings: Vec<MappingView>,
    /// Where unmatched logins land (`None`: refused).
    pub default: Option<MappingView>,
    /// Users its logins created.
    pub users: usize,
}

fn mapping_view(claim: &str, value: &str, t: &MappingTarget) -> MappingView {
    MappingView {
        claim: claim.into(),
        value: value.into(),
        account: t.account.to_string(),
        role: t.role.to_string(),
    }
}

fn view(tx: &impl StoreRead, p: &IdentityProvider) -> Result<IdpView, AdminError> {
    let (keys, jwks_url) = match &p.keys {
        KeySource::Discovery => ("discovery", None),
        KeySource::Url(u) => ("url", Some(u.clone())),
        KeySource::Inline(_) => ("inline", None),
    };
    Ok(IdpView {
        name: p.name.to_string(),
        issuer: p.issuer.clone(),
        audience: p.audience.clone(),
        keys: keys.into(),
        jwks_url,
        username_claim: p.username_claim.clone(),
        leeway_secs: p.leeway_secs,
        provision: p.provision,
        mappings: p.mappings.iter().map(|m| mapping_view(&m.claim, &m.value, &m.target)).collect(),
        default: p.default.as_ref().map(|t| mapping_view("", "", t)),
        users: tx.users_of_idp(p.name.as_str())?.len(),
    })
}

/// Text of one provider (`idp show`).
pub(super) fn text(s: &mut String, v: &IdpView) {
    let _ = writeln!(s, "name:           {}", v.name);
    let _ = writeln!(s, "issuer:         {}", v.issuer);
    let _ = writeln!(s, "audience:       {}", v.audience);
    let _ = writeln!(s, "keys:           {}", v.jwks_url.as_deref().unwrap_or(&v.keys));
    let _ = writeln!(s, "username claim: {}", v.username_claim);
    let _ = writeln!(s, "leeway:         {} s", v.leeway_secs);
    let _ = writeln!(s, "provision:      {}", v.provision);
    let _ = writeln!(s, "users:          {}", v.users);
    let _ = writeln!(s, "mappings:");
    for (i, m) in v.mappings.iter().enumerate() {
        let _ = writeln!(s, "  {}. {} = {} -> {}/{}", i + 1, m.claim, m.value, m.account, m.role);
    }
    match &v.default {
        Some(d) => {
            let _ = writeln!(s, "  default -> {}/{}", d.account, d.role);
        }
        None => {
            let _ = writeln!(s, "  default: refuse");
        }
    }
}

/// Text of a provider list (`idp list`).
pub(super) fn list_text(s: &mut String, v: &[IdpView]) {
    let _ = writeln!(s, "{:<20} {:<40} {:<20} {:<8} RULES", "NAME", "ISSUER", "AUDIENCE", "KEYS");
    for p in v {
        let _ = writeln!(
            s,
            "{:<20} {:<40} {:<20} {:<8} {}",
            p.name,
            p.issuer,
            p.audience,
            p.keys,
            p.mappings.len()
        );
    }
}

fn invalid(msg: String) -> AdminError {
    AdminError::Invalid(msg)
}

fn check_text(what: &str, text: &str) -> Result<(), AdminError> {
    if text.is_empty() || text.chars().count() > TEXT_MAX_LEN || text.chars().any(char::is_control)
    {
        let shown = crate::model::clip(text);
        return Err(invalid(format!(
            "{what} {shown:?} must be 1 to {TEXT_MAX_LEN} characters without control characters"
        )));
    }
    Ok(())
}

/// An `https://` URL, or `http://` to a loopback host only (a provider on this machine):
/// keys fetched in the clear from elsewhere could be replaced on the way.
fn check_url(what: &str, url: &str) -> Result<(), AdminError> {
    check_text(what, url)?;
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.strip_prefix(p).is_some_and(|r| r.is_empty() || r.starts_with([':', '/'])));
    if url.starts_with("https://") || loopback {
        return Ok(());
    }
    Err(invalid(format!(
        "{what} {:?} must be an https:// URL (http:// only to localhost)",
        crate::model::clip(url)
    )))
}

fn check_claim(claim: &str) -> Result<(), AdminError> {
    check_text("claim", claim)?;
    if claim.split('.').any(str::is_empty) || claim.chars().any(char::is_whitespace) {
        return Err(invalid(format!(
            "claim {:?} must be a dotted path such as realm_access.roles",
            crate::model::clip(claim)
        )));
    }
    Ok(())
}

fn check_jwks(jwks: &str) -> Result<(), AdminError> {
    if jwks.len() > JWKS_MAX_LEN {
        return Err(invalid(format!("JWKS of {} bytes is over {JWKS_MAX_LEN}", jwks.len())));
    }
    KeySet::parse(jwks.as_bytes(), "the JWKS file").map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

fn key_source(jwks_url: &Option<String>, jwks: &Option<String>) -> Result<KeySource, AdminError> {
    match (jwks_url, jwks) {
        (Some(_), Some(_)) => Err(invalid("give a JWKS URL or a JWKS, not both".into())),
        (Some(url), None) => check_url("JWKS URL", url).map(|_| KeySource::Url(url.clone())),
        (None, Some(j)) => check_jwks(j).map(|_| KeySource::Inline(j.clone())),
        (None, None) => Ok(KeySource::Discovery),
    }
}

fn check_leeway(secs: u64) -> Result<(), AdminError> {
    if secs > MAX_LEEWAY_SECS {
        return Err(invalid(format!(
            "leeway of {secs} s is over the maximum of {MAX_LEEWAY_SECS} s"
        )));
    }
    Ok(())
}

/// The target `account`/`role`, checked: a managed account and an existing role.
fn target(tx: &impl StoreRead, account: &str, role: &str) -> Result<MappingTarget, AdminError> {
    let acc = tx.require_account(account)?;
    if acc.kind != AccountKind::Managed {
        return Err(invalid(format!("account {account:?} is not a managed account")));
    }
    let role = tx.require_role(role)?;
    Ok(MappingTarget { account: acc.name, role: role.name })
}

/// Records that `p`'s sessions must close: every session it admitted, and the sessions of the
/// users its logins created (also those admitted before a restart of the service).
fn close_sessions(tx: &impl StoreRead, fx: &mut Effects, p: &Name) -> Result<(), AdminError> {
    fx.close(CloseSessions::Provider(p.clone()));
    for user in tx.users_of_idp(p.as_str())? {
        if let Ok(name) = Name::parse(&user) {
            fx.close(CloseSessions::User(name));
        }
    }
    Ok(())
}

/// Records that the sessions of every provider mapping logins to role `role` must close: users
/// a provider admitted without a record are found by their provider only.
pub(super) fn close_sessions_of_role(
    tx: &impl StoreRead,
    fx: &mut Effects,
    role: &str,
) -> Result<(), AdminError> {
    for p in tx.list_idps()? {
        let targets = p.mappings.iter().map(|m| &m.target).chain(p.default.as_ref());
        if targets.into_iter().any(|t| t.role.as_str() == role) {
            fx.close(CloseSessions::Provider(p.name));
        }
    }
    Ok(())
}

/// Saves `after` over `before`, closing the provider's sessions when logins may now be judged
/// differently.
fn save(
    tx: &mut WriteTx,
    fx: &mut Effects,
    before: &IdentityProvider,
    mut after: IdentityProvider,
    ctx: &Context,
) -> Result<Response, AdminError> {
    after.updated = ctx.now;
    tx.update_idp(&after)?;
    if before.changes_logins(&after) {
        close_sessions(tx, fx, &after.name)?;
    }
    Ok(Response::Idp(view(tx, &after)?))
}

mod commands;
#[cfg(test)]
mod tests;

pub use commands::{IdpAdd, IdpDelete, IdpEdit, IdpList, IdpMap, IdpShow, IdpUnmap};
