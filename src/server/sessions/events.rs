//! The tracker: keeps the [`SessionRegistry`] in step with the servers from the `$SYS` connect
//! and disconnect events, and a CONNZ snapshot at each (re)connect and every
//! [`RESYNC_INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use futures::future::FusedFuture;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;

use super::{connz, SessionRegistry};
use crate::keys::{AccountPublicKey, ServerPublicKey};
use crate::model::{Name, Session};

/// One subscription for both the per-account connect (`$SYS.ACCOUNT.<acc>.CONNECT`) and
/// disconnect (`….DISCONNECT`) events (system account): a server's events then arrive in the
/// order it sent them, so a short connection's disconnect is never applied before its connect
/// (which would leave a session that no event ends). Other events of this shape are ignored.
pub const CLIENT_EVENTS: &str = "$SYS.ACCOUNT.*.*";

/// How long a session may wait for its connect event: nats-server's auth timeout as pbn
/// configures it (`pbn nats-conf --auth-timeout`, 5 s by default), plus a margin for the
/// event's delivery.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(6);

/// How often the whole view is checked against the servers' CONNZ, besides each (re)connect.
/// Events are dropped when their subscription's queue is full (the connection's
/// `callout.subscription_capacity`, 8,192 by default: a burst of that many connects within the
/// microseconds one event takes to apply), and a server that dies takes its disconnect events
/// with it; a resync repairs both. Five minutes keeps the cost (a full CONNZ of every server)
/// small next to the traffic of the connections it lists.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(300);

/// The fields of a connect or disconnect event pbn reads.
#[derive(Deserialize)]
struct ClientEvent {
    server: EventServer,
    client: EventClient,
}

#[derive(Deserialize)]
struct EventServer {
    id: String,
}

#[derive(Deserialize)]
struct EventClient {
    id: u64,
    #[serde(default)]
    acc: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    jwt: String,
    #[serde(default)]
    issuer_key: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    start: String,
}

/// What the servers say of one connection, from an event or a CONNZ entry.
pub(super) struct Reported<'a> {
    pub server: &'a str,
    pub cid: u64,
    pub kind: &'a str,
    pub account: &'a str,
    pub user: &'a str,
    pub jwt: &'a str,
    pub issuer: &'a str,
    /// The client's host (IP).
    pub host: &'a str,
    /// When the connection began (RFC 3339), if reported.
    pub start: &'a str,
}

impl Reported<'_> {
    /// The session, if the connection is a callout user's: a client whose JWT the server does
    /// not show (it clears it for callout users; creds users and pbn's own connections keep
    /// theirs), named as pbn names users, in an account. No `user_nkey` (the server does not
    /// report it), no expiry (the disconnect event ends it).
    pub fn session(&self) -> Option<Session> {
        if self.kind != "Client" || !self.jwt.is_empty() {
            return None;
        }
        Some(Session {
            server_id: ServerPublicKey::parse(self.server).ok()?,
            client_id: self.cid,
            user: Name::parse(self.user).ok()?,
            account: AccountPublicKey::parse(self.account).ok()?,
            user_nkey: None,
            issuer: Some(self.issuer.to_string()).filter(|i| !i.is_empty()),
            issued: 0,
            expires: i64::MAX,
            host: self.host.to_string(),
            method: None,
            since: unix_seconds(self.start),
            provider: None,
        })
    }
}

