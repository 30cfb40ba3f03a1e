//! The checked settings of one production nats-server: addresses, TLS, monitoring, cluster,
//! JetStream and leaf nodes. Every value is parsed and validated once, by [`super::raw`]; what
//! is here is only ever valid.

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::NatsConfError;

/// A `host:port` a server listens on or connects to. The host is an IPv4 or IPv6 address or a
/// DNS name; the port is 1 to 65535.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Address or DNS name, without brackets.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port` (`[v6]:port` for IPv6) for the setting `name`.
    pub fn parse(name: &'static str, value: &str) -> Result<HostPort, NatsConfError> {
        let bad = |reason| NatsConfError::Invalid { name, value: value.to_string(), reason };
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(|| bad(BRACKETS))?;
            host.parse::<Ipv6Addr>().map_err(|_| bad("the part in brackets is no IPv6 address"))?;
            (host, port)
        } else {
            let (host, port) = value.rsplit_once(':').ok_or_else(|| bad(BRACKETS))?;
            if host.contains(':') {
                return Err(bad("an IPv6 address goes in brackets: [::1]:4222"));
            }
            if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
                return Err(bad("the host is neither an IP address nor a DNS name"));
            }
            (host, port)
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad("the port is not a number from 1 to 65535")),
        };
        Ok(HostPort { host: host.to_string(), port })
    }

    /// The `host:port` form nats-server reads, with brackets around an IPv6 address.
    pub fn render(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True for `0.0.0.0` and `::`: every interface.
    fn is_wildcard(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
    }

    /// True when both cannot be bound at once: same port on the same or a wildcard host.
    pub fn clashes(&self, other: &HostPort) -> bool {
        self.port == other.port
            && (self.host == other.host || self.is_wildcard() || other.is_wildcard())
    }
}

const BRACKETS: &str = "expected host:port, or [address]:port for IPv6";

/// A DNS name: dot-separated labels of letters, digits and inner hyphens, at most 253 bytes.
fn is_dns_name(s: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label)
}

/// A server or cluster name nats-server accepts: letters, digits, `-`, `_` and `.`, at most 64.
pub fn check_name(name: &'static str, value: &str) -> Result<String, NatsConfError> {
    let ok = (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(value.to_string())
    } else {
        Err(NatsConfError::Invalid {
            name,
            value: value.to_string(),
            reason: "a name is 1 to 64 letters, digits, '-', '_' or '.'",
        })
    }
}

/// TLS for client connections (`tls { ... }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Server certificate chain (PEM), absolute.
    pub cert_file: PathBuf,
    /// Its private key (PEM), absolute.
    pub key_file: PathBuf,
    /// CA bundle for client certificates (PEM), absolute.
    pub ca_file: Option<PathBuf>,
    /// Require and verify a client certificate (mutual TLS; needs `ca_file`).
    pub verify: bool,
    /// TLS handshake timeout; below the auth timeout.
    pub timeout: Duration,
}

/// Bounds of the TLS handshake timeout: a handshake over a slow link takes well over 100 ms,
/// and one that takes a minute is an attack or a dead peer.
pub const TLS_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));
/// TLS handshake timeout when none is given: nats-server's own default.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks that `path` is a readable file holding a PEM block whose label contains `marker`;
/// returns it absolute (nats-server resolves relative paths against its own working directory).
pub fn check_pem(name: &'static str, path: &Path, marker: &str) -> Result<PathBuf, NatsConfError> {
    let abs = absolute(name, path)?;
    let text = std::fs::read(&abs).map_err(|source| NatsConfError::Unreadable {
        name,
        path: abs.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    let found = text.lines().any(|l| l.starts_with("-----BEGIN ") && l.contains(marker));
    if !found {
        return Err(NatsConfError::Invalid {
            name,
            value: abs.display().to_string(),
            reason: if marker == "CERTIFICATE" {
                "the file holds no PEM certificate"
            } else {
                "the file holds no PEM private key"
            },
        });
    }
    Ok(abs)
}

/// `path` made absolute against the current directory.
pub fn absolute(name: &'static str, path: &Path) -> Result<PathBuf, NatsConfError> {
    if path.as_os_str().is_empty() {
        return Err(NatsConfError::Invalid { name, value: String::new(), reason: "empty path" });
    }
    std::path::absolute(path).map_err(|source| NatsConfError::Unreadable {
        name,
        path: path.to_path_buf(),
        source,
    })
}

/// A cluster (`cluster { name, listen, routes }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Cluster name, the same on every server.
    pub name: String,
    /// Where this server accepts routes.
    pub listen: HostPort,
    /// Route listen addresses of the servers (this one may be among them; nats-server skips it).
    pub routes: Vec<HostPort>,
}

/// JetStream for the server (`jetstream { store_dir, max_mem, max_file }`). Accounts get
/// JetStream only through their own JWT limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// Storage directory, absolute.
    pub store_dir: PathBuf,
    /// Memory storage limit in bytes (`None`: nats-server's default, 75% of RAM).
    pub max_mem: Option<u64>,
    /// File storage limit in bytes (`None`: nats-server's default, 1 TB or 75% of the disk).
    pub max_file: Option<u64>,
}

