//! `pbn admin session`: the live connections pbn admitted, and ending them.
//!
//! Sessions are known to the running service only, so these commands always go through its
//! admin API: `--server URL --creds FILE` as any remote command, or, without `--server`, the
//! service next to the store ([`LOCAL_SERVER`], with the admin creds `pbn init` wrote beside
//! the store).

use anyhow::Result;
use clap::Subcommand;

use crate::admin::{Request, SessionKick, SessionList};

/// Where `pbn admin session` asks without `--server`: the server `pbn up` and the default
/// configuration listen on.
pub const LOCAL_SERVER: &str = "nats://127.0.0.1:4222";

/// `pbn admin session`.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List live connections pbn admitted (user, account, host, login method, since, expiry).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
    },
    /// End live connections (no record changes: the client may log in again).
    Kick {
        /// The session id from `session list` (`CLIENT_ID@SERVER_ID`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// Every session of this user.
        #[arg(long)]
        user: Option<String>,
    },
}

/// The admin request of a session command.
pub fn request(c: &SessionCommand) -> Result<Request> {
    let name = |v: &Option<String>| v.as_deref().map(super::requests::name_arg).transpose();
    Ok(match c {
        SessionCommand::List { user, account } => {
            Request::SessionList(SessionList { user: name(user)?, account: name(account)? })
        }
        SessionCommand::Kick { id, user } => {
            Request::SessionKick(SessionKick { id: id.clone(), user: name(user)? })
        }
    })
}