/// Unix seconds of an RFC 3339 time as the servers write it (`2026-01-02T03:04:05.123Z`); 0
/// when absent or unreadable.
pub(super) fn unix_seconds(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Applies one event to `registry`: a connect records (or confirms) the session, a disconnect
/// ends it. Events that are not about a callout user's connection are ignored.
fn apply(registry: &SessionRegistry, connected: bool, payload: &[u8]) {
    let Ok(ev) = serde_json::from_slice::<ClientEvent>(payload) else { return };
    if !connected {
        registry.remove(&ev.server.id, ev.client.id);
        return;
    }
    let c = &ev.client;
    let reported = Reported {
        server: &ev.server.id,
        cid: c.id,
        kind: &c.kind,
        account: &c.acc,
        user: &c.user,
        jwt: &c.jwt,
        issuer: &c.issuer_key,
        host: &c.host,
        start: &c.start,
    };
    match reported.session() {
        Some(s) => {
            if !registry.observe(s) {
                tracing::warn!(user = %c.user, "session registry full: connection not recorded");
            }
        }
        None => {
            registry.confirm(&ev.server.id, c.id);
        }
    }
}

type Subs = async_nats::Subscriber;

/// Subscribes `client` to connect and disconnect events, and makes sure the server has the
/// subscription before the registry relies on it.
async fn subscribe_events(client: &async_nats::Client) -> Result<Subs, async_nats::Error> {
    let events = client.subscribe(CLIENT_EVENTS).await?;
    // A round trip: once the server answers, it has processed the subscription.
    client.request("$SYS.REQ.USER.INFO", "".into()).await?;
    Ok(events)
}

/// Keeps `registry` in step with the servers through the system connection's current client
/// (resubscribing and taking a new snapshot whenever it changes), until `shutdown`.
pub async fn track(
    mut clients: watch::Receiver<Option<async_nats::Client>>,
    registry: Arc<SessionRegistry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        registry.set_watching(false);
        registry.abort_sync();
        let client = clients.borrow_and_update().clone();
        let subs = match &client {
            Some(c) => match subscribe_events(c).await {
                Ok(subs) => Some(subs),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to connect events");
                    None
                }
            },
            None => None,
        };
        registry.set_watching(subs.is_some());
        let run = async {
            match (client, subs) {
                (Some(c), Some(subs)) => follow(&c, subs, &registry).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = run => {}
            r = clients.changed() => if r.is_err() { return },
            _ = crate::shutdown::requested(&mut shutdown) => return,
        }
    }
}

/// Applies the events of `subs` and takes a snapshot at once and every [`RESYNC_INTERVAL`];
/// returns when a subscription ends.
async fn follow(client: &async_nats::Client, subs: Subs, registry: &SessionRegistry) {
    let mut events = subs;
    let mut resync = tokio::time::interval(RESYNC_INTERVAL);
    let mut sync = std::pin::pin!(futures::future::Fuse::terminated());
    loop {
        tokio::select! {
            m = events.next() => match m {
                Some(m) if m.subject.ends_with(".DISCONNECT") => apply(registry, false, &m.payload),
                Some(m) if m.subject.ends_with(".CONNECT") => apply(registry, true, &m.payload),
                Some(_) => {}
                None => return,
            },
            _ = resync.tick(), if sync.is_terminated() => {
                registry.begin_sync();
                sync.set(futures::FutureExt::fuse(connz::snapshot(client.clone())));
            }
            result = &mut sync => match result {
                Ok(listed) => {
                    let (added, dropped) = registry.finish_sync(listed);
                    tracing::info!(added, dropped, sessions = registry.len(),
                        "sessions synchronised with the servers");
                }
                Err(e) => {
                    registry.abort_sync();
                    tracing::warn!(error = %e, "cannot list the servers' connections");
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};

    /// An event as nats-server 2.15.1 sends it (trimmed to what pbn reads, plus noise).
    fn event(server: &str, acc: &str, cid: u64, jwt: Option<&str>) -> Vec<u8> {
        let mut client = serde_json::json!({
            "start": "2026-11-29T06:07:38.878856844Z", "host": "127.0.0.1", "id": cid,
            "acc": acc, "user": "alice", "lang": "rust", "ver": "0.51.0",
            "issuer_key": "ASIGNER", "name_tag": "APP", "kind": "Client", "client_type": "nats"
        });
        if let Some(jwt) = jwt {
            client["jwt"] = jwt.into();
        }
        serde_json::json!({
            "type": "io.nats.server.advisory.v1.client_connect",
            "server": {"name": "pbn-1", "id": server, "ver": "2.15.1"},
            "client": client,
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn connect_and_disconnect_events_maintain_the_view() {
        let server = KeyPair::generate(KeyKind::Server).public_key().to_string();
        let acc = KeyPair::generate(KeyKind::Account).public_key().to_string();
        let r = SessionRegistry::new();
        apply(&r, true, &event(&server, &acc, 9, None));
        let s = r.of_user("alice");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].client_id, s[0].issuer.as_deref()), (9, Some("ASIGNER")));
        apply(&r, true, &event(&server, &acc, 10, Some("eyJ.creds.user")));
        assert_eq!(r.len(), 1, "a creds user is not a callout session");
        apply(&r, false, &event(&server, &acc, 9, None));
        assert!(r.is_empty());
        apply(&r, true, b"not json");
        assert!(r.is_empty());
    }
}
