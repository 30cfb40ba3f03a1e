//! Prometheus metrics of `pbn serve`, served by the HTTP listener at `/metrics` in the text
//! format. Names follow Prometheus conventions: the `pbn_` prefix, `_total` counters, base
//! units (`_seconds`, `_bytes`). Every label has a bounded set of values: a login's method and
//! outcome (`admitted` or one of the refusal reasons of
//! [`CalloutError::reason`](super::callout::CalloutError::reason)), an admin command's name, a
//! connection's name, and account names capped by [`LabelCap`].
//!
//! The login path only touches atomics: counters and histograms are pre-registered, label sets
//! are `&'static str` (no allocation to look a series up), and gauges that need the store or
//! the session registry are computed at the scrape from a [`Scrape`].

mod labels;

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

pub use labels::LabelCap;

use super::connection::ConnState;

/// Labels of a login.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: &'static str,
    outcome: &'static str,
}

/// A result label (`ok` / `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// A managed NATS connection (`callout` / `system`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: &'static str,
}

/// An admin request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdminLabels {
    command: &'static str,
    result: &'static str,
}

/// An account (name, or [`OTHER`] past the cap).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

/// The methods a login can use; `unknown` when the request failed before its credentials
/// were read.
pub const LOGIN_METHODS: [&str; 6] = ["password", "token", "nkey", "oidc", "none", "unknown"];

/// Distinct account labels of `pbn_account_sessions` (see [`LabelCap`] for why there is a
/// cap): 100 names every tenant of a typical deployment while keeping the gauge's series count
/// small enough for any Prometheus.
pub const ACCOUNT_LABELS_MAX: usize = 100;

/// Login latency buckets: 0.5 ms to 4 s (a cache hit is well under a millisecond, a cold
/// argon2 login tens of milliseconds, a login that waited for an argon2 permit seconds).
const LOGIN_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0];
/// argon2 verification buckets: 5 ms to 1 s around the tens of milliseconds one takes.
const ARGON_BUCKETS: [f64; 10] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0];
/// Push latency buckets: a push is an update plus a read-back per server, milliseconds on a
/// LAN; a push that waits for a missing server's reply takes the request timeout (10 s).
const PUSH_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 2.5, 10.0];

/// What the scrape reads from the store and the session registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Live sessions in the registry.
    pub sessions: usize,
    /// Live sessions per account name (every account of the store, zero included).
    pub sessions_by_account: Vec<(String, usize)>,
    /// Outbox entries, pending or failed.
    pub outbox_entries: usize,
    /// Age of the oldest outbox entry (zero when there is none).
    pub outbox_oldest_age: Duration,
    /// Size of the store file.
    pub store_bytes: u64,
}

/// Every metric pbn keeps, registered once.
pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    login_seconds: Histogram,
    argon_seconds: Histogram,
    argon_waiting: Gauge,
    argon_running: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    throttled: Counter,
    sessions: Gauge,
    account_sessions: Family<AccountLabels, Gauge>,
    account_labels: LabelCap,
    outbox_entries: Gauge,
    outbox_oldest: Gauge<f64, AtomicU64>,
    pushes: Family<ResultLabels, Counter>,
    push_seconds: Histogram,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_differences: Counter,
    nats_connected: Family<ConnectionLabels, Gauge>,
    nats_reconnects: Family<ConnectionLabels, Counter>,
    admin_requests: Family<AdminLabels, Counter>,
    store_bytes: Gauge,
    oidc_fetches: Family<ResultLabels, Counter>,
    oidc_unreachable: Gauge,
    callout_subscriptions: Gauge,
    audit_published: Counter,
    audit_dropped: Counter,
    /// Logins of the last minute, for `pbn status`.
    recent: crate::server::status::RecentLogins,
    /// Encoding is serialized so concurrent scrapes see whole snapshots.
    encoding: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `metric` under `name` and returns it.
