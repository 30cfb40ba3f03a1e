//! `pbn admin admin token …`: API tokens of named admins (the HTTP API's bearer tokens).

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use crate::admin::{AdminTokenAdd, AdminTokenList, AdminTokenRevoke, Request};

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
