//! The supervisor task: the single owner of a managed connection's state.
//!
//! It waits on four things at once: the shutdown signal, events of its clients, the one
//! pending operation (a connection round while down, a liveness check while on the primary,
//! a probe of the primary while on a backup) and the drains of replaced clients. Replacing the pending operation drops the old
//! future, so the result of an outdated dial or probe can never be applied.

use std::time::Duration;

use async_nats::Client;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::dial::{ClientEvent, Dialed, Dialer, TaggedEvent};
use super::{ConnState, ConnectionAuth, ConnectionError, ConnectionSettings};

/// How long a drain (flush, unsubscribe, close) may take at shutdown or after a swap.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The client in use and the server it is connected to.
struct Active {
    client: Client,
    generation: u64,
    server: usize,
}

/// What the pending operation produced.
enum Outcome {
    /// A connection round: the first server that accepted, or the last error.
    Round(Result<(usize, Dialed), ConnectionError>),
    /// A probe of the primary.
    Probe(Result<Dialed, ConnectionError>),
    /// Time to check that the client in use is still connected.
    Check,
}

/// The supervisor of one managed connection (see the module docs).
pub(super) struct Supervisor {
    dialer: Dialer,
    shutdown: watch::Receiver<bool>,
    client_tx: watch::Sender<Option<Client>>,
    state_tx: watch::Sender<ConnState>,
    events: mpsc::UnboundedReceiver<TaggedEvent>,
    active: Option<Active>,
    pending: Option<BoxFuture<'static, Outcome>>,
    /// Rounds in a row that reached no server (drives the backoff and the "waiting" log).
    failed_rounds: u32,
    /// Successful probes of the primary in a row.
    healthy_probes: u32,
    /// Clients being retired: each task waits out its grace period, then drains the client.
    retiring: JoinSet<()>,
}

/// The receivers of a supervisor's client and state channels.
pub(super) type Channels = (watch::Receiver<Option<Client>>, watch::Receiver<ConnState>);

