//! The login throttle of the callout: counting that a stranger cannot turn into a lockout.
//!
//! Three tables of [`Table`], all under one lock:
//! - per (user, client host): `pair` failures in the window refuse that user *from that host*;
//! - per client host: `host` failures (any users) refuse that host;
//! - per user: a budget of failed verifications in the window. It is enforced only for hosts
//!   that already have a failure (or a check in flight) for that user; a correct password from
//!   a host with a clean record for the user is always verified, so an attack from elsewhere
//!   never locks the real user out. Guessing one user from many hosts gets one try per fresh
//!   host plus the shared budget per window.
//!
//! Exact under concurrency: [`LoginThrottle::begin`] checks and reserves a slot in every table in
//! one step, before any argon2 work; the [`Attempt`] then turns the slots into failures or gives
//! them back. So `N` concurrent wrong guesses verify at most as many as the limits allow.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use super::throttle::{host_key, Full, Table, ThrottleConfig};
use super::AuthError;

/// A user as seen from one client host (hosts grouped by [`host_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PairKey {
    user: String,
    host: Option<IpAddr>,
}

impl fmt::Display for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Some(h) => write!(f, "user {:?} from {h}", self.user),
            None => write!(f, "user {:?}", self.user),
        }
    }
}

/// The three tables, locked together.
#[derive(Debug)]
struct Tables {
    pairs: Table<PairKey>,
    hosts: Table<IpAddr>,
    users: Table<String>,
}

/// The login throttle the callout uses (see the module docs for the policy).
#[derive(Debug)]
pub struct LoginThrottle {
    tables: Mutex<Tables>,
    /// Woken whenever an attempt ends (see [`Self::begin_waiting`]).
    ended: Notify,
}

impl LoginThrottle {
    /// A login throttle: `pair` limits one user from one host, `host` one host over all users,
    /// `user` is the per-user budget that hosts with failures for the user share.
    pub fn new(
        pair: ThrottleConfig,
        host: ThrottleConfig,
        user: ThrottleConfig,
    ) -> Result<Self, AuthError> {
        pair.validate()?;
        host.validate()?;
        user.validate()?;
        let tables =
            Tables { pairs: Table::new(pair), hosts: Table::new(host), users: Table::new(user) };
        Ok(LoginThrottle { tables: Mutex::new(tables), ended: Notify::new() })
    }

    /// Checks every limit that applies and, if none is reached, reserves a slot in each: the
    /// returned [`Attempt`] must be ended with [`Attempt::failed`] or [`Attempt::succeeded`]
    /// (dropping it gives the slots back). `user` is `None` for credentials that name no user,
    /// such as API tokens (256 random bits: only their host is counted). The host is checked
    /// first, so a spraying host learns nothing about which usernames exist. A limit whose last
    /// slots are held by checks in flight refuses too; [`Self::begin_waiting`] (what the callout
    /// uses) waits instead.
    #[cfg(test)]
    pub fn begin(
        &self,
        user: Option<&str>,
        host: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt<'_>, AuthError> {
        self.try_begin(user, host, now).map_err(Full::into_error)
    }

    /// [`Self::begin`], but when only checks in flight hold the last slots of a limit, waits
    /// for one of them to end and checks again: many concurrent logins from one host (a NAT)
    /// are not refused for being concurrent, and the limits stay exact. The wait is bounded by
    /// the checks in flight, which are bounded by the callout's concurrency.
    pub async fn begin_waiting(
        &self,
        user: Option<&str>,
        host: Option<IpAddr>,
    ) -> Result<Attempt<'_>, AuthError> {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.try_begin(user, host, Instant::now()) {
                Ok(a) => return Ok(a),
                Err(Full::Throttled(e)) => return Err(e),
                Err(Full::InFlight(key)) => {
                    tracing::trace!(%key, "login waits for checks in flight");
                    ended.await
                }
            }
        }
    }

    fn try_begin(
        &self,
        user: Option<&str>,
        host: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt<'_>, Full> {
        let host = host.map(host_key);
        let pair = user.map(|u| PairKey { user: u.to_string(), host });
        let mut t = self.lock();
        if let Some(h) = &host {
            t.hosts.check(h, now)?;
        }
        if let Some(p) = &pair {
            t.pairs.check(p, now)?;
            if !t.pairs.is_clean(p, now) {
                t.users.check(p.user.as_str(), now)?;
            }
        }
        if let Some(h) = &host {
            t.hosts.reserve(h, now);
        }
        if let Some(p) = &pair {
            t.pairs.reserve(p, now);
            t.users.reserve(&p.user, now);
        }
        Ok(Attempt { throttle: self, pair, host, open: true })
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Every mutation leaves the tables consistent before anything that can panic.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for LoginThrottle {
    /// 10 failures per user and host, 50 per host, 100 per user, all in 15 minutes.
    fn default() -> Self {
        let user_budget = ThrottleConfig { max_failures: 100, ..ThrottleConfig::users() };
        // All three default configs pass validation.
        LoginThrottle::new(ThrottleConfig::users(), ThrottleConfig::hosts(), user_budget)
            .expect("default throttle configs are valid")
    }
}

/// One credential check holding reserved throttle slots.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    pair: Option<PairKey>,
    host: Option<IpAddr>,
    open: bool,
}

