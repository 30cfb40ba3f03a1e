//! What `pbn status` shows of a running service: version, uptime, the connections, callout and
//! publisher state, the outbox, sessions and the logins of the last minute. Served as JSON by
//! the HTTP listener (`GET /status`) and on the system connection ([`STATUS_SUBJECT`], a
//! request the admin creds may send).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::http::Health;
use crate::store::{StoreError, StoreRead};

/// The status request subject (under the admin subjects, so the admin creds may publish it).
pub const STATUS_SUBJECT: &str = "pbn.admin.status";

/// Seconds the login window covers.
const WINDOW: usize = 60;

/// Minutes the hourly window covers: one bucket per minute of the last hour, reused when its
/// minute comes round again, so the ring holds 60 buckets of three atomics whatever the login
/// rate (the dashboard's "last hour" needs nothing finer).
const MINUTES: usize = 60;

/// Logins admitted and refused per second over the last minute: one slot per second of the
/// minute, reused when its second comes round again. Two atomics per login; a login racing
/// the reset of its slot at a second's turn may be lost, so the figures are for people, not
/// for accounting (the Prometheus counters are exact).
#[derive(Debug)]
pub struct RecentLogins {
    slots: [Slot; WINDOW],
    /// The same per minute (a slot's `second` holds its minute) over [`MINUTES`] minutes.
    minutes: [Slot; MINUTES],
}

#[derive(Debug, Default)]
struct Slot {
    second: AtomicU64,
    admitted: AtomicU64,
    refused: AtomicU64,
}

impl Default for RecentLogins {
    fn default() -> Self {
        RecentLogins {
            slots: std::array::from_fn(|_| Slot::default()),
            minutes: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl RecentLogins {
    /// Counts one login answered at unix second `now`.
    pub fn record(&self, now: u64, refused: bool) {
        Slot::count(&self.slots[(now % WINDOW as u64) as usize], now, refused);
        let minute = now / 60;
        Slot::count(&self.minutes[(minute % MINUTES as u64) as usize], minute, refused);
    }

    /// (admitted, refused) in the minute up to unix second `now`.
    pub fn last_minute(&self, now: u64) -> (u64, u64) {
        Slot::sum(&self.slots, now, WINDOW as u64)
    }

    /// (admitted, refused) in the hour up to unix second `now`, by whole minutes (the current
    /// minute and the 59 before it).
    pub fn last_hour(&self, now: u64) -> (u64, u64) {
        Slot::sum(&self.minutes, now / 60, MINUTES as u64)
    }
}

impl Slot {
    /// Counts one login in `slot` for time unit `at`, resetting it when it held an older one.
    fn count(slot: &Slot, at: u64, refused: bool) {
        let seen = slot.second.load(Ordering::Acquire);
        if seen != at
            && slot.second.compare_exchange(seen, at, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            slot.admitted.store(0, Ordering::Release);
            slot.refused.store(0, Ordering::Release);
        }
        let counter = if refused { &slot.refused } else { &slot.admitted };
        counter.fetch_add(1, Ordering::AcqRel);
    }

    /// The sums of the `slots` whose unit lies in the `span` units up to `now`.
    fn sum(slots: &[Slot], now: u64, span: u64) -> (u64, u64) {
        let live = slots.iter().filter(|s| {
            let at = s.second.load(Ordering::Acquire);
            at <= now && now - at < span
        });
        live.fold((0, 0), |(a, r), s| {
            (a + s.admitted.load(Ordering::Acquire), r + s.refused.load(Ordering::Acquire))
        })
    }
}

/// The unix second now.
pub fn unix_second() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A running service's status (the JSON of `pbn status --json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// pbn's version.
    pub version: String,
    /// Seconds since `pbn serve` started.
    pub uptime_seconds: u64,
    /// The callout's connection.
    pub callout: ConnectionStatus,
    /// The system connection (publisher, admin API, audit events).
    pub system: ConnectionStatus,
    /// Whether the callout is subscribed.
    pub callout_subscribed: bool,
    /// Whether the publisher's last push failed.
    pub publisher_failing: bool,
    /// Outbox entries, pending or failed.
    pub outbox_entries: usize,
    /// Age of the oldest outbox entry in seconds (0 when empty).
    pub outbox_oldest_seconds: u64,
    /// Live callout sessions.
    pub sessions: usize,
    /// Logins answered in the last minute.
    pub logins_last_minute: u64,
    /// Of those, refused.
    pub refusals_last_minute: u64,
    /// Logins answered in the last hour (by whole minutes).
    #[serde(default)]
    pub logins_last_hour: u64,
    /// Of those, refused.
    #[serde(default)]
    pub refusals_last_hour: u64,
    /// Replicated mode: where this replica stands in the log (absent on a single node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaStatus>,
}

/// A replica's place in the replicated log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The last log position applied to this replica's store.
    pub applied_seq: u64,
    /// Whether it applied everything the log held when it last looked (logins are served
    /// from the local view either way; admin writes need the log).
    pub in_sync: bool,
}

/// One managed connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// `connected to primary URL`, `reconnecting`, ...
    pub state: String,
    /// The server's name and id when connected.
    pub server: Option<String>,
}

