//! The chaos scenario (`--only chaos`), every party its own process (`pbn serve` from `--pbn`):
//! 1. the `--clients` token storm on a 3-server JetStream cluster with three replicas, one
//!    replica killed with SIGKILL at a third of the storm and one nats-server at two thirds,
//!    admin writes meanwhile: clients in, and admin writes reported successful but missing from
//!    a replica's store afterwards (the killed replica restarted on its old store);
//! 2. on a second cluster: apply lag, admin writes/s, two replicas editing one user at once,
//!    and a minority partition (two servers stopped, then started again);
//! 3. [`crate::chaos_figures`]: connects/s with 1 and 3 replicas, admin writes/s of an embedded
//!    store, rejoin time with an empty store at 10,000 and 100,000 users.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use futures::StreamExt;
use pbn::{AdminClient, ErrorClass, RemoteError, Request, StoreRead, UserEdit};

use crate::chaos_cluster::{converge, user_add, Cluster, Replica, READY};
use crate::report::{secs, Report};
use crate::storm::Latency;
use crate::{chaos_figures, memory, Args, LoadError};

/// How long one storm client may keep retrying.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);
/// One connect attempt: above nats-server's 5 s auth timeout.
const ATTEMPT: Duration = Duration::from_secs(8);
/// Concurrent admin writers during the storm (several operators at work).
const WRITERS: usize = 4;
/// Rounds of two concurrent edits of one user.
const SAME_USER_ROUNDS: usize = 20;

/// What a storm with retries came to.
pub struct Outcome {
    /// Clients that got in.
    pub ok: usize,
    /// The last error of each client that never got in.
    pub failed: Vec<String>,
    /// Clients that needed more than one attempt.
    pub retried: usize,
    /// First start to last finish.
    pub wall: Duration,
    /// Per client, first attempt to success.
    pub latency: Latency,
}

impl Outcome {
    /// Clients in per second of wall time.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Token logins of `tokens`, client `i` on server `i % n` first and the next server after each
/// failure, `in_flight` at once; `admitted` counts those in as they come. Each client closes
/// its connection once in (the storm measures admission, not holding connections).
pub async fn storm(
    urls: &[String],
    tokens: &[String],
    in_flight: usize,
    admitted: &AtomicUsize,
) -> Outcome {
    let started = Instant::now();
    let results: Vec<Result<(usize, Duration), String>> =
        futures::stream::iter(tokens.iter().enumerate())
            .map(|(i, token)| async move {
                let r = client(urls, i, token).await;
                admitted.fetch_add(usize::from(r.is_ok()), Ordering::SeqCst);
                r
            })
            .buffer_unordered(in_flight.max(1))
            .collect()
            .await;
    let wall = started.elapsed();
    let mut times: Vec<Duration> =
        results.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.1).collect();
    Outcome {
        ok: times.len(),
        failed: results.iter().filter_map(|r| r.as_ref().err().cloned()).collect(),
        retried: results.iter().filter(|r| matches!(r, Ok((n, _)) if *n > 1)).count(),
        wall,
        latency: Latency::of(&mut times),
    }
}