impl Attempt<'_> {
    /// The credential was checked and refused: the slots become failures at `now`.
    pub fn failed(mut self, now: Instant) {
        self.open = false;
        let mut t = self.throttle.lock();
        if let Some(h) = &self.host {
            t.hosts.fail(h, now);
        }
        if let Some(p) = &self.pair {
            t.pairs.fail(p, now);
            t.users.fail(&p.user, now);
        }
        drop(t);
        self.throttle.ended.notify_waiters();
    }

    /// The credential was accepted: the slots are given back and the user's failures from this
    /// host are forgotten. The host's count and the user's budget are kept: one valid login must
    /// not reset what an attacker elsewhere has spent.
    pub fn succeeded(mut self) {
        self.open = false;
        let mut t = self.throttle.lock();
        release(&mut t, self.host.as_ref(), self.pair.as_ref());
        if let Some(p) = &self.pair {
            t.pairs.clear(p);
        }
        drop(t);
        self.throttle.ended.notify_waiters();
    }
}

impl Drop for Attempt<'_> {
    /// An attempt ended neither way (the check could not run): its slots are given back.
    fn drop(&mut self) {
        if self.open {
            let mut t = self.throttle.lock();
            release(&mut t, self.host.as_ref(), self.pair.as_ref());
            drop(t);
            self.throttle.ended.notify_waiters();
        }
    }
}

