//! A bounded, expiring cache of recently verified password logins.
//!
//! Each entry is only an HMAC-SHA256, under a random per-process key, of (username, password,
//! stored PHC string): the cache never holds a password, a password change (new PHC, new salt)
//! misses, and a hit costs one HMAC and one map lookup instead of an argon2 run.
//!
//! A hit means only "this password matches this PHC string"; whether the user may log in (active,
//! role, account) is still the callout's decision on the current record.
//!
//! Trade-off: anyone who could read this process's memory would get the key and the digests, and
//! could test guesses at HMAC speed instead of argon2 speed for the cached logins. The TTL and the
//! size bound limit how many logins are exposed that way.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Secret;

/// HMAC-SHA256 (RFC 2104) keyed once; each MAC starts from a clone of the keyed state.
struct Keyed(Hmac<Sha256>);

impl Keyed {
    fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length (a longer one is hashed first), so this cannot fail.
        Keyed(Hmac::new_from_slice(key).expect("hmac accepts keys of any length"))
    }

    /// The MAC of the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// One cached login: its digest, when it stops counting, and the clock's second-chance bit.
struct Slot {
    digest: [u8; 32],
    expires: Instant,
    referenced: bool,
}

/// Clock (second-chance) eviction over a fixed number of slots: O(1) amortised per insert, and a
/// hit only flips a bit, so the hit path never reorders anything.
struct Clock {
    index: HashMap<[u8; 32], usize>,
    slots: Vec<Slot>,
    hand: usize,
    capacity: usize,
}

impl Clock {
    fn hit(&mut self, digest: &[u8; 32], now: Instant) -> bool {
        match self.index.get(digest) {
            Some(&i) if self.slots[i].expires > now => {
                self.slots[i].referenced = true;
                true
            }
            _ => false,
        }
    }

    fn insert(&mut self, digest: [u8; 32], expires: Instant, now: Instant) {
        if let Some(&i) = self.index.get(&digest) {
            self.slots[i].expires = expires;
            self.slots[i].referenced = true;
            return;
        }
        let slot = Slot { digest, expires, referenced: false };
        if self.slots.len() < self.capacity {
            self.index.insert(digest, self.slots.len());
            self.slots.push(slot);
            return;
        }
        let victim = self.victim(now);
        self.index.remove(&self.slots[victim].digest);
        self.index.insert(digest, victim);
        self.slots[victim] = slot;
    }

    /// The next slot to reuse: the first expired or unreferenced one from the hand, clearing
    /// reference bits on the way. Terminates within two turns because the first turn clears
    /// every bit it passes.
    fn victim(&mut self, now: Instant) -> usize {
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.capacity;
            let slot = &mut self.slots[i];
            if slot.expires <= now || !slot.referenced {
                return i;
            }
            slot.referenced = false;
        }
    }
}

/// A thread-safe cache of recently verified (username, password, PHC) triples.
///
/// Use: on a login, [`check`](Self::check) first; on a miss run
/// [`verify_password`](super::verify_password) and, if it succeeded, [`insert`](Self::insert).
/// An entry counts for `ttl` from its insertion; hits do not extend it, so a verified password is
/// trusted for at most `ttl` without a fresh argon2 run.
pub struct VerifiedCache {
    hmac: Keyed,
    ttl: Duration,
    capacity: usize,
    clock: Mutex<Clock>,
}

