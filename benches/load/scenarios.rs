//! The main run: one deployment (in-process service), then the storms in a fixed order.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event};

use crate::deploy::{self, password_of, InProcess, Workspace};
use crate::report::{secs, Report};
use crate::server::NatsProcess;
use crate::storm::{progress, storm, Latency, Storm};
use crate::{Args, LoadError, Scenario};

/// Clients of the warm-up storm that precedes the measured ones.
const WARM_UP_CLIENTS: usize = 50;
/// How long closing a storm's connections may take on the server.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(60);

/// A running deployment of the main run.
pub struct Deployment {
    /// Store and temp dir.
    pub ws: Workspace,
    /// The server.
    pub server: NatsProcess,
    /// Its client URL.
    pub url: String,
    /// Connections the server holds with no storm (pbn's own).
    pub baseline: u64,
    service: Option<InProcess>,
    tokens: Vec<String>,
    creds: Vec<String>,
    password: Vec<String>,
    reconnect: Vec<String>,
}

/// Builds the store (token, password and reconnect users, creds), starts nats-server and the
/// service in-process, and waits until a login through the callout works.
pub async fn deploy(
    args: &Args,
    binary: &Path,
    report: &mut Report,
) -> Result<Deployment, LoadError> {
    let started = Instant::now();
    let ws = Workspace::new()?;
    eprintln!("setup: users and creds (argon2id production parameters for password users)");
    let tokens = deploy::token_users(&ws.store, args.clients).tokens;
    let password = deploy::password_users(&ws.store, "pw", args.password_clients)?;
    let reconnect = deploy::password_users(&ws.store, "rc", args.reconnect_clients)?;
    let creds = deploy::mint_creds(&ws.store, args.clients)?;
    let (server, url) = deploy::start_server(&ws.store, ws.dir.path(), binary).await?;
    let settings = deploy::settings(&ws.store_path, &url)?;
    let service = InProcess::start(settings, ws.store.clone());
    let ready = deploy::wait_ready(&url, &tokens[0]).await?;
    let baseline = server.connections().await?;
    report.fact("setup (store, hashes, creds, server, service)", secs(started.elapsed()), "");
    report.fact("service start to first callout login", secs(ready), "in-process service");
    Ok(Deployment {
        ws,
        server,
        url,
        baseline,
        service: Some(service),
        tokens,
        creds,
        password,
        reconnect,
    })
}

impl Deployment {
    /// Closes a storm's clients and waits until the server has dropped them.
    pub async fn release(&self, s: Storm) {
        drop(s.clients);
        if !self.server.wait_connections_at_most(self.baseline, RELEASE_TIMEOUT).await {
            eprintln!("warning: the server still holds more than {} connections", self.baseline);
        }
    }

    /// Stops the service and starts one with `settings` on the same store, once it admits a
    /// login.
    pub async fn replace_service(&mut self, settings: pbn::Settings) -> Result<(), LoadError> {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.service = Some(InProcess::start(settings, self.ws.store.clone()));
        deploy::wait_ready(&self.url, &self.tokens[0]).await?;
        Ok(())
    }

    /// The connect options of token user `i`.
    pub fn token(&self, i: usize) -> ConnectOptions {
        ConnectOptions::with_token(self.tokens[i].clone())
    }

    /// Stops the service and the server.
    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.server.stop().await;
    }
}

/// Token logins through the callout versus pre-issued creds (no callout), same run and size.
pub async fn token_vs_creds(d: &Deployment, args: &Args, report: &mut Report) {
    let warm = storm(
        "warm-up (token)",
        &d.url,
        WARM_UP_CLIENTS.min(args.clients),
        args.concurrency,
        |i| ConnectOptions::with_token(d.tokens[i].clone()),
    )
    .await;
    d.release(warm).await;
    let creds = storm("storm: creds (no callout)", &d.url, args.clients, args.concurrency, |i| {
        ConnectOptions::with_credentials(&d.creds[i]).expect("minted creds are well formed")
    })
    .await;
    report.storm("creds, pre-issued (no callout)", &creds, "baseline");
    d.release(creds).await;
    let token = storm("storm: token (callout)", &d.url, args.clients, args.concurrency, |i| {
        ConnectOptions::with_token(d.tokens[i].clone())
    })
    .await;
    report.storm("token login (callout)", &token, "distinct users, one token each");
    d.release(token).await;
    if let (Some(t), Some(c)) =
        (report.rate_of("token login (callout)"), report.rate_of("creds, pre-issued (no callout)"))
    {
        let ratio = t / c.max(1e-9);
        let verdict = if ratio >= 0.5 { "target ≥ 0.50 met" } else { "target ≥ 0.50 missed" };
        report.fact("connects/s ratio token (callout) / creds", format!("{ratio:.2}"), verdict);
    }
}

fn password_opts(name: &str) -> ConnectOptions {
    ConnectOptions::with_user_and_password(name.to_string(), password_of(name))
}

/// Password logins: first logins (argon2 per login), then the same users again (cache hits).
pub async fn password(d: &Deployment, args: &Args, report: &mut Report) {
    let n = d.password.len();
    let cold = storm("storm: password cold", &d.url, n, args.concurrency, |i| {
        password_opts(&d.password[i])
    })
    .await;
    report.storm("password login, cold (argon2id)", &cold, "production argon2id (19 MiB, t=2)");
    d.release(cold).await;
    let warm = storm("storm: password warm", &d.url, n, args.concurrency, |i| {
        password_opts(&d.password[i])
    })
    .await;
    report.storm("password login, warm (cache hit)", &warm, "same users again");
    d.release(warm).await;
}

