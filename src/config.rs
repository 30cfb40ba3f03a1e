//! Settings for `pbn serve`: a TOML file, `PBN_*` environment variables and flags, checked once.
//!
//! Precedence is flags > environment > file > defaults. [`RawConfig`] is what the sources say,
//! every field optional; [`Settings::resolve`] merges them and validates the result, so the rest
//! of pbn only ever sees a checked [`Settings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use replica::ReplicaSettings;
use replica::{env_flag, replica_settings};

/// Errors of reading or checking settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for pbn.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("invalid value {value:?} for {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {name} = {value}: {message}")]
    Invalid {
        /// Setting name as written in the file.
        name: &'static str,
        /// The offending value.
        value: String,
        /// What is allowed.
        message: &'static str,
    },
}

/// Settings as the sources give them: every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Store file.
    pub store: Option<PathBuf>,
    /// NATS server URLs: the first is the primary, the rest are backups.
    pub servers: Option<Vec<String>>,
    /// Callout tuning.
    #[serde(default)]
    pub callout: RawCallout,
    /// Publisher tuning.
    #[serde(default)]
    pub publisher: RawPublisher,
    /// Failover tuning of the NATS connections.
    #[serde(default)]
    pub connection: RawConnection,
    /// CA (PEM) that the NATS servers' TLS certificates are checked against, for a private
    /// CA; public CAs are trusted without it. Set, every connection requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// Address of the HTTP listener (`/healthz`, `/readyz`); unset: no listener.
    pub http: Option<String>,
    /// Certificate chain (PEM) of the HTTP listener; with `http_tls_key`, it serves HTTPS.
    pub http_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `http_tls_cert`.
    pub http_tls_key: Option<PathBuf>,
    /// Networks of reverse proxies whose `X-Forwarded-For` the console's sign-in throttle
    /// believes (`--http-trusted-proxy CIDR`); unset: the header is ignored.
    pub http_trusted_proxies: Option<Vec<String>>,
    /// How long audit entries are kept, e.g. `"90d"` (the default).
    #[serde(default, with = "opt_duration")]
    pub audit_retention: Option<Duration>,
    /// Log line format of `pbn serve`, `text` or `json` (`--log-format` and
    /// `PBN_LOG_FORMAT` win); read when logging starts, checked with the rest.
    pub log_format: Option<String>,
    /// Whether login decisions and admin changes are published as audit events on NATS
    /// (default true).
    pub audit: Option<bool>,
    /// Replicated mode: the store is one replica of a log on JetStream (see [`ReplicaSettings`]).
    pub replicated: Option<bool>,
    /// Copies of the log stream JetStream keeps (1 on a single server, 3 recommended on a
    /// cluster); read only in replicated mode.
    pub log_replicas: Option<u32>,
    /// Log entries between snapshots (replicated mode; default 10,000).
    pub snapshot_entries: Option<u64>,
    /// The `[nats_conf]` section, read and checked by `pbn nats-conf`; `pbn serve` ignores it.
    #[serde(default, rename = "nats_conf")]
    pub _nats_conf: Option<toml::Table>,
}

/// `[callout]` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallout {
    /// Requests handled at once.
    pub max_concurrent: Option<usize>,
    /// Messages buffered by the callout subscription.
    pub subscription_capacity: Option<usize>,
    /// Queue group shared by replicas.
    pub queue_group: Option<String>,
    /// Lifetime of minted user JWTs when the role sets none, e.g. `"1h"`.
    #[serde(default, with = "opt_duration")]
    pub default_jwt_ttl: Option<Duration>,
    /// Entries in the verified-password cache.
    pub password_cache_size: Option<usize>,
    /// How long a verified password is trusted without argon2, e.g. `"10m"`.
    #[serde(default, with = "opt_duration")]
    pub password_cache_ttl: Option<Duration>,
    /// Failed logins allowed per (user, client host) within `throttle_window`; a host gets five
    /// times as many over all users.
    pub throttle_max_failures: Option<u32>,
    /// Failed logins per user within `throttle_window` from hosts that already failed for it.
    pub throttle_user_budget: Option<u32>,
    /// Window of the failure throttle, e.g. `"1m"`.
    #[serde(default, with = "opt_duration")]
    pub throttle_window: Option<Duration>,
    /// Password checks that may wait for argon2 before logins are refused as busy.
    pub argon_max_waiting: Option<usize>,
}

