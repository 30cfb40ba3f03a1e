//! A million users (`--only million`; `scripts/bench.sh --million`), never part of the default
//! run: it builds a store of `--million-users` users (default 1,000,000) with the bulk import
//! (generated NDJSON, parsed, validated whole and written in batched transactions, as `pbn
//! admin import FILE` does), in parts of [`PART`] users, and measures on it:
//!
//! - the store file's size;
//! - user lookups in a read transaction at scattered users: by name (`get_user`, a password
//!   login) and by token hash (`user_by_token`, a token login), each timed, p50 and p99;
//! - `pbn serve` (the real binary) from spawn to the first admitted login: [`STARTS`] restarts
//!   (each stopped cleanly, so the store has its clean-close stamp), then one start without the
//!   stamp (the whole-file integrity check, as after a crash); then its RSS idle after the first
//!   login (`/proc/PID/status`);
//! - the token storm (`--clients` distinct users scattered over the million, `--concurrency` in
//!   flight) against it, interleaved with the same storm against a `pbn serve` whose store
//!   holds only `--clients` token users (small, big, small, big, … `--storm-rounds` each), each
//!   deployment its own nats-server, and the ratio of the median rates.
//!
//! With `PBN_MILLION_DIR=DIR` the big store lives in `DIR` (`pbn.redb` and its key file) and is
//! kept: a later run finds it there and skips the import (the store must hold at least
//! `--million-users` users of this scenario; delete `DIR` to build it again).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use pbn::bulk::{parse::parse, BulkImport};
use pbn::{execute, Context, Request, Store, StoreRead};

use crate::deploy::{self, ChildService, Workspace};
use crate::observe::median;
use crate::report::{memory_mib, secs, Report};
use crate::storm::storm;
use crate::support::Scatter;
use crate::{import, memory, Args, LoadError};

/// Users per import file: a part's text (about 45 MB) and its parsed records stay a bounded
/// size in memory while the store grows to a million.
const PART: usize = 100_000;

/// Timed starts of `pbn serve` on the big store as a restart finds it (median reported).
const STARTS: usize = 3;

/// Lookups timed one by one for each kind.
const LOOKUPS: usize = 20_000;

/// The token of imported user `i` (its hash is in the import file).
fn token_of(i: usize) -> String {
    format!("bench-token-{i}")
}