fn reg<M: Clone + prometheus_client::registry::Metric>(
    r: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// A fresh set of metrics, all zero; the admitted series of every method and both
    /// connections exist from the start, so a rate over them is defined from the first scrape.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("pbn");
        let r = &mut r;
        let m = Metrics {
            logins: reg(r, "logins", "Login requests answered, by method and outcome", Family::default()),
            login_seconds: reg(r, "login_duration_seconds", "Time pbn took to answer a login request", Histogram::new(LOGIN_BUCKETS)),
            argon_seconds: reg(r, "argon2_duration_seconds", "Time one argon2 password verification took", Histogram::new(ARGON_BUCKETS)),
            argon_waiting: reg(r, "argon2_waiting", "Password verifications waiting for an argon2 permit", Gauge::default()),
            argon_running: reg(r, "argon2_running", "Password verifications running", Gauge::default()),
            cache_hits: reg(r, "login_cache_hits", "Password logins answered from the verified-login cache", Counter::default()),
            cache_misses: reg(r, "login_cache_misses", "Password logins that needed an argon2 verification", Counter::default()),
            throttled: reg(r, "login_throttle_refusals", "Logins refused by the failed-login throttle", Counter::default()),
            sessions: reg(r, "sessions", "Live callout sessions", Gauge::default()),
            account_sessions: reg(r, "account_sessions", "Live callout sessions by account (at most 100 account labels, the rest under other)", Family::default()),
            account_labels: LabelCap::new(ACCOUNT_LABELS_MAX),
            outbox_entries: reg(r, "outbox_entries", "Account JWT pushes pending or failed", Gauge::default()),
            outbox_oldest: reg(r, "outbox_oldest_entry_age_seconds", "Age of the oldest outbox entry (0 when empty)", Gauge::default()),
            pushes: reg(r, "pushes", "Account JWT push attempts, by result", Family::default()),
            push_seconds: reg(r, "push_duration_seconds", "Time one account JWT push (update and read-back) took", Histogram::new(PUSH_BUCKETS)),
            reconciles: reg(r, "reconcile_runs", "Reconciles of the servers' account JWTs with the store, by result", Family::default()),
            reconcile_differences: reg(r, "reconcile_differences", "Accounts a reconcile found differing on the servers and queued", Counter::default()),
            nats_connected: reg(r, "nats_connected", "Whether a managed NATS connection is connected (1) or not (0)", Family::default()),
            nats_reconnects: reg(r, "nats_reconnects", "Connections made after the first, per managed NATS connection", Family::default()),
            admin_requests: reg(r, "admin_requests", "Admin API requests, by command and result", Family::default()),
            store_bytes: reg(r, "store_size_bytes", "Size of the store file", Gauge::default()),
            oidc_fetches: reg(r, "oidc_key_fetches", "Fetches of identity provider keys, by result", Family::default()),
            oidc_unreachable: reg(r, "oidc_providers_unreachable", "Identity providers whose last key fetch failed (their cached keys stay in use)", Gauge::default()),
            callout_subscriptions: reg(r, "callout_subscriptions", "Callout subscriptions active on a connection", Gauge::default()),
            audit_published: reg(r, "audit_events_published", "Audit events published on NATS", Counter::default()),
            audit_dropped: reg(r, "audit_events_dropped", "Audit events dropped (queue full or no connection)", Counter::default()),
            recent: Default::default(),
            registry: std::mem::take(r),
            encoding: Mutex::new(()),
        };
        for method in LOGIN_METHODS {
            drop(m.logins.get_or_create(&LoginLabels { method, outcome: "admitted" }));
        }
        for connection in ["callout", "system"] {
            drop(m.nats_connected.get_or_create(&ConnectionLabels { connection }));
            drop(m.nats_reconnects.get_or_create(&ConnectionLabels { connection }));
        }
        for result in ["ok", "failed"] {
            drop(m.pushes.get_or_create(&ResultLabels { result }));
            drop(m.reconciles.get_or_create(&ResultLabels { result }));
            drop(m.oidc_fetches.get_or_create(&ResultLabels { result }));
        }
        m
    }

    /// Counts one answered login by `method` (one of [`LOGIN_METHODS`]): `None` admitted, else
    /// the refusal reason.
    pub fn login(&self, method: &'static str, refused: Option<&'static str>, took: Duration) {
        let outcome = refused.unwrap_or("admitted");
        self.logins.get_or_create(&LoginLabels { method, outcome }).inc();
        self.login_seconds.observe(took.as_secs_f64());
        if refused == Some("throttled") {
            self.throttled.inc();
        }
        self.recent.record(crate::server::status::unix_second(), refused.is_some());
    }

    /// Counts one fetch of an identity provider's keys; `unreachable` providers' last fetch
    /// failed.
    pub fn oidc_fetched(&self, ok: bool, unreachable: usize) {
        let result = if ok { "ok" } else { "failed" };
        self.oidc_fetches.get_or_create(&ResultLabels { result }).inc();
        self.oidc_unreachable.set(as_i64(unreachable));
    }

    /// Logins of the last minute.
    pub fn recent(&self) -> &crate::server::status::RecentLogins {
        &self.recent
    }

    /// Counts a lookup of the verified-login cache.
    pub fn cache_lookup(&self, hit: bool) {
        match hit {
            true => self.cache_hits.inc(),
            false => self.cache_misses.inc(),
        };
    }

    /// Marks one verification waiting for an argon2 permit until the guard drops.
    pub fn argon_waiting(&self) -> GaugeGuard<'_> {
        GaugeGuard::new(&self.argon_waiting)
    }

    /// Marks one argon2 verification running until the guard drops.
    pub fn argon_running(&self) -> GaugeGuard<'_> {
        GaugeGuard::new(&self.argon_running)
    }

    /// Records the time of one argon2 verification.
    pub fn argon_took(&self, took: Duration) {
        self.argon_seconds.observe(took.as_secs_f64());
    }

    /// Counts one push attempt that ended (`ok` or failed; a disconnect is neither).
    pub fn pushed(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "failed" };
        self.pushes.get_or_create(&ResultLabels { result }).inc();
        self.push_seconds.observe(took.as_secs_f64());
    }

    /// Counts one reconcile: `Ok(differences)` or failed.
    pub fn reconciled(&self, result: Result<usize, ()>) {
        let label = if result.is_ok() { "ok" } else { "failed" };
        self.reconciles.get_or_create(&ResultLabels { result: label }).inc();
        if let Ok(n) = result {
            self.reconcile_differences.inc_by(n as u64);
        }
    }

    /// Counts one admin request by command name and result (`ok`, `error`).
    pub fn admin_request(&self, command: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.admin_requests.get_or_create(&AdminLabels { command, result }).inc();
    }

    /// Counts an audit event published (`true`) or dropped (`false`).
    pub fn audit_event(&self, published: bool) {
        match published {
            true => self.audit_published.inc(),
            false => self.audit_dropped.inc(),
        };
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

    /// Follows the state of the managed connection `connection` (`callout` or `system`) until
    /// its channel closes or `shutdown`: the connected gauge, and a reconnect for every
    /// connection made after the first.
    pub async fn watch_connection(
        &self,
        connection: &'static str,
        mut state: watch::Receiver<ConnState>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let labels = ConnectionLabels { connection };
        let mut connected_before = false;
        loop {
            let connected = matches!(*state.borrow_and_update(), ConnState::Connected { .. });
            self.nats_connected.get_or_create(&labels).set(i64::from(connected));
            if connected {
                if connected_before {
                    self.nats_reconnects.get_or_create(&labels).inc();
                }
                connected_before = true;
            }
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                _ = crate::shutdown::requested(&mut shutdown) => return,
            }
        }
    }

    /// The Prometheus text of every metric, with the scrape-time gauges set from `scrape`.
    pub fn encode(&self, scrape: &Scrape) -> String {
        let _whole = self.encoding.lock().unwrap_or_else(|e| e.into_inner());
        self.sessions.set(as_i64(scrape.sessions));
        self.account_sessions.clear();
        for (account, n) in &scrape.sessions_by_account {
            let account = self.account_labels.label(account);
            self.account_sessions.get_or_create(&AccountLabels { account }).inc_by(as_i64(*n));
        }
        self.outbox_entries.set(as_i64(scrape.outbox_entries));
        self.outbox_oldest.set(scrape.outbox_oldest_age.as_secs_f64());
        self.store_bytes.set(i64::try_from(scrape.store_bytes).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Invariant: writing to a String cannot fail.
        encode(&mut text, &self.registry).expect("encoding metrics into a string");
        text
    }
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Holds a gauge one higher while it lives (also when the future holding it is dropped).
pub struct GaugeGuard<'a>(&'a Gauge);

impl<'a> GaugeGuard<'a> {
    fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests;