/// `[publisher]` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublisher {
    /// Delay after a change before pushing, so bursts coalesce.
    #[serde(default, with = "opt_duration")]
    pub debounce: Option<Duration>,
    /// First retry delay of a failing push.
    #[serde(default, with = "opt_duration")]
    pub backoff_base: Option<Duration>,
    /// Largest retry delay.
    #[serde(default, with = "opt_duration")]
    pub backoff_max: Option<Duration>,
    /// Attempts before an entry is marked failed.
    pub max_attempts: Option<u32>,
    /// How long failed entries are kept.
    #[serde(default, with = "opt_duration")]
    pub retention: Option<Duration>,
    /// How often failed entries past retention are cleaned.
    #[serde(default, with = "opt_duration")]
    pub cleanup_interval: Option<Duration>,
    /// Timeout of one NATS request.
    #[serde(default, with = "opt_duration")]
    pub request_timeout: Option<Duration>,
}

/// `[connection]` section: when pbn moves back to the primary server after a failover.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnection {
    /// How often the primary is probed while on a backup, e.g. `"5s"`.
    #[serde(default, with = "opt_duration")]
    pub failback_check_interval: Option<Duration>,
    /// Successful probes in a row before failing back.
    pub failback_healthy_checks: Option<u32>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Checked callout settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CalloutSettings {
    /// Requests handled at once: each holds a permit; argon2 work is bounded by this.
    pub max_concurrent: usize,
    /// Messages the callout subscription buffers before the server sees slow-consumer drops.
    pub subscription_capacity: usize,
    /// Queue group for replicas.
    pub queue_group: String,
    /// Minted JWT lifetime when the role sets none.
    pub default_jwt_ttl: Duration,
    /// Verified-password cache size.
    pub password_cache_size: usize,
    /// Verified-password cache TTL.
    pub password_cache_ttl: Duration,
    /// Failures allowed per (user, host) per window (five times it per host).
    pub throttle_max_failures: u32,
    /// Failures per user per window from hosts that already failed for it.
    pub throttle_user_budget: u32,
    /// Throttle window.
    pub throttle_window: Duration,
    /// Password checks that may wait for argon2 before logins are refused as busy.
    pub argon_max_waiting: usize,
}

/// Checked publisher settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PublisherSettings {
    /// Debounce before a push.
    pub debounce: Duration,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
    /// Attempts before failed.
    pub max_attempts: u32,
    /// Retention of failed entries.
    pub retention: Duration,
    /// Cleanup period.
    pub cleanup_interval: Duration,
    /// One request's timeout.
    pub request_timeout: Duration,
}

/// Checked `[connection]` settings; the defaults are those of
/// the connection (5 s, 3 checks: about 15 s of a healthy primary
/// before failing back).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionTuning {
    /// How often the primary is probed while on a backup.
    pub failback_check_interval: Duration,
    /// Successful probes in a row before failing back.
    pub failback_healthy_checks: u32,
}

