//! Connect storms: many clients connecting at once (bounded in flight), timed one by one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

/// How long one client may take to connect before it counts as failed (well past the server's
/// auth timeout, so a failure is the server's verdict, not ours).
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// Latency percentiles of the clients that connected.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    /// Percentiles of `samples` (nearest rank); zero when empty.
    pub fn of(samples: &mut [Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[i - 1]
        };
        Latency { p50: rank(0.50), p99: rank(0.99), max: samples[samples.len() - 1] }
    }
}

/// The outcome of one storm.
pub struct Storm {
    /// Clients that tried.
    pub attempted: usize,
    /// Clients that could not connect.
    pub failed: usize,
    /// First start to last finish.
    pub wall: Duration,
    /// Connect latency of the successful clients.
    pub latency: Latency,
    /// One failure message, for the report.
    pub first_error: Option<String>,
    /// The connected clients, kept open until the caller drops them.
    pub clients: Vec<Client>,
}

impl Storm {
    /// Successful connects per second of wall time.
    pub fn rate(&self) -> f64 {
        let ok = (self.attempted - self.failed) as f64;
        ok / self.wall.as_secs_f64().max(1e-9)
    }
}

/// A progress bar of `len` steps on stderr (hidden when stderr is not a terminal).
pub fn progress(label: &str, len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template(
        "{msg:<34} [{bar:30}] {pos:>6}/{len:<6} {per_sec:>12} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}

/// Connects `n` clients to `url`, `concurrency` at a time; `options(i)` configures client `i`.
///
/// Each connect runs in its own task, so handshakes (and the nkey signing of creds clients) are
/// spread over the runtime's workers like independent clients would be.
pub async fn storm(
    label: &str,
    url: &str,
    n: usize,
    concurrency: usize,
    options: impl Fn(usize) -> ConnectOptions,
) -> Storm {
    let bar = progress(label, n);
    let url: Arc<str> = Arc::from(url);
    let started = Instant::now();
    let attempts = futures::stream::iter(0..n).map(|i| {
        let opts = options(i);
        let url = url.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let r = tokio::time::timeout(CONNECT_DEADLINE, opts.connect(url.as_ref())).await;
            (t.elapsed(), r)
        })
    });
    let mut results = attempts.buffer_unordered(concurrency.max(1));
    let mut out = Storm {
        attempted: n,
        failed: 0,
        wall: Duration::ZERO,
        latency: Latency::default(),
        first_error: None,
        clients: Vec::with_capacity(n),
    };
    let mut samples = Vec::with_capacity(n);
    while let Some(joined) = results.next().await {
        bar.inc(1);
        let error = match joined {
            Ok((took, Ok(Ok(client)))) => {
                samples.push(took);
                out.clients.push(client);
                continue;
            }
            Ok((_, Ok(Err(e)))) => e.to_string(),
            Ok((_, Err(_))) => format!("no connection within {CONNECT_DEADLINE:?}"),
            Err(e) => format!("connect task failed: {e}"),
        };
        out.failed += 1;
        out.first_error.get_or_insert(error);
    }
    out.wall = started.elapsed();
    out.latency = Latency::of(&mut samples);
    bar.finish_and_clear();
    out
}
