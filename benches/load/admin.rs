//! The concurrent admin API: `pbn admin --server URL --creds FILE account add NAME`, run by
//! `--admin-clients` concurrent clients against one `pbn serve` process, `--admin-ops` adds per
//! round. Each add is a new `pbn` client process (what a user runs) and returns once the account
//! JWT is pushed. Measured: operations per second, and the CPU time of the `pbn serve` process
//! per operation (from `/proc/PID/stat`, so the clients' own CPU is left out).
//!
//! With `--baseline-pbn PATH` the rounds alternate between that binary and the candidate (the
//! `--pbn` binary), baseline first then candidate first (ABBA), so drift on a shared machine
//! falls on both alike; each binary serves and is administered by itself. Every round starts
//! from a fresh store and nats-server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pbn::Context;

use crate::deploy::{self, ChildService, Workspace};
use crate::memory::find_pbn;
use crate::report::Report;
use crate::{Args, LoadError};

/// How long `pbn serve` may take until its admin API answers.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two readiness probes (each is a `pbn admin … account list` process).
const READY_POLL: Duration = Duration::from_millis(100);

/// One round: one binary, a fresh deployment, `ops` adds.
struct Round {
    /// Adds that succeeded.
    done: usize,
    /// Adds that failed, and the first one's message.
    failed: usize,
    first_error: Option<String>,
    /// From the first add started to the last one answered.
    wall: Duration,
    /// CPU time of the `pbn serve` process over that window.
    cpu: Duration,
}

