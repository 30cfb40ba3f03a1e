//! The shutdown signal passed into every long-running task: a `watch::Receiver<bool>` that turns
//! `true` once. Tests create their own with [`channel`].

use tokio::sync::watch;

/// A new signal: send `true` on the sender to stop everything holding a receiver.
pub fn channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// Resolves once the signal is `true` or its sender is gone (nobody can stop us any more, so
/// stopping is the only safe reading).
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
