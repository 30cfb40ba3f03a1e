//! Renders nats-server configuration files for a pbn deployment.
//!
//! The output is operator mode with a full resolver: the operator JWT inline, `system_account`,
//! one resolver directory per node with `allow_delete: true`, `resolver_preload` for the accounts
//! the servers must know before pbn connects (SYS, AUTH and the active managed accounts),
//! `default_sentinel` so plain `user:password` clients reach the callout, and the auth timeout
//! (which is also the callout's deadline). Rendering is pure; [`write_configs`] does the I/O.
//!
//! Two layouts: [`render`] writes the loopback files of a test or a quickstart (one server, or
//! `--cluster N` nodes routed on 127.0.0.1, each with JetStream in its own store directory, so
//! an account whose JWT grants JetStream limits can hold R1 to RN streams and KV buckets); [`render_server`] writes the file of one production
//! server from [`ServerOptions`] (listen address, TLS, monitoring, cluster routes to real
//! machines, JetStream, leaf nodes), which [`RawNatsConf::resolve`] checks from the flags and the
//! `[nats_conf]` section of a TOML file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsutil::{Mode, PendingFile};
use crate::keys::AccountPublicKey;

mod options;
mod raw;

pub use options::{ClusterOptions, HostPort, ServerOptions};
pub use raw::{RawCluster, RawFile, RawJetStream, RawLeafnodes, RawNatsConf, RawTls};

