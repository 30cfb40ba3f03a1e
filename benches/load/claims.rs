//! Claims push: creating and publishing many accounts, and revocation to disconnect.
//!
//! Both go through `pbn::execute` on the store the running service shares; the service's
//! publisher (when this build has one) pushes the changed account JWTs. Without a publisher
//! nothing reaches the server: the scenario says so and is skipped, not failed.

use pbn::{AccountAdd, UserAdd, UserCreds};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{ConnectOptions, Event};
use pbn::claims::AccountClaims;
use pbn::{Context, LimitPatch, Request, Response};
use pbn::{Store, StoreRead};
use tokio::sync::Notify;

use crate::deploy;
use crate::report::{secs, Report};
use crate::scenarios::Deployment;
use crate::storm::progress;
use crate::support::{ACCOUNT, ROLE};
use crate::{Args, LoadError};

/// How long a revoked connection may take to close before we conclude nothing pushes claims.
const REVOKE_DEADLINE: Duration = Duration::from_secs(15);
/// How long publishing the created accounts may take.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(300);

async fn execute(store: &Store, req: Request) -> Result<Response, LoadError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        pbn::execute(&store, &req, &Context::now()).map(|o| o.response)
    })
    .await
    .map_err(|e| LoadError::Setup(e.to_string()))?
    .map_err(LoadError::setup)
}

async fn creds_of(store: &Store, name: &str, keep_previous: bool) -> Result<String, LoadError> {
    match execute(store, Request::UserCreds(UserCreds { name: name.into(), keep_previous })).await?
    {
        Response::Creds { creds, .. } => Ok(creds),
        other => Err(LoadError::Setup(format!("user creds answered {other:?}"))),
    }
}

/// Revocation: a creds user is connected; `pbn admin user creds` (without keep-previous)
/// revokes its key; time until the server closes the connection. Returns whether it closed
/// (i.e. whether this build publishes claims).
pub async fn revocation(d: &Deployment, report: &mut Report) -> Result<bool, LoadError> {
    let store = &d.ws.store;
    let add = Request::UserAdd(UserAdd {
        name: "revokee".into(),
        account: ACCOUNT.into(),
        role: ROLE.into(),
        email: None,
        description: None,
        password_hash: None,
        tags: Default::default(),
    });
    execute(store, add).await?;
    let creds = creds_of(store, "revokee", true).await?;
    // Notified (a stored permit) at the disconnect, so the measured time is the event's.
    let lost = Arc::new(Notify::new());
    let flag = lost.clone();
    let client = ConnectOptions::with_credentials(&creds)
        .map_err(LoadError::setup)?
        .event_callback(move |ev| {
            let flag = flag.clone();
            async move {
                if matches!(ev, Event::Disconnected) {
                    flag.notify_one();
                }
            }
        })
        .connect(d.url.as_str())
        .await
        .map_err(LoadError::setup)?;
    let started = Instant::now();
    creds_of(store, "revokee", false).await?;
    let closed = tokio::time::timeout(REVOKE_DEADLINE, lost.notified()).await.is_ok();
    let took = started.elapsed();
    drop(client);
    if closed {
        report.fact("revocation command → revoked connection closed", secs(took), "");
        Ok(true)
    } else {
        report.fact(
            "revocation command → revoked connection closed",
            "skipped",
            format!(
                "not closed within {}: this build's service does not publish account claims",
                secs(REVOKE_DEADLINE)
            ),
        );
        Ok(false)
    }
}

/// Creates `args.accounts` accounts through `pbn::execute`, one transaction each, and (when
/// `publishing`) waits until the outbox is empty and the server holds the last account's JWT.
pub async fn push(
    d: &Deployment,
    args: &Args,
    publishing: bool,
    report: &mut Report,
) -> Result<(), LoadError> {
    let store = &d.ws.store;
    let n = args.accounts;
    let started = Instant::now();
    create_accounts(store, n).await?;
    let created = started.elapsed();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    report.fact(
        &format!("create {n} accounts (pbn::execute)"),
        secs(created),
        format!("{:.0} accounts/s, one durable transaction each", rate(created)),
    );
    let what = format!("create + publish {n} accounts");
    if !publishing {
        let why = "this build's service does not publish account claims (no publisher)";
        report.fact(&what, "skipped", why);
        return Ok(());
    }
    let bar = progress("claims: outbox drain", n);
    loop {
        let pending = store.read(|tx| tx.list_outbox())?.len();
        bar.set_position(n.saturating_sub(pending) as u64);
        if pending == 0 || started.elapsed() > PUBLISH_DEADLINE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    let published = started.elapsed();
    if server_holds(d, &format!("push{}", n.saturating_sub(1))).await? {
        let note = format!(
            "outbox empty, last account's JWT served by LOOKUP; {:.0} accounts/s",
            rate(published)
        );
        report.fact(&what, secs(published), note);
    } else {
        report.failures.push("claims push: the server does not hold the last account".into());
        report.fact(&what, "failed", "LOOKUP of the last account is not its JWT");
    }
    Ok(())
}

/// Creates accounts `push0..push{n}` through `pbn::execute`, one transaction each.
async fn create_accounts(store: &Store, n: usize) -> Result<(), LoadError> {
    let bar = progress("claims: create accounts", n);
    for i in 0..n {
        let req = Request::AccountAdd(AccountAdd {
            name: format!("push{i}"),
            description: None,
            limits: LimitPatch::default(),
            disallow_bearer: false,
        });
        execute(store, req).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Whether the server's resolver returns the JWT of account `name` (a system-user LOOKUP).
async fn server_holds(d: &Deployment, name: &str) -> Result<bool, LoadError> {
    let acc = d.ws.store.read(|tx| tx.require_account(name))?;
    let sys = ConnectOptions::with_credentials(&deploy::system_creds(&d.ws.store)?)
        .map_err(LoadError::setup)?
        .connect(d.url.as_str())
        .await
        .map_err(LoadError::setup)?;
    let subject = format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP", acc.public_key);
    let reply = sys.request(subject, "".into()).await.map_err(LoadError::setup)?;
    let jwt = String::from_utf8_lossy(&reply.payload).to_string();
    Ok(pbn::claims::decode::<AccountClaims>(&jwt).is_ok_and(|c| c.sub == acc.public_key.as_str()))
}
