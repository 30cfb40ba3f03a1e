//! Managed NATS connections: primary + backups, bootstrap without NATS, failover, failback.
//!
//! `pbn serve` holds two NATS identities (the callout service user and the system user); each
//! gets one [`Connection`]. A connection is a single supervisor task that owns every decision
//! about which server the identity talks to, and publishes the result through two watch
//! channels: [`Connection::client`] (`Some(client)` while connected, `None` while down) and
//! [`Connection::state`] (a [`ConnState`]). Consumers (the callout subscription, the claims
//! publisher) watch the client channel and (re)subscribe whenever the client changes.
//!
//! # Who reconnects: pbn, not async-nats
//!
//! Every async-nats client made here is pinned to ONE server URL (discovered servers ignored)
//! and allowed a single reconnect attempt, the minimum async-nats supports. When a client
//! loses its server (its `Disconnected` event, backed up by a check of its state every
//! `failback_check_interval`), the supervisor drops it from the client channel at once and
//! dials again itself: primary first, then the backups in order, rounds separated by capped exponential
//! backoff. Managing failover here rather than inside async-nats is what makes these
//! guarantees possible:
//! - the credentials provider runs at every connect, so each connection gets a fresh,
//!   short-lived user JWT (async-nats would replay the first JWT on its own reconnects);
//! - the state always names the server in use, so failback knows when it is needed;
//! - the primary is always tried first, on the first connect as after every loss;
//! - failback is a swap between two live clients, so it never leaves a gap.
//!
//! # Failback
//!
//! While on a backup, every `failback_check_interval` the supervisor opens a separate test
//! connection to the primary (fresh credentials; the handshake is a CONNECT and PING/PONG
//! round trip) and flushes it, all within `connect_timeout`. Only
//! after `failback_healthy_checks` such probes succeed in a row does it fail back, and it does
//! so by promoting the last probe connection: the new client is published first, and the old
//! one is drained only after `request_timeout`, so requests in flight on it can finish.
//!
//! # What is never done
//!
//! No lock is held across network I/O (one task owns all state; a probe or dial in flight is
//! a future that the task drops when the situation changes, so a stale result can never be
//! applied). A slow or failed request never counts as a dead connection: only async-nats'
//! own disconnect detection (socket errors, missed PINGs) does. No task outlives shutdown.

mod dial;
mod supervisor;

pub use crate::config::redact_url;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::keys::{KeyError, Seed};

/// Settings of one managed connection; [`ConnectionSettings::default`] explains each default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Server URLs: the primary first, then the backups in the order they are tried.
    pub servers: Vec<String>,
    /// Connection name shown by the server (`/connz`, logs), e.g. `pbn-callout`.
    pub name: String,
    /// Longest time one connection attempt (TCP, TLS, INFO, CONNECT, PONG) may take.
    pub connect_timeout: Duration,
    /// Pause after the first round in which no server could be reached; doubled per round.
    pub retry_backoff_base: Duration,
    /// Cap of the pause between rounds of connection attempts.
    pub retry_backoff_max: Duration,
    /// How often the primary is probed while connected to a backup.
    pub failback_check_interval: Duration,
    /// Consecutive successful probes of the primary needed before failing back to it.
    pub failback_healthy_checks: u32,
    /// Default timeout of requests made with the client.
    pub request_timeout: Duration,
    /// How long a replaced client is kept open after a failback so that its requests in
    /// flight can finish; at least `request_timeout` in production.
    pub failback_grace: Duration,
    /// How often the client PINGs the server; a server that misses two PONGs in a row is
    /// declared lost (async-nats), which starts a failover.
    pub ping_interval: Duration,
    /// Messages each subscription of the client buffers before the server sees a slow
    /// consumer. The callout sets this from its settings: a connect storm queues here while the
    /// bounded handlers catch up, rather than in unbounded tasks.
    pub subscription_capacity: usize,
    /// CA (PEM) trusted for the servers' certificates besides the system roots; when set,
    /// every connection requires TLS.
    pub tls_ca: Option<std::path::PathBuf>,
    /// The inbox prefix of the client's requests (`_INBOX` when `None`): a user allowed only
    /// its own inboxes (a joined replica's, `_INBOX.<its key>`) needs its replies there.
    pub inbox_prefix: Option<String>,
}

