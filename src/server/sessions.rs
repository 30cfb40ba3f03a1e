//! Live callout sessions: who is connected where, with which `user_nkey`.
//!
//! The callout admits a session when it mints a JWT; a `$SYS` disconnect event or the JWT's
//! expiry ends it. nats-server may still refuse the connection after the callout (an account
//! over its connection limit, say): a session is unconfirmed until the server's `$SYS` connect
//! event for it arrives, and one still unconfirmed after the auth timeout is dropped, so a
//! refused login does not hold a per-user slot until its JWT expires. The registry is in memory
//! (it describes live connections of this process's lifetime) and is what per-user connection
//! caps count and what the security operations use to find the connections of a user or an
//! account.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{Limit, Session};

/// Key of a session: (server id, client id), unique across a cluster.
pub type SessionKey = (String, u64);

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionKey, Session>,
    by_user: HashMap<String, HashSet<SessionKey>>,
    /// Sessions without a connect event yet, with when they were admitted. A subset of
    /// `sessions`.
    unconfirmed: HashMap<SessionKey, Instant>,
    /// Since when connect events are being received without a gap (`None`: not now). Only a
    /// session admitted since then can be known to have had no connect event.
    watching_since: Option<Instant>,
}

impl Inner {
    fn remove(&mut self, key: &SessionKey) -> Option<Session> {
        self.unconfirmed.remove(key);
        let s = self.sessions.remove(key)?;
        if let Some(set) = self.by_user.get_mut(s.user.as_str()) {
            set.remove(key);
            if set.is_empty() {
                self.by_user.remove(s.user.as_str());
            }
        }
        Some(s)
    }

    fn prune_user(&mut self, user: &str, now: i64) {
        let expired: Vec<SessionKey> = match self.by_user.get(user) {
            Some(keys) => keys
                .iter()
                .filter(|k| self.sessions.get(*k).is_some_and(|s| s.is_expired(now)))
                .cloned()
                .collect(),
            None => return,
        };
        for k in expired {
            self.remove(&k);
        }
    }
}

/// The live sessions, shared by the callout and the lifecycle operations.
#[derive(Default)]
pub struct SessionRegistry {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRegistry").field("len", &self.len()).finish()
    }
}

fn key(s: &Session) -> SessionKey {
    (s.server_id.to_string(), s.client_id)
}

