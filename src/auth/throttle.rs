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
//!
//! A [`Table`] also counts reserved slots of checks in flight, so a caller that checks and
//! reserves under one lock (see [`LoginThrottle`](super::LoginThrottle)) cannot overshoot its
//! limit under concurrency.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

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

/// Why a [`Table`] has no free slot for a key.
#[derive(Debug)]
pub(super) enum Full {
    /// The key's recent failures reach the limit.
    Throttled(AuthError),
    /// Checks in flight for the key (named) hold the remaining slots.
    InFlight(String),
}

impl Full {
    /// As an error: a key full only of checks in flight is refused like a throttled one, with
    /// a short retry (those checks end within the auth timeout).
    #[cfg(test)]
    pub(super) fn into_error(self) -> AuthError {
        match self {
            Full::Throttled(e) => e,
            Full::InFlight(key) => {
                AuthError::Throttled { key, retry_after: Duration::from_secs(1) }
            }
        }
    }
}

/// One tracked key: its recent failures and the checks in flight that reserved a slot.
#[derive(Debug)]
struct Entry {
    /// Failure times, oldest first, at most `max_failures`.
    times: VecDeque<Instant>,
    /// Reserved slots of checks in flight (see [`Table::reserve`]).
    pending: u32,
    /// The latest failure or reservation: eviction order.
    last: Instant,
}

/// The unlocked table of a throttle; callers hold one lock across everything one login does
/// to it, so a check and its reservation are one atomic step.
#[derive(Debug)]
pub(super) struct Table<K> {
    config: ThrottleConfig,
    map: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone + Display> Table<K> {
    /// An empty table (`config` already validated).
    pub(super) fn new(config: ThrottleConfig) -> Self {
        Table { config, map: HashMap::new() }
    }

    /// `Ok` if `key` has a free slot at `now`: its recent failures plus its reserved slots are
    /// below `max_failures`. Else [`Full::Throttled`] when the failures alone reach the limit,
    /// or [`Full::InFlight`] when checks in flight hold the remaining slots (their outcome
    /// decides, so the caller may wait for them).
    pub(super) fn check<Q>(&mut self, key: &Q, now: Instant) -> Result<(), Full>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Display + ?Sized,
    {
        let window = self.config.window;
        let max = self.config.max_failures as usize;
        let Some(e) = self.map.get_mut(key) else { return Ok(()) };
        drop_old(&mut e.times, now, window);
        if e.times.len() + (e.pending as usize) < max {
            if e.times.is_empty() && e.pending == 0 {
                self.map.remove(key);
            }
            return Ok(());
        }
        match e.times.front() {
            // Full of failures: free when the oldest leaves the window.
            Some(&oldest) if e.times.len() >= max => {
                let retry_after = oldest
                    .checked_add(window)
                    .map_or(Duration::MAX, |free_at| free_at.saturating_duration_since(now));
                Err(Full::Throttled(AuthError::Throttled { key: key.to_string(), retry_after }))
            }
            _ => Err(Full::InFlight(key.to_string())),
        }
    }

    /// Whether `key` has neither recent failures nor checks in flight.
    pub(super) fn is_clean<Q>(&mut self, key: &Q, now: Instant) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let window = self.config.window;
        match self.map.get_mut(key) {
            None => true,
            Some(e) => {
                drop_old(&mut e.times, now, window);
                e.times.is_empty() && e.pending == 0
            }
        }
    }

    /// Reserves a slot of `key` for a check about to run; end it with [`Self::release`] or
    /// [`Self::fail`].
    pub(super) fn reserve(&mut self, key: &K, now: Instant) {
        if let Some(e) = self.map.get_mut(key) {
            e.pending = e.pending.saturating_add(1);
            e.last = now;
            return;
        }
        self.make_room(now);
        self.map.insert(key.clone(), Entry { times: VecDeque::new(), pending: 1, last: now });
    }

