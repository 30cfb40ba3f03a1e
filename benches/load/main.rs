//! pbn's load benchmark: a real nats-server on loopback, pbn's service, thousands of
//! async-nats clients. Run it with `cargo bench --bench load -- --help`.
//!
//! Scenarios, in order (each can be skipped with `--skip`):
//! 1. `token`: connect storm of N clients with token logins through the callout, versus the same
//!    storm with pre-issued creds (no callout), and their connects/s ratio;
//! 2. `password`: password logins, cold (argon2id with production parameters, per login) and
//!    warm (the same users again: verified-password cache hits);
//! 3. `reconnect`: N password users connected, nats-server restarted, time until all are back;
//! 4. `claims`: revocation command → revoked connection closed, and creating + publishing many
//!    accounts (through `admin::execute` on the store the running service shares);
//! 5. `memory`: the real `pbn serve` binary on a store of 100,000 users: peak RSS idle and
//!    through an N-client storm;
//! 6. `observe`: the token storm with metrics scraped and audit events on versus off,
//!    interleaved rounds, and the slowdown;
//! 7. `admin`: the concurrent admin API: `pbn admin --server … account add` from 8 concurrent
//!    clients against one `pbn serve` process, operations per second and the server's CPU per
//!    add, for `--pbn` and, interleaved with it, `--baseline-pbn`.
//!
//! 8. `storm-process`: the headline storm, every party its own process: creds baseline on one
//!    nats-server, token logins through the real `pbn serve` on another, interleaved rounds,
//!    connects/s, p50/p99 and CPU per 1,000 logins of each process;
//! 9. `publish`: account publishing with the real `pbn serve`: 1,000 new accounts imported
//!    through the service until held, 10,000 accounts published at start, a full reconcile;
//! 10. `import`: `pbn admin import` speed: users per second into a store that already holds
//!     `--import-base` users (run alone with `--only import`);
//! 11. `chaos`: replicated mode under failure (`scripts/chaos.sh`; only with `--only chaos`):
//!     the storm with a replica and a server killed, partition, figures (see `chaos.rs`);
//! 12. `million`: a store of `--million-users` users built by the import, lookups, `pbn serve`
//!     start and idle RSS on it, and the token storm against it (only with `--only million`).
//!
//! Prints a Markdown table; exits 1 if any client failed where no failure was expected, 2 if the
//! benchmark itself could not run. `PBN_LOAD_LOG=pbn=info` shows the in-process service's log.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod chaos;
mod chaos_cluster;
mod chaos_figures;
mod claims;
mod deploy;
mod import;
mod memory;
mod million;
mod observe;
mod observe_process;
mod publish;
mod report;
mod scenarios;
mod server;
mod storm;
mod storm_process;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use report::Report;

/// Errors that stop the benchmark (as opposed to measured failures, which are reported).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No nats-server binary was found.
    #[error("nats-server not found: pass --nats-server, set PBN_NATS_SERVER, or run scripts/install-nats-server.sh")]
    NoNatsServer,
    /// A file or process operation failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// nats-server did not become ready.
    #[error("nats-server did not start; see its log {0}")]
    ServerStart(PathBuf),
    /// The monitoring endpoint did not answer usefully.
    #[error("nats-server monitoring failed: {0}")]
    Monitor(String),
    /// Building the deployment failed.
    #[error("setup failed: {0}")]
    Setup(String),
    /// The service never admitted a login.
    #[error("the service admitted no login within {0:?}")]
    NotReady(Duration),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] pbn::StoreError),
}

impl LoadError {
    fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> LoadError {
        move |source| LoadError::Io { action, source }
    }

    fn setup(e: impl std::fmt::Display) -> LoadError {
        LoadError::Setup(e.to_string())
    }
}

