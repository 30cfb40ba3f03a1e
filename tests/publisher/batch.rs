//! Many accounts at once against a real nats-server: pushed concurrently in batches, every
//! entry completed on its own, every waiter woken, every account held as the store says.

use std::time::Duration;

use futures::StreamExt;
use pbn::{Publisher, StoreRead};
use tokio::sync::watch;

use super::env::{settings, start_server, sys_client, Env, WAIT};
use crate::support::wait_until_async;

/// More accounts than one batch holds.
const ACCOUNTS: usize = 300;

#[tokio::test(flavor = "multi_thread")]
async fn hundreds_of_queued_accounts_are_all_pushed_and_every_waiter_is_woken() {
    let env = Env::new();
    // One bulk import: 300 `account add`s would spend the test's time on setup.
    let mut file = String::from("{\"version\":1}\n");
    for i in 0..ACCOUNTS {
        file.push_str(&format!("{{\"account\":{{\"name\":\"many{i}\"}}}}\n"));
    }
    let records = pbn::bulk::parse::parse(&file).expect("a valid file");
    env.admin(pbn::Request::BulkImport(pbn::bulk::BulkImport { records }));
    let config = env.render(None, None).remove(0);
    let server = start_server(&config, |t| t.to_string()).await;
    let url = server.client_url();
    let s = settings(&env, vec![url.clone()], Duration::from_millis(20), 5);
    let publisher = Publisher::new(env.store.clone(), s.publisher);
    let watch = publisher.push_watch();
    // The queued ones: the new accounts and AUTH (SYS has nothing to push).
    let mut accounts = env.store.read(|tx| tx.list_accounts()).expect("accounts");
    accounts.retain(|a| a.name.as_str() != pbn::SYS_ACCOUNT);
    let mut waiters: Vec<_> = accounts.iter().map(|a| watch.subscribe(&a.public_key)).collect();
    let (clients_tx, clients) = watch::channel(Some(sys_client(&env, &url).await));
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(publisher.run(clients, shutdown));

    env.wait_outbox_empty().await;
    for (acc, rx) in accounts.iter().zip(&mut waiters) {
        let woken = tokio::time::timeout(WAIT, rx.changed()).await;
        assert!(matches!(woken, Ok(Ok(()))), "the waiter of {} was not woken", acc.name);
    }
    // Every account is held, and held exactly as the store issues it now.
    let sys = sys_client(&env, &url).await;
    let held: Vec<bool> = futures::stream::iter(&accounts)
        .map(|acc| {
            let sys = sys.clone();
            async move {
                let subject = format!("$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP", acc.public_key);
                let reply = sys.request(subject, "".into()).await.expect("lookup");
                let jwt = String::from_utf8_lossy(&reply.payload).to_string();
                pbn::claims::decode::<pbn::claims::AccountClaims>(&jwt)
                    .is_ok_and(|c| c.sub == acc.public_key.as_str())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(held.iter().all(|h| *h), "{} accounts not held", held.iter().filter(|h| !**h).count());
    wait_until_async(WAIT, "the publisher to stop", || async {
        stop.send_replace(true);
        task.is_finished()
    })
    .await;
    drop(clients_tx);
}

/// An import written while the publisher runs is pushed as soon as it is written: its entries
/// are due at once (no burst to debounce) and the write wakes the publisher, so neither the
/// 30 s debounce nor the 30 s poll tick delays it.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_is_pushed_at_once_whatever_the_debounce_and_poll() {
    let env = Env::new();
    let config = env.render(None, None).remove(0);
    let server = start_server(&config, |t| t.to_string()).await;
    let url = server.client_url();
    let s = settings(&env, vec![url.clone()], Duration::from_secs(30), 5);
    let publisher = Publisher::new(env.store.clone(), s.publisher);
    let (clients_tx, clients) = watch::channel(Some(sys_client(&env, &url).await));
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(publisher.run(clients, shutdown));
    // After the publisher's first pass (the poll's first tick is at once).
    tokio::task::yield_now().await;
    let file = "{\"version\":1}\n{\"account\":{\"name\":\"swift1\"}}\n{\"account\":{\"name\":\"swift2\"}}\n";
    let records = pbn::bulk::parse::parse(file).expect("a valid file");
    env.admin(pbn::Request::BulkImport(pbn::bulk::BulkImport { records }));
    let sys = sys_client(&env, &url).await;
    let new = [env.account("swift1").public_key, env.account("swift2").public_key];
    wait_until_async(Duration::from_secs(10), "the imported accounts to be held", || async {
        let mut all = true;
        for key in &new {
            all &= super::env::lookup_key(&sys, key).await.is_some();
        }
        all
    })
    .await;
    wait_until_async(WAIT, "the publisher to stop", || async {
        stop.send_replace(true);
        task.is_finished()
    })
    .await;
    drop(clients_tx);
}
