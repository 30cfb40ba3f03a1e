//! The `[nats_conf]` section of a pbn TOML file and the flags of `pbn nats-conf`: every field
//! optional as given, merged (flags win) and checked once into [`ServerOptions`].
//!
//! The file is the one `pbn serve --config` reads; `pbn nats-conf --config FILE` takes its
//! `store` and its `[nats_conf]` section and ignores the rest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::options::{
    self, check_name, check_pem, parse_size, ClusterOptions, HostPort, JetStreamOptions,
    ServerOptions, TlsOptions,
};
use super::NatsConfError;

/// A pbn TOML file as `pbn nats-conf` reads it.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawFile {
    /// Store file (shared with `pbn serve`).
    pub store: Option<PathBuf>,
    /// The server settings.
    #[serde(default)]
    pub nats_conf: RawNatsConf,
}

impl RawFile {
    /// Reads and parses `path`.
    pub fn from_file(path: &Path) -> Result<RawFile, NatsConfError> {
        let text = std::fs::read_to_string(path).map_err(|source| NatsConfError::Unreadable {
            name: "--config",
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| NatsConfError::ConfigFile {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }
}

/// `[nats_conf]`: one server's settings, every field optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNatsConf {
    /// `server_name` (default `pbn`; required with a cluster).
    pub server_name: Option<String>,
    /// Client listen `host:port` (default `127.0.0.1:4222`).
    pub listen: Option<String>,
    /// Client auth timeout, e.g. `"5s"`: also the callout's deadline.
    #[serde(default, with = "opt_duration")]
    pub auth_timeout: Option<Duration>,
    /// Resolver directory (default `OUT/jwt`).
    pub resolver_dir: Option<PathBuf>,
    /// HTTP monitoring `host:port`.
    pub http: Option<String>,
    /// `[nats_conf.tls]`.
    #[serde(default)]
    pub tls: RawTls,
    /// `[nats_conf.cluster]`.
    #[serde(default)]
    pub cluster: RawCluster,
    /// `[nats_conf.jetstream]`.
    #[serde(default)]
    pub jetstream: RawJetStream,
    /// `[nats_conf.leafnodes]`.
    #[serde(default)]
    pub leafnodes: RawLeafnodes,
}

/// `[nats_conf.tls]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Server certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Its key (PEM).
    pub key_file: Option<PathBuf>,
    /// CA of client certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Mutual TLS.
    pub verify: Option<bool>,
    /// Handshake timeout, e.g. `"2s"`.
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
}

/// `[nats_conf.cluster]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Cluster name (default `pbn`).
    pub name: Option<String>,
    /// Route listen `host:port`.
    pub listen: Option<String>,
    /// Routes, `host:port` each.
    pub routes: Option<Vec<String>>,
}

/// `[nats_conf.jetstream]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJetStream {
    /// Storage directory; setting it enables JetStream on the server.
    pub store_dir: Option<PathBuf>,
    /// Memory limit, e.g. `"1G"`.
    pub max_mem: Option<String>,
    /// File limit, e.g. `"100G"`.
    pub max_file: Option<String>,
}

/// `[nats_conf.leafnodes]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeafnodes {
    /// Leaf node listen `host:port`.
    pub listen: Option<String>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

impl RawNatsConf {
    /// Overlays `other` on `self`: every field set in `other` wins.
    pub fn overlay(self, o: RawNatsConf) -> RawNatsConf {
        RawNatsConf {
            server_name: o.server_name.or(self.server_name),
            listen: o.listen.or(self.listen),
            auth_timeout: o.auth_timeout.or(self.auth_timeout),
            resolver_dir: o.resolver_dir.or(self.resolver_dir),
            http: o.http.or(self.http),
            tls: RawTls {
                cert_file: o.tls.cert_file.or(self.tls.cert_file),
                key_file: o.tls.key_file.or(self.tls.key_file),
                ca_file: o.tls.ca_file.or(self.tls.ca_file),
                verify: o.tls.verify.or(self.tls.verify),
                timeout: o.tls.timeout.or(self.tls.timeout),
            },
            cluster: RawCluster {
                name: o.cluster.name.or(self.cluster.name),
                listen: o.cluster.listen.or(self.cluster.listen),
                routes: o.cluster.routes.or(self.cluster.routes),
            },
            jetstream: RawJetStream {
                store_dir: o.jetstream.store_dir.or(self.jetstream.store_dir),
                max_mem: o.jetstream.max_mem.or(self.jetstream.max_mem),
                max_file: o.jetstream.max_file.or(self.jetstream.max_file),
            },
            leafnodes: RawLeafnodes { listen: o.leafnodes.listen.or(self.leafnodes.listen) },
        }
    }

