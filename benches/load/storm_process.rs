//! The headline connect storm, every party its own process: a nats-server with pre-issued creds
//! (the baseline, no callout) and a nats-server for the callout deployment with the real
//! `pbn serve` binary beside it. Rounds interleave (baseline, pbn, baseline, pbn, …), each side
//! `--storm-rounds` times; each reports connects/s, p50/p99 latency and the CPU seconds per
//! 1,000 logins of nats-server and of `pbn serve` (utime + stime from `/proc`, read before and
//! after the storm).

use std::path::Path;
use std::time::Duration;

use async_nats::ConnectOptions;

use crate::admin::cpu_time;
use crate::deploy::{self, ChildService, Workspace};
use crate::observe::median;
use crate::report::Report;
use crate::storm::{storm, Storm};
use crate::{memory, Args, LoadError};

/// CPU seconds of `pid` since `before`, per 1,000 successful logins of `s`.
fn per_1000(pid: Option<u32>, before: Duration, s: &Storm) -> f64 {
    let used = pid.and_then(cpu_time).unwrap_or_default().saturating_sub(before);
    used.as_secs_f64() * 1000.0 / (s.attempted - s.failed).max(1) as f64
}

/// One side's samples: (connects/s, p50 ms, p99 ms, nats-server CPU, pbn CPU).
type Samples = Vec<(f64, f64, f64, f64, f64)>;

/// Runs the interleaved rounds against the `pbn` binary (`--pbn`, or beside the benchmark).
pub async fn storm_process(args: &Args, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    let Some(pbn) = memory::find_pbn(args.pbn.as_deref()) else {
        report.fact("storm (separate processes)", "skipped", "no pbn binary: pass --pbn");
        return Ok(());
    };
    let Workspace { dir, store_path, store } = Workspace::new()?;
    let tokens = deploy::token_users(&store, args.clients).tokens;
    let creds = deploy::mint_creds(&store, args.clients)?;
    // Two servers from the same trust: one for the creds baseline (pbn never connects to it),
    // one for the callout deployment.
    let (baseline, base_url) =
        deploy::start_server(&store, &dir.path().join("baseline"), nats).await?;
    let (callout, url) = deploy::start_server(&store, &dir.path().join("callout"), nats).await?;
    drop(store);
    let child = ChildService::start(&pbn, &store_path, &url, &dir.path().join("pbn.log"))?;
    deploy::wait_ready(&url, &tokens[0]).await?;
    let (mut base, mut ours): (Samples, Samples) = (Vec::new(), Vec::new());
    for round in 0..args.storm_rounds {
        let label = format!("storm: creds, baseline nats-server process, round {}", round + 1);
        let before = baseline.pid().and_then(cpu_time).unwrap_or_default();
        let s = storm(&label, &base_url, args.clients, args.concurrency, |i| {
            ConnectOptions::with_credentials(&creds[i]).expect("minted creds parse")
        })
        .await;
        let natsd = per_1000(baseline.pid(), before, &s);
        base.push(sample(&s, natsd, 0.0));
        report.storm(&label, &s, &format!("nats-server CPU {natsd:.3} s / 1,000 logins"));
        drop(s);
        baseline.wait_connections_at_most(0, Duration::from_secs(30)).await;

        let label = format!("storm: token, callout, pbn serve process, round {}", round + 1);
        let before_natsd = callout.pid().and_then(cpu_time).unwrap_or_default();
        let before_pbn = cpu_time(child.pid()).unwrap_or_default();
        let s = storm(&label, &url, args.clients, args.concurrency, |i| {
            ConnectOptions::with_token(tokens[i].clone())
        })
        .await;
        let natsd = per_1000(callout.pid(), before_natsd, &s);
        let ours_cpu = per_1000(Some(child.pid()), before_pbn, &s);
        ours.push(sample(&s, natsd, ours_cpu));
        let note =
            format!("nats-server CPU {natsd:.3} s, pbn serve CPU {ours_cpu:.3} s / 1,000 logins");
        report.storm(&label, &s, &note);
        drop(s);
        callout.wait_connections_at_most(2, Duration::from_secs(30)).await;
    }
    child.stop().await;
    summarize(report, args, &mut base, &mut ours);
    Ok(())
}

fn sample(s: &Storm, natsd: f64, pbn: f64) -> (f64, f64, f64, f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (s.rate(), ms(s.latency.p50), ms(s.latency.p99), natsd, pbn)
}

fn summarize(report: &mut Report, args: &Args, base: &mut Samples, ours: &mut Samples) {
    let col = |v: &Samples, f: fn(&(f64, f64, f64, f64, f64)) -> f64| {
        median(&mut v.iter().map(f).collect::<Vec<_>>())
    };
    let rounds = format!(
        "median of {} interleaved rounds, {} clients, {} in flight",
        base.len(),
        args.clients,
        args.concurrency
    );
    report.fact(
        "creds baseline (nats-server process, no callout)",
        format!(
            "{:.0} connects/s, p50 {:.1} ms, p99 {:.1} ms, nats-server {:.3} s CPU / 1,000 logins",
            col(base, |s| s.0),
            col(base, |s| s.1),
            col(base, |s| s.2),
            col(base, |s| s.3)
        ),
        rounds.clone(),
    );
    report.fact(
        "token via callout (pbn serve + nats-server processes)",
        format!(
            "{:.0} connects/s, p50 {:.1} ms, p99 {:.1} ms, nats-server {:.3} s + pbn serve {:.3} s CPU / 1,000 logins",
            col(ours, |s| s.0), col(ours, |s| s.1), col(ours, |s| s.2), col(ours, |s| s.3), col(ours, |s| s.4)
        ),
        rounds,
    );
    report.fact(
        "callout / creds connects/s (separate processes)",
        format!("{:.2}", col(ours, |s| s.0) / col(base, |s| s.0).max(1e-9)),
        "ratio of the medians",
    );
}