/// Imports `users` users in parts; returns the seconds it took.
fn build(store: &Store, users: usize) -> Result<f64, LoadError> {
    let started = Instant::now();
    let mut first = 0;
    while first < users {
        let count = PART.min(users - first);
        let records = parse(&import::file(first, count)).map_err(LoadError::setup)?;
        let req = Request::BulkImport(BulkImport { records });
        execute(store, &req, &Context::now()).map_err(LoadError::setup)?;
        first += count;
        eprintln!("million: {first} users imported ({:.0} s)", started.elapsed().as_secs_f64());
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The million-user store: in a temp dir, or kept in `PBN_MILLION_DIR`.
struct Big {
    _temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    store_path: PathBuf,
    store: Store,
    /// Whether the store still needs its users imported.
    fresh: bool,
}

impl Big {
    fn new() -> Result<Big, LoadError> {
        let Some(dir) = std::env::var_os("PBN_MILLION_DIR").map(PathBuf::from) else {
            let Workspace { dir, store_path, store } = Workspace::new()?;
            let path = dir.path().to_path_buf();
            return Ok(Big { _temp: Some(dir), dir: path, store_path, store, fresh: true });
        };
        std::fs::create_dir_all(&dir).map_err(LoadError::io("create PBN_MILLION_DIR"))?;
        let store_path = dir.join("pbn.redb");
        if !store_path.exists() {
            let store = crate::support::served_store(&store_path, false);
            return Ok(Big { _temp: None, dir, store_path, store, fresh: true });
        }
        let key = std::fs::read_to_string(dir.join("pbn.redb.key"))
            .map_err(LoadError::io("read the kept store's key"))?;
        let key = pbn::seal::StoreKey::from_file_text(&key).map_err(LoadError::setup)?;
        let key = Some(pbn::seal::KeySource::Key(key));
        let store = Store::open_for_with(&store_path, "pbn bench", Duration::ZERO, key)
            .map_err(LoadError::setup)?;
        eprintln!("million: reusing the store in {}", dir.display());
        Ok(Big { _temp: None, dir, store_path, store, fresh: false })
    }
}

/// p50 and p99 of `samples` (µs).
fn quantiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

/// Times `LOOKUPS` lookups of scattered users by name and by token hash.
fn lookups(store: &Store, users: usize, report: &mut Report) -> Result<(), LoadError> {
    let mut scatter = Scatter::new(0x5eed);
    let picks: Vec<usize> = (0..LOOKUPS).map(|_| scatter.below(users)).collect();
    let names: Vec<String> = picks.iter().map(|i| format!("imp{i:07}")).collect();
    let hashes: Vec<String> = picks.iter().map(|&i| pbn::token_hash(&token_of(i))).collect();
    let mut by_name = Vec::with_capacity(LOOKUPS);
    for name in &names {
        let t = Instant::now();
        let user = store.read(|tx| tx.get_user(std::hint::black_box(name)))?;
        by_name.push(t.elapsed().as_secs_f64() * 1e6);
        if user.is_none() {
            return Err(LoadError::Setup(format!("imported user {name} not found")));
        }
    }
    let mut by_token = Vec::with_capacity(LOOKUPS);
    for hash in &hashes {
        let t = Instant::now();
        let user = store.read(|tx| tx.user_by_token(std::hint::black_box(hash)))?;
        by_token.push(t.elapsed().as_secs_f64() * 1e6);
        if user.is_none() {
            return Err(LoadError::Setup("an imported token was not found".into()));
        }
    }
    for (what, samples) in [("name (get_user)", by_name), ("token hash (user_by_token)", by_token)]
    {
        let (p50, p99) = quantiles(samples);
        let verdict =
            if p50 <= 10.0 { "target ≤ 10 µs met" } else { "target ≤ 10 µs missed" };
        report.fact(
            &format!("million: user lookup by {what}, {users} users"),
            format!("p50 {p50:.1} µs, p99 {p99:.1} µs"),
            format!("{LOOKUPS} scattered users, one read transaction each; {verdict}"),
        );
    }
    Ok(())
}

/// `pbn serve` on `store_path` for `url`: spawned, timed until `token` logs in.
async fn serve(
    pbn: &Path,
    store_path: &Path,
    url: &str,
    log: &Path,
    token: &str,
) -> Result<(ChildService, Duration), LoadError> {
    let started = Instant::now();
    let child = ChildService::start(pbn, store_path, url, log)?;
    // A login sent before the callout subscribed is held by the server and abandoned by the
    // probe after its attempt timeout, which would round the figure up to that timeout: the
    // probe starts once the service logged its subscription (polled every 5 ms).
    while !std::fs::read_to_string(log).is_ok_and(|t| t.contains("callout subscribed")) {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(LoadError::Setup("pbn serve did not subscribe within 60 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    deploy::wait_ready(url, token).await?;
    Ok((child, started.elapsed()))
}

/// Whether the `pbn serve` whose log is `log` opened its store with the whole-file check.
fn checked_on_open(log: &Path) -> &'static str {
    match std::fs::read_to_string(log) {
        Ok(text) if text.contains("integrity_checked=true") => "whole-file check",
        Ok(text) if text.contains("integrity_checked=false") => "clean-close stamp, no check",
        _ => "unknown (no `store opened` line in the log)",
    }
}

/// `pbn serve` on the big store, spawned and timed until the first login, then stopped with
/// SIGTERM (a clean close, which stamps the store): [`STARTS`] times as a restart finds it, then
/// once with the stamp removed, as after a crash, a copy or a restore (the whole-file check).
async fn start_times(
    pbn: &Path,
    (store, url, log, token): (&Path, &str, &Path, &str),
    users: usize,
    report: &mut Report,
) -> Result<(), LoadError> {
    let mut times = Vec::new();
    let mut how = Vec::new();
    for _ in 0..STARTS {
        let (child, ready) = serve(pbn, store, url, log, token).await?;
        child.stop().await;
        times.push(ready.as_secs_f64());
        how.push(checked_on_open(log));
    }
    let all: Vec<String> = times.iter().map(|t| format!("{t:.2} s")).collect();
    let ready = median(&mut times);
    let verdict = if ready <= 1.0 { "target ≤ 1 s met" } else { "target ≤ 1 s missed" };
    how.dedup();
    report.fact(
        &format!("million: pbn serve spawn → first login, {users} users (restart)"),
        format!("{ready:.2} s"),
        format!(
            "median of {STARTS} starts ({}); store opened by {}; {verdict}",
            all.join(", "),
            how.join(" / ")
        ),
    );
    let mut stamp = store.as_os_str().to_owned();
    stamp.push(".clean");
    std::fs::remove_file(stamp).map_err(LoadError::io("remove the clean-close stamp"))?;
    let (child, ready) = serve(pbn, store, url, log, token).await?;
    child.stop().await;
    report.fact(
        &format!("million: pbn serve spawn → first login, {users} users (no stamp)"),
        secs(ready),
        format!("store opened by {}: after a crash, a copy or a restore", checked_on_open(log)),
    );
    Ok(())
}

/// Runs the scenario against the `pbn` binary (`--pbn`, or beside the benchmark).
pub async fn million(args: &Args, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    let Some(pbn) = memory::find_pbn(args.pbn.as_deref()) else {
        report.fact("million users", "skipped", "no pbn binary: pass --pbn");
        return Ok(());
    };
    let users = args.million_users.max(args.clients);
    let big = Big::new()?;
    if big.fresh {
        let took = tokio::task::block_in_place(|| build(&big.store, users))?;
        report.fact(
            &format!("million: build the store of {users} users by bulk import"),
            format!("{:.0} users/s", users as f64 / took.max(1e-9)),
            format!("{took:.1} s, parts of {PART}; each user: email, argon2id PHC, one token hash"),
        );
    }
    let size = std::fs::metadata(&big.store_path).map(|m| m.len()).unwrap_or(0);
    report.fact(
        &format!("million: store file with {users} users"),
        format!("{:.1} MiB", size as f64 / 1048576.0),
        format!("{:.0} bytes per user", size as f64 / users as f64),
    );
    tokio::task::block_in_place(|| lookups(&big.store, users, report))?;
    // The storm's users: distinct, scattered evenly over the whole store.
    let stride = users / args.clients.max(1);
    let big_tokens: Vec<String> = (0..args.clients).map(|k| token_of(k * stride)).collect();
    let (big_server, big_url) = deploy::start_server(&big.store, &big.dir, nats).await?;
    let small = Workspace::new()?;
    let small_tokens = deploy::token_users(&small.store, args.clients).tokens;
    let (small_server, small_url) =
        deploy::start_server(&small.store, small.dir.path(), nats).await?;
    let (big_path, small_path) = (big.store_path.clone(), small.store_path.clone());
    drop((big.store, small.store));

    let log = big.dir.join("pbn.log");
    let token = &big_tokens[0];
    start_times(&pbn, (&big_path, &big_url, &log, token), users, report).await?;
    let (big_child, _) = serve(&pbn, &big_path, &big_url, &log, token).await?;
    // Idle: let start-up work (session sync, reconcile) settle before reading the RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    match memory_mib(Some(big_child.pid())) {
        Some((rss, hwm)) => report.fact(
            &format!("million: pbn serve RSS, idle after the first login, {users} users"),
            format!("{rss:.1} MiB"),
            format!("VmRSS; peak so far (VmHWM) {hwm:.1} MiB"),
        ),
        None => report.failures.push("million: cannot read /proc of pbn serve".into()),
    }
    let log = small.dir.path().join("pbn.log");
    let (small_child, _) = serve(&pbn, &small_path, &small_url, &log, &small_tokens[0]).await?;

    let (mut small_rates, mut big_rates) = (Vec::new(), Vec::new());
    for round in 1..=args.storm_rounds {
        for (label, url, tokens, rates, server) in [
            ("small", &small_url, &small_tokens, &mut small_rates, &small_server),
            ("million", &big_url, &big_tokens, &mut big_rates, &big_server),
        ] {
            let n = if label == "small" { args.clients } else { users };
            let what = format!("million: token storm, {n}-user store, pbn serve, round {round}");
            let s = storm(&what, url, args.clients, args.concurrency, |i| {
                ConnectOptions::with_token(tokens[i].clone())
            })
            .await;
            rates.push(s.rate());
            report.storm(&what, &s, "");
            drop(s);
            server.wait_connections_at_most(2, Duration::from_secs(30)).await;
        }
    }
    if let Some((rss, hwm)) = memory_mib(Some(big_child.pid())) {
        report.fact(
            &format!("million: pbn serve RSS after the storms, {users} users"),
            format!("{rss:.1} MiB"),
            format!("VmHWM {hwm:.1} MiB"),
        );
    }
    let (small_rate, big_rate) = (median(&mut small_rates), median(&mut big_rates));
    report.fact(
        &format!("million: token storm rate, {users} users / {} users", args.clients),
        format!("{big_rate:.0} / {small_rate:.0} connects/s = {:.2}", big_rate / small_rate),
        format!("medians of {} interleaved rounds each", args.storm_rounds),
    );
    big_child.stop().await;
    small_child.stop().await;
    drop((big_server, small_server));
    Ok(())
}