impl Default for ConnectionSettings {
    /// Defaults, and why:
    /// - `servers`: `nats://127.0.0.1:4222`, the nats-server default listen address;
    /// - `name`: `pbn`, so the connection is recognisable in `/connz`;
    /// - `connect_timeout` 5 s: async-nats' own default, enough for TLS plus an auth callout on
    ///   a loaded server, short enough that a black-holed primary delays failover only briefly;
    /// - `retry_backoff_base` 250 ms: a restarting server is back within about a second, so
    ///   the first retries come quickly;
    /// - `retry_backoff_max` 10 s: bounds how long pbn stays unconnected after NATS comes up,
    ///   while keeping a long outage down to one attempt per server every 10 s;
    /// - `failback_check_interval` 5 s and `failback_healthy_checks` 3: the primary must stay
    ///   healthy for about 15 s before pbn moves back, so a flapping or still-starting primary
    ///   does not bounce the connection back and forth;
    /// - `request_timeout` 10 s: async-nats' default; a full resolver answering a claims update
    ///   under load can take seconds, and a timeout is never taken as a dead connection;
    /// - `failback_grace` 10 s: the request timeout, so every request in flight on the old
    ///   client when it is replaced gets its full time;
    /// - `tls_ca` none: public CAs are trusted through the system roots;
    /// - `inbox_prefix` none: async-nats' `_INBOX`;
    /// - `ping_interval` 10 s: a silently dead server (no TCP reset) is noticed after about
    ///   30 s instead of the 3 minutes async-nats' 60 s default would take.
    fn default() -> Self {
        ConnectionSettings {
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            name: "pbn".to_owned(),
            connect_timeout: Duration::from_secs(5),
            retry_backoff_base: Duration::from_millis(250),
            retry_backoff_max: Duration::from_secs(10),
            failback_check_interval: crate::config::DEFAULT_FAILBACK_CHECK_INTERVAL,
            failback_healthy_checks: crate::config::DEFAULT_FAILBACK_HEALTHY_CHECKS,
            request_timeout: Duration::from_secs(10),
            failback_grace: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            subscription_capacity: 65_536,
            tls_ca: None,
            inbox_prefix: None,
        }
    }
}

impl ConnectionSettings {
    /// Checks the settings: at least one server, every URL valid, every duration non-zero,
    /// the backoff cap not below its base, and at least one healthy check before failback.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        if self.servers.is_empty() {
            return Err(ConnectionError::NoServers);
        }
        for url in &self.servers {
            parse_server(url)?;
        }
        let durations = [
            ("connect_timeout", self.connect_timeout),
            ("retry_backoff_base", self.retry_backoff_base),
            ("retry_backoff_max", self.retry_backoff_max),
            ("failback_check_interval", self.failback_check_interval),
            ("request_timeout", self.request_timeout),
            ("ping_interval", self.ping_interval),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(ConnectionError::InvalidSetting { name, reason: "must not be zero" });
        }
        if self.retry_backoff_max < self.retry_backoff_base {
            return Err(ConnectionError::InvalidSetting {
                name: "retry_backoff_max",
                reason: "must not be below retry_backoff_base",
            });
        }
        if self.failback_healthy_checks == 0 {
            return Err(ConnectionError::InvalidSetting {
                name: "failback_healthy_checks",
                reason: "must be at least 1",
            });
        }
        Ok(())
    }

    /// The pause before connection round `failed_rounds + 1`, after `failed_rounds` rounds in
    /// a row reached no server: none before the first round, then the base doubled per failed
    /// round, capped at the maximum.
    pub fn backoff(&self, failed_rounds: u32) -> Duration {
        match failed_rounds {
            0 => Duration::ZERO,
            n => crate::backoff::exponential(self.retry_backoff_base, self.retry_backoff_max, n),
        }
    }
}

/// Parses a server URL as async-nats will use it; errors name the URL with any password hidden.
fn parse_server(url: &str) -> Result<async_nats::ServerAddr, ConnectionError> {
    async_nats::ServerAddr::from_str(url).map_err(|err| ConnectionError::InvalidServerUrl {
        url: redact_url(url),
        reason: err.to_string(),
    })
}

/// A user JWT and the seed of the user key it was issued to: what one connection presents.
///
/// `Debug` shows neither (the seed is a secret; the JWT is a credential of its user).
pub struct Credentials {
    /// The user JWT (`sub` = the public key of `seed`).
    pub jwt: String,
    /// The user seed that signs the server's nonce.
    pub seed: Seed,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("jwt", &format_args!("<{} bytes>", self.jwt.len()))
            .field("seed", &self.seed)
            .finish()
    }
}

/// Error type of a [`CredentialsProvider`]: any error (`?` converts one), reported in logs
/// and in [`ConnectionError::Credentials`], so it must not carry a secret.
pub type CredentialsError = Box<dyn std::error::Error + Send + Sync>;

/// Produces the credentials for one connection. Called at every connect (first connect,
/// each reconnect, each failback probe), so it can mint a fresh, short-lived user JWT each
/// time. It runs on a blocking thread and may read the store.
pub type CredentialsProvider = Arc<dyn Fn() -> Result<Credentials, CredentialsError> + Send + Sync>;

/// How a managed connection authenticates.
#[derive(Clone)]
pub enum ConnectionAuth {
    /// No credentials (servers without authentication, i.e. tests and local experiments).
    Plain,
    /// A user JWT plus a nonce signature, from a provider called at every connect.
    Jwt(CredentialsProvider),
}

impl ConnectionAuth {
    /// JWT authentication with credentials from `provider` (see [`CredentialsProvider`]).
    pub fn jwt<F>(provider: F) -> Self
    where
        F: Fn() -> Result<Credentials, CredentialsError> + Send + Sync + 'static,
    {
        ConnectionAuth::Jwt(Arc::new(provider))
    }
}

