//! Peak memory of the real `pbn serve` binary with a large store, idle and through a storm.

use std::path::{Path, PathBuf};
use std::time::Instant;

use async_nats::ConnectOptions;

use crate::deploy::{self, ChildService, Workspace};
use crate::report::{memory_mib, secs, Report};
use crate::server::NatsProcess;
use crate::storm::storm;
use crate::{Args, LoadError};

/// The `pbn` binary: the flag, else `pbn` next to this benchmark's build directory
/// (`target/<profile>/deps/load-…` → `target/<profile>/pbn`).
pub fn find_pbn(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return p.is_file().then(|| p.to_path_buf());
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("pbn");
    candidate.is_file().then_some(candidate)
}

fn mib(pid: u32) -> (String, String) {
    match memory_mib(Some(pid)) {
        Some((rss, hwm)) => (format!("{hwm:.1} MiB"), format!("RSS now {rss:.1} MiB")),
        None => ("unknown".into(), "cannot read /proc status".into()),
    }
}

/// `pbn serve` on a store of `args.memory_users` token users (plus the password users):
/// VmHWM after startup and one login, after a token storm of `args.clients` clients, then after
/// a cold password storm of `args.password_clients` clients.
pub async fn memory(args: &Args, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    let Some(pbn) = find_pbn(args.pbn.as_deref()) else {
        report.fact(
            "pbn serve peak memory",
            "skipped",
            "no pbn binary: build it (cargo build --release --bin pbn) or pass --pbn",
        );
        return Ok(());
    };
    let users = args.memory_users.max(args.clients);
    eprintln!("memory: building a store of {users} users");
    let Workspace { dir, store_path, store } = Workspace::new()?;
    let started = Instant::now();
    let tokens = deploy::token_users(&store, users).tokens;
    let password = deploy::password_users(&store, "pw", args.password_clients)?;
    let took = secs(started.elapsed());
    report.fact(
        &format!("build a store of {users} users"),
        took,
        "bulk inserts, 10,000 per transaction",
    );
    let size = std::fs::metadata(&store_path).map(|m| m.len()).unwrap_or(0);
    let (server, url): (NatsProcess, String) =
        deploy::start_server(&store, dir.path(), nats).await?;
    drop(store);
    let child = ChildService::start(&pbn, &store_path, &url, &dir.path().join("pbn.log"))?;
    match deploy::wait_ready(&url, &tokens[0]).await {
        Ok(ready) => report.fact(
            &format!("pbn serve start → first login, {users} users"),
            secs(ready),
            format!("store file {:.1} MiB, opened after a clean close", size as f64 / 1048576.0),
        ),
        Err(e) => {
            report.failures.push(format!("memory: pbn serve never admitted a login: {e}"));
            child.stop().await;
            return Ok(());
        }
    }
    storms(args, &url, child.pid(), &tokens, &password, report).await;
    child.stop().await;
    drop(server);
    Ok(())
}

/// The token storm and the cold password storm against `pbn serve` (process `pid`), with its
/// peak RSS before, between and after.
async fn storms(
    args: &Args,
    url: &str,
    pid: u32,
    tokens: &[String],
    password: &[String],
    report: &mut Report,
) {
    let users = args.memory_users.max(args.clients);
    let (idle, note) = mib(pid);
    report.fact(&format!("pbn serve peak RSS, idle with {users} users"), idle, note);
    let s = storm("memory: token storm (pbn serve)", url, args.clients, args.concurrency, |i| {
        ConnectOptions::with_token(tokens[i].clone())
    })
    .await;
    report.storm(&format!("token login (callout), {users} users, pbn serve process"), &s, "");
    let (peak, note) = mib(pid);
    let what = format!("pbn serve peak RSS, {}-client token storm, {users} users", args.clients);
    report.fact(&what, peak, note);
    drop(s);
    let p =
        storm("memory: password storm (pbn serve)", url, password.len(), args.concurrency, |i| {
            ConnectOptions::with_user_and_password(
                password[i].clone(),
                deploy::password_of(&password[i]),
            )
        })
        .await;
    let note = format!("{} in flight, production argon2id", args.concurrency);
    report.storm("password login, cold (argon2id), pbn serve process", &p, &note);
    let (peak, note) = mib(pid);
    report.fact(
        &format!("pbn serve peak RSS, {}-client cold password storm", password.len()),
        peak,
        format!("{note}; one reused 19 MiB argon2id work area per core"),
    );
}
