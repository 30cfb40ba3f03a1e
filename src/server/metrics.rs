//! Prometheus metrics of `pbn serve`, served by the HTTP listener at `/metrics` in the text
//! format. Names follow Prometheus conventions: the `pbn_` prefix, `_total` counters, base
//! units (`_seconds`). Label values are bounded sets: a login's outcome is `admitted` or one of
//! the refusal reasons of [`CalloutError::reason`](super::callout::CalloutError::reason).

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a login.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    outcome: &'static str,
}

/// Every metric pbn keeps, registered once.
pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    login_seconds: Histogram,
    sessions: Gauge,
    outbox_entries: Gauge,
    callout_subscriptions: Gauge,
    /// Encoding is serialized so concurrent scrapes see whole snapshots.
    encoding: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Login latency buckets: 0.5 ms to 4 s (a cache hit is well under a millisecond, a cold
/// argon2 login tens of milliseconds, a login that waited for an argon2 permit seconds).
const LOGIN_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0];

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pbn");
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "Login requests answered, by outcome", logins.clone());
        let login_seconds = Histogram::new(LOGIN_BUCKETS);
        registry.register(
            "login_duration_seconds",
            "Time pbn took to answer a login request",
            login_seconds.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions", "Live callout sessions", sessions.clone());
        let outbox_entries = Gauge::default();
        registry.register(
            "outbox_entries",
            "Account JWT pushes pending or failed",
            outbox_entries.clone(),
        );
        let callout_subscriptions = Gauge::default();
        registry.register(
            "callout_subscriptions",
            "Callout subscriptions active on a connection",
            callout_subscriptions.clone(),
        );
        Metrics {
            registry,
            logins,
            login_seconds,
            sessions,
            outbox_entries,
            callout_subscriptions,
            encoding: Mutex::new(()),
        }
    }

    /// Counts one answered login: `None` admitted, else the refusal reason.
    pub fn login(&self, refused: Option<&'static str>, took: Duration) {
        let outcome = refused.unwrap_or("admitted");
        self.logins.get_or_create(&LoginLabels { outcome }).inc();
        self.login_seconds.observe(took.as_secs_f64());
    }

    /// Notes a callout subscription made (`true`) or ended (`false`).
    pub fn subscribed(&self, on: bool) {
        if on {
            self.callout_subscriptions.inc();
        } else {
            self.callout_subscriptions.dec();
        }
    }

    /// Callout subscriptions active now.
    pub fn subscriptions(&self) -> i64 {
        self.callout_subscriptions.get()
    }

    /// The Prometheus text of every metric, with the gauges set to `sessions` and
    /// `outbox_entries` as read at the scrape.
    pub fn encode(&self, sessions: usize, outbox_entries: usize) -> String {
        let _whole = self.encoding.lock().unwrap_or_else(|e| e.into_inner());
        self.sessions.set(i64::try_from(sessions).unwrap_or(i64::MAX));
        self.outbox_entries.set(i64::try_from(outbox_entries).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Invariant: writing to a String cannot fail.
        encode(&mut text, &self.registry).expect("encoding metrics into a string");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_counted_by_outcome_in_prometheus_text() {
        let m = Metrics::new();
        m.login(None, Duration::from_millis(1));
        m.login(None, Duration::from_millis(3));
        m.login(Some("bad_password"), Duration::from_millis(30));
        let text = m.encode(2, 1);
        assert!(text.contains("pbn_logins_total{outcome=\"admitted\"} 2"), "{text}");
        assert!(text.contains("pbn_logins_total{outcome=\"bad_password\"} 1"), "{text}");
        assert!(text.contains("pbn_login_duration_seconds_count 3"), "{text}");
        assert!(text.contains("pbn_sessions 2") && text.contains("pbn_outbox_entries 1"), "{text}");
    }
}