async fn client(urls: &[String], i: usize, token: &str) -> Result<(usize, Duration), String> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let url = &urls[(i + attempt) % urls.len()];
        attempt += 1;
        let opts = ConnectOptions::with_token(token.to_string())
            .ignore_discovered_servers()
            .connection_timeout(ATTEMPT);
        let error = match tokio::time::timeout(ATTEMPT, opts.connect(url.as_str())).await {
            Ok(Ok(c)) => match c.flush().await {
                Ok(()) => return Ok((attempt, started.elapsed())),
                Err(e) => e.to_string(),
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {ATTEMPT:?}"),
        };
        if started.elapsed() > CLIENT_DEADLINE {
            return Err(format!("after {attempt} attempts: {error}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the whole chaos scenario against the `pbn` binary (`--pbn`, or beside the benchmark).
pub async fn chaos(args: &Args, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    let Some(pbn) = memory::find_pbn(args.pbn.as_deref()) else {
        report.fact("chaos", "skipped", "no pbn binary: pass --pbn");
        return Ok(());
    };
    if args.chaos_figures_only {
        replicated_figures(&pbn, nats, report).await?;
        return chaos_figures::embedded_writes(&pbn, nats, report).await;
    }
    if !args.chaos_rejoin_only {
        storm_with_kills(&pbn, nats, args, report).await?;
        replicated_figures(&pbn, nats, report).await?;
        chaos_figures::connects(&pbn, nats, args, report).await?;
        chaos_figures::embedded_writes(&pbn, nats, report).await?;
    }
    for &users in &args.chaos_rejoin_users {
        chaos_figures::rejoin(&pbn, nats, users, report).await?;
    }
    Ok(())
}

/// Admin writes reported successful, by the phase they were sent in.
#[derive(Default)]
struct Writes {
    ok: Mutex<Vec<(String, usize)>>,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

/// One writer: adds `w{k}-{i}` through `admin` until `stop`.
async fn writer(k: usize, admin: &AdminClient, phase: &AtomicUsize, stop: &AtomicBool, w: &Writes) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("w{k}-{i}");
        i += 1;
        let sent_in = phase.load(Ordering::SeqCst);
        match admin.call(&user_add(&name)).await {
            Ok(_) => w.ok.lock().unwrap_or_else(|e| e.into_inner()).push((name, sent_in)),
            Err(e) => {
                w.failed.fetch_add(1, Ordering::SeqCst);
                let mut first = w.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(e.to_string());
            }
        }
    }
}

/// The storm with one replica and then one server killed, admin writes meanwhile.
async fn storm_with_kills(
    pbn: &Path,
    nats: &Path,
    args: &Args,
    report: &mut Report,
) -> Result<(), LoadError> {
    eprintln!("chaos: {}-client storm, replica and server killed", args.clients);
    let mut cl = Cluster::start(pbn, nats, 3, args.clients, 0).await?;
    let (a, b, c) =
        (cl.replica("a", 0, true)?, cl.replica("b", 1, true)?, cl.replica("c", 2, true)?);
    for r in [&a, &b, &c] {
        r.wait_in_sync(1).await?;
    }
    chaos_figures::wait_callouts(&cl, 3).await?;
    // Writers on servers 0 and 2, which stay up.
    let mut admins = Vec::new();
    for k in 0..WRITERS {
        admins.push(cl.admin([0, 2][k % 2]).await?);
    }
    let (admitted, phase, stop, writes) =
        (AtomicUsize::new(0), AtomicUsize::new(0), AtomicBool::new(false), Writes::default());
    let (urls, tokens) = (cl.urls.clone(), cl.tokens.clone());
    let c_store = c.store.clone();
    let n = tokens.len();
    let run = async {
        let o = storm(&urls, &tokens, args.concurrency, &admitted).await;
        // Writes go on a little after the storm, with one replica and one server down.
        let after = writes_in(&writes, 2);
        let started = Instant::now();
        while writes_in(&writes, 2) < after + 5 && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        o
    };
    let kills = async {
        let mut c = Some(c);
        for (step, at) in [(1, n / 3), (2, 2 * n / 3)] {
            while admitted.load(Ordering::SeqCst) < at && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            match step {
                1 => drop(c.take()),
                _ => cl.servers[1].kill(),
            }
            phase.store(step, Ordering::SeqCst);
            eprintln!("chaos: step {step} at {} clients in", admitted.load(Ordering::SeqCst));
        }
    };
    let writers = futures::future::join_all(
        admins.iter().enumerate().map(|(k, a)| writer(k, a, &phase, &stop, &writes)),
    );
    let (o, (), _) = tokio::join!(run, kills, writers);
    for a in admins {
        a.close().await;
    }
    let c = cl.spawn(
        "c",
        2,
        c_store.clone(),
        vec!["--store".into(), c_store.display().to_string(), "--replicated".into()],
    )?;
    let back = Instant::now();
    c.wait_in_sync(2).await?;
    let caught_up = back.elapsed();
    converge(&[&a, &b, &c], READY).await?;
    let ok: Vec<(String, usize)> = writes.ok.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let stores = [a.store.clone(), b.store.clone(), c.store.clone()];
    drop((a, b, c));
    let mut lost = 0;
    for path in &stores {
        let store = crate::chaos_cluster::open_store(path)?;
        let missing =
            ok.iter().filter(|(u, _)| !store.read(|tx| tx.get_user(u)).ok().flatten().is_some());
        lost += missing.count();
    }
    report_storm(report, &o, n, &ok, &writes, lost, caught_up);
    Ok(())
}

fn writes_in(w: &Writes, phase: usize) -> usize {
    w.ok.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|(_, p)| *p == phase).count()
}

fn report_storm(
    report: &mut Report,
    o: &Outcome,
    n: usize,
    ok: &[(String, usize)],
    w: &Writes,
    lost: usize,
    caught_up: Duration,
) {
    let by_phase = |p| ok.iter().filter(|(_, q)| *q == p).count();
    let ms = |d: Duration| d.as_millis();
    report.fact(
        "chaos storm: clients in (replica then server killed with SIGKILL)",
        format!("{}/{n}", o.ok),
        format!(
            "{:.0} connects/s, {} needed a retry, per client p50 {} / p99 {} / max {} ms; 3 servers, 3 replicas",
            o.rate(), o.retried, ms(o.latency.p50), ms(o.latency.p99), ms(o.latency.max)
        ),
    );
    let failed = w.failed.load(Ordering::SeqCst);
    let first = w.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.fact(
        "chaos storm: admin writes lost",
        lost.to_string(),
        format!(
            "{} reported successful ({} before the kills, {} after the replica's, {} after the server's), each looked up in all 3 replicas' stores; {failed} failed (first: {})",
            ok.len(), by_phase(0), by_phase(1), by_phase(2), first.as_deref().unwrap_or("none")
        ),
    );
    report.fact(
        "chaos storm: killed replica restarted on its old store, in sync after",
        secs(caught_up),
        "",
    );
    if !o.failed.is_empty() {
        report.failures.push(format!(
            "chaos storm: {} clients never got in: {:?}",
            o.failed.len(),
            o.failed.first()
        ));
    }
    if lost > 0 {
        report.failures.push(format!("chaos storm: {lost} admin writes lost"));
    }
}

/// Apply lag, replicated admin writes/s, two replicas editing one user, minority partition.
async fn replicated_figures(pbn: &Path, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    eprintln!("chaos: apply lag, admin writes/s, one user edited twice at once, partition");
    let mut cl = Cluster::start(pbn, nats, 3, 10, 0).await?;
    let rs = [cl.replica("a", 0, true)?, cl.replica("b", 1, true)?, cl.replica("c", 2, true)?];
    for r in &rs {
        r.wait_in_sync(1).await?;
    }
    chaos_figures::wait_callouts(&cl, 3).await?;
    chaos_figures::apply_lag(&cl, &rs[0], &rs[2], report).await?;
    chaos_figures::admin_writes(&cl, "replicated: 3 replicas, 3 servers, R3 log", report).await?;
    same_user(&cl, &rs, report).await?;
    partition(&mut cl, &rs, report).await
}

/// Two replicas editing one user at once, [`SAME_USER_ROUNDS`] times: conflicts and lost fields.
async fn same_user(cl: &Cluster, rs: &[Replica; 3], report: &mut Report) -> Result<(), LoadError> {
    let (via_a, via_b) = (cl.admin(0).await?, cl.admin(1).await?);
    via_a.call(&user_add("shared")).await.map_err(LoadError::setup)?;
    let (mut conflicts, mut lost) = (0, 0);
    for round in 0..SAME_USER_ROUNDS {
        let email = format!("r{round}@example.com");
        let description = format!("round {round}");
        let edit = |e: Option<String>, d: Option<String>| {
            Request::UserEdit(UserEdit {
                name: "shared".into(),
                email: e,
                description: d,
                ..UserEdit::default()
            })
        };
        let (by_a, by_b) = (edit(Some(email.clone()), None), edit(None, Some(description.clone())));
        let (ra, rb) = tokio::join!(via_a.call(&by_a), via_b.call(&by_b));
        for r in [&ra, &rb] {
            match r {
                Ok(_) => {}
                Err(RemoteError::Refused { class: ErrorClass::LogConflict, .. }) => conflicts += 1,
                Err(e) => return Err(LoadError::Setup(format!("same-user round {round}: {e}"))),
            }
        }
        let shown = via_a.call(&Request::UserShow(pbn::UserShow { name: "shared".into() })).await;
        let text = format!("{:?}", shown.map_err(LoadError::setup)?);
        lost += usize::from(ra.is_ok() && !text.contains(&email));
        lost += usize::from(rb.is_ok() && !text.contains(&description));
    }
    via_a.close().await;
    via_b.close().await;
    converge(&rs.iter().collect::<Vec<_>>(), READY).await?;
    report.fact(
        "two replicas editing one user at once: fields lost",
        lost.to_string(),
        format!("{SAME_USER_ROUNDS} rounds of two concurrent edits (e-mail through a, description through b); {conflicts} of {} edits answered with a conflict (exit 15)", 2 * SAME_USER_ROUNDS),
    );
    if lost > 0 {
        report.failures.push(format!("same user: {lost} fields lost"));
    }
    Ok(())
}

/// Servers 1 and 2 stopped: replica a's admin writes fail fast, its logins go on; after both
/// are back, time until a write succeeds and all three replicas converge.
async fn partition(
    cl: &mut Cluster,
    rs: &[Replica; 3],
    report: &mut Report,
) -> Result<(), LoadError> {
    let admin = cl.admin(0).await?;
    cl.servers[1].stop().await;
    cl.servers[2].stop().await;
    let started = Instant::now();
    let refused = admin.call(&user_add("minority")).await;
    let took = started.elapsed();
    let verdict = match &refused {
        Err(RemoteError::Refused { class: ErrorClass::Unavailable, message }) => {
            format!("refused: {message}")
        }
        other => format!("unexpected: {other:?}"),
    };
    let login = ConnectOptions::with_token(cl.tokens[0].clone()).connect(cl.urls[0].as_str()).await;
    let login_ok = match login {
        Ok(c) => c.flush().await.is_ok(),
        Err(_) => false,
    };
    report.fact(
        "minority partition: admin write on the cut-off replica",
        secs(took),
        verdict.clone(),
    );
    report.fact(
        "minority partition: token login on the cut-off replica",
        if login_ok { "admitted" } else { "refused" },
        "served from the local view",
    );
    if !matches!(refused, Err(RemoteError::Refused { class: ErrorClass::Unavailable, .. }))
        || !login_ok
    {
        report.failures.push(format!("partition: write {verdict}, login ok {login_ok}"));
    }
    let healed = Instant::now();
    for i in [1, 2] {
        cl.servers[i].restart().await.map_err(LoadError::setup)?;
    }
    cl.wait_healthy().await?;
    while admin.call(&user_add("healed")).await.is_err() {
        if healed.elapsed() > READY {
            return Err(LoadError::Setup("no admin write after healing".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let write_back = healed.elapsed();
    converge(&rs.iter().collect::<Vec<_>>(), READY).await?;
    admin.close().await;
    report.fact(
        "minority partition healed: servers restarted → admin write ok → all replicas converged",
        format!("{} → {}", secs(write_back), secs(healed.elapsed())),
        "both servers restarted (SIGTERM, start); converged = same applied position on a, b, c",
    );
    Ok(())
}
