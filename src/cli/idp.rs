//! `pbn admin idp …`: identity providers (arguments and their requests).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use crate::admin::{IdpAdd, IdpDelete, IdpEdit, IdpList, IdpMap, IdpShow, IdpUnmap, Request};

/// Largest JWKS file read, in bytes (the admin request's own limit is 64 KiB).
const JWKS_FILE_MAX: u64 = 64 * 1024;

/// `pbn admin idp <command>`.
#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Add an OpenID Connect provider whose tokens log users in. Keys come from
    /// `<issuer>/.well-known/openid-configuration` unless --jwks-url or --jwks-file is given.
    Add {
        /// Provider name.
        name: String,
        /// The exact `iss` of its tokens (https://, or http:// to localhost).
        #[arg(long)]
        issuer: String,
        /// The `aud` its tokens must carry for this deployment.
        #[arg(long)]
        audience: String,
        /// Flattened options.
        #[command(flatten)]
        opts: IdpArgs,
        /// Logins create user records (shown by `user list`, deactivatable).
        #[arg(long)]
        provision: bool,
    },
    /// List providers.
    List,
    /// Show one provider with its mapping rules.
    Show {
        /// Provider name.
        name: String,
    },
    /// Change a provider; the sessions it admitted close when logins may be judged differently.
    Edit {
        /// Provider name.
        name: String,
        /// New issuer.
        #[arg(long)]
        issuer: Option<String>,
        /// New audience.
        #[arg(long)]
        audience: Option<String>,
        /// Flattened options.
        #[command(flatten)]
        opts: IdpArgs,
        /// Take the keys from discovery again.
        #[arg(long, conflicts_with_all = ["jwks_url", "jwks_file"])]
        discovery: bool,
        /// Turn provisioning on (`true`) or off (`false`).
        #[arg(long, value_name = "BOOL")]
        provision: Option<bool>,
    },
    /// Delete a provider: its sessions close and the users its logins created are deleted.
    Delete {
        /// Provider name.
        name: String,
    },
    /// Add a mapping rule (tried in order, first match wins), or set the default.
    Map {
        /// Provider name.
        name: String,
        /// Dotted claim path, e.g. `groups` or `realm_access.roles`.
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        claim: Option<String>,
        /// The value the claim must be, or hold when it is an array.
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        value: Option<String>,
        /// Account a match lands in.
        #[arg(long)]
        account: String,
        /// Role a match gets.
        #[arg(long)]
        role: String,
        /// Set where logins no rule matches land (without one they are refused).
        #[arg(long)]
        default: bool,
    },
    /// Remove a mapping rule, or the default.
    Unmap {
        /// Provider name.
        name: String,
        /// Claim of the rule.
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        claim: Option<String>,
        /// Value of the rule.
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        value: Option<String>,
        /// Remove the default.
        #[arg(long)]
        default: bool,
    },
}

/// Options shared by `idp add` and `idp edit`.
#[derive(Debug, Args, Clone, Default)]
pub struct IdpArgs {
    /// Fetch keys from this JWKS URL instead of discovery.
    #[arg(long, value_name = "URL", conflicts_with = "jwks_file")]
    pub jwks_url: Option<String>,
    /// Use the keys of this JWKS file (for a provider the service cannot reach).
    #[arg(long, value_name = "FILE")]
    pub jwks_file: Option<PathBuf>,
    /// The claim the NATS user name comes from (`sub`, `preferred_username`, `email`, ...).
    #[arg(long, value_name = "CLAIM")]
    pub username_claim: Option<String>,
    /// Clock leeway for `nbf` and `iat`, e.g. `30s` (at most 5 minutes).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub leeway: Option<Duration>,
}

fn jwks(path: &Option<PathBuf>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > JWKS_FILE_MAX {
        anyhow::bail!("JWKS file {} is over {JWKS_FILE_MAX} bytes", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(text))
}

/// The request of an `idp` command (a JWKS file is read here, so remote runs send its text).
pub fn request(cmd: &IdpCommand) -> Result<Request> {
    use IdpCommand as C;
    let name = |n: &str| super::requests::name_arg(n);
    Ok(match cmd {
        C::Add { name: n, issuer, audience, opts, provision } => Request::IdpAdd(IdpAdd {
            name: name(n)?,
            issuer: issuer.clone(),
            audience: audience.clone(),
            jwks_url: opts.jwks_url.clone(),
            jwks: jwks(&opts.jwks_file)?,
            username_claim: opts.username_claim.clone(),
            leeway_secs: opts.leeway.map(|d| d.as_secs()),
            provision: *provision,
        }),
        C::List => Request::IdpList(IdpList {}),
        C::Show { name: n } => Request::IdpShow(IdpShow { name: name(n)? }),
        C::Edit { name: n, issuer, audience, opts, discovery, provision } => {
            Request::IdpEdit(IdpEdit {
                name: name(n)?,
                issuer: issuer.clone(),
                audience: audience.clone(),
                jwks_url: opts.jwks_url.clone(),
                jwks: jwks(&opts.jwks_file)?,
                discovery: *discovery,
                username_claim: opts.username_claim.clone(),
                leeway_secs: opts.leeway.map(|d| d.as_secs()),
                provision: *provision,
            })
        }
        C::Delete { name: n } => Request::IdpDelete(IdpDelete { name: name(n)? }),
        C::Map { name: n, claim, value, account, role, default } => Request::IdpMap(IdpMap {
            name: name(n)?,
            claim: claim.clone(),
            value: value.clone(),
            account: name(account)?,
            role: name(role)?,
            default: *default,
        }),
        C::Unmap { name: n, claim, value, default } => Request::IdpUnmap(IdpUnmap {
            name: name(n)?,
            claim: claim.clone(),
            value: value.clone(),
            default: *default,
        }),
    })
}
