//! The argon2id verifier of the callout: a fixed number of permits, one reusable work area per
//! permit, and a bounded queue in front.
//!
//! Memory is bounded by construction: at most `permits` verifications run, each in a work area
//! that is allocated on first use and then kept for the life of the process (19 MiB with the
//! default parameters), so the peak is `permits × 19 MiB` however many logins arrive. A permit is
//! awaited in async code before a blocking thread is used, so waiting logins cost a parked task
//! (a few hundred bytes), never a parked thread with its own allocator arena. At most
//! `max_waiting` verifications wait; beyond that a login is refused at once with
//! [`CalloutError::Busy`], whose reason reaches the client's auth-error advisory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::CalloutError;
use crate::auth::{default_verify_blocks, verify_password_in, AuthError, Secret, VerifyMemory};
use crate::server::metrics::Metrics;

/// The stored hash to verify against.
pub(super) enum Phc {
    /// A user's stored PHC string.
    Stored(String),
    /// The decoy hash (an unknown user or one without a password: same cost, no match).
    Decoy,
}

/// Bounded argon2id verification (see the module docs).
pub(super) struct ArgonPool {
    permits: Arc<Semaphore>,
    areas: Mutex<Vec<VerifyMemory>>,
    waiting: AtomicUsize,
    max_waiting: usize,
    blocks: usize,
    /// Waiting and running gauges, verification times.
    metrics: Arc<Metrics>,
}

/// Counts one waiting verification; uncounted on drop (also when the login is abandoned).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ArgonPool {
    /// `permits` verifications at once (one per core: more only share the cores and each holds
    /// a work area), at most `max_waiting` queued, work areas of `blocks` KiB.
    #[cfg(test)]
    pub(super) fn new(permits: usize, max_waiting: usize, blocks: usize) -> Self {
        ArgonPool::with_metrics(permits, max_waiting, blocks, Arc::new(Metrics::new()))
    }

    /// [`ArgonPool::new`] reporting to `metrics`.
    pub(super) fn with_metrics(
        permits: usize,
        max_waiting: usize,
        blocks: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let permits = permits.max(1);
        ArgonPool {
            permits: Arc::new(Semaphore::new(permits)),
            areas: Mutex::new(Vec::with_capacity(permits)),
            waiting: AtomicUsize::new(0),
            max_waiting,
            blocks,
            metrics,
        }
    }

    /// One permit per core, work areas sized for the default password parameters.
    pub(super) fn for_this_machine(max_waiting: usize, metrics: Arc<Metrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ArgonPool::with_metrics(cores, max_waiting, default_verify_blocks(), metrics)
    }

    /// Verifies `password` against `phc` on the blocking pool once a permit is free, or refuses
    /// at once with [`CalloutError::Busy`] when `max_waiting` verifications already wait.
    pub(super) async fn verify(&self, password: Secret, phc: Phc) -> Result<bool, CalloutError> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        let counted = Waiting(&self.waiting);
        if waiting >= self.max_waiting {
            return Err(CalloutError::Busy { waiting, max: self.max_waiting });
        }
        let gauge = self.metrics.argon_waiting();
        // The semaphore is never closed.
        let permit = self.permits.acquire().await.map_err(|_| busy_closed())?;
        drop((counted, gauge));
        let _running = self.metrics.argon_running();
        let started = std::time::Instant::now();
        let mut area = self.take_area();
        let work = tokio::task::spawn_blocking(move || {
            let result = match &phc {
                Phc::Stored(s) => verify_password_in(&password, s, &mut area),
                Phc::Decoy => verify_password_in(&password, decoy_hash(), &mut area).map(|_| false),
            };
            (area, result)
        });
        let (area, result) = work.await.map_err(|e| {
            CalloutError::Auth(AuthError::Hashing(format!("verifier stopped: {e}")))
        })?;
        self.put_area(area);
        self.metrics.argon_took(started.elapsed());
        drop(permit);
        result.map_err(CalloutError::Auth)
    }

    /// Verifications waiting for a permit now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// A pooled work area, allocated on first use (the caller holds a permit, so there are
    /// never more areas than permits).
    fn take_area(&self) -> VerifyMemory {
        let pooled = self.areas.lock().unwrap_or_else(|e| e.into_inner()).pop();
        pooled.unwrap_or_else(|| VerifyMemory::new(self.blocks))
    }

    fn put_area(&self, area: VerifyMemory) {
        self.areas.lock().unwrap_or_else(|e| e.into_inner()).push(area);
    }
}

fn busy_closed() -> CalloutError {
    CalloutError::Auth(AuthError::Hashing("password verifier closed".into()))
}

/// A hash no password matches, verified in place of a missing one so that an unknown user (or
/// one without a password) costs as much as a wrong password: timing tells no names. Made on
/// first use, on a blocking thread under a permit.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random = crate::auth::ApiTokenSecret::generate();
        // Hashing a fresh random secret with the default parameters cannot fail.
        crate::auth::hash_password(&Secret::new(random.expose())).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::{hash_password_with, PasswordParams};

    fn phc(pw: &str) -> Phc {
        Phc::Stored(hash_password_with(&Secret::from(pw), &PasswordParams::for_tests()).unwrap())
    }

    #[tokio::test]
    async fn verifies_and_reuses_one_area_per_permit() {
        let pool = ArgonPool::new(2, 8, 8);
        assert!(pool.verify(Secret::from("pw"), phc("pw")).await.unwrap());
        assert!(!pool.verify(Secret::from("no"), phc("pw")).await.unwrap());
        let runs = (0..6).map(|_| pool.verify(Secret::from("pw"), phc("pw")));
        for r in futures::future::join_all(runs).await {
            assert!(r.unwrap());
        }
        let areas = pool.areas.lock().unwrap().len();
        assert!((1..=2).contains(&areas), "{areas} work areas for 2 permits");
    }

    #[tokio::test]
    async fn waiting_beyond_the_bound_is_refused_at_once() {
        let pool = Arc::new(ArgonPool::new(1, 2, 8));
        // Hold the only permit, so every verification waits.
        let held = pool.permits.clone().acquire_owned().await.unwrap();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.verify(Secret::from("pw"), phc("pw")).await })
            })
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pool.waiting() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the waiters never queued");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let third = pool.verify(Secret::from("pw"), phc("pw")).await;
        assert!(matches!(third, Err(CalloutError::Busy { waiting: 2, max: 2 })), "{third:?}");
        drop(held);
        for w in waiters {
            assert!(w.await.unwrap().unwrap(), "the queued ones run once the permit is free");
        }
        assert_eq!(pool.waiting(), 0);
    }
}
