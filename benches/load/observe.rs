//! The cost of observability: the token storm through the callout with `/metrics` scraped every
//! second and audit events published, versus no HTTP listener and audit events off, in
//! interleaved rounds (off, on, on, off, off, on) on one deployment, so drift in the machine's
//! load hits both sides alike. Reported: the median connects/s of each side and the slowdown.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::report::Report;
use crate::scenarios::Deployment;
use crate::storm::storm;
use crate::{Args, LoadError};

/// The rounds, `true` = observed; each side runs first once and last once.
pub const ROUNDS: [bool; 6] = [false, true, true, false, false, true];

/// Settings of the service for one side: with an HTTP listener and audit events, or neither.
fn settings(d: &Deployment, observed: bool) -> Result<(pbn::Settings, Option<String>), LoadError> {
    let http = observed.then(free_addr).transpose()?;
    let flags = pbn::RawConfig {
        store: Some(d.ws.store_path.clone()),
        servers: Some(vec![d.url.clone()]),
        http: http.clone(),
        audit: Some(observed),
        ..pbn::RawConfig::default()
    };
    let settings =
        pbn::Settings::resolve(None, pbn::RawConfig::default(), flags).map_err(LoadError::setup)?;
    Ok((settings, http))
}

/// A free loopback address for the HTTP listener.
pub fn free_addr() -> Result<String, LoadError> {
    let probe =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(LoadError::io("find a free port"))?;
    Ok(probe.local_addr().map_err(LoadError::io("find a free port"))?.to_string())
}

/// Scrapes `GET /metrics` on `addr` every second until aborted, as Prometheus would.
pub async fn scrape(addr: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
            let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
            if s.write_all(request.as_bytes()).await.is_ok() {
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            }
        }
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the rounds and reports both sides and the slowdown.
pub async fn observe(
    d: &mut Deployment,
    args: &Args,
    report: &mut Report,
) -> Result<(), LoadError> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for (round, observed) in ROUNDS.into_iter().enumerate() {
        let (settings, http) = settings(d, observed)?;
        d.replace_service(settings).await?;
        let scraper = http.map(|addr| tokio::spawn(scrape(addr)));
        let label = if observed { "storm: token, observed" } else { "storm: token, unobserved" };
        let s = storm(label, &d.url, args.clients, args.concurrency, |i| d.token(i)).await;
        if let Some(task) = scraper {
            task.abort();
        }
        report.storm(&format!("{label}, round {}", round + 1), &s, "");
        if observed {
            on.push(s.rate())
        } else {
            off.push(s.rate())
        }
        d.release(s).await;
    }
    let (on, off) = (median(&mut on), median(&mut off));
    let slower = (1.0 - on / off.max(1e-9)) * 100.0;
    let clients = args.clients;
    report.fact(
        "token storm, /metrics scraped every 1 s + audit events on",
        format!("{on:.0} connects/s"),
        format!("median of 3 rounds, {clients} clients"),
    );
    report.fact(
        "token storm, no HTTP listener, audit events off",
        format!("{off:.0} connects/s"),
        "median of 3 rounds, interleaved",
    );
    let verdict = if slower <= 5.0 { "target ≤ 5 % met" } else { "target ≤ 5 % missed" };
    report.fact("slowdown with metrics and audit on", format!("{slower:.1} %"), verdict);
    Ok(())
}
