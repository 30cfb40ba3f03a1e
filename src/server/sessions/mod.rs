//! Live callout sessions across the cluster: who is connected to which server, as which user.
//!
//! Every replica builds the same view from the servers, not from its own logins: the `$SYS`
//! connect and disconnect events of every account, plus a CONNZ snapshot of every server when
//! the system connection (re)connects and every [`RESYNC_INTERVAL`] ([`track`]). So any replica
//! can kick any session (the kick goes to the server holding the connection), and a per-user
//! connection cap counts the connections every replica admitted.
//!
//! A session this replica admits is registered at once, before the server connects the client,
//! and stays unconfirmed until the server's connect event for it arrives; one still unconfirmed
//! after the auth timeout is dropped, so a refused login does not hold a per-user slot. Sessions
//! seen only through events or CONNZ (admitted by another replica, or by this one before a
//! restart) carry what the server reports: no `user_nkey`, no expiry (the server's disconnect
//! event ends them), the signing key that issued them. Only callout users are tracked: client
//! connections whose JWT the server does not show (it clears it for callout users) with a user
//! name pbn could have minted; creds users, pbn's own connections and leaf nodes are not.

pub(crate) mod admin;
mod connz;
mod events;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::{Limit, Session};

pub use connz::{snapshot_paged, SessionsError};
pub use events::{track, CONFIRM_TIMEOUT};

/// Key of a session: (server id, client id), unique across a cluster.
pub type SessionKey = (String, u64);

/// Most sessions the registry holds. nats-server accepts 64K connections per server by default
/// (`max_connections`), so this covers four full servers; at about half a KiB per session the
/// registry stays below ~128 MiB. Beyond it, sessions seen through events are not recorded (and
/// logged) and this replica refuses new logins rather than admitting ones it cannot count.
pub const MAX_SESSIONS: usize = 1 << 18;

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionKey, Session>,
    by_user: HashMap<String, HashSet<SessionKey>>,
    /// When each session was first recorded: a snapshot only removes what it is newer than.
    seen: HashMap<SessionKey, Instant>,
    /// Sessions without a connect event yet, with when they were admitted. A subset of
    /// `sessions`.
    unconfirmed: HashMap<SessionKey, Instant>,
    /// Since when connect events are being received without a gap (`None`: not now). Only a
    /// session admitted since then can be known to have had no connect event.
    watching_since: Option<Instant>,
    /// While a snapshot is being taken: when it began, and the sessions that ended since (the
    /// snapshot may still list them).
    sync: Option<(Instant, HashSet<SessionKey>)>,
    /// Sessions not recorded because the registry was full (logged once per snapshot).
    dropped: u64,
}

impl Inner {
    fn remove(&mut self, key: &SessionKey) -> Option<Session> {
        self.unconfirmed.remove(key);
        self.seen.remove(key);
        if let Some((_, ended)) = self.sync.as_mut() {
            ended.insert(key.clone());
        }
        let s = self.sessions.remove(key)?;
        if let Some(set) = self.by_user.get_mut(s.user.as_str()) {
            set.remove(key);
            if set.is_empty() {
                self.by_user.remove(s.user.as_str());
            }
        }
        Some(s)
    }

    fn insert(&mut self, key: SessionKey, session: Session) {
        self.by_user.entry(session.user.to_string()).or_default().insert(key.clone());
        self.seen.insert(key.clone(), Instant::now());
        self.sessions.insert(key, session);
    }

