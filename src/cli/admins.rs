//! `pbn admin admin …`: named admins (arguments and their requests).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use crate::admin::{AdminAdd, AdminDelete, AdminList, AdminRevoke, AdminShow, Request};

/// `pbn admin admin <command>`.
#[derive(Debug, Subcommand)]
pub enum AdminAdminCommand {
    /// Add a named admin and write its creds (mode 0600) to --out.
    Add {
        /// Admin name.
        name: String,
        /// Lifetime, e.g. `30d`; its creds' JWT expires with it. Default: never.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// `operator` (everything) or `account:NAME` (users, roles, tokens and creds of NAME).
        #[arg(long, default_value = "operator")]
        scope: String,
        /// May only run reads.
        #[arg(long)]
        read_only: bool,
        /// Where to write the creds.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// List admins.
    List,
    /// Show an admin.
    Show {
        /// Admin name.
        name: String,
    },
    /// Revoke an admin: its key is revoked on the servers (its connections close) and the
    /// admin API refuses it; the record stays.
    Revoke {
        /// Admin name.
        name: String,
    },
    /// Revoke and delete an admin.
    Delete {
        /// Admin name.
        name: String,
    },
    /// Set an admin's web console password (from PBN_ADMIN_PASSWORD, else a prompt).
    Passwd {
        /// Admin name.
        name: String,
    },
    /// API tokens of an admin (bearer tokens of the HTTP API).
    #[command(subcommand)]
    Token(super::admin_token::AdminTokenCommand),
}

/// The request of an admin command.
pub fn request(cmd: &AdminAdminCommand) -> Result<Request> {
    use AdminAdminCommand as C;
    Ok(match cmd {
        C::Add { name, expires, scope, read_only, .. } => Request::AdminAdd(AdminAdd {
            name: super::requests::name_arg(name)?,
            scope: Some(scope.clone()),
            read_only: *read_only,
            expires_secs: expires.map(|d| d.as_secs().max(1)),
        }),
        C::List => Request::AdminList(AdminList {}),
        C::Show { name } => {
            Request::AdminShow(AdminShow { name: super::requests::name_arg(name)? })
        }
        C::Revoke { name } => {
            Request::AdminRevoke(AdminRevoke { name: super::requests::name_arg(name)? })
        }
        C::Delete { name } => {
            Request::AdminDelete(AdminDelete { name: super::requests::name_arg(name)? })
        }
        C::Passwd { name } => super::admin_token::passwd(name)?,
        C::Token(t) => super::admin_token::request(t)?,
    })
}
