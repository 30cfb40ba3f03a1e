//! Account publishing with every party its own process: the real `pbn serve` and nats-server.
//!
//! 1. `--accounts` new accounts (default 1,000) created and published through the running
//!    service: `pbn admin --server … import FILE`, timed until the server holds every one.
//! 2. `--reconcile-accounts` (default 10,000) in the store: the rest imported into the stopped
//!    service's store, `pbn serve` started, timed until the server holds every one (a startup
//!    reconcile that queues nothing new, then the queued pushes).
//! 3. `pbn serve` restarted on that store and server: the full reconcile of every account (all
//!    current), timed from the process start to its "reconciled" log line.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pbn::bulk::{parse::parse, BulkImport};
use pbn::keys::AccountPublicKey;
use pbn::{Context, Request, Store, StoreRead};

use crate::admin::write_secret;
use crate::deploy::{self, ChildService, Workspace};
use crate::report::{secs, Report};
use crate::{memory, Args, LoadError};

/// How long any step may take before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(300);

/// An NDJSON file of accounts `pub{first}..pub{first + count}`.
fn file(first: usize, count: usize) -> String {
    let mut text = String::from("{\"version\":1}\n");
    for i in first..first + count {
        text.push_str(&format!("{{\"account\":{{\"name\":\"pub{i:05}\"}}}}\n"));
    }
    text
}

/// The public keys of the store's accounts.
fn account_keys(store: &Store) -> Result<Vec<AccountPublicKey>, LoadError> {
    Ok(store.read(|tx| tx.list_accounts())?.into_iter().map(|a| a.public_key).collect())
}