impl SessionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        SessionRegistry::default()
    }

    /// Admits `session` if its user has fewer than `max` live sessions (expired ones do not
    /// count); the check and the insert are one step, so concurrent logins cannot both slip
    /// under the cap. Returns the number of live sessions the user had.
    pub fn try_admit(&self, session: Session, max: Limit, now: i64) -> Result<usize, usize> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let user = session.user.to_string();
        inner.prune_user(&user, now);
        let k = key(&session);
        let live = inner.by_user.get(&user).map_or(0, |s| s.len() - usize::from(s.contains(&k)));
        if !max.allows(live as u64 + 1) {
            return Err(live);
        }
        inner.remove(&k);
        inner.by_user.entry(user).or_default().insert(k.clone());
        inner.unconfirmed.insert(k.clone(), Instant::now());
        inner.sessions.insert(k, session);
        Ok(live)
    }

    /// Marks the session of client `client_id` on server `server_id` as connected (the server
    /// accepted it). Returns whether it was waiting for that.
    pub fn confirm(&self, server_id: &str, client_id: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.unconfirmed.remove(&(server_id.to_string(), client_id)).is_some()
    }

    /// Records whether connect events are being received: `true` once the subscription is in
    /// place, `false` when it is lost (then no session is dropped for lack of one).
    pub fn set_watching(&self, watching: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.watching_since = watching.then(Instant::now);
    }

    /// Drops sessions admitted more than `timeout` ago without a connect event, while connect
    /// events were watched the whole time (otherwise a missed event would free a slot of a
    /// live connection); returns how many.
    pub fn prune_unconfirmed(&self, timeout: Duration) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(since) = inner.watching_since else { return 0 };
        let now = Instant::now();
        let stale: Vec<SessionKey> = inner
            .unconfirmed
            .iter()
            .filter(|(_, at)| **at >= since && now.saturating_duration_since(**at) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &stale {
            inner.remove(k);
        }
        stale.len()
    }

    /// Ends the session of client `client_id` on server `server_id`.
    pub fn remove(&self, server_id: &str, client_id: u64) -> Option<Session> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.remove(&(server_id.to_string(), client_id))
    }

    /// The live sessions of `user`.
    pub fn of_user(&self, user: &str) -> Vec<Session> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .by_user
            .get(user)
            .map(|keys| keys.iter().filter_map(|k| inner.sessions.get(k).cloned()).collect())
            .unwrap_or_default()
    }

    /// The live sessions in account `account` (public key).
    pub fn of_account(&self, account: &str) -> Vec<Session> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.sessions.values().filter(|s| s.account.as_str() == account).cloned().collect()
    }

    /// Drops sessions whose JWT expired; returns how many.
    pub fn prune(&self, now: i64) -> usize {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let expired: Vec<SessionKey> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.is_expired(now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            inner.remove(k);
        }
        expired.len()
    }

    /// Number of sessions held per account (public key), for the metrics.
    pub fn count_by_account(&self) -> std::collections::HashMap<String, usize> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = std::collections::HashMap::new();
        for s in inner.sessions.values() {
            *counts.entry(s.account.to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).sessions.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Subject of the per-account disconnect events (system account).
pub const DISCONNECT_EVENTS: &str = "$SYS.ACCOUNT.*.DISCONNECT";
/// Subject of the per-account connect events (system account).
pub const CONNECT_EVENTS: &str = "$SYS.ACCOUNT.*.CONNECT";

/// How long a session may wait for its connect event: nats-server's auth timeout as pbn
/// configures it (`pbn nats-conf --auth-timeout`, 5 s by default), plus a margin for the
/// event's delivery.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(6);

/// The fields of a connect or disconnect event pbn reads.
#[derive(serde::Deserialize)]
struct ClientEvent {
    server: EventServer,
    client: EventClient,
}

#[derive(serde::Deserialize)]
struct EventServer {
    id: String,
}

#[derive(serde::Deserialize)]
struct EventClient {
    id: u64,
}

/// Subscribes `client` to connect and disconnect events, and makes sure the server has the
/// subscriptions before the registry relies on them.
async fn subscribe_events(
    client: &async_nats::Client,
) -> Result<(async_nats::Subscriber, async_nats::Subscriber), async_nats::Error> {
    let disconnects = client.subscribe(DISCONNECT_EVENTS).await?;
    let connects = client.subscribe(CONNECT_EVENTS).await?;
    // A round trip: once the server answers, it has processed both subscriptions.
    client.request("$SYS.REQ.USER.INFO", "".into()).await?;
    Ok((disconnects, connects))
}

/// Ends sessions when their connections close and confirms them when they connect, from the
/// `$SYS` events seen by the system connection (resubscribing whenever that connection's client
/// changes).
pub async fn track_disconnects(
    mut clients: tokio::sync::watch::Receiver<Option<async_nats::Client>>,
    registry: std::sync::Arc<SessionRegistry>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use futures::StreamExt;
    loop {
        registry.set_watching(false);
        let client = clients.borrow_and_update().clone();
        let mut subs = match client {
            Some(c) => match subscribe_events(&c).await {
                Ok(subs) => Some(subs),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to connect events");
                    None
                }
            },
            None => None,
        };
        registry.set_watching(subs.is_some());
        loop {
            let next = async {
                match subs.as_mut() {
                    Some((d, c)) => tokio::select! {
                        m = d.next() => m.map(|m| (false, m)),
                        m = c.next() => m.map(|m| (true, m)),
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = next => {
                    let Some((connected, msg)) = msg else { break };
                    if let Ok(ev) = serde_json::from_slice::<ClientEvent>(&msg.payload) {
                        if connected {
                            registry.confirm(&ev.server.id, ev.client.id);
                        } else {
                            registry.remove(&ev.server.id, ev.client.id);
                        }
                    }
                }
                r = clients.changed() => { if r.is_err() { return } break; }
                _ = crate::shutdown::requested(&mut shutdown) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AccountPublicKey, KeyKind, KeyPair, ServerPublicKey, UserPublicKey};
    use crate::model::Name;

    fn session(user: &str, cid: u64, expires: i64) -> Session {
        let server = KeyPair::generate(KeyKind::Server);
        let acc = KeyPair::generate(KeyKind::Account);
        let u = KeyPair::generate(KeyKind::User);
        Session {
            server_id: ServerPublicKey::parse(server.public_key()).unwrap(),
            client_id: cid,
            user: Name::parse(user).unwrap(),
            account: AccountPublicKey::parse(acc.public_key()).unwrap(),
            user_nkey: UserPublicKey::parse(u.public_key()).unwrap(),
            issued: 0,
            expires,
        }
    }

    #[test]
    fn cap_counts_live_sessions_only() {
        let r = SessionRegistry::new();
        let two = Limit::try_from(2).unwrap();
        assert_eq!(r.try_admit(session("bob", 1, 100), two, 10), Ok(0));
        assert_eq!(r.try_admit(session("bob", 2, 20), two, 10), Ok(1));
        assert_eq!(r.try_admit(session("bob", 3, 100), two, 10), Err(2));
        // the second one expired at 20: room again at 30
        assert_eq!(r.try_admit(session("bob", 3, 100), two, 30), Ok(1));
        assert_eq!(r.try_admit(session("eve", 1, 100), Limit::UNLIMITED, 30), Ok(0));
        assert_eq!(r.try_admit(session("eve", 2, 100), Limit::DISABLED, 30), Err(1));
    }

    #[test]
    fn remove_and_prune() {
        let r = SessionRegistry::new();
        let s = session("bob", 7, 50);
        let server = s.server_id.to_string();
        r.try_admit(s, Limit::UNLIMITED, 0).unwrap();
        r.try_admit(session("amy", 8, 10), Limit::UNLIMITED, 0).unwrap();
        assert_eq!(r.of_user("bob").len(), 1);
        assert!(r.remove(&server, 7).is_some());
        assert!(r.of_user("bob").is_empty());
        assert_eq!(r.prune(11), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn unconfirmed_sessions_are_dropped_only_while_events_are_watched() {
        let r = SessionRegistry::new();
        let one = Limit::try_from(1).unwrap();
        let (a, b) = (session("bob", 1, 100), session("bob", 2, 100));
        let server_a = a.server_id.to_string();
        // Not watching: a session without a connect event is kept (it may be live).
        r.try_admit(a, one, 0).unwrap();
        assert_eq!(r.prune_unconfirmed(Duration::ZERO), 0);
        r.remove(&server_a, 1);
        r.set_watching(true);
        r.try_admit(b, one, 0).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(r.prune_unconfirmed(Duration::from_secs(60)), 0, "not timed out yet");
        assert_eq!(r.prune_unconfirmed(Duration::ZERO), 1);
        // The slot is free again; a confirmed session stays.
        let c = session("bob", 3, 100);
        let server_c = c.server_id.to_string();
        assert_eq!(r.try_admit(c, one, 0), Ok(0));
        assert!(r.confirm(&server_c, 3));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(r.prune_unconfirmed(Duration::ZERO), 0);
        assert_eq!(r.of_user("bob").len(), 1);
    }
}