/// Parses a byte size: a number with an optional unit K, M, G or T (powers of 1024, optional
/// trailing `B`, any case), as nats-server reads `max_mem`. Zero is refused.
pub fn parse_size(name: &'static str, value: &str) -> Result<u64, NatsConfError> {
    let bad = |reason| NatsConfError::Invalid { name, value: value.to_string(), reason };
    let v = value.trim().to_ascii_uppercase();
    let v = v.strip_suffix('B').unwrap_or(&v);
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let shift = match unit.trim() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad("expected a size such as 512M, 4G or 1073741824")),
    };
    let n: u64 = digits.parse().map_err(|_| bad("expected a size such as 512M or 4G"))?;
    match n.checked_mul(1u64 << shift) {
        Some(0) => Err(bad("must be larger than zero")),
        Some(bytes) if bytes <= i64::MAX as u64 => Ok(bytes),
        _ => Err(bad("too large")),
    }
}

/// Everything one production server's file says besides the trust (operator, accounts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// `server_name`, unique in a cluster.
    pub server_name: String,
    /// Client listen address.
    pub listen: HostPort,
    /// Client auth timeout, whole seconds; also the callout's deadline.
    pub auth_timeout: Duration,
    /// Directory of the full resolver, absolute.
    pub resolver_dir: PathBuf,
    /// TLS for clients.
    pub tls: Option<TlsOptions>,
    /// HTTP monitoring address.
    pub http: Option<HostPort>,
    /// Cluster membership.
    pub cluster: Option<ClusterOptions>,
    /// JetStream for the server.
    pub jetstream: Option<JetStreamOptions>,
    /// Leaf node listen address.
    pub leafnodes: Option<HostPort>,
}

impl ServerOptions {
    /// Checks what spans several values: the auth timeout against the TLS timeout, and that no
    /// two listeners want the same port.
    pub fn check(&self) -> Result<(), NatsConfError> {
        check_auth_timeout(self.auth_timeout)?;
        if let Some(tls) = &self.tls {
            if self.auth_timeout <= tls.timeout {
                return Err(NatsConfError::Invalid {
                    name: "auth_timeout",
                    value: format!("{}s", self.auth_timeout.as_secs()),
                    reason: "must be above tls.timeout: the TLS handshake counts against it",
                });
            }
        }
        let mut listeners = vec![("listen", &self.listen)];
        listeners.extend(self.http.as_ref().map(|h| ("http", h)));
        listeners.extend(self.cluster.as_ref().map(|c| ("cluster.listen", &c.listen)));
        listeners.extend(self.leafnodes.as_ref().map(|l| ("leafnodes.listen", l)));
        for (i, (name, a)) in listeners.iter().enumerate() {
            if let Some((other, _)) = listeners[..i].iter().find(|(_, b)| a.clashes(b)) {
                return Err(NatsConfError::PortClash { name, other, value: a.render() });
            }
        }
        Ok(())
    }
}

/// The auth timeout must be a whole number of seconds from 1 to 60.
pub fn check_auth_timeout(t: Duration) -> Result<(), NatsConfError> {
    if !(1..=60).contains(&t.as_secs()) || t.subsec_nanos() != 0 {
        return Err(NatsConfError::AuthTimeout(t));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_parse_v4_v6_and_names() {
        let hp = HostPort::parse("listen", "0.0.0.0:4222").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("0.0.0.0", 4222));
        let v6 = HostPort::parse("listen", "[::1]:4222").unwrap();
        assert_eq!((v6.host.as_str(), v6.render().as_str()), ("::1", "[::1]:4222"));
        let dns = HostPort::parse("routes", "nats-2.example.com:6222").unwrap();
        assert_eq!(dns.render(), "nats-2.example.com:6222");
        for bad in
            ["4222", "::1:4222", "[::1]4222", "[nope]:1", "h:0", "h:65536", "h:x", ":1", "-h:1"]
        {
            let err = HostPort::parse("listen", bad).unwrap_err();
            assert!(matches!(err, NatsConfError::Invalid { name: "listen", .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn wildcard_hosts_clash_with_any_host_on_the_same_port() {
        let any = HostPort::parse("a", "0.0.0.0:4222").unwrap();
        let lo = HostPort::parse("b", "127.0.0.1:4222").unwrap();
        let other = HostPort::parse("c", "10.0.0.1:8222").unwrap();
        assert!(any.clashes(&lo) && lo.clashes(&any));
        assert!(!lo.clashes(&other));
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("max_mem", "512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("max_mem", "4gb").unwrap(), 4 << 30);
        assert_eq!(parse_size("max_mem", "1000").unwrap(), 1000);
        for bad in ["0", "-1G", "1X", "G", "99999999T"] {
            assert!(parse_size("max_mem", bad).is_err(), "{bad}");
        }
        assert!(check_name("server_name", "pbn-1.eu_west").is_ok());
        for bad in ["", "a b", "a\"b", &"x".repeat(65)] {
            assert!(check_name("server_name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pem_files_must_exist_and_hold_pem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = check_pem("tls.cert_file", &missing, "CERTIFICATE").unwrap_err();
        assert!(matches!(err, NatsConfError::Unreadable { name: "tls.cert_file", .. }));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let err = check_pem("tls.key_file", &junk, "PRIVATE KEY").unwrap_err();
        assert!(matches!(err, NatsConfError::Invalid { name: "tls.key_file", .. }));
        std::fs::write(&junk, "-----BEGIN EC PRIVATE KEY-----\nx\n").unwrap();
        assert_eq!(check_pem("tls.key_file", &junk, "PRIVATE KEY").unwrap(), junk);
    }
}