/// Waits until the server at `url` holds a JWT for every key (64 lookups in flight).
async fn wait_held(url: &str, sys: &str, keys: &[AccountPublicKey]) -> Result<(), LoadError> {
    let client = async_nats::ConnectOptions::with_credentials(sys)
        .map_err(LoadError::setup)?
        .connect(url)
        .await
        .map_err(LoadError::setup)?;
    let started = Instant::now();
    let mut missing: Vec<AccountPublicKey> = keys.to_vec();
    while !missing.is_empty() {
        if started.elapsed() > DEADLINE {
            return Err(LoadError::Setup(format!("{} accounts never held", missing.len())));
        }
        let held: Vec<Option<AccountPublicKey>> = futures::stream::iter(missing)
            .map(|key| {
                let client = client.clone();
                async move {
                    let subject = format!("$SYS.REQ.ACCOUNT.{key}.CLAIMS.LOOKUP");
                    match client.request(subject, "".into()).await {
                        Ok(reply) if !reply.payload.is_empty() => None,
                        _ => Some(key),
                    }
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        missing = held.into_iter().flatten().collect();
    }
    Ok(())
}

/// The public keys of the accounts `pub…`, from `pbn admin --server … account list`.
async fn remote_keys(
    pbn: &Path,
    url: &str,
    creds: &Path,
) -> Result<Vec<AccountPublicKey>, LoadError> {
    let out = tokio::process::Command::new(pbn)
        .args(["admin", "--json", "--server", url, "--creds"])
        .arg(creds)
        .args(["account", "list"])
        .output()
        .await
        .map_err(LoadError::io("run pbn admin account list"))?;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(LoadError::setup)?;
    let accounts = list["data"].as_array().cloned().unwrap_or_default();
    Ok(accounts
        .iter()
        .filter(|a| a["name"].as_str().is_some_and(|n| n.starts_with("pub")))
        .filter_map(|a| AccountPublicKey::parse(a["public_key"].as_str()?).ok())
        .collect())
}

/// Runs the three steps against the `pbn` binary (`--pbn`, or beside the benchmark).
pub async fn publish(args: &Args, nats: &Path, report: &mut Report) -> Result<(), LoadError> {
    let Some(pbn) = memory::find_pbn(args.pbn.as_deref()) else {
        report.fact("account publishing (pbn serve process)", "skipped", "no pbn binary");
        return Ok(());
    };
    let Workspace { dir, store_path, store } = Workspace::new()?;
    let creds = dir.path().join("admin.creds");
    let text = pbn::admin_creds(&store, &Context::now()).map_err(LoadError::setup)?;
    write_secret(&creds, text.as_bytes())?;
    let sys = deploy::system_creds(&store)?;
    let token = deploy::token_users(&store, 1).tokens.remove(0);
    let (server, url) = deploy::start_server(&store, dir.path(), nats).await?;
    drop(store);
    let log = |n: &str| dir.path().join(format!("pbn-{n}.log"));

    // 1. New accounts through the running service.
    let child = ChildService::start(&pbn, &store_path, &url, &log("new"))?;
    deploy::wait_ready(&url, &token).await?;
    let n = args.accounts;
    let path = dir.path().join("accounts.ndjson");
    std::fs::write(&path, file(0, n)).map_err(LoadError::io("write the import file"))?;
    let started = Instant::now();
    let out = tokio::process::Command::new(&pbn)
        .args(["admin", "--server", &url, "--creds"])
        .arg(&creds)
        .arg("import")
        .arg(&path)
        .output()
        .await
        .map_err(LoadError::io("run pbn admin import"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).to_string();
        return Err(LoadError::Setup(format!("pbn admin import failed: {why}")));
    }
    // The import answers once the publisher has pushed every account and read each back from
    // the server; the lookups here check that independently (and would wait for any push
    // still under way).
    let took = started.elapsed();
    let keys = remote_keys(&pbn, &url, &creds).await?;
    if keys.len() != n {
        report.failures.push(format!("publish: {} of {n} accounts listed", keys.len()));
    }
    wait_held(&url, &sys, &keys).await?;
    let checked = started.elapsed();
    child.stop().await;
    let verdict =
        if took <= Duration::from_secs(2) { "target ≤ 2 s met" } else { "target ≤ 2 s missed" };
    report.fact(
        &format!("create + publish {n} accounts (pbn admin import --server, pbn serve process)"),
        secs(took),
        format!(
            "{:.0} accounts/s until the import answered (every push read back); all {} held by \
             the server at {} (account list + one lookup each); {verdict}",
            n as f64 / took.as_secs_f64(),
            keys.len(),
            secs(checked)
        ),
    );

    // 2. The store grown to `reconcile_accounts` while the service is stopped, then started.
    let total = args.reconcile_accounts.max(n);
    // `pbn serve` sealed the store under the key file beside it.
    let key_text = std::fs::read_to_string(format!("{}.key", store_path.display()))
        .map_err(LoadError::setup)?;
    let key = pbn::seal::StoreKey::from_file_text(&key_text).map_err(LoadError::setup)?;
    let key = Some(pbn::seal::KeySource::Key(key));
    let store = Store::open_for_with(&store_path, "load", Duration::ZERO, key)?;
    let records = parse(&file(n, total - n)).map_err(LoadError::setup)?;
    pbn::execute(&store, &Request::BulkImport(BulkImport { records }), &Context::now())
        .map_err(LoadError::setup)?;
    let keys = account_keys(&store)?;
    drop(store);
    let started = Instant::now();
    let child =
        ChildService::start_with(&pbn, &store_path, &url, &log("grow"), &["--log", "info"])?;
    wait_held(&url, &sys, &keys).await?;
    let took = started.elapsed();
    report.fact(
        &format!("pbn serve start → {} accounts queued by import held by the server", total - n),
        secs(took),
        format!("{} accounts in the store", keys.len()),
    );
    child.stop().await;

    // 3. A restart: the full reconcile finds every account current.
    let started = Instant::now();
    let reconciled = log("reconcile");
    let child = ChildService::start_with(&pbn, &store_path, &url, &reconciled, &["--log", "info"])?;
    loop {
        let text = std::fs::read_to_string(&reconciled).unwrap_or_default();
        if text.contains("reconciled account JWTs") {
            break;
        }
        if started.elapsed() > DEADLINE {
            report.failures.push("publish: the reconcile never finished".into());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    child.stop().await;
    let verdict =
        if took <= Duration::from_secs(5) { "target ≤ 5 s met" } else { "target ≤ 5 s missed" };
    report.fact(
        &format!("full reconcile of {} accounts (pbn serve start → reconciled)", keys.len()),
        secs(took),
        format!("every account looked up and compared, none stale; {verdict}"),
    );
    drop(server);
    Ok(())
}