/// The checked settings of `pbn serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Store file.
    pub store: PathBuf,
    /// Server URLs, primary first.
    pub servers: Vec<String>,
    /// Callout settings.
    pub callout: CalloutSettings,
    /// Publisher settings.
    pub publisher: PublisherSettings,
    /// Connection (failback) settings.
    pub connection: ConnectionTuning,
    /// CA of the servers' TLS certificates (checked readable PEM); `None`: system roots only.
    pub tls_ca: Option<PathBuf>,
    /// Where the HTTP listener binds; `None`: no listener.
    pub http: Option<std::net::SocketAddr>,
    /// The HTTP listener's certificate chain and key (PEM files): it serves HTTPS.
    pub http_tls: Option<(PathBuf, PathBuf)>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (none by default).
    pub http_trusted_proxies: Vec<ipnet::IpNet>,
    /// How long audit entries are kept.
    pub audit_retention: Duration,
    /// Whether audit events are published (`audit` key; on by default).
    pub audit: bool,
    /// Replicated mode (`replicated = true`, `--replicated`, `PBN_REPLICATED=1`); `None`: the
    /// embedded store alone, as a single node.
    pub replica: Option<ReplicaSettings>,
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text)
            .map_err(|e| ConfigError::Parse { path: path.into(), message: e.message().into() })
    }

    /// Reads `PBN_STORE`, `PBN_SERVERS` (comma-separated), `PBN_TLS_CA`, `PBN_HTTP`,
    /// `PBN_REPLICATED`, `PBN_LOG_REPLICAS`, `PBN_SNAPSHOT_ENTRIES` and `PBN_DEFAULT_JWT_TTL` from `vars`.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut raw = RawConfig::default();
        for (name, value) in vars {
            match name.as_str() {
                "PBN_STORE" if !value.is_empty() => raw.store = Some(value.into()),
                "PBN_SERVERS" => raw.servers = Some(split_list(&value)),
                "PBN_TLS_CA" if !value.is_empty() => raw.tls_ca = Some(value.into()),
                "PBN_HTTP" if !value.is_empty() => raw.http = Some(value),
                "PBN_REPLICATED" if !value.is_empty() => {
                    raw.replicated = Some(env_flag(&name, &value)?)
                }
                "PBN_LOG_REPLICAS" if !value.is_empty() => {
                    raw.log_replicas = Some(value.parse().map_err(|_| ConfigError::Env {
                        name: name.clone(),
                        value: value.clone(),
                        message: "a number of copies, 1 to 5".into(),
                    })?)
                }
                "PBN_SNAPSHOT_ENTRIES" if !value.is_empty() => {
                    raw.snapshot_entries = Some(value.parse().map_err(|_| ConfigError::Env {
                        name: name.clone(),
                        value: value.clone(),
                        message: "a number of log entries".into(),
                    })?)
                }
                "PBN_DEFAULT_JWT_TTL" => {
                    let ttl = humantime::parse_duration(&value).map_err(|e| ConfigError::Env {
                        name: name.clone(),
                        value: value.clone(),
                        message: e.to_string(),
                    })?;
                    raw.callout.default_jwt_ttl = Some(ttl);
                }
                _ => {}
            }
        }
        Ok(raw)
    }

    /// Overlays `other` on `self`: fields set in `other` win.
    pub fn overlay(mut self, other: RawConfig) -> Self {
        self.store = other.store.or(self.store);
        self.servers = other.servers.or(self.servers);
        self.tls_ca = other.tls_ca.or(self.tls_ca);
        self.http = other.http.or(self.http);
        self.http_tls_cert = other.http_tls_cert.or(self.http_tls_cert);
        self.http_tls_key = other.http_tls_key.or(self.http_tls_key);
        self.http_trusted_proxies = other.http_trusted_proxies.or(self.http_trusted_proxies);
        self.audit_retention = other.audit_retention.or(self.audit_retention);
        self.log_format = other.log_format.or(self.log_format);
        self.audit = other.audit.or(self.audit);
        self.replicated = other.replicated.or(self.replicated);
        self.log_replicas = other.log_replicas.or(self.log_replicas);
        self.snapshot_entries = other.snapshot_entries.or(self.snapshot_entries);
        let (c, o) = (&mut self.callout, other.callout);
        c.max_concurrent = o.max_concurrent.or(c.max_concurrent);
        c.subscription_capacity = o.subscription_capacity.or(c.subscription_capacity);
        c.queue_group = o.queue_group.or(c.queue_group.take());
        c.default_jwt_ttl = o.default_jwt_ttl.or(c.default_jwt_ttl);
        c.password_cache_size = o.password_cache_size.or(c.password_cache_size);
        c.password_cache_ttl = o.password_cache_ttl.or(c.password_cache_ttl);
        c.throttle_max_failures = o.throttle_max_failures.or(c.throttle_max_failures);
        c.throttle_user_budget = o.throttle_user_budget.or(c.throttle_user_budget);
        c.throttle_window = o.throttle_window.or(c.throttle_window);
        c.argon_max_waiting = o.argon_max_waiting.or(c.argon_max_waiting);
        let (p, o) = (&mut self.publisher, other.publisher);
        p.debounce = o.debounce.or(p.debounce);
        p.backoff_base = o.backoff_base.or(p.backoff_base);
        p.backoff_max = o.backoff_max.or(p.backoff_max);
        p.max_attempts = o.max_attempts.or(p.max_attempts);
        p.retention = o.retention.or(p.retention);
        p.cleanup_interval = o.cleanup_interval.or(p.cleanup_interval);
        p.request_timeout = o.request_timeout.or(p.request_timeout);
        let (n, o) = (&mut self.connection, other.connection);
        n.failback_check_interval = o.failback_check_interval.or(n.failback_check_interval);
        n.failback_healthy_checks = o.failback_healthy_checks.or(n.failback_healthy_checks);
        self
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

impl Settings {
    /// Merges file < env < flags and validates.
    pub fn resolve(
        file: Option<RawConfig>,
        env: RawConfig,
        flags: RawConfig,
    ) -> Result<Settings, ConfigError> {
        let raw = file.unwrap_or_default().overlay(env).overlay(flags);
        let callout = callout_settings(raw.callout)?;
        let publisher = publisher_settings(raw.publisher)?;
        if publisher.backoff_max < publisher.backoff_base {
            return Err(ConfigError::Invalid {
                name: "publisher.backoff_max",
                value: humantime::format_duration(publisher.backoff_max).to_string(),
                message: "must not be below publisher.backoff_base",
            });
        }
        let servers = raw.servers.unwrap_or_else(|| vec!["nats://127.0.0.1:4222".into()]);
        for s in &servers {
            check_url(s)?;
        }
        if servers.is_empty() {
            return Err(ConfigError::Invalid {
                name: "servers",
                value: "[]".into(),
                message: "at least one server URL is required",
            });
        }
        let tls_ca = raw.tls_ca.as_deref().map(check_ca).transpose()?;
        let store = raw.store.unwrap_or("pbn.redb".into());
        let connection = connection_tuning(raw.connection)?;
        let http = raw.http.as_deref().map(check_http).transpose()?;
        let http_tls = match (raw.http_tls_cert, raw.http_tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (cert, key) => {
                return Err(ConfigError::Invalid {
                    name: "http_tls_cert",
                    value: format!(
                        "{:?} / {:?}",
                        cert.unwrap_or_default(),
                        key.unwrap_or_default()
                    ),
                    message: "give both http_tls_cert and http_tls_key, or neither",
                })
            }
        };
        let http_trusted_proxies = proxies::parse(raw.http_trusted_proxies)?;
        let audit_retention = raw.audit_retention.unwrap_or(crate::admin::audit::DEFAULT_RETENTION);
        raw.log_format.as_deref().map(check_log_format).transpose()?;
        let audit = raw.audit.unwrap_or(true);
        let replica = replica_settings(raw.replicated, raw.log_replicas, raw.snapshot_entries)?;
        Ok(Settings {
            store,
            servers,
            callout,
            publisher,
            connection,
            tls_ca,
            http,
            http_tls,
            http_trusted_proxies,
            audit_retention,
            audit,
            replica,
        })
    }
}

/// Checked `[callout]` settings with their defaults: 64 requests in flight (argon2 work and its
/// memory are bounded by this), 8,192 buffered requests per subscription, 1 h JWTs.
fn callout_settings(c: RawCallout) -> Result<CalloutSettings, ConfigError> {
    Ok(CalloutSettings {
        max_concurrent: positive("callout.max_concurrent", c.max_concurrent.unwrap_or(64))?,
        subscription_capacity: positive(
            "callout.subscription_capacity",
            c.subscription_capacity.unwrap_or(8192),
        )?,
        queue_group: non_empty("callout.queue_group", c.queue_group.unwrap_or("pbn".into()))?,
        default_jwt_ttl: nonzero(
            "callout.default_jwt_ttl",
            c.default_jwt_ttl.unwrap_or(Duration::from_secs(3600)),
        )?,
        password_cache_size: c.password_cache_size.unwrap_or(100_000),
        password_cache_ttl: c.password_cache_ttl.unwrap_or(Duration::from_secs(600)),
        throttle_max_failures: bounded(
            "callout.throttle_max_failures",
            c.throttle_max_failures.unwrap_or(10),
            MAX_THROTTLE_FAILURES,
        )?,
        throttle_user_budget: bounded(
            "callout.throttle_user_budget",
            c.throttle_user_budget.unwrap_or(100),
            MAX_USER_BUDGET,
        )?,
        throttle_window: nonzero(
            "callout.throttle_window",
            c.throttle_window.unwrap_or(Duration::from_secs(60)),
        )?,
        argon_max_waiting: positive(
            "callout.argon_max_waiting",
            c.argon_max_waiting.unwrap_or(DEFAULT_ARGON_MAX_WAITING),
        )?,
    })
}

/// Checked `[publisher]` settings with their defaults.
fn publisher_settings(p: RawPublisher) -> Result<PublisherSettings, ConfigError> {
    Ok(PublisherSettings {
        debounce: p.debounce.unwrap_or(Duration::from_millis(200)),
        backoff_base: nonzero(
            "publisher.backoff_base",
            p.backoff_base.unwrap_or(Duration::from_millis(500)),
        )?,
        backoff_max: nonzero(
            "publisher.backoff_max",
            p.backoff_max.unwrap_or(Duration::from_secs(60)),
        )?,
        max_attempts: positive("publisher.max_attempts", p.max_attempts.unwrap_or(10) as usize)?
            as u32,
        retention: p.retention.unwrap_or(Duration::from_secs(7 * 24 * 3600)),
        cleanup_interval: nonzero(
            "publisher.cleanup_interval",
            p.cleanup_interval.unwrap_or(Duration::from_secs(3600)),
        )?,
        request_timeout: nonzero(
            "publisher.request_timeout",
            p.request_timeout.unwrap_or(Duration::from_secs(2)),
        )?,
    })
}

/// Checked `[connection]` settings with the connection's defaults.
fn connection_tuning(c: RawConnection) -> Result<ConnectionTuning, ConfigError> {
    let checks = c.failback_healthy_checks.unwrap_or(DEFAULT_FAILBACK_HEALTHY_CHECKS);
    Ok(ConnectionTuning {
        failback_check_interval: nonzero(
            "connection.failback_check_interval",
            c.failback_check_interval.unwrap_or(DEFAULT_FAILBACK_CHECK_INTERVAL),
        )?,
        failback_healthy_checks: positive("connection.failback_healthy_checks", checks as usize)?
            as u32,
    })
}

/// Checks a log format: `text` or `json`.
pub fn check_log_format(s: &str) -> Result<(), ConfigError> {
    match s {
        "text" | "json" => Ok(()),
        _ => Err(ConfigError::Invalid {
            name: "log_format",
            value: crate::model::clip(s),
            message: "the log format is text or json",
        }),
    }
}

/// Parses the HTTP listener address (`HOST:PORT`, an IP address and a port).
fn check_http(s: &str) -> Result<std::net::SocketAddr, ConfigError> {
    s.parse().map_err(|_| ConfigError::Invalid {
        name: "http",
        value: crate::model::clip(s),
        message: "an HTTP listen address is an IP address and a port, like 127.0.0.1:8222",
    })
}

fn check_url(s: &str) -> Result<(), ConfigError> {
    let ok = ["nats://", "tls://", "ws://", "wss://"].iter().any(|p| s.starts_with(p))
        && s.len() > s.find("://").map_or(0, |i| i + 3);
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name: "servers",
            value: redact_url(s),
            message: "a server URL starts with nats://, tls://, ws:// or wss:// and names a host",
        })
    }
}