/// A scenario that `--skip` can leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Token storm through the callout versus creds storm.
    Token,
    /// Password storms, cold and warm.
    Password,
    /// Reconnect storm after a server restart.
    Reconnect,
    /// Revocation and account publishing.
    Claims,
    /// `pbn serve` memory with a large store.
    Memory,
    /// Concurrent remote `account add` against one `pbn serve`.
    Admin,
    /// Token storms with metrics and audit events on versus off.
    Observe,
    /// Bulk import into a large store.
    Import,
    /// The storm with pbn serve and both nats-servers as separate processes.
    StormProcess,
    /// Account publishing and reconcile with the pbn serve process.
    Publish,
    /// Replicated mode under failure (only when named in `--only`).
    Chaos,
    /// A million users: import, lookups, start, idle RSS, storm (only when named in --only).
    Million,
}

/// pbn load benchmark: connect storms through the auth callout against a real nats-server.
#[derive(Debug, Parser)]
#[command(name = "pbn-load", version)]
pub struct Args {
    /// nats-server binary [default: $PBN_NATS_SERVER, .tools/bin/nats-server, then PATH].
    #[arg(long, env = "PBN_NATS_SERVER")]
    pub nats_server: Option<PathBuf>,
    /// `pbn` binary for the memory and admin scenarios [default: target/<profile>/pbn next to
    /// this binary].
    #[arg(long)]
    pub pbn: Option<PathBuf>,
    /// A second `pbn` binary (e.g. a build of the previous commit) for the admin scenario: its
    /// rounds alternate with those of `--pbn`, and the table shows both and their ratio.
    #[arg(long)]
    pub baseline_pbn: Option<PathBuf>,
    /// `account add` operations per round of the admin scenario.
    #[arg(long, default_value_t = 400)]
    pub admin_ops: usize,
    /// Concurrent admin clients (each runs its adds one after another, so at most this many
    /// `pbn admin` processes exist at once; 8 is several operators at work, not a flood).
    #[arg(long, default_value_t = 8)]
    pub admin_clients: usize,
    /// Rounds per binary in the admin scenario (fresh store and servers each round; two let
    /// the order alternate, baseline first and then candidate first).
    #[arg(long, default_value_t = 2)]
    pub admin_rounds: usize,
    /// Clients of the token and creds storms (and of the memory storm).
    #[arg(long, default_value_t = 2000)]
    pub clients: usize,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Clients of the password storms (cold logins pay production argon2id each).
    #[arg(long, default_value_t = 200)]
    pub password_clients: usize,
    /// Cold password logins in flight at once when connecting the reconnect set (argon2id with
    /// production parameters costs tens of ms of CPU per login; more in flight only queues them
    /// past the auth timeout).
    #[arg(long, default_value_t = 20)]
    pub cold_concurrency: usize,
    /// Password users of the reconnect storm.
    #[arg(long, default_value_t = 1000)]
    pub reconnect_clients: usize,
    /// Accounts created and published in the claims scenario.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Users in the store of the memory scenario.
    #[arg(long, default_value_t = 100_000)]
    pub memory_users: usize,
    /// A fixed reconnect delay for the reconnect-storm clients instead of async-nats' default
    /// (exponential from 0 to 4 s), e.g. `100ms`, to see pbn's side without the clients' backoff.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub client_reconnect_delay: Option<Duration>,
    /// How long the reconnect storm may take before missing clients count as failed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub deadline: Duration,
    /// Scenarios to leave out (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub skip: Vec<Scenario>,
    /// Run only these scenarios (comma-separated); overrides --skip.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// Rounds per side of the storm-process scenario (interleaved: baseline, pbn, …).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub storm_rounds: u64,
    /// Accounts in the store for the reconcile of the publish scenario.
    #[arg(long, default_value_t = 10_000)]
    pub reconcile_accounts: usize,
    /// Users in the store before the timed import of the import scenario.
    #[arg(long, default_value_t = 100_000)]
    pub import_base: usize,
    /// Users imported (timed) into that store.
    #[arg(long, default_value_t = 50_000)]
    pub import_users: usize,
    /// Store sizes (users) of the chaos scenario's rejoin figure.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    pub chaos_rejoin_users: Vec<usize>,
    /// Run only the rejoin figure of the chaos scenario.
    #[arg(long)]
    pub chaos_rejoin_only: bool,
    /// Run only the chaos scenario's figures on a healthy cluster (apply lag, admin writes/s
    /// replicated and embedded, one user edited twice at once, partition): no storm, no rejoin.
    #[arg(long)]
    pub chaos_figures_only: bool,
    /// Users in the store of the million scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub million_users: usize,
    /// Also write the result tables (Markdown) to this file.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// Raises the open-files limit to its hard maximum (each client is a socket here and in the
/// server, which inherits the limit).
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    lim.rlim_cur
}

