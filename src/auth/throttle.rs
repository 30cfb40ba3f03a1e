//! Failed-login throttling per key (username, client host) over a sliding window.
//!
//! Each tracked key keeps the times of its most recent failures, at most `max_failures` of them.
//! A key is throttled while `max_failures` failures lie within the last `window`; it is free again
//! as soon as the oldest of them leaves the window. Time is passed in, so tests need no sleeps.
//!
//! Memory is bounded: failures older than the window are dropped, and at most `max_keys` keys are
//! tracked (at most `max_keys × max_failures` timestamps). When the table is full of live entries
//! the keys with the oldest latest failure are forgotten first, so evicting an actively failing
//! key takes `max_keys` fresher keys within one window.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::AuthError;

/// Largest accepted `max_failures`, which bounds the timestamps kept per key.
const MAX_FAILURES_LIMIT: u32 = 1000;

/// Settings of one [`Throttle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Length of the sliding window in which failures count.
    pub window: Duration,
    /// Failures within `window` after which the key is throttled (1..=1000).
    pub max_failures: u32,
    /// Most keys tracked at once.
    pub max_keys: usize,
}

impl ThrottleConfig {
    /// Per-username default: 10 failures in 15 minutes. Enough for a person's typos, far too few
    /// for online guessing against one account.
    pub fn users() -> Self {
        ThrottleConfig { window: Duration::from_secs(15 * 60), max_failures: 10, max_keys: 10_000 }
    }

    /// Per-host default: 50 failures in 15 minutes. Higher than per user because many users can
    /// share one address (NAT, proxies); it stops one host from spraying many usernames.
    pub fn hosts() -> Self {
        ThrottleConfig { window: Duration::from_secs(15 * 60), max_failures: 50, max_keys: 10_000 }
    }

    /// Checks that the settings can work.
    pub fn validate(&self) -> Result<(), AuthError> {
        if self.window.is_zero() {
            return Err(AuthError::InvalidThrottleConfig("window must be positive"));
        }
        if self.max_failures == 0 || self.max_failures > MAX_FAILURES_LIMIT {
            return Err(AuthError::InvalidThrottleConfig("max_failures must be within 1..=1000"));
        }
        if self.max_keys == 0 {
            return Err(AuthError::InvalidThrottleConfig("max_keys must be positive"));
        }
        Ok(())
    }
}

/// Counts failed logins per key `K` and refuses keys with too many recent failures.
pub struct Throttle<K> {
    config: ThrottleConfig,
    failures: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone + Display> Throttle<K> {
    /// A throttle with `config` (validated).
    pub fn new(config: ThrottleConfig) -> Result<Self, AuthError> {
        config.validate()?;
        Ok(Throttle { config, failures: Mutex::new(HashMap::new()) })
    }

    /// The settings in use.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// `Ok` if `key` may try to log in at `now`, else [`AuthError::Throttled`] with the time until
    /// the oldest counted failure leaves the window.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), AuthError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Display + ?Sized,
    {
        let mut failures = self.lock();
        let Some(times) = failures.get_mut(key) else { return Ok(()) };
        self.drop_old(times, now);
        if times.len() < self.config.max_failures as usize {
            if times.is_empty() {
                failures.remove(key);
            }
            return Ok(());
        }
        // Invariant: max_failures >= 1 and the length reached it, so there is a front.
        let oldest = *times.front().expect("a full failure window has an oldest entry");
        let retry_after = oldest
            .checked_add(self.config.window)
            .map_or(Duration::MAX, |free_at| free_at.saturating_duration_since(now));
        Err(AuthError::Throttled { key: key.to_string(), retry_after })
    }

    /// Counts a failed login of `key` at `now`. Only the newest `max_failures` times are kept, so
    /// a key that keeps failing gets at most `max_failures` attempts per window.
    pub fn record_failure<Q>(&self, key: &Q, now: Instant)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut failures = self.lock();
        if let Some(times) = failures.get_mut(key) {
            self.drop_old(times, now);
            self.push(times, now);
            return;
        }
        self.make_room(&mut failures, now);
        let mut times = VecDeque::with_capacity(1);
        times.push_back(now);
        failures.insert(key.to_owned(), times);
    }