impl fmt::Debug for ConnectionAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionAuth::Plain => f.write_str("Plain"),
            ConnectionAuth::Jwt(_) => f.write_str("Jwt(<provider>)"),
        }
    }
}

/// Where a managed connection stands; every change is logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Not connected yet since start: no server has been reachable (normal at startup).
    Bootstrapping,
    /// Connected to `url` (user-info hidden); `primary` when it is the first configured server.
    Connected {
        /// The server in use, as configured, with any password hidden.
        url: String,
        /// Whether `url` is the primary (the first configured server).
        primary: bool,
    },
    /// The connection was lost; looking for a server (primary first).
    Reconnecting,
    /// Shut down: the client was drained and the supervisor has ended.
    Stopped,
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnState::Bootstrapping => f.write_str("bootstrapping"),
            ConnState::Connected { url, primary: true } => write!(f, "connected to primary {url}"),
            ConnState::Connected { url, primary: false } => write!(f, "connected to backup {url}"),
            ConnState::Reconnecting => f.write_str("reconnecting"),
            ConnState::Stopped => f.write_str("stopped"),
        }
    }
}

/// Errors of the connection module. URLs in messages have their user-info hidden.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The settings name no server.
    #[error("no nats server configured")]
    NoServers,
    /// A server URL cannot be parsed (or has a scheme other than nats, tls, ws, wss).
    #[error("invalid nats server url {url}: {reason}")]
    InvalidServerUrl {
        /// The URL, user-info hidden.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid connection setting {name}: {reason}")]
    InvalidSetting {
        /// The setting's field name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`Connection::start`] was called outside a tokio runtime.
    #[error("connection {name} must be started inside a tokio runtime")]
    NoRuntime {
        /// The connection name.
        name: String,
    },
    /// The credentials provider failed (or panicked).
    #[error("credentials for connection {name} unavailable: {source}")]
    Credentials {
        /// The connection name.
        name: String,
        /// The provider's error.
        source: CredentialsError,
    },
    /// The provider returned a seed that is not a user seed.
    #[error("credentials for connection {name} carry an invalid user seed: {source}")]
    InvalidSeed {
        /// The connection name.
        name: String,
        /// Why the seed was refused.
        source: KeyError,
    },
    /// A connection attempt failed (refused, unreachable, authentication, ...).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The server, user-info hidden.
        url: String,
        /// The async-nats error.
        source: async_nats::ConnectError,
    },
    /// A new connection was lost before it could be used.
    #[error("connection to {url} was lost right after it was made")]
    Lost {
        /// The server, user-info hidden.
        url: String,
    },
    /// A connection attempt or a probe's flush took longer than `connect_timeout`.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The server, user-info hidden.
        url: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// A probe connection to the primary connected but its flush (PING/PONG) failed.
    #[error("probe of {url} failed to flush: {source}")]
    Flush {
        /// The server, user-info hidden.
        url: String,
        /// The async-nats error.
        source: async_nats::client::FlushError,
    },
    /// The supervisor task ended abnormally (it panicked or was aborted).
    #[error("supervisor of connection {name} failed: {reason}")]
    Supervisor {
        /// The connection name.
        name: String,
        /// The join error.
        reason: String,
    },
}

/// A managed NATS connection: a handle on its supervisor task and its watch channels.
///
/// Dropping the handle does not stop the supervisor; the shutdown signal given to
/// [`Connection::start`] does (then [`Connection::join`] waits for the end).
#[derive(Debug)]
pub struct Connection {
    name: String,
    client: watch::Receiver<Option<async_nats::Client>>,
    state: watch::Receiver<ConnState>,
    task: JoinHandle<()>,
}

impl Connection {
    /// Validates `settings`, spawns the supervisor and returns at once, in
    /// [`ConnState::Bootstrapping`]: starting while no server is reachable is normal.
    ///
    /// The supervisor stops when `shutdown` becomes `true` or its sender is dropped (nobody
    /// could signal shutdown any more): it then drains the client and ends.
    pub fn start(
        settings: ConnectionSettings,
        auth: ConnectionAuth,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Connection, ConnectionError> {
        settings.validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ConnectionError::NoRuntime { name: settings.name.clone() })?;
        let name = settings.name.clone();
        let (supervisor, (client, state)) = supervisor::Supervisor::new(settings, auth, shutdown)?;
        let task = runtime.spawn(supervisor.run());
        Ok(Connection { name, client, state, task })
    }

    /// The current client (`None` while down or bootstrapping); `changed()` fires whenever it
    /// is replaced, which is when consumers must (re)subscribe on the new client.
    pub fn client(&self) -> watch::Receiver<Option<async_nats::Client>> {
        self.client.clone()
    }

    /// The connection state; `changed()` fires on every transition.
    pub fn state(&self) -> watch::Receiver<ConnState> {
        self.state.clone()
    }

    /// Whether the supervisor task has ended (after shutdown).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the supervisor has ended (after the shutdown signal).
    pub async fn join(self) -> Result<(), ConnectionError> {
        self.task
            .await
            .map_err(|err| ConnectionError::Supervisor { name: self.name, reason: err.to_string() })
    }
}

#[cfg(test)]
mod tests;