    /// Records a session the servers report: confirms it if it is known, else adds it.
    fn observe(&mut self, session: Session) -> bool {
        let k = key(&session);
        if self.sessions.contains_key(&k) {
            self.unconfirmed.remove(&k);
            return true;
        }
        if self.sessions.len() >= MAX_SESSIONS {
            self.dropped += 1;
            return false;
        }
        self.insert(k, session);
        true
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

/// The live sessions, shared by the callout, the lifecycle operations and the event tracker.
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits `session` if its user has fewer than `max` live sessions anywhere in the cluster
    /// (expired ones do not count); the check and the insert are one step, so concurrent logins
    /// on this replica cannot both slip under the cap. Returns the number of live sessions the
    /// user had; `Err` with that number when the cap is reached, and also when the registry
    /// holds [`MAX_SESSIONS`] (a login that could not be counted is refused).
    pub fn try_admit(&self, session: Session, max: Limit, now: i64) -> Result<usize, usize> {
        let mut inner = self.lock();
        let user = session.user.to_string();
        inner.prune_user(&user, now);
        let k = key(&session);
        let live = inner.by_user.get(&user).map_or(0, |s| s.len() - usize::from(s.contains(&k)));
        if !max.allows(live as u64 + 1) {
            return Err(live);
        }
        inner.remove(&k);
        if inner.sessions.len() >= MAX_SESSIONS {
            tracing::warn!(max = MAX_SESSIONS, user, "session registry full: login refused");
            return Err(live);
        }
        inner.unconfirmed.insert(k.clone(), Instant::now());
        inner.insert(k, session);
        Ok(live)
    }

    /// Records a connection the servers report (a connect event): confirms the session if this
    /// replica admitted it, else adds it. Returns false when the registry is full.
    pub fn observe(&self, session: Session) -> bool {
        self.lock().observe(session)
    }

    /// Marks the session of client `client_id` on server `server_id` as connected (the server
    /// accepted it). Returns whether it was waiting for that.
    pub fn confirm(&self, server_id: &str, client_id: u64) -> bool {
        self.lock().unconfirmed.remove(&(server_id.to_string(), client_id)).is_some()
    }

    /// Records whether connect events are being received: `true` once the subscription is in
    /// place, `false` when it is lost (then no session is dropped for lack of one).
    pub fn set_watching(&self, watching: bool) {
        self.lock().watching_since = watching.then(Instant::now);
    }

    /// Starts a snapshot: sessions recorded from now on, and sessions ending from now on, are
    /// left as the events say whatever the snapshot lists.
    pub fn begin_sync(&self) {
        self.lock().sync = Some((Instant::now(), HashSet::new()));
    }

    /// Ends a snapshot with `listed`, the callout sessions every server reported: adds the
    /// ones not known (unless they ended meanwhile), confirms known ones, and drops confirmed
    /// sessions recorded before the snapshot began that no server listed (their disconnect
    /// event was missed). Unconfirmed sessions are left to [`Self::prune_unconfirmed`].
    /// Returns (added, dropped).
    pub fn finish_sync(&self, listed: Vec<Session>) -> (usize, usize) {
        let mut inner = self.lock();
        let Some((began, ended)) = inner.sync.take() else { return (0, 0) };
        let listed_keys: HashSet<SessionKey> = listed.iter().map(key).collect();
        let stale: Vec<SessionKey> = inner
            .sessions
            .keys()
            .filter(|k| !listed_keys.contains(*k) && !inner.unconfirmed.contains_key(*k))
            .filter(|k| inner.seen.get(*k).is_some_and(|at| *at < began))
            .cloned()
            .collect();
        for k in &stale {
            inner.remove(k);
        }
        let before = inner.sessions.len();
        for s in listed.into_iter().filter(|s| !ended.contains(&key(s))) {
            inner.observe(s);
        }
        let dropped = std::mem::take(&mut inner.dropped);
        if dropped > 0 {
            tracing::warn!(dropped, max = MAX_SESSIONS, "session registry full: not recorded");
        }
        (inner.sessions.len() - before, stale.len())
    }

    /// Abandons a snapshot that failed (the view stays as the events made it).
    pub fn abort_sync(&self) {
        self.lock().sync = None;
    }

    /// Drops sessions admitted more than `timeout` ago without a connect event, while connect
    /// events were watched the whole time (otherwise a missed event would free a slot of a
    /// live connection); returns how many.
    pub fn prune_unconfirmed(&self, timeout: Duration) -> usize {
        let mut inner = self.lock();
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
        self.lock().remove(&(server_id.to_string(), client_id))
    }

    /// The live sessions of `user`.
    pub fn of_user(&self, user: &str) -> Vec<Session> {
        let inner = self.lock();
        inner
            .by_user
            .get(user)
            .map(|keys| keys.iter().filter_map(|k| inner.sessions.get(k).cloned()).collect())
            .unwrap_or_default()
    }

    /// Every live session (for `session list`).
    pub fn all(&self) -> Vec<Session> {
        self.lock().sessions.values().cloned().collect()
    }

    /// The live sessions identity provider `provider` admitted.
    pub fn of_provider(&self, provider: &str) -> Vec<Session> {
        let inner = self.lock();
        let by = |s: &&Session| s.provider.as_ref().is_some_and(|p| p.as_str() == provider);
        inner.sessions.values().filter(by).cloned().collect()
    }

    /// The live sessions in account `account` (public key).
    pub fn of_account(&self, account: &str) -> Vec<Session> {
        let inner = self.lock();
        inner.sessions.values().filter(|s| s.account.as_str() == account).cloned().collect()
    }

    /// Drops sessions whose JWT expired; returns how many.
    pub fn prune(&self, now: i64) -> usize {
        let mut inner = self.lock();
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
    pub fn count_by_account(&self) -> HashMap<String, usize> {
        let inner = self.lock();
        let mut counts = HashMap::new();
        for s in inner.sessions.values() {
            *counts.entry(s.account.to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
