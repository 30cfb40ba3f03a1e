//! Polling with a deadline: the only way tests wait for something to happen.

use std::future::Future;
use std::time::{Duration, Instant};

use super::HarnessError;

/// How often conditions are re-checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A named point in time after which waiting for something is a failure.
///
/// For loops that do not fit a closure (e.g. they hold a `&mut` subscriber):
/// `let deadline = Deadline::after(t, "x"); while !done() { deadline.tick().await; }`.
#[derive(Debug, Clone)]
pub struct Deadline {
    start: Instant,
    timeout: Duration,
    what: String,
}

impl Deadline {
    /// A deadline `timeout` from now for the condition described by `what`.
    pub fn after(timeout: Duration, what: impl Into<String>) -> Self {
        Self { start: Instant::now(), timeout, what: what.into() }
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.start.elapsed() >= self.timeout
    }

    /// Time left before the deadline (zero once expired).
    pub fn remaining(&self) -> Duration {
        self.timeout.saturating_sub(self.start.elapsed())
    }

    /// The error describing this deadline's expiry.
    pub fn error(&self) -> HarnessError {
        HarnessError::Timeout { what: self.what.clone(), timeout: self.timeout }
    }

    /// Fails with [`HarnessError::Timeout`] if expired, else sleeps one [`POLL_INTERVAL`].
    pub async fn try_tick(&self) -> Result<(), HarnessError> {
        if self.expired() {
            return Err(self.error());
        }
        tokio::time::sleep(POLL_INTERVAL.min(self.remaining())).await;
        Ok(())
    }

    /// Like [`Deadline::tick`] with a 1 ms pause, for waits whose duration is measured.
    pub async fn tick_fast(&self) {
        if self.expired() {
            panic!("{}", self.error());
        }
        tokio::time::sleep(Duration::from_millis(1).min(self.remaining())).await;
    }

    /// Like [`Deadline::try_tick`], but panics on expiry (for use in tests).
    pub async fn tick(&self) {
        if let Err(err) = self.try_tick().await {
            panic!("{err}");
        }
    }
}

/// Polls `condition` every [`POLL_INTERVAL`] until it holds or `timeout` passes.
///
/// The condition is always checked at least once, and once more at the deadline.
pub async fn try_wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), HarnessError> {
    let deadline = Deadline::after(timeout, what);
    while !condition() {
        deadline.try_tick().await?;
    }
    Ok(())
}

/// Like [`try_wait_until`], but panics with `what` when the deadline passes.
pub async fn wait_until(timeout: Duration, what: &str, condition: impl FnMut() -> bool) {
    if let Err(err) = try_wait_until(timeout, what, condition).await {
        panic!("{err}");
    }
}

/// Like [`wait_until`] for an asynchronous condition (e.g. a request to a server).
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Deadline::after(timeout, what);
    while !condition().await {
        deadline.tick().await;
    }
}