    /// Forgets the failures of `key` after a successful login.
    pub fn record_success<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(key);
    }

    /// Drops every key whose failures have all left the window (for a periodic cleanup task).
    pub fn prune(&self, now: Instant) {
        let window = self.config.window;
        self.lock().retain(|_, times| times.back().is_some_and(|&t| is_recent(t, now, window)));
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn drop_old(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times.front().is_some_and(|&t| !is_recent(t, now, self.config.window)) {
            times.pop_front();
        }
    }

    fn push(&self, times: &mut VecDeque<Instant>, now: Instant) {
        times.push_back(now);
        while times.len() > self.config.max_failures as usize {
            times.pop_front();
        }
    }

    /// Keeps the table below `max_keys` before a new key goes in: first stale keys go, then, if
    /// still full, the eighth of keys with the oldest latest failure (amortised O(1) per insert).
    fn make_room(&self, failures: &mut HashMap<K, VecDeque<Instant>>, now: Instant) {
        if failures.len() < self.config.max_keys {
            return;
        }
        let window = self.config.window;
        failures.retain(|_, times| times.back().is_some_and(|&t| is_recent(t, now, window)));
        if failures.len() < self.config.max_keys {
            return;
        }
        let evict = (self.config.max_keys / 8).max(1);
        let mut by_age: Vec<(Instant, K)> =
            failures.iter().filter_map(|(k, t)| t.back().map(|&last| (last, k.clone()))).collect();
        by_age.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
        for (_, key) in by_age.into_iter().take(evict) {
            failures.remove(&key);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, VecDeque<Instant>>> {
        // Every mutation leaves the table consistent before anything that can panic, so a
        // poisoned lock still guards usable data.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K> std::fmt::Debug for Throttle<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Whether a failure at `t` still counts at `now`.
fn is_recent(t: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(t) < window
}

/// The throttle key of a client address: IPv4 (and IPv4-mapped IPv6) as is, IPv6 by its /64
/// prefix, since one subscriber usually holds a whole /64 and could otherwise rotate addresses.
pub fn host_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// The login throttle the callout uses: one [`Throttle`] per username and one per client host.
#[derive(Debug)]
pub struct LoginThrottle {
    users: Throttle<String>,
    hosts: Throttle<IpAddr>,
}

impl LoginThrottle {
    /// A login throttle with separate settings for usernames and hosts.
    pub fn new(users: ThrottleConfig, hosts: ThrottleConfig) -> Result<Self, AuthError> {
        Ok(LoginThrottle { users: Throttle::new(users)?, hosts: Throttle::new(hosts)? })
    }

    /// `Ok` if neither the host (when known) nor the user is throttled; checked before any
    /// credential is verified. The host is checked first, so a spraying host learns nothing about
    /// which usernames exist.
    pub fn check(&self, user: &str, host: Option<IpAddr>, now: Instant) -> Result<(), AuthError> {
        if let Some(ip) = host {
            self.hosts.check(&host_key(ip), now)?;
        }
        self.users.check(user, now)
    }

    /// Counts a failed login against the user and the host (when known). Call it only after a
    /// credential was really checked and refused, not for a request refused by [`Self::check`].
    pub fn record_failure(&self, user: &str, host: Option<IpAddr>, now: Instant) {
        if let Some(ip) = host {
            self.hosts.record_failure(&host_key(ip), now);
        }
        self.users.record_failure(user, now);
    }

    /// Clears the user's failures after a successful login. The host's count is kept: one valid
    /// account must not reset the budget of a host that is guessing at others.
    pub fn record_success(&self, user: &str) {
        self.users.record_success(user);
    }

    /// `Ok` if the host (when known) is not throttled: the check for credentials that name no
    /// user, such as API tokens (256 random bits: a per-user count adds nothing, and one shared
    /// count would let anyone lock every token user out).
    pub fn check_host(&self, host: Option<IpAddr>, now: Instant) -> Result<(), AuthError> {
        match host {
            Some(ip) => self.hosts.check(&host_key(ip), now),
            None => Ok(()),
        }
    }

    /// Counts a failed login against the host only (see [`Self::check_host`]).
    pub fn record_host_failure(&self, host: Option<IpAddr>, now: Instant) {
        if let Some(ip) = host {
            self.hosts.record_failure(&host_key(ip), now);
        }
    }

    /// Drops stale entries of both throttles.
    pub fn prune(&self, now: Instant) {
        self.users.prune(now);
        self.hosts.prune(now);
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        // Both default configs pass validation.
        LoginThrottle::new(ThrottleConfig::users(), ThrottleConfig::hosts())
            .expect("default throttle configs are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn config(max_failures: u32) -> ThrottleConfig {
        ThrottleConfig { window: 10 * MIN, max_failures, max_keys: 100 }
    }

    fn throttled_for(r: Result<(), AuthError>) -> Option<Duration> {
        match r {
            Err(AuthError::Throttled { retry_after, .. }) => Some(retry_after),
            _ => None,
        }
    }

    #[test]
    fn n_failures_throttle_until_the_oldest_leaves_the_window() {
        let t: Throttle<String> = Throttle::new(config(3)).unwrap();
        let t0 = Instant::now();
        t.record_failure("alice", t0);
        t.record_failure("alice", t0 + MIN);
        assert_eq!(t.check("alice", t0 + MIN), Ok(()));
        t.record_failure("alice", t0 + 2 * MIN);
        assert_eq!(
            t.check("alice", t0 + 2 * MIN),
            Err(AuthError::Throttled { key: "alice".into(), retry_after: 8 * MIN })
        );
        assert_eq!(
            throttled_for(t.check("alice", t0 + 10 * MIN - Duration::from_millis(1))),
            Some(Duration::from_millis(1))
        );
        assert_eq!(t.check("alice", t0 + 10 * MIN), Ok(()));
        assert_eq!(t.check("bob", t0 + 2 * MIN), Ok(()));
    }

    #[test]
    fn whole_window_passing_forgets_everything() {
        let t: Throttle<String> = Throttle::new(config(2)).unwrap();
        let t0 = Instant::now();
        t.record_failure("alice", t0);
        t.record_failure("alice", t0);
        assert!(t.check("alice", t0).is_err());
        t.record_failure("alice", t0 + 10 * MIN);
        assert_eq!(t.check("alice", t0 + 10 * MIN), Ok(()), "old failures no longer count");
        t.prune(t0 + 30 * MIN);
        assert!(t.is_empty());
    }

    #[test]
    fn a_persistent_failer_gets_max_failures_attempts_per_window() {
        let t: Throttle<String> = Throttle::new(config(2)).unwrap();
        let t0 = Instant::now();
        t.record_failure("alice", t0);
        t.record_failure("alice", t0 + 5 * MIN);
        assert_eq!(throttled_for(t.check("alice", t0 + 9 * MIN)), Some(MIN));
        assert_eq!(t.check("alice", t0 + 10 * MIN), Ok(()));
        t.record_failure("alice", t0 + 10 * MIN);
        assert_eq!(throttled_for(t.check("alice", t0 + 10 * MIN)), Some(5 * MIN));
    }

    #[test]
    fn success_clears_the_key() {
        let t: Throttle<String> = Throttle::new(config(2)).unwrap();
        let t0 = Instant::now();
        t.record_failure("alice", t0);
        t.record_failure("alice", t0);
        assert!(t.check("alice", t0).is_err());
        t.record_success("alice");
        assert_eq!(t.check("alice", t0), Ok(()));
        assert!(t.is_empty());
    }

    #[test]
    fn tracked_keys_are_capped() {
        let cfg = ThrottleConfig { window: 10 * MIN, max_failures: 1, max_keys: 16 };
        let t: Throttle<String> = Throttle::new(cfg).unwrap();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            t.record_failure(&format!("u{i}"), t0 + Duration::from_millis(i.into()));
            assert!(t.len() <= 16);
        }
        // The freshest keys survive eviction; the oldest are gone.
        assert!(t.check("u999", t0 + MIN).is_err());
        assert_eq!(t.check("u0", t0 + MIN), Ok(()));
    }

    #[test]
    fn stale_keys_are_dropped_before_live_ones_when_full() {
        let cfg = ThrottleConfig { window: 10 * MIN, max_failures: 1, max_keys: 2 };
        let t: Throttle<String> = Throttle::new(cfg).unwrap();
        let t0 = Instant::now();
        t.record_failure("old", t0);
        t.record_failure("live", t0 + 9 * MIN);
        t.record_failure("new", t0 + 11 * MIN);
        assert_eq!(t.len(), 2);
        assert!(t.check("live", t0 + 11 * MIN).is_err());
        assert!(t.check("new", t0 + 11 * MIN).is_err());
    }

    #[test]
    fn invalid_configs_are_refused() {
        let ok = config(3);
        for bad in [
            ThrottleConfig { window: Duration::ZERO, ..ok },
            ThrottleConfig { max_failures: 0, ..ok },
            ThrottleConfig { max_failures: 1001, ..ok },
            ThrottleConfig { max_keys: 0, ..ok },
        ] {
            assert!(matches!(
                Throttle::<String>::new(bad),
                Err(AuthError::InvalidThrottleConfig(_))
            ));
        }
        assert!(ThrottleConfig::users().validate().is_ok());
        assert!(ThrottleConfig::hosts().validate().is_ok());
    }

    #[test]
    fn host_keys_group_ipv6_by_64_and_unmap_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(host_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(host_key(ip("2001:db8:1:2:bbbb::9")), host_key(ip("2001:db8:1:2::7")));
        assert_ne!(host_key(ip("2001:db8:1:3::1")), host_key(ip("2001:db8:1:2::1")));
        assert_eq!(host_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(host_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    fn login_throttle() -> LoginThrottle {
        LoginThrottle::new(config(2), config(4)).unwrap()
    }

    #[test]
    fn per_user_throttle_follows_the_user_across_hosts() {
        let lt = login_throttle();
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        let t0 = Instant::now();
        lt.record_failure("alice", a, t0);
        lt.record_failure("alice", a, t0);
        assert!(
            matches!(lt.check("alice", b, t0), Err(AuthError::Throttled { key, .. }) if key == "alice")
        );
        assert_eq!(lt.check("bob", a, t0), Ok(()), "host a is below its own limit");
    }

    #[test]
    fn per_host_throttle_is_independent_of_users() {
        let lt = login_throttle();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for user in ["u1", "u2", "u3", "u4"] {
            lt.record_failure(user, Some(a), t0);
        }
        assert!(matches!(
            lt.check("carol", Some(a), t0),
            Err(AuthError::Throttled { key, .. }) if key == "10.0.0.1"
        ));
        assert_eq!(lt.check("carol", Some(b), t0), Ok(()));
        assert_eq!(lt.check("carol", None, t0), Ok(()));
        // A success clears the user, not the host.
        lt.record_success("u1");
        assert!(lt.check("u1", Some(a), t0).is_err());
        assert_eq!(lt.check("u1", Some(b), t0), Ok(()));
    }
}
