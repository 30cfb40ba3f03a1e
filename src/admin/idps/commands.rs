//! The identity provider commands, one type each.

use serde::{Deserialize, Serialize};

use super::{
    check_claim, check_leeway, check_text, check_url, close_sessions, invalid, key_source, save,
    target, view,
};
use crate::admin::view::Response;
use crate::admin::{reading, writing, AdminError, Command, Context, Outcome};
use crate::model::{
    ClaimMapping, IdentityProvider, KeySource, Name, DEFAULT_LEEWAY_SECS, DEFAULT_USERNAME_CLAIM,
    MAX_MAPPINGS,
};
use crate::store::{IdpRead, Store, StoreRead};

/// Add an identity provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpAdd {
    /// Name.
    pub name: String,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// The `aud` its tokens carry for pbn.
    pub audience: String,
    /// A JWKS URL instead of discovery.
    pub jwks_url: Option<String>,
    /// A JWKS (JSON text) instead of discovery, for providers the service cannot reach.
    pub jwks: Option<String>,
    /// The claim naming the user (default `sub`).
    pub username_claim: Option<String>,
    /// Clock leeway in seconds (default 30).
    pub leeway_secs: Option<u64>,
    /// Logins create user records.
    #[serde(default)]
    pub provision: bool,
}

impl Command for IdpAdd {
    const NAME: &'static str = "idp_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        let name = Name::parse(&self.name)?;
        check_url("issuer", &self.issuer)?;
        check_text("audience", &self.audience)?;
        let keys = key_source(&self.jwks_url, &self.jwks)?;
        let claim = self.username_claim.clone().unwrap_or(DEFAULT_USERNAME_CLAIM.into());
        check_claim(&claim)?;
        let leeway_secs = self.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
        check_leeway(leeway_secs)?;
        let p = IdentityProvider {
            name,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            keys,
            username_claim: claim,
            leeway_secs,
            provision: self.provision,
            mappings: vec![],
            default: None,
            created: ctx.now,
            updated: ctx.now,
        };
        writing(store, |tx, _| {
            tx.insert_idp(&p)?;
            Ok(Response::Idp(view(tx, &p)?))
        })
    }
}

/// List identity providers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpList {}

impl Command for IdpList {
    const NAME: &'static str = "idp_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let all = tx.list_idps()?;
            Ok(Response::Idps(all.iter().map(|p| view(tx, p)).collect::<Result<_, _>>()?))
        })
    }
}

/// Show an identity provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpShow {
    /// Name.
    pub name: String,
}

impl Command for IdpShow {
    const NAME: &'static str = "idp_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| Ok(Response::Idp(view(tx, &tx.require_idp(&self.name)?)?)))
    }
}

/// Change an identity provider; its sessions close when logins may be judged differently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpEdit {
    /// Name.
    pub name: String,
    /// New issuer.
    pub issuer: Option<String>,
    /// New audience.
    pub audience: Option<String>,
    /// Keys from this JWKS URL.
    pub jwks_url: Option<String>,
    /// Keys from this JWKS (JSON text).
    pub jwks: Option<String>,
    /// Keys by discovery again.
    #[serde(default)]
    pub discovery: bool,
    /// New user-name claim.
    pub username_claim: Option<String>,
    /// New leeway in seconds.
    pub leeway_secs: Option<u64>,
    /// Turn provisioning on or off.
    pub provision: Option<bool>,
}

impl IdpEdit {
    fn apply(&self, p: &mut IdentityProvider) -> Result<(), AdminError> {
        if let Some(i) = &self.issuer {
            check_url("issuer", i)?;
            p.issuer.clone_from(i);
        }
        if let Some(a) = &self.audience {
            check_text("audience", a)?;
            p.audience.clone_from(a);
        }
        if self.discovery && (self.jwks_url.is_some() || self.jwks.is_some()) {
            return Err(invalid("give discovery or a JWKS, not both".into()));
        }
        if self.discovery {
            p.keys = KeySource::Discovery;
        } else if self.jwks_url.is_some() || self.jwks.is_some() {
            p.keys = key_source(&self.jwks_url, &self.jwks)?;
        }
        if let Some(c) = &self.username_claim {
            check_claim(c)?;
            p.username_claim.clone_from(c);
        }
        if let Some(l) = self.leeway_secs {
            check_leeway(l)?;
            p.leeway_secs = l;
        }
        if let Some(v) = self.provision {
            p.provision = v;
        }
        Ok(())
    }
}