async fn run(args: &Args, report: &mut Report) -> Result<(), LoadError> {
    let nats = server::find_binary(args.nats_server.as_deref())?;
    eprintln!("nats-server: {}", nats.display());
    let main_run = [
        Scenario::Token,
        Scenario::Password,
        Scenario::Reconnect,
        Scenario::Claims,
        Scenario::Observe,
    ];
    if main_run.iter().any(|s| !scenarios::skipped(args, *s)) {
        let mut d = scenarios::deploy(args, &nats, report).await?;
        if !scenarios::skipped(args, Scenario::Token) {
            scenarios::token_vs_creds(&d, args, report).await;
        }
        if !scenarios::skipped(args, Scenario::Password) {
            scenarios::password(&d, args, report).await;
        }
        if !scenarios::skipped(args, Scenario::Reconnect) {
            scenarios::reconnect(&mut d, args, report).await;
        }
        if !scenarios::skipped(args, Scenario::Claims) {
            let publishing = claims::revocation(&d, report).await?;
            claims::push(&d, args, publishing, report).await?;
        }
        if !scenarios::skipped(args, Scenario::Observe) {
            observe::observe(&mut d, args, report).await?;
        }
        d.stop().await;
    }
    if let Some((_, hwm)) = report::memory_mib(None) {
        report.fact(
            "benchmark process peak RSS",
            format!("{hwm:.1} MiB"),
            "clients + in-process service",
        );
    }
    if !scenarios::skipped(args, Scenario::Observe) {
        observe_process::observe_process(args, &nats, report).await?;
    }
    if !scenarios::skipped(args, Scenario::Memory) {
        memory::memory(args, &nats, report).await?;
    }
    if !scenarios::skipped(args, Scenario::Admin) {
        admin::admin(args, &nats, report).await?;
    }
    if !scenarios::skipped(args, Scenario::StormProcess) {
        storm_process::storm_process(args, &nats, report).await?;
    }
    if !scenarios::skipped(args, Scenario::Publish) {
        publish::publish(args, &nats, report).await?;
    }
    if !scenarios::skipped(args, Scenario::Import) {
        tokio::task::block_in_place(|| import::import_scenario(args, report))?;
    }
    if args.only.contains(&Scenario::Chaos) {
        chaos::chaos(args, &nats, report).await?;
    }
    // Minutes of import and a GiB store: run only when asked for by name.
    if args.only.contains(&Scenario::Million) {
        million::million(args, &nats, report).await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("PBN_LOAD_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let fds = raise_fd_limit();
    let needed = args.clients.max(args.reconnect_clients) as u64 + 256;
    if fds < needed {
        eprintln!("error: open-files limit {fds} is below the {needed} this run needs (ulimit -n)");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report::default();
    let outcome = runtime.block_on(run(&args, &mut report));
    let table = report.render();
    println!("{table}");
    if let Some(path) = &args.output {
        if let Err(e) = std::fs::write(path, &table) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if !report.failures.is_empty() {
        for f in &report.failures {
            eprintln!("unexpected failure: {f}");
        }
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