fn release(t: &mut Tables, host: Option<&IpAddr>, pair: Option<&PairKey>) {
    if let Some(h) = host {
        t.hosts.release(h);
    }
    if let Some(p) = pair {
        t.pairs.release(p);
        t.users.release(p.user.as_str());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn config(max_failures: u32) -> ThrottleConfig {
        ThrottleConfig { window: 10 * MIN, max_failures, max_keys: 100 }
    }

    /// 2 per user and host, 4 per host, a budget of 3 per user.
    fn throttle() -> LoginThrottle {
        LoginThrottle::new(config(2), config(4), config(3)).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn fail(lt: &LoginThrottle, user: &str, host: Option<IpAddr>, now: Instant) {
        lt.begin(Some(user), host, now).expect("not throttled yet").failed(now);
    }

    fn throttled_key(r: Result<Attempt<'_>, AuthError>) -> Option<String> {
        match r {
            Err(AuthError::Throttled { key, .. }) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn an_attacked_user_still_gets_in_from_a_clean_host() {
        let lt = throttle();
        let t0 = Instant::now();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        fail(&lt, "carol", a, t0);
        fail(&lt, "carol", a, t0);
        assert_eq!(
            throttled_key(lt.begin(Some("carol"), a, t0)).as_deref(),
            Some("user \"carol\" from 10.0.0.1")
        );
        // Host b has no failures for carol: it is checked (and she gets in).
        lt.begin(Some("carol"), b, t0).expect("clean host is checked").succeeded();
        lt.begin(Some("carol"), b, t0).expect("and again").succeeded();
        // Host a's other users are not affected below the host limit.
        lt.begin(Some("dave"), a, t0).expect("another user from a").succeeded();
        // The window passing frees carol on a.
        assert!(lt.begin(Some("carol"), a, t0 + 10 * MIN).is_ok());
    }

    #[test]
    fn guessing_from_many_hosts_is_bounded_by_the_user_budget() {
        let lt = throttle();
        let t0 = Instant::now();
        // Three hosts fail once each (clean hosts are always checked): the budget is spent.
        for h in ["10.0.1.1", "10.0.1.2", "10.0.1.3"] {
            fail(&lt, "carol", ip(h), t0);
        }
        // Those hosts now have a failure for carol: the spent budget refuses them.
        assert_eq!(
            throttled_key(lt.begin(Some("carol"), ip("10.0.1.1"), t0)).as_deref(),
            Some("carol")
        );
        // A fresh host still gets its one check; the real user's host is never refused.
        lt.begin(Some("carol"), ip("10.0.9.9"), t0).expect("clean host").succeeded();
    }

    #[test]
    fn a_host_spraying_users_is_throttled_as_a_whole() {
        let lt = throttle();
        let t0 = Instant::now();
        for user in ["u1", "u2", "u3", "u4"] {
            fail(&lt, user, ip("10.0.0.1"), t0);
        }
        assert_eq!(
            throttled_key(lt.begin(Some("carol"), ip("10.0.0.1"), t0)).as_deref(),
            Some("10.0.0.1")
        );
        assert!(lt.begin(Some("carol"), ip("10.0.0.2"), t0).is_ok());
        assert!(lt.begin(Some("carol"), None, t0).is_ok());
        // Tokens (no user) count against the host only.
        let t = LoginThrottle::new(config(2), config(4), config(3)).unwrap();
        for _ in 0..4 {
            t.begin(None, ip("10.0.0.3"), t0).unwrap().failed(t0);
        }
        assert!(t.begin(None, ip("10.0.0.3"), t0).is_err());
    }

    #[test]
    fn success_clears_the_pair_but_keeps_the_host_count() {
        let lt = throttle();
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        fail(&lt, "carol", a, t0);
        lt.begin(Some("carol"), a, t0).unwrap().succeeded();
        fail(&lt, "carol", a, t0);
        assert!(lt.begin(Some("carol"), a, t0).is_ok(), "one failure since the success");
        for user in ["u1", "u2"] {
            fail(&lt, user, a, t0);
        }
        assert!(lt.begin(Some("x"), a, t0).is_err(), "the host count survived the success");
    }

    #[test]
    fn dropped_attempts_give_their_slots_back() {
        let lt = throttle();
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        for _ in 0..10 {
            drop(lt.begin(Some("carol"), a, t0).unwrap());
        }
        fail(&lt, "carol", a, t0);
        assert!(lt.begin(Some("carol"), a, t0).is_ok());
    }

    /// 100 concurrent wrong guesses from one host: exactly the per-(user, host) limit of them
    /// reach the (slow) verification; the rest are refused up front.
    #[test]
    fn concurrent_wrong_guesses_never_verify_more_than_the_limit() {
        let limit = 10;
        let lt = Arc::new(LoginThrottle::new(config(limit), config(50), config(100)).unwrap());
        let verified = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(std::sync::Barrier::new(100));
        let threads: Vec<_> = (0..100)
            .map(|_| {
                let (lt, verified, start) = (lt.clone(), verified.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let now = Instant::now();
                    if let Ok(attempt) = lt.begin(Some("carol"), ip("10.0.0.1"), now) {
                        verified.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20)); // the argon2 run
                        attempt.failed(now);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(verified.load(Ordering::SeqCst), limit as usize);
        // And the host limit is exact too: 100 users sprayed from one host.
        let lt = Arc::new(LoginThrottle::new(config(10), config(limit), config(100)).unwrap());
        let verified = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..100)
            .map(|i| {
                let (lt, verified) = (lt.clone(), verified.clone());
                std::thread::spawn(move || {
                    let now = Instant::now();
                    if let Ok(attempt) = lt.begin(Some(&format!("u{i}")), ip("10.0.0.1"), now) {
                        verified.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        attempt.failed(now);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(verified.load(Ordering::SeqCst), limit as usize);
    }

    #[tokio::test]
    async fn a_limit_held_by_checks_in_flight_waits_for_them() {
        let lt = Arc::new(LoginThrottle::new(config(1), config(1), config(5)).unwrap());
        let held = lt.begin(Some("carol"), ip("10.0.0.1"), Instant::now()).unwrap();
        assert!(lt.begin(Some("dave"), ip("10.0.0.1"), Instant::now()).is_err());
        let waiter = {
            let lt = lt.clone();
            tokio::spawn(async move {
                lt.begin_waiting(Some("dave"), ip("10.0.0.1")).await.map(Attempt::succeeded)
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "admitted while the host's only slot was in flight");
        held.succeeded();
        waiter.await.unwrap().expect("admitted once the check in flight ended");
        // A limit full of failures is refused at once, not waited on.
        fail(&lt, "erin", ip("10.0.0.1"), Instant::now());
        assert!(lt.begin_waiting(Some("erin"), ip("10.0.0.1")).await.is_err());
    }

    #[test]
    fn tables_stay_bounded() {
        let small = ThrottleConfig { window: 10 * MIN, max_failures: 1, max_keys: 16 };
        let lt = LoginThrottle::new(small, config(1000), config(1000)).unwrap();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(i.into());
            lt.begin(Some(&format!("u{i}")), ip("10.0.0.1"), now).unwrap().failed(now);
            assert!(lt.lock().pairs.len() <= 16);
        }
    }
}