    /// Checks every value and fills the defaults; `out_dir` is where the file goes (the
    /// resolver directory defaults to `out_dir/jwt`).
    pub fn resolve(self, out_dir: &Path) -> Result<ServerOptions, NatsConfError> {
        let server_name = self.server_name.as_deref().map(|n| check_name("server_name", n));
        let cluster = self.cluster.resolve(server_name.is_some())?;
        let opts = ServerOptions {
            server_name: server_name.transpose()?.unwrap_or_else(|| "pbn".into()),
            listen: HostPort::parse("listen", self.listen.as_deref().unwrap_or("127.0.0.1:4222"))?,
            auth_timeout: self.auth_timeout.unwrap_or(Duration::from_secs(5)),
            resolver_dir: match &self.resolver_dir {
                Some(dir) => options::absolute("resolver_dir", dir)?,
                None => out_dir.join("jwt"),
            },
            tls: self.tls.resolve()?,
            http: self.http.as_deref().map(|h| HostPort::parse("http", h)).transpose()?,
            cluster,
            jetstream: self.jetstream.resolve()?,
            leafnodes: (self.leafnodes.listen.as_deref())
                .map(|l| HostPort::parse("leafnodes.listen", l))
                .transpose()?,
        };
        opts.check()?;
        Ok(opts)
    }
}

impl RawTls {
    fn resolve(self) -> Result<Option<TlsOptions>, NatsConfError> {
        let any = self.cert_file.is_some()
            || self.key_file.is_some()
            || self.ca_file.is_some()
            || self.verify.is_some()
            || self.timeout.is_some();
        if !any {
            return Ok(None);
        }
        let missing = |name| NatsConfError::Missing { name, reason: "TLS needs it" };
        let cert = self.cert_file.ok_or_else(|| missing("tls.cert_file"))?;
        let key = self.key_file.ok_or_else(|| missing("tls.key_file"))?;
        let verify = self.verify.unwrap_or(false);
        if verify && self.ca_file.is_none() {
            return Err(NatsConfError::Missing {
                name: "tls.ca_file",
                reason: "tls.verify checks client certificates against it",
            });
        }
        let timeout = self.timeout.unwrap_or(options::DEFAULT_TLS_TIMEOUT);
        let (lo, hi) = options::TLS_TIMEOUT_RANGE;
        if !(lo..=hi).contains(&timeout) {
            return Err(NatsConfError::Invalid {
                name: "tls.timeout",
                value: humantime::format_duration(timeout).to_string(),
                reason: "must be from 100ms to 60s",
            });
        }
        Ok(Some(TlsOptions {
            cert_file: check_pem("tls.cert_file", &cert, "CERTIFICATE")?,
            key_file: check_pem("tls.key_file", &key, "PRIVATE KEY")?,
            ca_file: self
                .ca_file
                .map(|ca| check_pem("tls.ca_file", &ca, "CERTIFICATE"))
                .transpose()?,
            verify,
            timeout,
        }))
    }
}

impl RawCluster {
    fn resolve(self, named: bool) -> Result<Option<ClusterOptions>, NatsConfError> {
        if self.name.is_none() && self.listen.is_none() && self.routes.is_none() {
            return Ok(None);
        }
        let listen = self.listen.ok_or(NatsConfError::Missing {
            name: "cluster.listen",
            reason: "a cluster member accepts routes on it",
        })?;
        if !named {
            return Err(NatsConfError::Missing {
                name: "server_name",
                reason: "every server of a cluster needs its own name",
            });
        }
        let routes = self.routes.unwrap_or_default();
        Ok(Some(ClusterOptions {
            name: check_name("cluster.name", self.name.as_deref().unwrap_or("pbn"))?,
            listen: HostPort::parse("cluster.listen", &listen)?,
            routes: routes
                .iter()
                .map(|r| HostPort::parse("cluster.routes", r))
                .collect::<Result<_, _>>()?,
        }))
    }
}