impl VerifiedCache {
    /// Default number of entries: 10,000 logins at about 100 bytes each (1 MB) covers a reconnect
    /// storm several times the 1,000-user target with room to spare, while bounding memory and how
    /// many digests a memory disclosure would expose.
    pub const DEFAULT_CAPACITY: usize = 10_000;
    /// Default lifetime of an entry: one hour, at least as long as typical minted user JWTs, so
    /// users whose JWT expires and who reconnect (or whose server restarts) within it hit the cache.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    /// A cache of at most `capacity` logins (0 disables caching) that expire `ttl` after insertion,
    /// keyed with a fresh random 256-bit key.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(key.as_mut());
        let clock = Clock {
            index: HashMap::with_capacity(capacity.min(Self::DEFAULT_CAPACITY)),
            slots: Vec::with_capacity(capacity.min(Self::DEFAULT_CAPACITY)),
            hand: 0,
            capacity,
        };
        VerifiedCache { hmac: Keyed::new(key.as_ref()), ttl, capacity, clock: Mutex::new(clock) }
    }

    /// Whether this login was verified within the TTL (at the current time).
    pub fn check(&self, user: &str, password: &Secret, phc: &str) -> bool {
        self.check_at(user, password, phc, Instant::now())
    }

    /// [`check`](Self::check) at a given time.
    pub fn check_at(&self, user: &str, password: &Secret, phc: &str, now: Instant) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let digest = self.digest(user, password, phc);
        self.lock().hit(&digest, now)
    }

    /// Records a successfully verified login (at the current time).
    pub fn insert(&self, user: &str, password: &Secret, phc: &str) {
        self.insert_at(user, password, phc, Instant::now())
    }

    /// [`insert`](Self::insert) at a given time.
    pub fn insert_at(&self, user: &str, password: &Secret, phc: &str, now: Instant) {
        let Some(expires) = now.checked_add(self.ttl) else { return };
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let digest = self.digest(user, password, phc);
        self.lock().insert(digest, expires, now);
    }

    /// Number of stored entries, expired ones included until their slot is reused.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// HMAC over length-prefixed fields, so no two distinct triples share an input.
    fn digest(&self, user: &str, password: &Secret, phc: &str) -> [u8; 32] {
        let (u, p, h) = (user.as_bytes(), password.expose().as_bytes(), phc.as_bytes());
        let lens = [u.len() as u64, p.len() as u64, h.len() as u64].map(u64::to_le_bytes);
        self.hmac.mac(&[&lens[0], u, &lens[1], p, &lens[2], h])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Clock> {
        // The clock's invariants hold between statements that can panic, so a poisoned lock
        // still guards a consistent cache.
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_TTL)
    }
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = self.lock();
        f.debug_struct("VerifiedCache")
            .field("len", &clock.slots.len())
            .field("capacity", &clock.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHC: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

    fn pw(s: &str) -> Secret {
        Secret::from(s)
    }

    #[test]
    fn hmac_matches_rfc4231_vectors() {
        let hex = |b: [u8; 32]| data_encoding::HEXLOWER.encode(&b);
        // Test case 2: short key.
        let mac = Keyed::new(b"Jefe").mac(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 6: key longer than a block.
        let mac = Keyed::new(&[0xaa; 131])
            .mac(&[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(hex(mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn hit_after_insert_and_miss_otherwise() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60));
        assert!(!cache.check("alice", &pw("s3cret"), PHC));
        cache.insert("alice", &pw("s3cret"), PHC);
        assert!(cache.check("alice", &pw("s3cret"), PHC));
        assert!(!cache.check("alice", &pw("s3creT"), PHC));
        assert!(!cache.check("bob", &pw("s3cret"), PHC));
    }

    #[test]
    fn password_change_misses() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60));
        cache.insert("alice", &pw("old"), PHC);
        let new_phc = "$argon2id$v=19$m=8,t=1,p=1$b3RoZXJzYWx0$bmV3aGFzaA";
        assert!(!cache.check("alice", &pw("old"), new_phc));
        assert!(cache.check("alice", &pw("old"), PHC));
    }

    #[test]
    fn field_boundaries_do_not_collide() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60));
        cache.insert("ab", &pw("c"), PHC);
        assert!(!cache.check("a", &pw("bc"), PHC));
    }

    #[test]
    fn entries_expire_after_ttl_and_hits_do_not_extend() {
        let ttl = Duration::from_secs(60);
        let cache = VerifiedCache::new(10, ttl);
        let t0 = Instant::now();
        cache.insert_at("alice", &pw("pw"), PHC, t0);
        assert!(cache.check_at("alice", &pw("pw"), PHC, t0 + ttl - Duration::from_millis(1)));
        assert!(!cache.check_at("alice", &pw("pw"), PHC, t0 + ttl));
        cache.insert_at("alice", &pw("pw"), PHC, t0 + ttl);
        assert!(cache.check_at("alice", &pw("pw"), PHC, t0 + ttl + Duration::from_secs(1)));
    }

    #[test]
    fn size_bound_evicts_unreferenced_entries_first() {
        let cache = VerifiedCache::new(3, Duration::from_secs(60));
        let t = Instant::now();
        for u in ["a", "b", "c"] {
            cache.insert_at(u, &pw("pw"), PHC, t);
        }
        assert!(cache.check_at("a", &pw("pw"), PHC, t)); // gives "a" a second chance
        cache.insert_at("d", &pw("pw"), PHC, t);
        assert_eq!(cache.len(), 3);
        assert!(cache.check_at("a", &pw("pw"), PHC, t));
        assert!(!cache.check_at("b", &pw("pw"), PHC, t), "b was the first unreferenced entry");
        assert!(cache.check_at("c", &pw("pw"), PHC, t));
        assert!(cache.check_at("d", &pw("pw"), PHC, t));
        for i in 0..100 {
            cache.insert_at(&format!("u{i}"), &pw("pw"), PHC, t);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.check_at("u99", &pw("pw"), PHC, t));
    }

    #[test]
    fn zero_capacity_or_ttl_disables_the_cache() {
        let cache = VerifiedCache::new(0, Duration::from_secs(60));
        cache.insert("a", &pw("pw"), PHC);
        assert!(!cache.check("a", &pw("pw"), PHC));
        let cache = VerifiedCache::new(10, Duration::ZERO);
        cache.insert("a", &pw("pw"), PHC);
        assert!(!cache.check("a", &pw("pw"), PHC));
    }

    #[test]
    fn debug_shows_no_digests_or_key() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60));
        cache.insert("alice", &pw("hunter2"), PHC);
        let shown = format!("{cache:?}");
        assert!(shown.starts_with("VerifiedCache { len: 1, capacity: 10"), "{shown}");
        assert!(!shown.contains("alice") && !shown.contains("hunter2"));
    }

    #[test]
    fn cache_and_throttle_are_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<VerifiedCache>();
        shareable::<crate::auth::LoginThrottle>();
    }

    #[test]
    fn hits_are_cheap_and_shared_across_threads() {
        let cache = std::sync::Arc::new(VerifiedCache::default());
        for i in 0..1000 {
            cache.insert(&format!("user{i}"), &pw("pw"), PHC);
        }
        let start = Instant::now();
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    (0..1000).all(|i| cache.check(&format!("user{i}"), &pw("pw"), PHC))
                })
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
        // 2,000 hits; generous even for an unoptimised test build on a loaded 2-core machine.
        assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    }
}
