//! `pbn admin admin token …`: API tokens of named admins (the HTTP API's bearer tokens), and
//! `pbn admin admin passwd NAME`: an admin's web console password.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::admin::{AdminPasswd, AdminTokenAdd, AdminTokenList, AdminTokenRevoke, Request};

/// The environment variable `pbn admin admin passwd` reads the password from (else it prompts).
pub const ADMIN_PASSWORD_ENV: &str = "PBN_ADMIN_PASSWORD";

/// `pbn admin admin token <command>`.
#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Make an API token for an admin and print it (once: only its hash is kept).
    Add {
        /// Admin name.
        name: String,
        /// Lifetime, e.g. `90d`. Default: until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// A label (what the token is for).
        #[arg(long)]
        label: Option<String>,
    },
    /// List an admin's API tokens (ids and labels, never the tokens).
    List {
        /// Admin name.
        name: String,
    },
    /// Revoke an admin's API token.
    Revoke {
        /// Admin name.
        name: String,
        /// Token id (as `list` shows it).
        id: String,
    },
}

/// The request of a token command.
pub fn request(cmd: &AdminTokenCommand) -> Result<Request> {
    use super::requests::name_arg;
    use AdminTokenCommand as C;
    Ok(match cmd {
        C::Add { name, expires, label } => Request::AdminTokenAdd(AdminTokenAdd {
            name: name_arg(name)?,
            label: label.clone(),
            expires_secs: expires.map(|d| d.as_secs().max(1)),
        }),
        C::List { name } => Request::AdminTokenList(AdminTokenList { name: name_arg(name)? }),
        C::Revoke { name, id } => {
            Request::AdminTokenRevoke(AdminTokenRevoke { name: name_arg(name)?, id: id.clone() })
        }
    })
}

/// The request of `pbn admin admin passwd NAME`: the password from [`ADMIN_PASSWORD_ENV`] or
/// a prompt (asked twice), checked by the password policy, hashed here (argon2id).
pub fn passwd(name: &str) -> Result<Request> {
    let pw = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(pw) => {
            let pw = Zeroizing::new(pw);
            super::secrets::check_password(&pw)?;
            pw
        }
        Err(_) => super::secrets::read_password(&super::args::PasswordArgs {
            password_stdin: false,
            password_file: None,
        })?,
    };
    let hash = crate::auth::hash_password(&crate::auth::Secret::new(pw.as_str()))
        .context("cannot hash the password")?;
    Ok(Request::AdminPasswd(AdminPasswd {
        name: super::requests::name_arg(name)?,
        password_hash: hash,
    }))
}
