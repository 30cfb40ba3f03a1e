//! Audit events on NATS: every login decision and every committed admin change, published as
//! JSON on the system connection.
//!
//! Subjects: `pbn.audit.login.<account>.<outcome>` (`<account>` the account's public key, or
//! `unknown` when the login was refused before a user was found; `<outcome>` `admitted` or
//! `refused`) and `pbn.audit.admin.<command>`. Every event carries `type`, `version`
//! ([`EVENT_VERSION`]), a random `id` and its `time` (RFC 3339, UTC); the rest is listed on
//! [`LoginEvent`] and [`AdminEvent`]. No event ever holds a secret: a login event names the
//! method, never the password, token or signature.
//!
//! Recording an event never blocks or slows a login: it is a `try_send` into a bounded queue
//! ([`AUDIT_QUEUE`]); one task publishes the queue on whichever system client exists. An event
//! that finds the queue full, or no connection to publish on, is dropped and counted
//! (`pbn_audit_events_dropped_total`).

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::metrics::Metrics;

/// Subjects of every audit event.
pub const AUDIT_SUBJECTS: &str = "pbn.audit.>";
/// Schema version of the events; bumped when a field changes meaning or goes away.
pub const EVENT_VERSION: u32 = 1;
/// Events waiting to be published. A storm of 2,000 clients each retrying a few times fits
/// (about 300 bytes an event, so at most a few MB); beyond it NATS is not keeping up, and
/// holding more would only grow memory while the events grew stale, so they are dropped and
/// counted instead.
pub const AUDIT_QUEUE: usize = 10_000;

/// A login decision.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoginEvent {
    /// The user name given (or nkey presented; empty for a token).
    pub user: String,
    /// The account's public key when admitted, else empty.
    pub account: String,
    /// `password`, `token`, `nkey`, `none` or `unknown`.
    pub method: &'static str,
    /// The client's host as the server reported it.
    pub client_host: String,
    /// The id of the server the client connected to.
    pub server_id: String,
    /// `admitted` or `refused`.
    pub outcome: &'static str,
    /// The refusal reason (empty when admitted).
    pub reason: &'static str,
}

/// A committed admin change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AdminEvent {
    /// The command (`op` of the admin request, e.g. `account_edit`).
    pub command: &'static str,
}

/// One event as queued.
#[derive(Debug, Clone)]
enum Event {
    Login(LoginEvent),
    Admin(AdminEvent),
}

/// The JSON envelope of an event.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    version: u32,
    id: String,
    time: String,
    #[serde(flatten)]
    body: &'a T,
}

impl Event {
    fn subject(&self) -> String {
        match self {
            Event::Login(e) => {
                let account = if e.account.is_empty() { "unknown" } else { e.account.as_str() };
                format!("pbn.audit.login.{account}.{}", e.outcome)
            }
            Event::Admin(e) => format!("pbn.audit.admin.{}", e.command),
        }
    }

    fn to_json(&self, time: SystemTime) -> Vec<u8> {
        let id = data_encoding::HEXLOWER.encode(&rand::random::<[u8; 12]>());
        let time = humantime::format_rfc3339_millis(time).to_string();
        // Invariant: the events are plain strings and numbers, which always serialize.
        let json = match self {
            Event::Login(body) => {
                let kind = "pbn.audit.login";
                serde_json::to_vec(&Envelope { kind, version: EVENT_VERSION, id, time, body })
            }
            Event::Admin(body) => {
                let kind = "pbn.audit.admin";
                serde_json::to_vec(&Envelope { kind, version: EVENT_VERSION, id, time, body })
            }
        };
        json.expect("audit events always serialize")
    }
}

/// Where the service records audit events (cheap to clone).
#[derive(Debug, Clone)]
pub struct Audit {
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
}

/// The other end of [`Audit`]: the queue the publisher drains.
#[derive(Debug)]
pub struct AuditQueue(mpsc::Receiver<Event>);

impl Audit {
    /// A recorder with its queue of [`AUDIT_QUEUE`] events, counting drops in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> (Audit, AuditQueue) {
        let (tx, rx) = mpsc::channel(AUDIT_QUEUE);
        (Audit { tx, metrics }, AuditQueue(rx))
    }

    /// Records a login decision (never waits).
    pub fn login(&self, event: LoginEvent) {
        self.record(Event::Login(event));
    }

    /// Records a committed admin change (never waits).
    pub fn admin(&self, command: &'static str) {
        self.record(Event::Admin(AdminEvent { command }));
    }

    fn record(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.metrics.audit_event(false);
        }
    }
}

/// Publishes queued events on the current client of `clients` until `shutdown` (then what is
/// queued is published or dropped) or until every [`Audit`] is gone.
pub async fn publish(
    mut queue: AuditQueue,
    clients: watch::Receiver<Option<async_nats::Client>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            e = queue.0.recv() => e,
            _ = crate::shutdown::requested(&mut shutdown) => None,
        };
        let Some(event) = event else { break };
        send(&clients, &metrics, &event).await;
    }
    queue.0.close();
    while let Ok(event) = queue.0.try_recv() {
        send(&clients, &metrics, &event).await;
    }
    let client = clients.borrow().clone();
    if let Some(client) = client {
        let _ = client.flush().await;
    }
}

async fn send(
    clients: &watch::Receiver<Option<async_nats::Client>>,
    metrics: &Metrics,
    event: &Event,
) {
    let client = clients.borrow().clone();
    let published = match client {
        Some(c) => {
            let payload = event.to_json(SystemTime::now());
            c.publish(event.subject(), payload.into()).await.is_ok()
        }
        None => false,
    };
    metrics.audit_event(published);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(outcome: &'static str) -> LoginEvent {
        LoginEvent {
            user: "alice".into(),
            account: String::new(),
            method: "password",
            client_host: "127.0.0.1".into(),
            server_id: "NSERVER".into(),
            outcome,
            reason: "bad_password",
        }
    }

    #[test]
    fn events_carry_the_envelope_and_their_subject() {
        let e = Event::Login(login("refused"));
        assert_eq!(e.subject(), "pbn.audit.login.unknown.refused");
        let json: serde_json::Value =
            serde_json::from_slice(&e.to_json(SystemTime::now())).unwrap();
        assert_eq!(json["type"], "pbn.audit.login");
        assert_eq!(json["version"], EVENT_VERSION);
        assert_eq!(json["id"].as_str().unwrap().len(), 24);
        assert!(json["time"].as_str().unwrap().ends_with('Z'), "{json}");
        assert_eq!(
            (json["user"].as_str(), json["reason"].as_str()),
            (Some("alice"), Some("bad_password"))
        );
        let admin = Event::Admin(AdminEvent { command: "account_edit" });
        assert_eq!(admin.subject(), "pbn.audit.admin.account_edit");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let metrics = Arc::new(Metrics::new());
        let (audit, _queue) = Audit::new(metrics.clone());
        for _ in 0..AUDIT_QUEUE + 3 {
            audit.login(login("refused"));
        }
        let text = metrics.encode(&Default::default());
        assert!(text.lines().any(|l| l == "pbn_audit_events_dropped_total 3"), "{text}");
    }
}