impl Round {
    fn ops_per_sec(&self) -> f64 {
        self.done as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The binary under test and what it measured.
struct Contender {
    label: &'static str,
    pbn: PathBuf,
    rounds: Vec<Round>,
}

impl Contender {
    /// The median ops/s of the rounds.
    fn median(&self) -> f64 {
        let mut rates: Vec<f64> = self.rounds.iter().map(Round::ops_per_sec).collect();
        rates.sort_by(f64::total_cmp);
        match rates.len() {
            0 => 0.0,
            n if n % 2 == 1 => rates[n / 2],
            n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
        }
    }

    /// `pbn serve` CPU milliseconds per successful add, over all rounds.
    fn cpu_ms_per_op(&self) -> f64 {
        let cpu: Duration = self.rounds.iter().map(|r| r.cpu).sum();
        let done: usize = self.rounds.iter().map(|r| r.done).sum();
        cpu.as_secs_f64() * 1000.0 / done.max(1) as f64
    }
}

/// Runs the admin scenario and records its figures in `report`.
pub async fn admin(args: &Args, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    let Some(candidate) = find_pbn(args.pbn.as_deref()) else {
        report.fact(
            "concurrent admin API",
            "skipped",
            "no pbn binary: build it (cargo build --release --bin pbn) or pass --pbn",
        );
        return Ok(());
    };
    let mut contenders = vec![Contender { label: "candidate", pbn: candidate, rounds: vec![] }];
    if let Some(path) = &args.baseline_pbn {
        if !path.is_file() {
            return Err(LoadError::Setup(format!(
                "--baseline-pbn {} is not a file",
                path.display()
            )));
        }
        contenders.insert(0, Contender { label: "baseline", pbn: path.clone(), rounds: vec![] });
    }
    for r in 0..args.admin_rounds {
        let mut order: Vec<usize> = (0..contenders.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let c = &mut contenders[i];
            eprintln!(
                "admin: round {} of {}, {} ({})",
                r + 1,
                args.admin_rounds,
                c.label,
                c.pbn.display()
            );
            let round = round(&c.pbn, nats, args).await?;
            eprintln!(
                "  {:.2} adds/s, {} failed, pbn serve CPU {:.0} ms",
                round.ops_per_sec(),
                round.failed,
                round.cpu.as_secs_f64() * 1000.0
            );
            if let Some(e) = &round.first_error {
                report.failures.push(format!(
                    "admin ({}): {} of {} adds failed; first: {e}",
                    c.label,
                    round.failed,
                    round.done + round.failed
                ));
            }
            c.rounds.push(round);
        }
    }
    record(&contenders, args, report);
    Ok(())
}

/// One fact per binary (median ops/s, the rounds, CPU per add) and the ratio.
fn record(contenders: &[Contender], args: &Args, report: &mut Report) {
    for c in contenders {
        let rounds: Vec<String> =
            c.rounds.iter().map(|r| format!("{:.2}", r.ops_per_sec())).collect();
        report.fact(
            &format!(
                "admin account add, {} concurrent clients, {} pbn serve ({})",
                args.admin_clients,
                c.label,
                c.pbn.display()
            ),
            format!("{:.2} ops/s", c.median()),
            format!(
                "median of {} rounds of {} adds: {} ops/s; pbn serve CPU {:.2} ms per add",
                c.rounds.len(),
                args.admin_ops,
                rounds.join(", "),
                c.cpu_ms_per_op()
            ),
        );
    }
    if let [baseline, candidate] = contenders {
        let ratio = candidate.median() / baseline.median().max(1e-9);
        report.fact(
            "admin account add, candidate / baseline",
            format!("{ratio:.2}×"),
            "median ops/s of the interleaved rounds",
        );
    }
}

/// A fresh store and nats-server, `pbn serve` from `pbn` on it, then `args.admin_ops` adds from
/// `args.admin_clients` concurrent clients.
async fn round(pbn: &Path, nats: &Path, args: &Args) -> Result<Round, LoadError> {
    let Workspace { dir, store_path, store } = Workspace::new()?;
    let creds = dir.path().join("admin.creds");
    let text = pbn::admin_creds(&store, &Context::now()).map_err(LoadError::setup)?;
    write_secret(&creds, text.as_bytes())?;
    let (server, url) = deploy::start_server(&store, dir.path(), nats).await?;
    drop(store);
    let child = ChildService::start(pbn, &store_path, &url, &dir.path().join("pbn.log"))?;
    let client = Arc::new(AdminCli { pbn: pbn.to_path_buf(), url, creds });
    let outcome = match client.wait_ready().await {
        Ok(()) => Ok(adds(&client, child.pid(), args.admin_ops, args.admin_clients).await),
        Err(e) => Err(e),
    };
    child.stop().await;
    drop(server);
    outcome
}

/// `ops` adds from `clients` concurrent clients, timed, with the server's CPU over the window.
async fn adds(client: &Arc<AdminCli>, pid: u32, ops: usize, clients: usize) -> Round {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new((0usize, None::<String>)));
    let cpu_before = cpu_time(pid);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (client, next, failures) = (client.clone(), next.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        return;
                    }
                    if let Err(e) = client.run(&["account", "add", &format!("adm-{i}")]).await {
                        let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
                        f.0 += 1;
                        f.1.get_or_insert(e);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let wall = started.elapsed();
    let cpu = match (cpu_before, cpu_time(pid)) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => Duration::ZERO,
    };
    let (failed, first_error) =
        std::mem::take(&mut *failures.lock().unwrap_or_else(|p| p.into_inner()));
    Round { done: ops - failed, failed, first_error, wall, cpu }
}

/// `pbn admin --server URL --creds FILE …` with one binary.
struct AdminCli {
    pbn: PathBuf,
    url: String,
    creds: PathBuf,
}

impl AdminCli {
    /// Runs one admin command; its standard error when it fails.
    async fn run(&self, command: &[&str]) -> Result<(), String> {
        let out = tokio::process::Command::new(&self.pbn)
            .arg("admin")
            .arg("--server")
            .arg(&self.url)
            .arg("--creds")
            .arg(&self.creds)
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.pbn.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Waits until the admin API answers `account list`.
    async fn wait_ready(&self) -> Result<(), LoadError> {
        let started = Instant::now();
        loop {
            match self.run(&["account", "list"]).await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > READY_TIMEOUT => {
                    return Err(LoadError::Setup(format!(
                        "the admin API of pbn serve did not answer within {READY_TIMEOUT:?}: {e}"
                    )))
                }
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        }
    }
}

/// User plus system CPU time of process `pid` so far (`/proc/PID/stat`, fields 14 and 15).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start with the state.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_sec = u64::try_from(per_sec).ok().filter(|t| *t > 0)?;
    Some(Duration::from_secs_f64(ticks as f64 / per_sec as f64))
}

/// Writes the admin creds readable by this user only.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(LoadError::io("create the admin creds file"))?;
    file.write_all(bytes).map_err(LoadError::io("write the admin creds file"))
}