    /// Gives back a reserved slot (the check did not fail).
    pub(super) fn release<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(e) = self.map.get_mut(key) {
            e.pending = e.pending.saturating_sub(1);
            if e.pending == 0 && e.times.is_empty() {
                self.map.remove(key);
            }
        }
    }

    /// Turns a reserved slot into a failure at `now`.
    pub(super) fn fail(&mut self, key: &K, now: Instant) {
        if let Some(e) = self.map.get_mut(key) {
            e.pending = e.pending.saturating_sub(1);
        }
        self.record_failure(key, now);
    }

    /// Counts a failure of `key` at `now`; only the newest `max_failures` times are kept.
    pub(super) fn record_failure(&mut self, key: &K, now: Instant) {
        let (window, max) = (self.config.window, self.config.max_failures as usize);
        if !self.map.contains_key(key) {
            self.make_room(now);
        }
        let e = self.map.entry(key.clone()).or_insert_with(|| Entry {
            times: VecDeque::with_capacity(1),
            pending: 0,
            last: now,
        });
        drop_old(&mut e.times, now, window);
        e.times.push_back(now);
        e.last = now;
        while e.times.len() > max {
            e.times.pop_front();
        }
    }

    /// Forgets the failures of `key` (slots in flight stay reserved).
    pub(super) fn clear<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(e) = self.map.get_mut(key) {
            e.times.clear();
            if e.pending == 0 {
                self.map.remove(key);
            }
        }
    }

    /// Drops every key without recent failures or slots in flight.
    pub(super) fn prune(&mut self, now: Instant) {
        let window = self.config.window;
        self.map.retain(|_, e| {
            e.pending > 0 || e.times.back().is_some_and(|&t| is_recent(t, now, window))
        });
    }

    /// Number of keys tracked.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Keeps the table below `max_keys` before a new key goes in: first stale keys go, then, if
    /// still full, the eighth of idle keys with the oldest latest activity (amortised O(1) per
    /// insert). Keys with checks in flight stay: there are at most as many as requests in flight.
    fn make_room(&mut self, now: Instant) {
        if self.map.len() < self.config.max_keys {
            return;
        }
        self.prune(now);
        if self.map.len() < self.config.max_keys {
            return;
        }
        let evict = (self.config.max_keys / 8).max(1);
        let mut by_age: Vec<(Instant, K)> = self
            .map
            .iter()
            .filter(|(_, e)| e.pending == 0)
            .map(|(k, e)| (e.last, k.clone()))
            .collect();
        if by_age.is_empty() {
            return;
        }
        let evict = evict.min(by_age.len());
        by_age.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
        for (_, key) in by_age.into_iter().take(evict) {
            self.map.remove(&key);
        }
    }
}

fn drop_old(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|&t| !is_recent(t, now, window)) {
        times.pop_front();
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

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, MutexGuard};

    /// One table behind a lock: the window and capacity rules of a [`Table`] on their own.
    pub struct Throttle<K> {
        config: ThrottleConfig,
        table: Mutex<Table<K>>,
    }

    impl<K: Hash + Eq + Clone + Display> Throttle<K> {
        /// A throttle with `config` (validated).
        pub fn new(config: ThrottleConfig) -> Result<Self, AuthError> {
            config.validate()?;
            Ok(Throttle { config, table: Mutex::new(Table::new(config)) })
        }

        /// `Ok` if `key` may try to log in at `now`, else [`AuthError::Throttled`] with the time until
        /// the oldest counted failure leaves the window.
        pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), AuthError>
        where
            K: Borrow<Q>,
            Q: Hash + Eq + Display + ?Sized,
        {
            self.lock().check(key, now).map_err(Full::into_error)
        }

        /// Counts a failed login of `key` at `now`. Only the newest `max_failures` times are kept, so
        /// a key that keeps failing gets at most `max_failures` attempts per window.
        pub fn record_failure<Q>(&self, key: &Q, now: Instant)
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        {
            self.lock().record_failure(&key.to_owned(), now);
        }

        /// Forgets the failures of `key` after a successful login.
        pub fn record_success<Q>(&self, key: &Q)
        where
            K: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.lock().clear(key);
        }

        /// Drops every key whose failures have all left the window (for a periodic cleanup task).
        pub fn prune(&self, now: Instant) {
            self.lock().prune(now);
        }

        /// Number of keys tracked.
        pub fn len(&self) -> usize {
            self.lock().len()
        }

        /// Whether no key is tracked.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        fn lock(&self) -> MutexGuard<'_, Table<K>> {
            // Every mutation leaves the table consistent before anything that can panic, so a
            // poisoned lock still guards usable data.
            self.table.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl<K> std::fmt::Debug for Throttle<K> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Throttle").field("config", &self.config).finish_non_exhaustive()
        }
    }

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
}