/// Per-client reconnect tracking, fed by the clients' event callbacks.
#[derive(Default)]
struct Tracker {
    /// Set when the server is stopped: events before it are the initial connects.
    armed: AtomicBool,
    /// Set when the restarted server is ready: errors before it are refused TCP connects.
    ready: AtomicBool,
    back: AtomicUsize,
    auth_errors: AtomicUsize,
    other_errors: AtomicUsize,
    first_error: Mutex<Option<String>>,
    times: Mutex<Vec<Instant>>,
}

#[derive(Default)]
struct ClientFlags {
    lost: AtomicBool,
    back: AtomicBool,
}

impl Tracker {
    fn on(&self, flags: &ClientFlags, event: &Event) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        match event {
            Event::Disconnected => flags.lost.store(true, Ordering::SeqCst),
            // The first connect after a loss counts (the swap runs only once lost is set).
            Event::Connected
                if flags.lost.load(Ordering::SeqCst)
                    && !flags.back.swap(true, Ordering::SeqCst) =>
            {
                self.back.fetch_add(1, Ordering::SeqCst);
                self.times.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
            }
            Event::ServerError(_) | Event::ClientError(_) if self.ready.load(Ordering::SeqCst) => {
                let text = event.to_string();
                let lower = text.to_ascii_lowercase();
                if lower.contains("authoriz") || lower.contains("authentication") {
                    self.auth_errors.fetch_add(1, Ordering::SeqCst);
                } else {
                    self.other_errors.fetch_add(1, Ordering::SeqCst);
                }
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(text);
            }
            _ => {}
        }
    }
}

/// Connects the reconnect set (cold logins), every client reporting to `tracker`.
async fn connect_reconnect_set(d: &Deployment, args: &Args, tracker: &Arc<Tracker>) -> Storm {
    let n = d.reconnect.len();
    storm("reconnect set: cold logins", &d.url, n, args.cold_concurrency, |i| {
        let flags = Arc::new(ClientFlags::default());
        let t = tracker.clone();
        let opts = password_opts(&d.reconnect[i]).event_callback(move |ev| {
            let (t, flags) = (t.clone(), flags.clone());
            async move { t.on(&flags, &ev) }
        });
        match args.client_reconnect_delay {
            Some(delay) => opts.reconnect_delay_callback(move |_| delay),
            None => opts,
        }
    })
    .await
}

/// N password users connected, nats-server restarted: time until all are back, failures.
pub async fn reconnect(d: &mut Deployment, args: &Args, report: &mut Report) {
    let tracker = Arc::new(Tracker::default());
    let initial = connect_reconnect_set(d, args, &tracker).await;
    let delay = match args.client_reconnect_delay {
        Some(d) => format!("client reconnect delay {d:?}"),
        None => "async-nats default reconnect backoff".to_string(),
    };
    let note =
        format!("connected before the restart, {} in flight; {delay}", args.cold_concurrency);
    report.storm("password login, cold (reconnect set)", &initial, &note);
    let connected = initial.clients.len();
    tracker.armed.store(true, Ordering::SeqCst);
    let stopped = Instant::now();
    tracing::info!("stopping nats-server");
    let restarted = d.server.restart().await;
    let ready = Instant::now();
    tracing::info!(ok = restarted.is_ok(), "nats-server restarted");
    tracker.ready.store(true, Ordering::SeqCst);
    if let Err(e) = restarted {
        report.failures.push(format!("reconnect: nats-server did not restart: {e}"));
        return;
    }
    let bar = progress("reconnect storm: back", connected);
    while tracker.back.load(Ordering::SeqCst) < connected && stopped.elapsed() < args.deadline {
        bar.set_position(tracker.back.load(Ordering::SeqCst) as u64);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    tracing::info!(back = tracker.back.load(Ordering::SeqCst), "reconnect storm over");
    report_reconnect(&tracker, connected, ready - stopped, ready, args, report);
    drop(initial.clients);
    if !d.server.wait_connections_at_most(d.baseline, RELEASE_TIMEOUT).await {
        eprintln!("warning: the server still holds reconnect-storm connections");
    }
}

/// The reconnect facts: how many came back, when, and the logins refused meanwhile.
fn report_reconnect(
    tracker: &Tracker,
    connected: usize,
    restart: Duration,
    ready: Instant,
    args: &Args,
    report: &mut Report,
) {
    let back = tracker.back.load(Ordering::SeqCst);
    let mut since_ready: Vec<Duration> = tracker
        .times
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|t| t.saturating_duration_since(ready))
        .collect();
    let lat = Latency::of(&mut since_ready);
    let (clients, deadline) =
        (format!("{back}/{connected}"), format!("deadline {}", secs(args.deadline)));
    report.fact("reconnect storm: clients back", clients, deadline);
    report.fact("reconnect storm: server stop+start", secs(restart), "SIGTERM, then start");
    let ms = |d: Duration| d.as_millis();
    report.fact(
        "reconnect storm: server ready → all back",
        secs(lat.max),
        format!("per client p50 {} / p99 {} / max {} ms", ms(lat.p50), ms(lat.p99), ms(lat.max)),
    );
    let first = tracker.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.fact(
        "reconnect storm: refused logins after the restart",
        tracker.auth_errors.load(Ordering::SeqCst).to_string(),
        format!(
            "authorization errors seen by clients once the server was up (other errors: {}); first: {}",
            tracker.other_errors.load(Ordering::SeqCst),
            first.as_deref().unwrap_or("none")
        ),
    );
    if back < connected {
        let missing = connected - back;
        report.failures.push(format!("reconnect: {missing} of {connected} clients not back"));
    }
}

/// Whether `s` is in the list of scenarios to skip.
pub fn skipped(args: &Args, s: Scenario) -> bool {
    if !args.only.is_empty() {
        return !args.only.contains(&s);
    }
    args.skip.contains(&s)
}