impl Supervisor {
    /// A supervisor (not yet running) and the receivers of its client and state channels.
    pub fn new(
        settings: ConnectionSettings,
        auth: ConnectionAuth,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Supervisor, Channels), ConnectionError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let dialer = Dialer::new(settings, auth, events_tx)?;
        let (client_tx, client_rx) = watch::channel(None);
        let (state_tx, state_rx) = watch::channel(ConnState::Bootstrapping);
        let supervisor = Supervisor {
            dialer,
            shutdown,
            client_tx,
            state_tx,
            events,
            active: None,
            pending: None,
            failed_rounds: 0,
            healthy_probes: 0,
            retiring: JoinSet::new(),
        };
        Ok((supervisor, (client_rx, state_rx)))
    }

    /// Runs until shutdown, then drains every client and sets [`ConnState::Stopped`].
    pub async fn run(mut self) {
        debug!(connection = %self.name(), servers = ?self.shown_servers(), "connection starting");
        self.pending = Some(self.round(Duration::ZERO));
        loop {
            tokio::select! {
                biased;
                () = shutdown_signal(&mut self.shutdown) => break,
                Some((generation, event)) = self.events.recv() => self.on_event(generation, event),
                outcome = next_outcome(&mut self.pending) => self.on_outcome(outcome),
                Some(_) = self.retiring.join_next(), if !self.retiring.is_empty() => {}
            }
        }
        self.stop().await;
    }

    fn name(&self) -> &str {
        &self.dialer.settings().name
    }

    fn shown_servers(&self) -> Vec<&str> {
        self.dialer.servers().iter().map(|server| server.shown.as_str()).collect()
    }

    /// Sets the state, logging it when it changed.
    fn set_state(&self, state: ConnState) {
        let changed = self.state_tx.send_if_modified(|current| {
            let changed = *current != state;
            *current = state.clone();
            changed
        });
        if !changed {
            return;
        }
        // A loss is logged (at warn) where it is detected, with its reason; `Reconnecting`
        // adds nothing to that line.
        match &state {
            ConnState::Reconnecting => debug!(connection = %self.name(), "connection {state}"),
            _ => info!(connection = %self.name(), "connection {state}"),
        }
    }

    fn on_event(&mut self, generation: u64, event: ClientEvent) {
        if self.active.as_ref().is_some_and(|active| active.generation == generation) {
            self.lose_active(&format!("{event:?}"));
        }
    }

    /// Withdraws the client in use (it lost its server) and starts a connection round.
    fn lose_active(&mut self, why: &str) {
        if let Some(old) = self.active.take() {
            let url = &self.dialer.servers()[old.server].shown;
            warn!(connection = %self.name(), url = %url, why, "connection lost; reconnecting");
            self.client_tx.send_replace(None);
            self.retire(old.client, Duration::ZERO);
        }
        self.set_state(ConnState::Reconnecting);
        self.failed_rounds = 0;
        self.pending = Some(self.round(Duration::ZERO));
    }

    /// Whether the client in use still reports a connection. Backs up the disconnect events:
    /// an event that arrives before its client became active is ignored, so each check and
    /// each activation looks at the client's own state as well.
    fn active_is_up(&self) -> bool {
        self.active.as_ref().is_some_and(|active| is_up(&active.client))
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Round(Ok((server, dialed))) if is_up(&dialed.client) => {
                self.failed_rounds = 0;
                self.activate(server, dialed, Duration::ZERO);
            }
            Outcome::Round(Ok((server, _))) => {
                let url = self.dialer.servers()[server].shown.clone();
                self.round_failed(ConnectionError::Lost { url });
            }
            Outcome::Round(Err(err)) => self.round_failed(err),
            Outcome::Check if self.active_is_up() => self.pending = Some(self.check()),
            Outcome::Check => self.lose_active("client reports no connection"),
            Outcome::Probe(_) if !self.active_is_up() => {
                self.lose_active("client reports no connection");
            }
            Outcome::Probe(result) => self.on_probe(result),
        }
    }

    fn round_failed(&mut self, err: ConnectionError) {
        self.failed_rounds = self.failed_rounds.saturating_add(1);
        let delay = self.dialer.settings().backoff(self.failed_rounds);
        if self.failed_rounds == 1 {
            warn!(connection = %self.name(), error = %err, retry_in = ?delay,
                "no nats server reachable; waiting for one (further attempts logged at debug)");
        } else {
            debug!(connection = %self.name(), error = %err, retry_in = ?delay,
                rounds = self.failed_rounds, "no nats server reachable");
        }
        self.pending = Some(self.round(delay));
    }

    fn on_probe(&mut self, result: Result<Dialed, ConnectionError>) {
        let needed = self.dialer.settings().failback_healthy_checks;
        match result {
            Ok(dialed) if is_up(&dialed.client) => {
                self.healthy_probes += 1;
                debug!(connection = %self.name(), healthy = self.healthy_probes, needed,
                    "primary probe succeeded");
                if self.healthy_probes >= needed {
                    info!(connection = %self.name(), checks = needed, "primary healthy; failing back");
                    let grace = self.dialer.settings().failback_grace;
                    self.activate(0, dialed, grace);
                    return;
                }
                self.retire(dialed.client, Duration::ZERO);
            }
            Ok(dialed) => {
                debug!(connection = %self.name(), "primary probe lost its connection; count reset");
                self.healthy_probes = 0;
                self.retire(dialed.client, Duration::ZERO);
            }
            Err(err) => {
                if self.healthy_probes > 0 {
                    debug!(connection = %self.name(), error = %err, "primary probe failed; count reset");
                }
                self.healthy_probes = 0;
            }
        }
        self.pending = Some(self.probe());
    }

    /// Makes `dialed` the client in use: publishes it first, then retires the previous client
    /// (if any) after `grace`, and schedules probes of the primary when on a backup.
    fn activate(&mut self, server: usize, dialed: Dialed, grace: Duration) {
        self.client_tx.send_replace(Some(dialed.client.clone()));
        let shown = self.dialer.servers()[server].shown.clone();
        self.set_state(ConnState::Connected { url: shown, primary: server == 0 });
        let previous = self.active.replace(Active {
            client: dialed.client,
            generation: dialed.generation,
            server,
        });
        if let Some(previous) = previous {
            self.retire(previous.client, grace);
        }
        self.healthy_probes = 0;
        self.pending = Some(if server == 0 { self.check() } else { self.probe() });
    }

    /// Drains `client` after `grace` (at once on shutdown) in a task of its own.
    fn retire(&mut self, client: Client, grace: Duration) {
        let mut shutdown = self.shutdown.clone();
        self.retiring.spawn(async move {
            if !grace.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(grace) => {}
                    () = shutdown_signal(&mut shutdown) => {}
                }
            }
            // Errors mean the client is closed already, which is the goal.
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, client.drain()).await;
        });
    }

    /// A connection round after `delay`: each server in order, primary first, until one
    /// accepts.
    fn round(&self, delay: Duration) -> BoxFuture<'static, Outcome> {
        let dialer = self.dialer.clone();
        async move {
            tokio::time::sleep(delay).await;
            let mut last = None;
            for index in 0..dialer.servers().len() {
                match dialer.dial(index).await {
                    Ok(dialed) => return Outcome::Round(Ok((index, dialed))),
                    Err(err) => {
                        debug!(connection = %dialer.settings().name, error = %err, "connect failed");
                        last = Some(err);
                    }
                }
            }
            Outcome::Round(Err(last.unwrap_or(ConnectionError::NoServers)))
        }
        .boxed()
    }

    /// A liveness check of the client in use (on the primary) after `failback_check_interval`.
    fn check(&self) -> BoxFuture<'static, Outcome> {
        let interval = self.dialer.settings().failback_check_interval;
        tokio::time::sleep(interval).map(|()| Outcome::Check).boxed()
    }

    /// A probe of the primary after `failback_check_interval`.
    fn probe(&self) -> BoxFuture<'static, Outcome> {
        let dialer = self.dialer.clone();
        async move {
            tokio::time::sleep(dialer.settings().failback_check_interval).await;
            Outcome::Probe(dialer.probe_primary().await)
        }
        .boxed()
    }

    /// Shutdown: cancels the pending operation, withdraws and drains the client in use (waiting
    /// for it to close), drains retiring clients, then reports [`ConnState::Stopped`].
    async fn stop(mut self) {
        self.pending = None;
        self.client_tx.send_replace(None);
        if let Some(active) = self.active.take() {
            let generation = active.generation;
            let drained = async {
                active.client.drain().await.ok()?;
                while let Some((event_generation, event)) = self.events.recv().await {
                    if event_generation == generation && event == ClientEvent::Closed {
                        return Some(());
                    }
                }
                None
            };
            if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.ok().flatten().is_none() {
                warn!(connection = %self.name(), "client did not finish draining in time");
            }
        }
        let retiring = std::mem::take(&mut self.retiring);
        if tokio::time::timeout(DRAIN_TIMEOUT, retiring.join_all()).await.is_err() {
            warn!(connection = %self.name(), "replaced clients did not finish draining in time");
        }
        self.set_state(ConnState::Stopped);
    }
}

/// Whether async-nats reports `client` connected.
fn is_up(client: &Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// Completes when shutdown is signalled: the value is `true`, or the sender is gone.
async fn shutdown_signal(shutdown: &mut watch::Receiver<bool>) {
    // `wait_for` errs only when the sender is dropped, which also means shutdown.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The outcome of the pending operation; never completes while there is none. Cancel-safe:
/// an interrupted wait leaves the operation pending.
async fn next_outcome(pending: &mut Option<BoxFuture<'static, Outcome>>) -> Outcome {
    match pending.as_mut() {
        Some(operation) => {
            let outcome = operation.await;
            *pending = None;
            outcome
        }
        None => std::future::pending().await,
    }
}
