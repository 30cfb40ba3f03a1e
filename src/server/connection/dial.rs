//! Making one async-nats client for one server, with fresh credentials and its events tagged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr};
use tokio::sync::mpsc;

use super::{parse_server, redact_url, ConnectionAuth, ConnectionError, ConnectionSettings};
use crate::keys::{KeyKind, KeyPair};

/// A connection event the supervisor acts on, forwarded from a client's event callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientEvent {
    /// The client lost its server.
    Disconnected,
    /// The client is closed (drained, or its handler ended).
    Closed,
}

/// An event together with the generation of the client that produced it.
pub(super) type TaggedEvent = (u64, ClientEvent);

/// A freshly connected client and its generation (the tag on its events).
#[derive(Debug)]
pub(super) struct Dialed {
    /// The connected client.
    pub client: Client,
    /// Unique per client made by one [`Dialer`].
    pub generation: u64,
}

/// One configured server: the address async-nats dials and the form shown in logs.
#[derive(Debug, Clone)]
pub(super) struct Server {
    /// Parsed address (may carry user-info, used by async-nats for auth).
    pub addr: ServerAddr,
    /// The URL with user-info hidden.
    pub shown: String,
}

/// Makes clients for the supervisor and for probes; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub(super) struct Dialer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: ConnectionSettings,
    servers: Vec<Server>,
    auth: ConnectionAuth,
    events: mpsc::UnboundedSender<TaggedEvent>,
    next_generation: AtomicU64,
}

impl Dialer {
    /// A dialer for `settings` whose clients report their events to `events`.
    pub fn new(
        settings: ConnectionSettings,
        auth: ConnectionAuth,
        events: mpsc::UnboundedSender<TaggedEvent>,
    ) -> Result<Dialer, ConnectionError> {
        let servers = settings
            .servers
            .iter()
            .map(|url| Ok(Server { addr: parse_server(url)?, shown: redact_url(url) }))
            .collect::<Result<Vec<_>, ConnectionError>>()?;
        if servers.is_empty() {
            return Err(ConnectionError::NoServers);
        }
        let next_generation = AtomicU64::new(1);
        Ok(Dialer { inner: Arc::new(Inner { settings, servers, auth, events, next_generation }) })
    }

    /// The settings this dialer was made with.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.inner.settings
    }

    /// The configured servers, primary first (never empty).
    pub fn servers(&self) -> &[Server] {
        &self.inner.servers
    }

    /// Connects to server `index` with fresh credentials, within `connect_timeout`.
    pub async fn dial(&self, index: usize) -> Result<Dialed, ConnectionError> {
        let server = &self.inner.servers[index];
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let options = self.options(generation).await?;
        let timeout = self.inner.settings.connect_timeout;
        match tokio::time::timeout(timeout, options.connect(server.addr.clone())).await {
            Ok(Ok(client)) => Ok(Dialed { client, generation }),
            Ok(Err(source)) => Err(ConnectionError::Connect { url: server.shown.clone(), source }),
            Err(_) => Err(ConnectionError::Timeout { url: server.shown.clone(), timeout }),
        }
    }

    /// A health probe of the primary: a new connection (fresh credentials) whose handshake
    /// completes (CONNECT and PING answered by PONG, so the server is up, routing its protocol
    /// and accepting these credentials), then whose flush (async-nats empties its write buffer
    /// onto the socket) completes, each within `connect_timeout`.
    pub async fn probe_primary(&self) -> Result<Dialed, ConnectionError> {
        let dialed = self.dial(0).await?;
        let url = &self.inner.servers[0].shown;
        let timeout = self.inner.settings.connect_timeout;
        match tokio::time::timeout(timeout, dialed.client.flush()).await {
            Ok(Ok(())) => Ok(dialed),
            // Dropping the only handle of the client closes its connection.
            Ok(Err(source)) => Err(ConnectionError::Flush { url: url.clone(), source }),
            Err(_) => Err(ConnectionError::Timeout { url: url.clone(), timeout }),
        }
    }

    /// Options for one client: pinned to its server, one reconnect attempt at most (the
    /// minimum async-nats allows; the supervisor handles failover), events tagged with
    /// `generation`, TLS required and the CA trusted when one is configured, and credentials
    /// from the provider when JWT auth is configured.
    async fn options(&self, generation: u64) -> Result<ConnectOptions, ConnectionError> {
        let settings = &self.inner.settings;
        let events = self.inner.events.clone();
        let mut options = ConnectOptions::new()
            .name(&settings.name)
            .connection_timeout(settings.connect_timeout)
            .request_timeout(Some(settings.request_timeout))
            .ping_interval(settings.ping_interval)
            .subscription_capacity(settings.subscription_capacity)
            .ignore_discovered_servers()
            .retain_servers_order()
            .max_reconnects(1)
            .reconnect_delay_callback(|_| Duration::ZERO);
        if let Some(prefix) = &settings.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        options = options.event_callback(move |event| {
            let forwarded = match event {
                async_nats::Event::Disconnected => Some(ClientEvent::Disconnected),
                async_nats::Event::Closed => Some(ClientEvent::Closed),
                _ => None,
            };
            // A send fails only once the supervisor is gone, when nobody needs the event.
            if let Some(event) = forwarded {
                let _ = events.send((generation, event));
            }
            async {}
        });
        if let Some(ca) = &settings.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match &self.inner.auth {
            ConnectionAuth::Plain => Ok(options),
            ConnectionAuth::Jwt(provider) => self.with_credentials(options, provider.clone()).await,
        }
    }

    /// Adds a user JWT and a nonce signer from one call of `provider` (on a blocking thread).
    async fn with_credentials(
        &self,
        options: ConnectOptions,
        provider: super::CredentialsProvider,
    ) -> Result<ConnectOptions, ConnectionError> {
        let name = &self.inner.settings.name;
        let credentials = tokio::task::spawn_blocking(move || provider())
            .await
            .map_err(|join| ConnectionError::Credentials {
                name: name.clone(),
                source: format!("credentials provider failed to run: {join}").into(),
            })?
            .map_err(|source| ConnectionError::Credentials { name: name.clone(), source })?;
        let key = KeyPair::from_seed_of(&credentials.seed, KeyKind::User)
            .map_err(|source| ConnectionError::InvalidSeed { name: name.clone(), source })?;
        let key = Arc::new(key);
        Ok(options.jwt(credentials.jwt, move |nonce| {
            let key = key.clone();
            async move { Ok(key.sign(&nonce)) }
        }))
    }
}
