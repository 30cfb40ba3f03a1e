//! The CONNZ snapshot: every server's callout connections, asked as a system user.
//!
//! `$SYS.REQ.SERVER.PING.CONNZ` reaches every server of the cluster; each answers with the first
//! page of its connections (`{"server":{"id":…},"data":{"total":N,"connections":[…]}}`, with
//! `authorized_user`, `account`, `issuer_key` because of `"auth":true`). Servers with more
//! connections than one page are asked for the rest one page at a time on their own subject,
//! `$SYS.REQ.SERVER.<id>.CONNZ`.

use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

use super::events::Reported;
use super::MAX_SESSIONS;
use crate::model::Session;

/// Connections per CONNZ page: nats-server's own default page size.
pub const CONNZ_PAGE: usize = 1024;
/// How long the first answers may take: a server that has not answered by then is left out.
const FIRST_ANSWER: Duration = Duration::from_secs(2);
/// How long to wait for more servers after the latest answer (loopback and LAN answer within
/// milliseconds of each other).
const QUIET: Duration = Duration::from_millis(250);
/// How long one further page may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Servers' answers read: far more servers than one cluster has (a supercluster answers through
/// its gateways too); beyond it the snapshot fails rather than being partial. Answers are parsed
/// as they arrive, so memory is bounded by the sessions kept ([`MAX_SESSIONS`]), not by this.
const MAX_SERVERS: usize = 1024;

/// Failures of a CONNZ snapshot (the registry then keeps what the events made of it).
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// No server answered the CONNZ request.
    #[error("no server answered {subject} within {timeout:?}")]
    NoAnswer {
        /// The request subject.
        subject: String,
        /// How long was waited.
        timeout: Duration,
    },
    /// A request could not be sent or was not answered.
    #[error("request {subject} failed: {reason}")]
    Request {
        /// The request subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A server answered with an error or something that is not a CONNZ page.
    #[error("server {server} answered CONNZ with {reason}")]
    Reply {
        /// The server id (empty when the answer does not say).
        server: String,
        /// What was wrong.
        reason: String,
    },
    /// More servers answered than [`MAX_SERVERS`], or more connections than [`MAX_SESSIONS`].
    #[error("connz snapshot too large: more than {0} entries")]
    TooLarge(usize),
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    server: ReplyServer,
    data: Option<Connz>,
    error: Option<ReplyError>,
}

