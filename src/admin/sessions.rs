//! Live-session commands: `session list` and `session kick`.
//!
//! They change no record: the running service answers them from its session registry (which
//! every replica builds from the servers' connect and disconnect events, so the list and the
//! kick are cluster-wide) and ends connections with `$SYS.REQ.SERVER.<id>.KICK`. What is pure
//! lives here: the requests, the view of a session, and which sessions a request selects for
//! which admin; the runtime (`server::sessions::admin`) does the rest. On a store file, without
//! a service, they refuse with [`AdminError::Invalid`] naming what to do instead.

use serde::{Deserialize, Serialize};

use super::view::Response;
use super::{AdminError, Command, Context, Outcome};
use crate::model::{AdminRecord, AdminScope, Session};
use crate::store::{Store, StoreRead};

/// What a session command answers on a store file: it needs the running service.
const NEEDS_SERVICE: &str = "live sessions are known to a running pbn serve only: ask it with \
                             --server URL --creds FILE (or without --server, next to its store \
                             with the admin creds written by pbn init)";

/// A session's id on the command line: `CLIENT_ID@SERVER_ID`, unique in a cluster.
pub fn session_id(s: &Session) -> String {
    format!("{}@{}", s.client_id, s.server_id)
}

/// One live connection, as `session list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// `CLIENT_ID@SERVER_ID`: what `session kick` takes.
    pub id: String,
    /// User name.
    pub user: String,
    /// Account name (its public key when the account is gone).
    pub account: String,
    /// The server the client is connected to.
    pub server: String,
    /// The client id on that server.
    pub client_id: u64,
    /// The client's host.
    pub host: String,
    /// How the client logged in (`password`, `token`, `nkey`…; `-` when another replica
    /// admitted it, or before a restart: the servers do not report it).
    pub method: String,
    /// Unix seconds the connection began (0 when unknown).
    pub since: i64,
    /// Unix seconds its JWT expires (`None` when only the servers reported it).
    pub expires: Option<i64>,
}

/// List live sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    /// Only this user's.
    pub user: Option<String>,
    /// Only this account's.
    pub account: Option<String>,
}

impl Command for SessionList {
    const NAME: &'static str = "session_list";
    const READ_ONLY: bool = true;

    fn run(&self, _: &Store, _: &Context) -> Result<Outcome, AdminError> {
        Err(AdminError::Invalid(NEEDS_SERVICE.into()))
    }
}

/// End live sessions (no record changes: the client may reconnect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKick {
    /// One session, by its id (`CLIENT_ID@SERVER_ID`, see `session list`).
    pub id: Option<String>,
    /// Every session of this user.
    pub user: Option<String>,
}

impl Command for SessionKick {
    const NAME: &'static str = "session_kick";
    const READ_ONLY: bool = false;

    fn run(&self, _: &Store, _: &Context) -> Result<Outcome, AdminError> {
        Err(AdminError::Invalid(NEEDS_SERVICE.into()))
    }
}

/// The account an admin is confined to, as a public key (`None`: an operator admin).
fn scope_key(tx: &impl StoreRead, admin: &AdminRecord) -> Result<Option<String>, AdminError> {
    match &admin.scope {
        AdminScope::Operator => Ok(None),
        AdminScope::Account(own) => {
            Ok(Some(tx.require_account(own.as_str())?.public_key.to_string()))
        }
    }
}

/// The sessions of `all` that `req` lists for `admin`, as views (names resolved in `tx`),
/// sorted by user then id. A scoped admin sees its account's sessions only.
pub fn list(
    tx: &impl StoreRead,
    admin: &AdminRecord,
    req: &SessionList,
    all: Vec<Session>,
) -> Result<Response, AdminError> {
    let own = scope_key(tx, admin)?;
    let account = match &req.account {
        Some(name) => Some(tx.require_account(name)?.public_key.to_string()),
        None => None,
    };
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::new();
    for s in all {
        let key = s.account.as_str();
        let wanted = own.as_deref().is_none_or(|o| o == key)
            && account.as_deref().is_none_or(|a| a == key)
            && req.user.as_deref().is_none_or(|u| u == s.user.as_str());
        if !wanted {
            continue;
        }
        if !names.contains_key(key) {
            let name = tx.get_account_by_key(&s.account)?.map(|a| a.name.to_string());
            names.insert(key.to_string(), name.unwrap_or_else(|| key.to_string()));
        }
        out.push(view(&s, &names[key]));
    }
    out.sort_by(|a, b| (&a.user, &a.id).cmp(&(&b.user, &b.id)));
    Ok(Response::Sessions(out))
}

fn view(s: &Session, account: &str) -> SessionView {
    SessionView {
        id: session_id(s),
        user: s.user.to_string(),
        account: account.to_string(),
        server: s.server_id.to_string(),
        client_id: s.client_id,
        host: s.host.clone(),
        method: s.method.clone().unwrap_or_else(|| "-".into()),
        since: s.since,
        expires: (s.expires != i64::MAX).then_some(s.expires),
    }
}

/// The sessions of `all` that `req` ends for `admin`: the one with its id, or every one of its
/// user. A scoped admin ends its account's sessions only; nothing matching is
/// [`AdminError::NotFound`], a request naming neither or both is [`AdminError::Invalid`].
pub fn to_kick(
    tx: &impl StoreRead,
    admin: &AdminRecord,
    req: &SessionKick,
    all: Vec<Session>,
) -> Result<Vec<Session>, AdminError> {
    let own = scope_key(tx, admin)?;
    let (what, name) = match (&req.id, &req.user) {
        (Some(id), None) => ("session", id.clone()),
        (None, Some(user)) => ("sessions of user", user.clone()),
        _ => {
            return Err(AdminError::Invalid(
                "session kick takes a session id or --user, not both".into(),
            ))
        }
    };
    let selected: Vec<Session> = all
        .into_iter()
        .filter(|s| own.as_deref().is_none_or(|o| o == s.account.as_str()))
        .filter(|s| match (&req.id, &req.user) {
            (Some(id), _) => session_id(s) == *id,
            (_, Some(user)) => s.user.as_str() == user,
            _ => false,
        })
        .collect();
    if selected.is_empty() {
        return Err(AdminError::NotFound { what, name: crate::model::clip(&name) });
    }
    Ok(selected)
}

/// The table of `session list`.
pub(super) fn text(s: &mut String, v: &[SessionView]) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "{:<20} {:<16} {:<16} {:<9} {:<11} {:<11} ID",
        "USER", "ACCOUNT", "HOST", "METHOD", "SINCE", "EXPIRES"
    );
    for x in v {
        let exp = x.expires.map_or("-".to_string(), |e| e.to_string());
        let _ = writeln!(
            s,
            "{:<20} {:<16} {:<16} {:<9} {:<11} {:<11} {}",
            x.user, x.account, x.host, x.method, x.since, exp, x.id
        );
    }
}

#[cfg(test)]
mod tests;