/// Errors of config rendering and writing.
#[derive(Debug, thiserror::Error)]
pub enum NatsConfError {
    /// A cluster needs at least two nodes.
    #[error("cluster size {0} is too small: a cluster has at least 2 nodes")]
    ClusterTooSmall(u16),
    /// Ports would run past 65535.
    #[error("port {0} leaves no room for {1} nodes")]
    PortRange(u16, u16),
    /// The auth timeout must be a whole number of seconds between 1 and 60.
    #[error("auth timeout {0:?} is out of range (1 to 60 seconds)")]
    AuthTimeout(Duration),
    /// A setting has a bad value.
    #[error("invalid {name} {value:?}: {reason}")]
    Invalid {
        /// The setting, as named in the `[nats_conf]` section.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// A setting another one needs is not given.
    #[error("{name} is missing: {reason}")]
    Missing {
        /// The missing setting.
        name: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
    /// Two listeners want the same port.
    #[error("{name} {value} uses the port of {other}")]
    PortClash {
        /// The later listener.
        name: &'static str,
        /// The earlier listener it clashes with.
        other: &'static str,
        /// Its address.
        value: String,
    },
    /// A file a setting names cannot be read.
    #[error("cannot read {name} {path}: {source}")]
    Unreadable {
        /// The setting.
        name: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for pbn.
    #[error("invalid config file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// Writing a file or directory failed (the cause is the error's source).
    #[error("cannot write {path}")]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A config file was not written (exists without `--force`, a symlink, ...).
    #[error(transparent)]
    File(#[from] crate::fsutil::FsError),
}

/// What the servers must trust and preload, taken from the store: public data only (JWTs and
/// public keys), so the admin API can hand it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// The operator JWT (self-signed by the operator identity key).
    pub operator_jwt: String,
    /// The system account.
    pub system_account: AccountPublicKey,
    /// Account JWTs to preload (SYS, AUTH, active managed accounts).
    pub preload: Vec<(AccountPublicKey, String)>,
    /// The bearer, deny-all sentinel user JWT of the AUTH account.
    pub sentinel_jwt: String,
}

/// Layout choices for the rendered files.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Directory the files (and each node's resolver directory) go in.
    pub out_dir: PathBuf,
    /// Client port of the first node; node `i` listens on `port + i`.
    pub port: u16,
    /// Cluster size; `None` renders a single server.
    pub cluster: Option<u16>,
    /// Client authentication timeout (also bounds the callout round trip).
    pub auth_timeout: Duration,
    /// Host the servers listen on.
    pub host: String,
}

impl Layout {
    /// A single server on loopback with the given port and a 5 s auth timeout.
    pub fn single(out_dir: impl Into<PathBuf>, port: u16) -> Self {
        Layout {
            out_dir: out_dir.into(),
            port,
            cluster: None,
            auth_timeout: Duration::from_secs(5),
            host: "127.0.0.1".into(),
        }
    }
}

/// One rendered file: where it goes and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    /// The file path (inside `Layout::out_dir`).
    pub path: PathBuf,
    /// Client port of this node.
    pub client_port: u16,
    /// The config text.
    pub text: String,
}

/// Offset between a node's client port and its cluster (route) port.
const ROUTE_PORT_OFFSET: u16 = 2000;

impl Layout {
    /// Checks the auth timeout, cluster size and port range; returns the number of nodes.
    pub fn validate(&self) -> Result<u16, NatsConfError> {
        options::check_auth_timeout(self.auth_timeout)?;
        let nodes = match self.cluster {
            None => 1,
            Some(n) if n < 2 => return Err(NatsConfError::ClusterTooSmall(n)),
            Some(n) => n,
        };
        let highest = u32::from(self.port) + u32::from(nodes) + u32::from(ROUTE_PORT_OFFSET);
        if self.cluster.is_some() && highest > u32::from(u16::MAX) || self.port == 0 {
            return Err(NatsConfError::PortRange(self.port, nodes));
        }
        Ok(nodes)
    }
}

/// Renders one file per node (one file for a single server) of the loopback layout.
pub fn render(trust: &Trust, layout: &Layout) -> Result<Vec<RenderedConfig>, NatsConfError> {
    let nodes = layout.validate()?;
    let listen = |port| HostPort { host: layout.host.clone(), port };
    let route_port = |i| layout.port + ROUTE_PORT_OFFSET + i;
    let mut out = Vec::with_capacity(usize::from(nodes));
    for i in 0..nodes {
        let (file, name, dir, jetstream) = match layout.cluster {
            None => ("nats.conf".to_string(), "pbn".to_string(), layout.out_dir.join("jwt"), None),
            Some(_) => {
                let name = format!("pbn-{}", i + 1);
                let node_dir = layout.out_dir.join(&name);
                let js = options::JetStreamOptions {
                    store_dir: node_dir.join("js"),
                    max_mem: None,
                    max_file: None,
                };
                (format!("{name}.conf"), name, node_dir.join("jwt"), Some(js))
            }
        };
        let cluster = layout.cluster.map(|_| ClusterOptions {
            name: "pbn".into(),
            listen: listen(route_port(i)),
            routes: (0..nodes).filter(|j| *j != i).map(|j| listen(route_port(j))).collect(),
        });
        let opts = ServerOptions {
            server_name: name,
            listen: listen(layout.port + i),
            auth_timeout: layout.auth_timeout,
            resolver_dir: dir,
            tls: None,
            http: None,
            cluster,
            jetstream,
            leafnodes: None,
        };
        out.push(render_server(trust, &opts, layout.out_dir.join(file)));
    }
    Ok(out)
}

/// Renders the file of one server at `path` from checked options.
pub fn render_server(trust: &Trust, opts: &ServerOptions, path: PathBuf) -> RenderedConfig {
    let mut s = String::with_capacity(4096);
    let _ = writeln!(s, "# Written by `pbn nats-conf`. Regenerate rather than edit.");
    let _ = writeln!(s, "server_name: {}", quote(&opts.server_name));
    let _ = writeln!(s, "listen: {}", quote(&opts.listen.render()));
    render_trust(&mut s, trust, &opts.resolver_dir);
    let _ = writeln!(s, "authorization {{ timeout: {} }}", opts.auth_timeout.as_secs());
    if let Some(c) = &opts.cluster {
        let _ = writeln!(s, "cluster {{");
        let _ = writeln!(s, "  name: {}", quote(&c.name));
        let _ = writeln!(s, "  listen: {}", quote(&c.listen.render()));
        let _ = writeln!(s, "  routes: [");
        for r in &c.routes {
            let _ = writeln!(s, "    {}", quote(&format!("nats-route://{}", r.render())));
        }
        let _ = writeln!(s, "  ]");
        let _ = writeln!(s, "}}");
    }
    render_extras(&mut s, opts);
    RenderedConfig { path, client_port: opts.listen.port, text: s }
}

/// Operator, system account, resolver, preload and sentinel: what every server must trust.
fn render_trust(s: &mut String, trust: &Trust, resolver_dir: &Path) {
    let _ = writeln!(s, "operator: {}", quote(&trust.operator_jwt));
    let _ = writeln!(s, "system_account: {}", trust.system_account);
    let _ = writeln!(s, "resolver: {{");
    let _ = writeln!(s, "  type: full");
    let _ = writeln!(s, "  dir: {}", quote(&resolver_dir.to_string_lossy()));
    let _ = writeln!(s, "  allow_delete: true");
    let _ = writeln!(s, "  interval: \"2m\"");
    let _ = writeln!(s, "  timeout: \"1.9s\"");
    let _ = writeln!(s, "}}");
    let _ = writeln!(s, "resolver_preload: {{");
    for (key, jwt) in &trust.preload {
        let _ = writeln!(s, "  {key}: {}", quote(jwt));
    }
    let _ = writeln!(s, "}}");
    let _ = writeln!(s, "default_sentinel: {}", quote(&trust.sentinel_jwt));
}

/// TLS, monitoring, JetStream and leaf nodes, each only when set.
fn render_extras(s: &mut String, opts: &ServerOptions) {
    if let Some(t) = &opts.tls {
        let _ = writeln!(s, "tls {{");
        let _ = writeln!(s, "  cert_file: {}", quote(&t.cert_file.to_string_lossy()));
        let _ = writeln!(s, "  key_file: {}", quote(&t.key_file.to_string_lossy()));
        if let Some(ca) = &t.ca_file {
            let _ = writeln!(s, "  ca_file: {}", quote(&ca.to_string_lossy()));
        }
        let _ = writeln!(s, "  verify: {}", t.verify);
        let _ = writeln!(s, "  timeout: {}", t.timeout.as_secs_f64());
        let _ = writeln!(s, "}}");
    }
    if let Some(h) = &opts.http {
        let _ = writeln!(s, "http: {}", quote(&h.render()));
    }
    if let Some(js) = &opts.jetstream {
        let _ = writeln!(s, "jetstream {{");
        let _ = writeln!(s, "  store_dir: {}", quote(&js.store_dir.to_string_lossy()));
        if let Some(m) = js.max_mem {
            let _ = writeln!(s, "  max_mem: {m}");
        }
        if let Some(f) = js.max_file {
            let _ = writeln!(s, "  max_file: {f}");
        }
        let _ = writeln!(s, "}}");
    }
    if let Some(l) = &opts.leafnodes {
        let _ = writeln!(s, "leafnodes {{");
        let _ = writeln!(s, "  listen: {}", quote(&l.render()));
        let _ = writeln!(s, "}}");
    }
}

/// Quotes a value for the nats-server config syntax.
fn quote(v: &str) -> String {
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Writes rendered files (replacing existing ones) and creates each node's resolver directory
/// (mode 0700). For a folder pbn owns (`pbn up`), where the config is regenerated on each start.
pub fn write_configs(configs: &[RenderedConfig]) -> Result<(), NatsConfError> {
    write_new_configs(configs, true)
}

/// Writes rendered files through [`crate::fsutil`] (temp file, sync, rename; never through a
/// symlink) and creates each node's resolver directory (mode 0700). Every target is checked
/// before any is written: with an existing file and no `force`, nothing is written.
pub fn write_new_configs(configs: &[RenderedConfig], force: bool) -> Result<(), NatsConfError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut pending = Vec::with_capacity(configs.len());
    for c in configs {
        let parent = c.path.parent().unwrap_or(Path::new("."));
        let io = |source| NatsConfError::Io { path: parent.to_path_buf(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(io)?;
        pending.push(PendingFile::create(&c.path, Mode::Public, force)?);
    }
    for (c, file) in configs.iter().zip(pending) {
        let parent = c.path.parent().unwrap_or(Path::new("."));
        for line in c.text.lines() {
            if let Some(dir) = line.trim().strip_prefix("dir: ") {
                let dir = PathBuf::from(dir.trim_matches('"'));
                // A resolver directory elsewhere is the server machine's: nats-server creates it.
                if !dir.starts_with(parent) {
                    continue;
                }
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|source| NatsConfError::Io { path: dir.clone(), source })?;
            }
        }
        file.commit(c.text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};

    fn trust() -> Trust {
        let sys = KeyPair::generate(KeyKind::Account);
        let sys = AccountPublicKey::parse(sys.public_key()).unwrap();
        Trust {
            operator_jwt: "eyJop.x.y".into(),
            system_account: sys.clone(),
            preload: vec![(sys, "eyJsys.x.y".into())],
            sentinel_jwt: "eyJsentinel.x.y".into(),
        }
    }

    #[test]
    fn single_server_has_every_section() {
        let files = render(&trust(), &Layout::single("/tmp/x", 4222)).unwrap();
        assert_eq!(files.len(), 1);
        let t = &files[0].text;
        for needle in [
            "listen: \"127.0.0.1:4222\"",
            "operator: \"eyJop.x.y\"",
            "type: full",
            "allow_delete: true",
            "dir: \"/tmp/x/jwt\"",
            "default_sentinel: \"eyJsentinel.x.y\"",
            "authorization { timeout: 5 }",
        ] {
            assert!(t.contains(needle), "missing {needle} in\n{t}");
        }
        assert!(!t.contains("cluster"));
    }

    #[test]
    fn cluster_nodes_route_to_each_other() {
        let mut layout = Layout::single("/tmp/c", 5000);
        layout.cluster = Some(3);
        let files = render(&trust(), &layout).unwrap();
        assert_eq!(files.len(), 3);
        assert!(files[1].text.contains("nats-route://127.0.0.1:7000"));
        assert!(files[1].text.contains("nats-route://127.0.0.1:7002"));
        assert!(!files[1].text.contains("nats-route://127.0.0.1:7001"));
        assert!(files[2].text.contains("dir: \"/tmp/c/pbn-3/jwt\""));
        for (i, f) in files.iter().enumerate() {
            let js = format!("jetstream {{\n  store_dir: \"/tmp/c/pbn-{}/js\"\n}}", i + 1);
            assert!(f.text.contains(&js), "node {i} lacks its own JetStream dir:\n{}", f.text);
        }
        let single = render(&trust(), &Layout::single("/tmp/c", 5000)).unwrap();
        assert!(!single[0].text.contains("jetstream"), "a single server stays without JetStream");
    }

    #[test]
    fn bad_layouts_are_rejected() {
        let mut layout = Layout::single("/tmp/c", 5000);
        layout.cluster = Some(1);
        assert!(matches!(render(&trust(), &layout), Err(NatsConfError::ClusterTooSmall(1))));
        layout.cluster = Some(3);
        layout.port = 65000;
        assert!(matches!(render(&trust(), &layout), Err(NatsConfError::PortRange(65000, 3))));
        let mut layout = Layout::single("/tmp/c", 5000);
        layout.auth_timeout = Duration::from_secs(0);
        assert!(matches!(render(&trust(), &layout), Err(NatsConfError::AuthTimeout(_))));
    }

    fn production(dir: &Path) -> ServerOptions {
        let pem = dir.join("c.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n").unwrap();
        let raw = RawNatsConf {
            server_name: Some("n1".into()),
            listen: Some("[::]:4222".into()),
            http: Some("127.0.0.1:8222".into()),
            tls: RawTls {
                cert_file: Some(pem.clone()),
                key_file: Some(pem.clone()),
                ca_file: Some(pem),
                verify: Some(true),
                timeout: Some(Duration::from_millis(1500)),
            },
            cluster: RawCluster {
                name: Some("eu".into()),
                listen: Some("0.0.0.0:6222".into()),
                routes: Some(vec!["nats-2.example.com:6222".into(), "10.0.0.3:6222".into()]),
            },
            jetstream: RawJetStream {
                store_dir: Some("/var/lib/nats/js".into()),
                max_mem: Some("1G".into()),
                max_file: None,
            },
            leafnodes: RawLeafnodes { listen: Some("0.0.0.0:7422".into()) },
            ..Default::default()
        };
        raw.resolve(dir).unwrap()
    }

    #[test]
    fn production_server_has_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let c = render_server(&trust(), &production(dir.path()), dir.path().join("nats.conf"));
        let pem = dir.path().join("c.pem").display().to_string();
        let t = &c.text;
        for needle in [
            "server_name: \"n1\"".to_string(),
            "listen: \"[::]:4222\"".into(),
            "authorization { timeout: 5 }".into(),
            format!("tls {{\n  cert_file: \"{pem}\"\n  key_file: \"{pem}\"\n  ca_file: \"{pem}\"\n  verify: true\n  timeout: 1.5\n}}"),
            "http: \"127.0.0.1:8222\"".into(),
            "  name: \"eu\"\n  listen: \"0.0.0.0:6222\"".into(),
            "\"nats-route://nats-2.example.com:6222\"".into(),
            "\"nats-route://10.0.0.3:6222\"".into(),
            "jetstream {\n  store_dir: \"/var/lib/nats/js\"\n  max_mem: 1073741824\n}".into(),
            "leafnodes {\n  listen: \"0.0.0.0:7422\"\n}".into(),
        ] {
            assert!(t.contains(&needle), "missing {needle} in\n{t}");
        }
        assert_eq!(c.client_port, 4222);
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