#[derive(Deserialize, Default)]
struct ReplyServer {
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct ReplyError {
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct Connz {
    #[serde(default)]
    total: usize,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    connections: Vec<Conn>,
}

#[derive(Deserialize)]
struct Conn {
    cid: u64,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    authorized_user: String,
    #[serde(default)]
    jwt: String,
    #[serde(default)]
    issuer_key: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    start: String,
}

/// The query for the page of `limit` connections from `offset`.
fn query(offset: usize, limit: usize) -> bytes::Bytes {
    serde_json::json!({ "auth": true, "limit": limit, "offset": offset }).to_string().into()
}

/// Parses one answer into (server id, total, sessions on the page, entries on the page).
fn parse(payload: &[u8]) -> Result<(String, usize, Vec<Session>, usize), SessionsError> {
    let reply: Reply = serde_json::from_slice(payload).map_err(|e| SessionsError::Reply {
        server: String::new(),
        reason: format!("bad json: {e}"),
    })?;
    let server = reply.server.id;
    let fail = |reason: String| SessionsError::Reply { server: server.clone(), reason };
    if let Some(e) = reply.error {
        return Err(fail(format!("error {:?}", e.description)));
    }
    let data = reply.data.ok_or_else(|| fail("no data".into()))?;
    let sessions = data
        .connections
        .iter()
        .filter_map(|c| {
            Reported {
                server: &server,
                cid: c.cid,
                kind: &c.kind,
                account: &c.account,
                user: &c.authorized_user,
                jwt: &c.jwt,
                issuer: &c.issuer_key,
                host: &c.ip,
                start: &c.start,
            }
            .session()
        })
        .collect();
    let seen = data.offset + data.connections.len();
    Ok((server, data.total, sessions, seen))
}

/// Adds `sessions` to `listed`, failing once it would hold more than [`MAX_SESSIONS`].
fn extend(listed: &mut Vec<Session>, sessions: Vec<Session>) -> Result<(), SessionsError> {
    if listed.len() + sessions.len() > MAX_SESSIONS {
        return Err(SessionsError::TooLarge(MAX_SESSIONS));
    }
    listed.extend(sessions);
    Ok(())
}

/// The callout sessions every server that answers reports, through the system-account client
/// `client`. Fails (rather than returning a partial list) when a page of an answering server
/// cannot be read, so a caller never drops live sessions for a list it did not get. A server
/// that has not answered within [`QUIET`] of the others counts as having no connections: a dead
/// server's sessions went with it; a merely slow one's come back with its next events or the
/// next snapshot.
pub async fn snapshot(client: async_nats::Client) -> Result<Vec<Session>, SessionsError> {
    snapshot_paged(client, CONNZ_PAGE).await
}

/// [`snapshot`] with pages of `page` connections (at least 1).
pub async fn snapshot_paged(
    client: async_nats::Client,
    page: usize,
) -> Result<Vec<Session>, SessionsError> {
    let page = page.max(1);
    const PING: &str = "$SYS.REQ.SERVER.PING.CONNZ";
    let request_failed = |subject: &str, reason: String| SessionsError::Request {
        subject: subject.to_string(),
        reason,
    };
    let inbox = client.new_inbox();
    let mut answers =
        client.subscribe(inbox.clone()).await.map_err(|e| request_failed(PING, e.to_string()))?;
    client
        .publish_with_reply(PING, inbox, query(0, page))
        .await
        .map_err(|e| request_failed(PING, e.to_string()))?;
    // Each answer is parsed as it arrives: only its sessions are kept, never the raw pages.
    let mut listed = Vec::new();
    let mut more = Vec::new();
    let mut wait = FIRST_ANSWER;
    while let Ok(Some(msg)) = tokio::time::timeout(wait, answers.next()).await {
        if more.len() == MAX_SERVERS {
            return Err(SessionsError::TooLarge(MAX_SERVERS));
        }
        let (server, total, sessions, seen) = parse(&msg.payload)?;
        extend(&mut listed, sessions)?;
        more.push((server, total, seen));
        wait = QUIET;
    }
    if more.is_empty() {
        return Err(SessionsError::NoAnswer { subject: PING.into(), timeout: FIRST_ANSWER });
    }
    for (server, total, mut seen) in more {
        while seen < total {
            let subject = format!("$SYS.REQ.SERVER.{server}.CONNZ");
            let msg = tokio::time::timeout(
                PAGE_TIMEOUT,
                client.request(subject.clone(), query(seen, page)),
            )
            .await
            .map_err(|_| request_failed(&subject, format!("no answer within {PAGE_TIMEOUT:?}")))?
            .map_err(|e| request_failed(&subject, e.to_string()))?;
            let (_, _, sessions, next) = parse(&msg.payload)?;
            if next <= seen {
                break;
            }
            extend(&mut listed, sessions)?;
            seen = next;
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};

    #[test]
    fn only_callout_clients_become_sessions() {
        let server = KeyPair::generate(KeyKind::Server).public_key().to_string();
        let acc = KeyPair::generate(KeyKind::Account).public_key().to_string();
        let reply = serde_json::json!({
            "server": {"id": server},
            "data": {"total": 5, "offset": 0, "connections": [
                {"cid": 1, "kind": "Client", "account": acc, "authorized_user": "alice",
                 "issuer_key": "AKEY"},
                {"cid": 2, "kind": "Client", "account": acc, "authorized_user": "bob",
                 "jwt": "eyJ.creds.user"},
                {"cid": 3, "kind": "Client", "account": acc, "authorized_user": "[REDACTED]"},
                {"cid": 4, "kind": "Leafnode", "account": acc, "authorized_user": "carl"},
                {"cid": 5, "kind": "Client", "account": "not-a-key", "authorized_user": "dave"},
            ]}
        });
        let (id, total, sessions, seen) = parse(reply.to_string().as_bytes()).unwrap();
        assert_eq!((id.as_str(), total, seen), (server.as_str(), 5, 5));
        assert_eq!(sessions.len(), 1, "only alice is a callout user");
        let s = &sessions[0];
        assert_eq!((s.client_id, s.user.as_str(), s.issuer.as_deref()), (1, "alice", Some("AKEY")));
        assert!(s.user_nkey.is_none());
        assert!(!s.is_expired(i64::MAX - 1), "the disconnect event ends it, not a clock");
    }

    #[test]
    fn error_answers_are_errors() {
        let reply = br#"{"server":{"id":"NX"},"error":{"code":500,"description":"nope"}}"#;
        assert!(matches!(parse(reply), Err(SessionsError::Reply { server, .. }) if server == "NX"));
        assert!(matches!(parse(b"{"), Err(SessionsError::Reply { .. })));
    }
}