impl Command for IdpEdit {
    const NAME: &'static str = "idp_edit";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let before = tx.require_idp(&self.name)?;
            let mut after = before.clone();
            self.apply(&mut after)?;
            save(tx, fx, &before, after, ctx)
        })
    }
}

/// Delete an identity provider: every session it admitted closes and the users its logins
/// created are deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpDelete {
    /// Name.
    pub name: String,
}

impl Command for IdpDelete {
    const NAME: &'static str = "idp_delete";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let p = tx.require_idp(&self.name)?;
            close_sessions(tx, fx, &p.name)?;
            let (_, users) = tx.delete_idp(&self.name)?;
            for u in &users {
                if tx.get_user(u)?.is_some() {
                    tx.delete_user(u)?;
                }
            }
            let n = users.len();
            Ok(Response::Done {
                message: format!(
                    "identity provider {} deleted ({n} users it created deleted)",
                    p.name
                ),
            })
        })
    }
}

/// Add (or re-target) a mapping rule, or set the default with `default`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpMap {
    /// Provider name.
    pub name: String,
    /// Dotted claim path (not with `default`).
    pub claim: Option<String>,
    /// Value to match (not with `default`).
    pub value: Option<String>,
    /// Account the match lands in.
    pub account: String,
    /// Role it gets.
    pub role: String,
    /// Set the default instead of a rule.
    #[serde(default)]
    pub default: bool,
}

impl Command for IdpMap {
    const NAME: &'static str = "idp_map";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let before = tx.require_idp(&self.name)?;
            let t = target(tx, &self.account, &self.role)?;
            let mut after = before.clone();
            match (self.default, &self.claim, &self.value) {
                (true, None, None) => after.default = Some(t),
                (false, Some(claim), Some(value)) => {
                    check_claim(claim)?;
                    check_text("value", value)?;
                    let rule =
                        after.mappings.iter().position(|m| m.claim == *claim && m.value == *value);
                    match rule {
                        Some(i) => after.mappings[i].target = t,
                        None if after.mappings.len() >= MAX_MAPPINGS => {
                            return Err(invalid(format!(
                                "provider {} has the maximum of {MAX_MAPPINGS} rules",
                                self.name
                            )))
                        }
                        None => after.mappings.push(ClaimMapping {
                            claim: claim.clone(),
                            value: value.clone(),
                            target: t,
                        }),
                    }
                }
                _ => return Err(invalid("give --claim and --value, or --default".into())),
            }
            save(tx, fx, &before, after, ctx)
        })
    }
}

/// Remove a mapping rule, or the default with `default`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpUnmap {
    /// Provider name.
    pub name: String,
    /// Claim of the rule.
    pub claim: Option<String>,
    /// Value of the rule.
    pub value: Option<String>,
    /// Remove the default instead.
    #[serde(default)]
    pub default: bool,
}

impl Command for IdpUnmap {
    const NAME: &'static str = "idp_unmap";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let before = tx.require_idp(&self.name)?;
            let mut after = before.clone();
            match (self.default, &self.claim, &self.value) {
                (true, None, None) if after.default.is_some() => after.default = None,
                (true, None, None) => {
                    return Err(AdminError::NotFound {
                        what: "default mapping",
                        name: self.name.clone(),
                    })
                }
                (false, Some(claim), Some(value)) => {
                    let n = after.mappings.len();
                    after.mappings.retain(|m| !(m.claim == *claim && m.value == *value));
                    if after.mappings.len() == n {
                        let name = format!("{claim}={value}");
                        return Err(AdminError::NotFound { what: "mapping", name });
                    }
                }
                _ => return Err(invalid("give --claim and --value, or --default".into())),
            }
            save(tx, fx, &before, after, ctx)
        })
    }
}
