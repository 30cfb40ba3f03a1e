//! A real Prometheus (Debian's `prometheus` package, installed by `scripts/install-prometheus.sh`)
//! scrapes `pbn serve` every second during a login storm with some bad passwords; its HTTP API
//! must then report exactly the logins the test made.
//!
//! Without a `prometheus` binary the test is skipped with a message, except under `CI=true`,
//! where it fails: CI installs it through `scripts/test.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::ConnectOptions;
use futures::future::join_all;
use pbn::RawConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Live, PW};
use crate::support::deploy::{ClientEvents, DeployOptions};
use crate::support::{free_port, Deadline};

/// Admitted logins of the storm (three users, connected in parallel).
const GOOD: usize = 30;
/// Wrong passwords, two per user: below the throttle's per-user limit, so every one is
/// answered `bad_password`.
const BAD_PER_USER: usize = 2;
const USERS: [&str; 3] = ["alice", "bob", "olga"];

/// The `prometheus` binary: `PBN_PROMETHEUS`, else the first on `PATH`.
fn prometheus_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PBN_PROMETHEUS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("prometheus")).find(|p| p.is_file())
}

/// A Prometheus process, killed and reaped on drop.
struct Prometheus {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts `bin` in `dir` scraping `target` every second.
    fn start(bin: &Path, dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        let text = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  \
             - job_name: pbn\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(&config, text).expect("write prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("prometheus log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Prometheus { child, addr, log }
    }

    /// The result vector of the instant query `query` (empty on any failure, so callers poll).
    async fn query(&self, query: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let Some(body) = http_get(&self.addr, &path).await else { return Vec::new() };
        let json: Value = serde_json::from_str(&body).unwrap_or_default();
        json["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of `query` with its sample time, once it has one.
    async fn value(&self, query: &str) -> Option<(f64, f64)> {
        let result = self.query(query).await;
        let v = result.first()?["value"].as_array()?.clone();
        Some((v[0].as_f64()?, v[1].as_str()?.parse().ok()?))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body of `GET path` on `addr` (HTTP/1.0: no chunking), `None` on any failure.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.starts_with("HTTP/1.").then_some(())?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs_f64()
}

/// Logs in `GOOD` times over the three users in parallel and fails `BAD_PER_USER` wrong
/// passwords per user; every client is closed again.
async fn storm(live: &Live) {
    let good = (0..GOOD).map(|i| live.login(USERS[i % USERS.len()]));
    let admitted = join_all(good).await;
    assert_eq!(admitted.len(), GOOD);
    let bad = USERS.iter().flat_map(|u| std::iter::repeat_n(*u, BAD_PER_USER)).map(|u| {
        let opts = ConnectOptions::with_user_and_password(u.into(), format!("not-{PW}"));
        live.d.connect(0, opts, &ClientEvents::new())
    });
    for r in join_all(bad).await {
        assert!(r.is_err(), "a wrong password was admitted");
    }
    drop(admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_exactly_the_logins_of_a_storm() {
    let Some(bin) = prometheus_binary() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI is set but no prometheus binary: scripts/install-prometheus.sh installs it"
        );
        eprintln!("SKIPPED: no prometheus binary (run scripts/install-prometheus.sh)");
        return;
    };
    let target = format!("127.0.0.1:{}", free_port());
    let config = RawConfig { http: Some(target.clone()), ..RawConfig::default() };
    let live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let prom = Prometheus::start(&bin, dir.path(), &target);
    let up = Deadline::after(Duration::from_secs(60), "Prometheus to scrape pbn");
    while prom.value(r#"up{job="pbn"}"#).await.map(|(_, v)| v) != Some(1.0) {
        up.tick().await;
    }

    storm(&live).await;
    let done = unix_now();
    let scraped = Deadline::after(Duration::from_secs(60), "a scrape after the storm");
    let latest = r#"max(timestamp(pbn_sessions{job="pbn"}))"#;
    while prom.value(latest).await.is_none_or(|(_, at)| at <= done) {
        scraped.tick().await;
    }
    let admitted = r#"sum(pbn_logins_total{job="pbn",outcome="admitted"})"#;
    let refused = r#"sum(pbn_logins_total{job="pbn",outcome!="admitted"})"#;
    let bad = r#"sum(pbn_logins_total{job="pbn",method="password",outcome="bad_password"})"#;
    let log = prom.log();
    let wrong = (BAD_PER_USER * USERS.len()) as f64;
    for (query, want) in [(admitted, GOOD as f64), (refused, wrong), (bad, wrong)] {
        let got = prom.value(query).await.map(|(_, v)| v);
        assert_eq!(got, Some(want), "{query}; prometheus log:\n{log}");
    }
}

/// The sample names `/metrics` text exposes (histograms also by their base name).
fn exported(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name: String = line.chars().take_while(|c| *c != '{' && *c != ' ').collect();
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                names.insert(base.to_string());
            }
        }
        names.insert(name);
    }
    names
}

/// Every `pbn_…` name in `text`.
fn named(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("pbn_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        names.insert(name);
    }
    names
}

/// `deploy/` passes promtool, and the dashboard, the rules and the README's "Operating pbn"
/// name only metrics `pbn serve` exports, while the README lists every one it exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_examples_and_the_readme_match_the_exported_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deploy = root.join("deploy");
    let promtool = prometheus_binary().map(|p| p.with_file_name("promtool"));
    match promtool.filter(|p| p.is_file()) {
        Some(promtool) => {
            for (what, file) in [("config", "prometheus.yml"), ("rules", "pbn-alerts.yml")] {
                let out = Command::new(&promtool)
                    .args(["check", what])
                    .arg(deploy.join(file))
                    .output()
                    .expect("run promtool");
                let text = String::from_utf8_lossy(&out.stdout).to_string()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "promtool check {what} {file}: {text}");
            }
        }
        None => {
            assert!(std::env::var("CI").is_err(), "CI is set but promtool is missing");
            eprintln!("SKIPPED promtool checks: no promtool (run scripts/install-prometheus.sh)");
        }
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let config = RawConfig { http: Some(addr.clone()), ..RawConfig::default() };
    let _live = Live::start_with(DeployOptions::default(), |_| {}, config).await;
    let text = http_get(&addr, "/metrics").await.expect("/metrics");
    let exported = exported(&text);
    let read = |p: &Path| std::fs::read_to_string(p).expect("read a deploy file");
    let readme = read(&root.join("README.md"));
    let start = readme.find("## Operating pbn").expect("the Operating pbn section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    for file in ["grafana-dashboard.json", "pbn-alerts.yml"] {
        let unknown: Vec<_> =
            named(&read(&deploy.join(file))).difference(&exported).cloned().collect();
        assert!(unknown.is_empty(), "{file} names {unknown:?}, not exported");
    }
    let unknown: Vec<_> = named(section).difference(&exported).cloned().collect();
    assert!(unknown.is_empty(), "the README names {unknown:?}, not exported");
    let listed = named(section);
    let families: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| !listed.contains(*n) && !listed.contains(&format!("{n}_total")))
        .collect();
    assert!(families.is_empty(), "exported but not in the README: {families:?}");
}
