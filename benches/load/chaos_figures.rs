//! Figures of replicated mode for the chaos scenario: connects/s of the token storm with 1 and
//! with 3 replicas (interleaved rounds), apply lag, admin writes/s replicated and embedded, and
//! the rejoin time of a killed replica restarted with an empty store.

use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use pbn::{natsd, CALLOUT_SUBJECT};

use crate::admin::cpu_time;
use crate::chaos::storm;
use crate::chaos_cluster::{converge, user_add, Cluster, Replica, READY};
use crate::observe::median;
use crate::report::{secs, Report};
use crate::storm::Latency;
use crate::{Args, LoadError};

/// Adds whose apply lag is measured.
const LAG_SAMPLES: usize = 100;
/// Admin writes per run of the writes/s figure, and the concurrent clients sending them.
const WRITES: usize = 400;
const WRITE_CLIENTS: usize = 8;

/// Waits until `n` callout subscriptions exist across the cluster's running servers.
pub async fn wait_callouts(cl: &Cluster, n: usize) -> Result<(), LoadError> {
    let started = Instant::now();
    loop {
        let mut found = 0;
        for s in cl.servers.iter().filter(|s| s.pid().is_some()) {
            let Some(http) = s.ports().and_then(|p| p.http) else { continue };
            let connz = natsd::monitor(http, "/connz?subs=1").await.unwrap_or_default();
            let subscribed = |c: &&serde_json::Value| {
                c["subscriptions_list"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|s| s.as_str() == Some(CALLOUT_SUBJECT)))
            };
            found +=
                connz["connections"].as_array().into_iter().flatten().filter(subscribed).count();
        }
        if found >= n {
            return Ok(());
        }
        if started.elapsed() > READY {
            return Err(LoadError::Setup(format!("{found} of {n} callout subscriptions")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Apply lag: [`LAG_SAMPLES`] adds through `a` (server 0); from a's answer until `c`'s
/// `/status` shows the position a had reached (polled every 0.5 ms).
pub async fn apply_lag(
    cl: &Cluster,
    a: &Replica,
    c: &Replica,
    report: &mut Report,
) -> Result<(), LoadError> {
    let admin = cl.admin(0).await?;
    let mut lags = Vec::with_capacity(LAG_SAMPLES);
    for i in 0..LAG_SAMPLES {
        admin.call(&user_add(&format!("lag{i}"))).await.map_err(LoadError::setup)?;
        let answered = Instant::now();
        let target = a.applied().await.unwrap_or(0);
        while c.applied().await.unwrap_or(0) < target {
            if answered.elapsed() > READY {
                return Err(LoadError::Setup("c never applied".into()));
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags.push(answered.elapsed());
    }
    admin.close().await;
    let l = Latency::of(&mut lags);
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    report.fact(
        "apply lag (a answered → c's /status at a's position)",
        format!("p50 {} ms, p99 {} ms", ms(l.p50), ms(l.p99)),
        format!(
            "{LAG_SAMPLES} user adds through a; max {} ms; includes one /status round trip to each",
            ms(l.max)
        ),
    );
    Ok(())
}

/// [`WRITES`] user adds from [`WRITE_CLIENTS`] concurrent admin clients spread over the
/// cluster's servers; reports adds/s under `label`.
pub async fn admin_writes(
    cl: &Cluster,
    label: &str,
    report: &mut Report,
) -> Result<f64, LoadError> {
    let mut admins = Vec::new();
    for k in 0..WRITE_CLIENTS {
        admins.push(cl.admin(k % cl.urls.len()).await?);
    }
    let started = Instant::now();
    let per = WRITES / WRITE_CLIENTS;
    let first_error = std::sync::Mutex::new(None);
    let runs = admins.iter().enumerate().map(|(k, admin)| {
        let first_error = &first_error;
        async move {
            let mut failed = 0;
            for i in 0..per {
                if let Err(e) = admin.call(&user_add(&format!("aw{k}-{i}"))).await {
                    failed += 1;
                    let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert(e.to_string());
                }
            }
            failed
        }
    });
    let failed: usize = futures::future::join_all(runs).await.into_iter().sum();
    let first_error = first_error.into_inner().unwrap_or_else(|e| e.into_inner());
    let took = started.elapsed();
    for a in admins {
        a.close().await;
    }
    let rate = (per * WRITE_CLIENTS - failed) as f64 / took.as_secs_f64();
    report.fact(
        &format!("admin writes/s, {label}"),
        format!("{rate:.1}"),
        format!(
            "{} user adds from {WRITE_CLIENTS} concurrent admin API clients in {}; {failed} failed (first: {})",
            per * WRITE_CLIENTS,
            secs(took),
            first_error.as_deref().unwrap_or("none")
        ),
    );
    if failed > 0 {
        report.failures.push(format!("admin writes ({label}): {failed} failed: {first_error:?}"));
    }
    Ok(rate)
}

/// The same writes against one embedded `pbn serve` on a single server without JetStream.
pub async fn embedded_writes(
    pbn: &Path,
    nats: &Path,
    report: &mut Report,
) -> Result<(), LoadError> {
    eprintln!("chaos: admin writes/s, embedded store");
    let cl = Cluster::start(pbn, nats, 1, 1, 0).await?;
    let r = cl.replica("single", 0, false)?;
    r.wait_serving(&cl.urls[0], &cl.tokens[0]).await?;
    admin_writes(&cl, "embedded: one pbn serve, one server", report).await?;
    r.stop().await;
    Ok(())
}

/// Samples of one side: (connects/s, p50 ms, p99 ms, pbn CPU s per 1,000 logins).
type Samples = Vec<(f64, f64, f64, f64)>;

/// The `--clients` token storm with 1 and with 3 replicas on the same 3-server cluster, clients
/// spread over the servers, `--storm-rounds` interleaved rounds each.
pub async fn connects(
    pbn: &Path,
    nats: &Path,
    args: &Args,
    report: &mut Report,
) -> Result<(), LoadError> {
    eprintln!("chaos: connects/s with 1 and 3 replicas");
    let cl = Cluster::start(pbn, nats, 3, args.clients, 0).await?;
    let a = cl.replica("a", 0, true)?;
    a.wait_in_sync(1).await?;
    let (b_store, c_store) = (cl.ws.dir.path().join("b.redb"), cl.ws.dir.path().join("c.redb"));
    crate::chaos_cluster::copy_store(&cl.ws.store_path, &b_store)?;
    crate::chaos_cluster::copy_store(&cl.ws.store_path, &c_store)?;
    let (mut one, mut three): (Samples, Samples) = (Vec::new(), Vec::new());
    let mut failed = 0;
    for round in 0..args.storm_rounds {
        wait_callouts(&cl, 1).await?;
        let (o, cpu) = timed_storm(&cl, args, &[&a]).await;
        eprintln!("  round {}: 1 replica {:.0}/s", round + 1, o.rate());
        failed += o.failed.len();
        one.push(sample(&o, cpu));
        let arg =
            |p: &Path| vec!["--store".to_string(), p.display().to_string(), "--replicated".into()];
        let b = cl.spawn("b", 1, b_store.clone(), arg(&b_store))?;
        let c = cl.spawn("c", 2, c_store.clone(), arg(&c_store))?;
        let n = round as usize + 1;
        b.wait_in_sync(n).await?;
        c.wait_in_sync(n).await?;
        wait_callouts(&cl, 3).await?;
        let (o, cpu) = timed_storm(&cl, args, &[&a, &b, &c]).await;
        eprintln!("  round {}: 3 replicas {:.0}/s", round + 1, o.rate());
        failed += o.failed.len();
        three.push(sample(&o, cpu));
        converge(&[&a, &b, &c], READY).await?;
        b.stop().await;
        c.stop().await;
    }
    let col = |v: &Samples, f: fn(&(f64, f64, f64, f64)) -> f64| {
        median(&mut v.iter().map(f).collect::<Vec<_>>())
    };
    let all = |v: &Samples| v.iter().map(|s| format!("{:.0}", s.0)).collect::<Vec<_>>().join(", ");
    for (label, v) in [("1 replica", &one), ("3 replicas", &three)] {
        report.fact(
            &format!("token storm, {label} (3-server cluster, separate processes)"),
            format!("{:.0} connects/s", col(v, |s| s.0)),
            format!(
                "median of {} interleaved rounds ({}), {} clients spread over 3 servers, {} in flight; p50 {:.1} ms, p99 {:.1} ms; pbn serve CPU {:.3} s / 1,000 logins (all replicas)",
                v.len(), all(v), args.clients, args.concurrency, col(v, |s| s.1), col(v, |s| s.2), col(v, |s| s.3)
            ),
        );
    }
    if failed > 0 {
        report.failures.push(format!("connects 1 vs 3 replicas: {failed} clients failed"));
    }
    Ok(())
}

async fn timed_storm(cl: &Cluster, args: &Args, rs: &[&Replica]) -> (crate::chaos::Outcome, f64) {
    let cpu = |rs: &[&Replica]| rs.iter().filter_map(|r| cpu_time(r.pid())).sum::<Duration>();
    let before = cpu(rs);
    let o = storm(&cl.urls, &cl.tokens, args.concurrency, &AtomicUsize::new(0)).await;
    let used = cpu(rs).saturating_sub(before);
    let per_1000 = used.as_secs_f64() * 1000.0 / o.ok.max(1) as f64;
    (o, per_1000)
}

fn sample(o: &crate::chaos::Outcome, cpu: f64) -> (f64, f64, f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (o.rate(), ms(o.latency.p50), ms(o.latency.p99), cpu)
}

/// A store of `users` users on a 3-server cluster: replicas a and c in sync, c killed with
/// SIGKILL, then joined again with an empty store from a bundle of `pbn admin replica add`;
/// the time from its start to "in sync with the log", then a login answered by it alone.
pub async fn rejoin(
    pbn: &Path,
    nats: &Path,
    users: usize,
    report: &mut Report,
) -> Result<(), LoadError> {
    eprintln!("chaos: rejoin with an empty store at {users} users");
    let setup = Instant::now();
    let cl = Cluster::start(pbn, nats, 3, 1, users).await?;
    let a = cl.replica("a", 0, true)?;
    a.wait_in_sync(1).await?;
    let c = cl.replica("c", 2, true)?;
    c.wait_in_sync(1).await?;
    eprintln!("  log started and c in sync after {}", secs(setup.elapsed()));
    drop(c);
    let bundle = cl.ws.dir.path().join("c2.bundle");
    let out = std::process::Command::new(pbn)
        .args(["admin", "--server", &cl.urls[0], "--creds"])
        .arg(&cl.creds)
        .args(["replica", "add", "c2", "--out"])
        .arg(&bundle)
        .output()
        .map_err(LoadError::io("run pbn admin replica add"))?;
    if !out.status.success() {
        return Err(LoadError::Setup(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let store = cl.ws.dir.path().join("c2.redb");
    let args = vec![
        "--join".to_string(),
        bundle.display().to_string(),
        "--store".into(),
        store.display().to_string(),
    ];
    // The new replica's creds are in AUTH's JWT once `replica add` answers, but a server may
    // take a moment more to apply the push: a join refused for that is started again.
    let mut attempt = 0;
    let (c2, took) = loop {
        attempt += 1;
        let started = Instant::now();
        let c2 = cl.spawn(&format!("c2-{attempt}"), 2, store.clone(), args.clone())?;
        match c2.wait_in_sync(1).await {
            Ok(_) => break (c2, started.elapsed()),
            Err(e) if attempt < 5 && e.to_string().contains("authorization violation") => {
                eprintln!("  join attempt {attempt} refused by the server; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    };
    converge(&[&a, &c2], READY).await?;
    a.stop().await;
    wait_callouts(&cl, 1).await?;
    let login = async_nats::ConnectOptions::with_token(cl.tokens[0].clone())
        .connect(cl.urls[2].as_str())
        .await
        .map_err(LoadError::setup)?;
    login.flush().await.map_err(LoadError::setup)?;
    let log = std::fs::read_to_string(&c2.log).unwrap_or_default();
    let joined = log.lines().find(|l| l.contains("joined the log")).unwrap_or_default();
    let how = if joined.contains("snapshot=None") { "the log" } else { "snapshot + tail" };
    report.fact(
        &format!("rejoin with an empty store, {users} users"),
        secs(took),
        format!("killed replica joined again (`serve --join`) from {how} on a 3-server R3 cluster: start → in sync; then a token login answered by it alone; join attempts: {attempt}"),
    );
    Ok(())
}
