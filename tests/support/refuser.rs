//! A stand-in for a server that is not there yet (see [`Refuser`]).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::wait_until;

/// A loopback listener that closes every connection it accepts at once and counts them.
///
/// A client connecting to it fails as it would against a missing server, and the count is a
/// positive signal that the client keeps trying: tests that must show "nothing happens while
/// no server is there" wait for attempts instead of sleeping. [`Refuser::close`] frees the port
/// for the real server.
pub struct Refuser {
    port: u16,
    attempts: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Refuser {
    /// Listens on 127.0.0.1:`port` (0: a port the kernel picks).
    ///
    /// # Panics
    /// If the port cannot be bound.
    pub async fn bind(port: u16) -> Refuser {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap_or_else(|err| panic!("bind 127.0.0.1:{port}: {err}"));
        let port = listener.local_addr().expect("a bound listener has an address").port();
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = attempts.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Refuser { port, attempts, task }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted (and closed) so far.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections were accepted.
    pub async fn wait_attempts(&self, n: usize, timeout: Duration) {
        let what = format!("{n} connection attempts on port {}", self.port);
        wait_until(timeout, &what, || self.attempts() >= n).await;
    }

    /// Stops listening; the port is free once this returns.
    pub async fn close(mut self) {
        self.task.abort();
        // The listener is dropped with the task; a cancelled task's join error is expected.
        let _ = (&mut self.task).await;
    }
}

impl Drop for Refuser {
    fn drop(&mut self) {
        self.task.abort();
    }
}