/// Checks that the CA file is readable and holds a PEM certificate; returns it absolute.
fn check_ca(path: &Path) -> Result<PathBuf, ConfigError> {
    let text =
        std::fs::read(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    let pem = String::from_utf8_lossy(&text).contains("-----BEGIN CERTIFICATE-----");
    if !pem {
        return Err(ConfigError::Invalid {
            name: "tls_ca",
            value: path.display().to_string(),
            message: "the file holds no PEM certificate",
        });
    }
    std::path::absolute(path).map_err(|source| ConfigError::Read { path: path.into(), source })
}

/// Largest failure budget per user: the per-host budget is five times it, and the throttle
/// tracks at most 1,000 failures per key.
const MAX_THROTTLE_FAILURES: u32 = 200;

/// Largest per-user budget: the throttle tracks at most 1,000 failures per key.
const MAX_USER_BUDGET: u32 = 1000;

/// Default bound on password checks waiting for argon2: the default `max_concurrent`, so a full
/// burst of handlers queues (each waiting check is a parked task of a few hundred bytes; the
/// memory is in the argon2 work areas, one per core). Lower it to shed load sooner.
const DEFAULT_ARGON_MAX_WAITING: usize = 64;

fn bounded(name: &'static str, v: u32, max: u32) -> Result<u32, ConfigError> {
    if v == 0 || v > max {
        return Err(ConfigError::Invalid {
            name,
            value: v.to_string(),
            message: "must be between 1 and 200",
        });
    }
    Ok(v)
}

fn positive(name: &'static str, v: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(ConfigError::Invalid {
            name,
            value: "0".into(),
            message: "must be at least 1",
        });
    }
    Ok(v)
}

fn nonzero(name: &'static str, v: Duration) -> Result<Duration, ConfigError> {
    if v.is_zero() {
        return Err(ConfigError::Invalid { name, value: "0s".into(), message: "must be positive" });
    }
    Ok(v)
}

fn non_empty(name: &'static str, v: String) -> Result<String, ConfigError> {
    if v.trim().is_empty() || v.contains(char::is_whitespace) {
        return Err(ConfigError::Invalid { name, value: v, message: "must be one word" });
    }
    Ok(v)
}

/// How often a connection on a backup probes the primary, unless `[connection]` says otherwise.
pub const DEFAULT_FAILBACK_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Healthy probes in a row before a connection fails back to the primary.
pub const DEFAULT_FAILBACK_HEALTHY_CHECKS: u32 = 3;

/// `url` with its user-info part (`user:password@`) replaced by `***@`, for logs, states and
/// error messages: a server URL may carry a password or token.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
            format!("{prefix}***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

mod proxies;
mod replica;
#[cfg(test)]
mod tests;