impl RawJetStream {
    fn resolve(self) -> Result<Option<JetStreamOptions>, NatsConfError> {
        let Some(dir) = self.store_dir else {
            if self.max_mem.is_some() || self.max_file.is_some() {
                return Err(NatsConfError::Missing {
                    name: "jetstream.store_dir",
                    reason: "JetStream limits need JetStream, which needs a store directory",
                });
            }
            return Ok(None);
        };
        Ok(Some(JetStreamOptions {
            store_dir: options::absolute("jetstream.store_dir", &dir)?,
            max_mem: self.max_mem.map(|m| parse_size("jetstream.max_mem", &m)).transpose()?,
            max_file: self.max_file.map(|m| parse_size("jetstream.max_file", &m)).transpose()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawNatsConf {
        let file: RawFile = toml::from_str(toml_text).expect("valid toml");
        file.nats_conf
    }

    #[test]
    fn defaults_are_the_loopback_server() {
        let o = RawNatsConf::default().resolve(Path::new("/o")).unwrap();
        assert_eq!(o.listen.render(), "127.0.0.1:4222");
        assert_eq!(o.server_name, "pbn");
        assert_eq!(o.resolver_dir, PathBuf::from("/o/jwt"));
        assert!(o.tls.is_none() && o.cluster.is_none() && o.jetstream.is_none());
    }

    #[test]
    fn a_full_section_resolves_and_flags_win() {
        let file = raw("store = \"x.redb\"\n[callout]\nmax_concurrent = 2\n[nats_conf]\n\
             server_name = \"n1\"\nlisten = \"[::]:4222\"\nhttp = \"0.0.0.0:8222\"\n\
             [nats_conf.cluster]\nlisten = \"0.0.0.0:6222\"\nroutes = [\"n2:6222\", \"n3:6222\"]\n\
             [nats_conf.jetstream]\nstore_dir = \"/var/js\"\nmax_mem = \"1G\"\n\
             [nats_conf.leafnodes]\nlisten = \"0.0.0.0:7422\"\n");
        let flags = RawNatsConf { server_name: Some("n9".into()), ..Default::default() };
        let o = file.overlay(flags).resolve(Path::new("/o")).unwrap();
        assert_eq!(o.server_name, "n9");
        assert_eq!(o.listen.render(), "[::]:4222");
        let c = o.cluster.unwrap();
        assert_eq!((c.name.as_str(), c.routes.len()), ("pbn", 2));
        assert_eq!(o.jetstream.unwrap().max_mem, Some(1 << 30));
        assert_eq!(o.leafnodes.unwrap().port, 7422);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: [(&str, &str); 9] = [
            ("listen = \"nowhere\"", "listen"),
            ("http = \"h:99999\"", "http"),
            ("server_name = \"a b\"", "server_name"),
            ("[cluster]\nlisten = \"0.0.0.0:6222\"", "server_name"),
            ("server_name = \"a\"\n[cluster]\nroutes = [\"b:1\"]", "cluster.listen"),
            (
                "server_name = \"a\"\n[cluster]\nlisten = \"h:1\"\nroutes = [\"b\"]",
                "cluster.routes",
            ),
            ("[jetstream]\nmax_mem = \"1G\"", "jetstream.store_dir"),
            ("[tls]\nkey_file = \"/k\"", "tls.cert_file"),
            ("http = \"127.0.0.1:4222\"", "http"),
        ];
        for (text, name) in cases {
            let text = text.replace('[', "[nats_conf.").replace("[nats_conf.\"", "[\"");
            let err =
                raw(&format!("[nats_conf]\n{text}\n")).resolve(Path::new("/o")).expect_err(&text);
            let named = match &err {
                NatsConfError::Invalid { name, .. } | NatsConfError::Missing { name, .. } => name,
                NatsConfError::PortClash { name, .. } => name,
                other => panic!("{text}: unexpected {other:?}"),
            };
            assert_eq!(*named, name, "{text}: {err}");
        }
        assert!(toml::from_str::<RawFile>("[nats_conf]\nbogus = 1\n").is_err());
    }

    #[test]
    fn tls_timeout_must_stay_below_the_auth_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("c.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n").unwrap();
        let mut r = RawNatsConf::default();
        r.tls.cert_file = Some(pem.clone());
        r.tls.key_file = Some(pem.clone());
        r.tls.timeout = Some(Duration::from_secs(5));
        let err = r.clone().resolve(dir.path()).unwrap_err();
        assert!(matches!(err, NatsConfError::Invalid { name: "auth_timeout", .. }), "{err}");
        r.tls.timeout = Some(Duration::from_millis(10));
        let err = r.clone().resolve(dir.path()).unwrap_err();
        assert!(matches!(err, NatsConfError::Invalid { name: "tls.timeout", .. }), "{err}");
        r.tls.timeout = None;
        r.tls.verify = Some(true);
        let err = r.clone().resolve(dir.path()).unwrap_err();
        assert!(matches!(err, NatsConfError::Missing { name: "tls.ca_file", .. }), "{err}");
        r.tls.ca_file = Some(pem);
        assert!(r.resolve(dir.path()).unwrap().tls.unwrap().verify);
    }
}