fn connection(
    state: &watch::Receiver<super::connection::ConnState>,
    client: &watch::Receiver<Option<async_nats::Client>>,
) -> ConnectionStatus {
    let server = client.borrow().as_ref().map(|c| {
        let info = c.server_info();
        format!("{} ({})", info.server_name, info.server_id)
    });
    ConnectionStatus { state: state.borrow().to_string(), server }
}

/// The status as it is now.
pub async fn collect(h: &Health) -> Result<Status, StoreError> {
    let outbox = h.store.read_async(|tx| tx.list_outbox()).await?;
    let now_ms = crate::clock::unix_now_ms();
    let oldest = outbox.iter().map(|e| e.created).min().map_or(0, |c| now_ms.saturating_sub(c));
    let now = unix_second();
    let (admitted, refused) = h.metrics.recent().last_minute(now);
    let (hour_admitted, hour_refused) = h.metrics.recent().last_hour(now);
    Ok(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: h.started.elapsed().as_secs(),
        callout: connection(&h.callout_state, &h.callout),
        system: connection(&h.system_state, &h.system),
        callout_subscribed: h.metrics.subscriptions() > 0,
        publisher_failing: h.pushes.is_failing(),
        outbox_entries: outbox.len(),
        outbox_oldest_seconds: Duration::from_millis(u64::try_from(oldest).unwrap_or(0)).as_secs(),
        sessions: h.sessions.len(),
        logins_last_minute: admitted + refused,
        refusals_last_minute: refused,
        logins_last_hour: hour_admitted + hour_refused,
        refusals_last_hour: hour_refused,
        replica: match &h.in_sync {
            Some(in_sync) => Some(ReplicaStatus {
                applied_seq: h.store.applied_seq()?,
                in_sync: *in_sync.borrow(),
            }),
            None => None,
        },
    })
}

/// Answers [`STATUS_SUBJECT`] requests on the current system client until `shutdown`.
pub async fn serve(health: Health, shutdown: watch::Receiver<bool>) {
    let clients = health.system.clone();
    super::on_each_client("status responder", clients, shutdown, |client, stop| {
        answer(client, health.clone(), stop)
    })
    .await;
}

async fn answer(
    client: async_nats::Client,
    health: Health,
    mut stop: watch::Receiver<bool>,
) -> Result<(), async_nats::SubscribeError> {
    let mut sub = client.subscribe(STATUS_SUBJECT).await?;
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = crate::shutdown::requested(&mut stop) => None,
        };
        let Some(msg) = msg else { return Ok(()) };
        let Some(reply) = msg.reply else { continue };
        let body = match collect(&health).await {
            Ok(s) => serde_json::to_vec(&s).unwrap_or_default(),
            Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e.to_string() }))
                .unwrap_or_default(),
        };
        if let Err(e) = client.publish(reply, body.into()).await {
            tracing::warn!(error = %e, "cannot answer a status request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_minute_counts_logins_younger_than_sixty_seconds() {
        let recent = RecentLogins::default();
        recent.record(1_000, false);
        recent.record(1_000, true);
        recent.record(1_030, false);
        assert_eq!(recent.last_minute(1_030), (2, 1));
        assert_eq!(recent.last_minute(1_059), (2, 1));
        assert_eq!(recent.last_minute(1_060), (1, 0), "the second 1000 is out of the window");
        recent.record(1_060, true);
        assert_eq!(recent.last_minute(1_060), (1, 1), "its slot was reused, not added to");
    }

    #[test]
    fn the_last_hour_counts_sixty_minute_buckets_and_reuses_them() {
        let recent = RecentLogins::default();
        let t0 = 600_000; // a minute boundary
        recent.record(t0, false);
        recent.record(t0 + 61, true);
        recent.record(t0 + 59 * 60 + 30, false);
        assert_eq!(recent.last_hour(t0 + 59 * 60 + 59), (2, 1), "all in the same hour");
        assert_eq!(recent.last_minute(t0 + 59 * 60 + 59), (1, 0));
        assert_eq!(recent.last_hour(t0 + 60 * 60), (1, 1), "minute t0 left the window");
        recent.record(t0 + 60 * 60, true);
        assert_eq!(recent.last_hour(t0 + 60 * 60), (1, 2), "its bucket was reused, not added to");
        assert_eq!(recent.last_hour(t0 + 3 * 3600), (0, 0));
    }
}
