//! The resolver's claims API on the wire: requests that collect every server's reply.
//!
//! Every full-resolver server subscribes to the claims subjects and each one answers, so a core
//! request (first reply only) would hide the refusal of all servers but one. [`Wire::gather`]
//! subscribes an inbox, publishes with that reply subject, and collects replies until it has as
//! many as servers are known to answer, or until [`REPLY_GRACE`] passes without a new one, or
//! until the request timeout.

use std::time::Duration;

use async_nats::{Client, Message, StatusCode};
use futures::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;

use super::PublisherError;
use crate::keys::AccountPublicKey;

/// Pushes an account JWT to every full resolver (payload: the JWT).
pub const CLAIMS_UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";
/// Deletes accounts (payload: an operator-signed generic claim listing them).
pub const CLAIMS_DELETE: &str = "$SYS.REQ.CLAIMS.DELETE";
/// Every server answers with its statistics: used to count the servers.
pub const SERVER_PING: &str = "$SYS.REQ.SERVER.PING";

/// How long to wait for further replies after the last one when fewer than the known number of
/// servers have answered. Cluster peers answer within milliseconds of each other on a LAN; a
/// quarter second covers a WAN round trip, while a server that is down delays each request by
/// no more than this.
pub const REPLY_GRACE: Duration = Duration::from_millis(250);

/// The lookup subject of `account`.
pub fn lookup_subject(account: &AccountPublicKey) -> String {
    format!("$SYS.REQ.ACCOUNT.{account}.CLAIMS.LOOKUP")
}

/// A reply of the claims API: `{"server":{..},"data":{..}}` or `{"server":{..},"error":{..}}`.
#[derive(Debug, Deserialize)]
struct ClaimsReply {
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<ReplyError>,
}

#[derive(Debug, Deserialize)]
struct ReplyError {
    #[serde(default)]
    description: String,
}

/// Requests on one client with one timeout.
pub(super) struct Wire<'a> {
    client: &'a Client,
    timeout: Duration,
    /// Replies after which a request returns at once (0 = unknown: wait for the grace).
    expected: usize,
}

impl<'a> Wire<'a> {
    /// Requests on `client`, each waiting at most `timeout`, returning early after `expected`
    /// replies.
    pub(super) fn new(client: &'a Client, timeout: Duration, expected: usize) -> Self {
        Wire { client, timeout, expected }
    }

    /// Publishes `payload` on `subject` and collects replies (see the module docs). Fails when
    /// none came, or when the server reports that nobody listens.
    async fn gather(&self, subject: &str, payload: &[u8]) -> Result<Vec<Message>, PublisherError> {
        let nats = |e: &dyn std::fmt::Display| PublisherError::Nats {
            subject: subject.to_string(),
            reason: e.to_string(),
        };
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await.map_err(|e| nats(&e))?;
        let payload = bytes::Bytes::copy_from_slice(payload);
        self.client
            .publish_with_reply(subject.to_string(), inbox, payload)
            .await
            .map_err(|e| nats(&e))?;
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            let until = match got.is_empty() {
                true => deadline,
                false => deadline.min(Instant::now() + REPLY_GRACE),
            };
            let msg = match tokio::time::timeout_at(until, replies.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) | Err(_) => break,
            };
            if msg.status == Some(StatusCode::NO_RESPONDERS) {
                return Err(PublisherError::NoResponders { subject: subject.to_string() });
            }
            got.push(msg);
            if self.expected > 0 && got.len() >= self.expected {
                break;
            }
        }
        if got.is_empty() {
            return Err(PublisherError::NoReply {
                subject: subject.to_string(),
                timeout: self.timeout,
            });
        }
        Ok(got)
    }

    /// How many servers answer a ping (the servers of the cluster that are up).
    pub(super) async fn count_servers(&self) -> Result<usize, PublisherError> {
        Ok(self.gather(SERVER_PING, b"").await?.len())
    }

    /// Pushes `jwt`; fails on any error reply. Returns how many servers accepted it.
    pub(super) async fn update(
        &self,
        account: &AccountPublicKey,
        jwt: &str,
    ) -> Result<usize, PublisherError> {
        let replies = self.gather(CLAIMS_UPDATE, jwt.as_bytes()).await?;
        check_replies(CLAIMS_UPDATE, account, &replies)?;
        Ok(replies.len())
    }

    /// Sends the delete request `claim`; fails on any error reply.
    pub(super) async fn delete(
        &self,
        account: &AccountPublicKey,
        claim: &str,
    ) -> Result<(), PublisherError> {
        let replies = self.gather(CLAIMS_DELETE, claim.as_bytes()).await?;
        check_replies(CLAIMS_DELETE, account, &replies)
    }

    /// What each answering server holds for `account`: its JWT, or `None` when it holds none.
    pub(super) async fn lookup(
        &self,
        account: &AccountPublicKey,
    ) -> Result<Vec<Option<String>>, PublisherError> {
        let subject = lookup_subject(account);
        let replies = self.gather(&subject, b"").await?;
        replies
            .iter()
            .map(|m| match std::str::from_utf8(&m.payload) {
                Ok("") => Ok(None),
                Ok(jwt) => Ok(Some(jwt.to_string())),
                Err(e) => Err(PublisherError::BadReply {
                    subject: subject.clone(),
                    reason: e.to_string(),
                }),
            })
            .collect()
    }

    /// Checks that every answering server holds exactly `jwt` for `account`.
    pub(super) async fn verify(
        &self,
        account: &AccountPublicKey,
        jwt: &str,
    ) -> Result<(), PublisherError> {
        for held in self.lookup(account).await? {
            let found = match held {
                Some(h) if h == jwt => continue,
                Some(h) => match super::iat_of(&h) {
                    Some(iat) => format!("another jwt (iat {iat})"),
                    None => "another jwt".to_string(),
                },
                None => "no jwt".to_string(),
            };
            return Err(PublisherError::NotApplied { account: account.clone(), found });
        }
        Ok(())
    }

    /// Checks that no answering server holds `account` any more.
    pub(super) async fn verify_absent(
        &self,
        account: &AccountPublicKey,
    ) -> Result<(), PublisherError> {
        if self.lookup(account).await?.iter().any(Option::is_some) {
            return Err(PublisherError::NotDeleted { account: account.clone() });
        }
        Ok(())
    }
}

/// Fails on the first reply carrying an `error` (its description says why) or that is not a
/// claims API reply at all; an unreadable reply is never taken for success.
pub(super) fn check_replies(
    subject: &str,
    account: &AccountPublicKey,
    replies: &[Message],
) -> Result<(), PublisherError> {
    for msg in replies {
        check_reply(subject, account, &msg.payload)?;
    }
    Ok(())
}

/// Checks one reply body; see [`check_replies`].
pub(super) fn check_reply(
    subject: &str,
    account: &AccountPublicKey,
    body: &[u8],
) -> Result<(), PublisherError> {
    let bad = |reason: String| PublisherError::BadReply { subject: subject.to_string(), reason };
    let reply: ClaimsReply = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    match (reply.error, reply.data) {
        (Some(e), _) => {
            Err(PublisherError::Rejected { account: account.clone(), description: e.description })
        }
        (None, Some(_)) => Ok(()),
        (None, None) => Err(bad("neither data nor error".to_string())),
    }
}
