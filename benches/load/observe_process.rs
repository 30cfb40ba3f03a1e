//! The cost of observability on the real `pbn serve` process: the same interleaved rounds as
//! `observe` (off, on, on, off, off, on), each with a fresh `pbn serve` child on one store and
//! one nats-server process, *on* being `--http` with `/metrics` scraped every second and audit
//! events published, *off* no listener and `audit = false`. Reported per side: the median
//! connects/s and the CPU seconds `pbn serve` spent per 1,000 logins (utime + stime from
//! `/proc`, read before and after each storm).

use std::path::Path;

use crate::admin::cpu_time;
use crate::deploy::{self, ChildService, Workspace};
use crate::observe::{free_addr, median, scrape, ROUNDS};
use crate::report::Report;
use crate::storm::storm;
use crate::{memory, Args, LoadError};

/// Runs the rounds against the `pbn` binary (`--pbn`, or beside the benchmark).
pub async fn observe_process(
    args: &Args,
    nats: &Path,
    report: &mut Report,
) -> Result<(), LoadError> {
    let Some(pbn) = memory::find_pbn(args.pbn.as_deref()) else {
        report.fact("observe (pbn serve process)", "skipped", "no pbn binary: pass --pbn");
        return Ok(());
    };
    let Workspace { dir, store_path, store } = Workspace::new()?;
    let tokens = deploy::token_users(&store, args.clients).tokens;
    let (server, url) = deploy::start_server(&store, dir.path(), nats).await?;
    drop(store);
    let quiet = dir.path().join("unobserved.toml");
    std::fs::write(&quiet, "audit = false\n").map_err(LoadError::io("write the config"))?;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for (round, observed) in ROUNDS.into_iter().enumerate() {
        let http = free_addr()?;
        let extra: Vec<&str> = match observed {
            true => vec!["--http", &http],
            false => vec!["--config", quiet.to_str().unwrap_or_default()],
        };
        let log = dir.path().join(format!("pbn-{round}.log"));
        let child = ChildService::start_with(&pbn, &store_path, &url, &log, &extra)?;
        deploy::wait_ready(&url, &tokens[0]).await?;
        let before = cpu_time(child.pid()).unwrap_or_default();
        let scraper = observed.then(|| tokio::spawn(scrape(http.clone())));
        let side = if observed { "observed" } else { "unobserved" };
        let label = format!("storm: token, {side}, pbn serve process");
        let s = storm(&label, &url, args.clients, args.concurrency, |i| {
            async_nats::ConnectOptions::with_token(tokens[i].clone())
        })
        .await;
        let cpu = cpu_time(child.pid()).unwrap_or_default().saturating_sub(before);
        if let Some(task) = scraper {
            task.abort();
        }
        let per_1000 = cpu.as_secs_f64() * 1000.0 / (s.attempted - s.failed).max(1) as f64;
        let note = format!("pbn serve CPU {per_1000:.3} s per 1,000 logins");
        report.storm(&format!("{label}, round {}", round + 1), &s, &note);
        let sample = (s.rate(), per_1000);
        if observed {
            on.push(sample)
        } else {
            off.push(sample)
        }
        drop(s);
        child.stop().await;
        server.wait_connections_at_most(0, std::time::Duration::from_secs(30)).await;
    }
    summarize(report, args.clients, &mut on, &mut off);
    Ok(())
}

fn summarize(report: &mut Report, clients: usize, on: &mut [(f64, f64)], off: &mut [(f64, f64)]) {
    let rate = |v: &mut [(f64, f64)]| median(&mut v.iter().map(|s| s.0).collect::<Vec<_>>());
    let cpu = |v: &mut [(f64, f64)]| median(&mut v.iter().map(|s| s.1).collect::<Vec<_>>());
    let (on_rate, off_rate, on_cpu, off_cpu) = (rate(on), rate(off), cpu(on), cpu(off));
    let slower = (1.0 - on_rate / off_rate.max(1e-9)) * 100.0;
    report.fact(
        "pbn serve process, /metrics scraped every 1 s + audit events on",
        format!("{on_rate:.0} connects/s, {on_cpu:.3} s CPU / 1,000 logins"),
        format!("median of 3 rounds, {clients} clients"),
    );
    report.fact(
        "pbn serve process, no HTTP listener, audit events off",
        format!("{off_rate:.0} connects/s, {off_cpu:.3} s CPU / 1,000 logins"),
        "median of 3 rounds, interleaved",
    );
    let verdict = if slower <= 5.0 { "target ≤ 5 % met" } else { "target ≤ 5 % missed" };
    report.fact(
        "pbn serve process: slowdown with metrics and audit on",
        format!("{slower:.1} %"),
        verdict,
    );
}
