//! A reconnect storm: many password users reconnecting at the same moment after a nats-server
//! restart are all admitted at their first attempt, within the auth timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, ReconnectToServer};
use futures::StreamExt;
use tokio::sync::watch;

use super::{password, setup, PW};
use crate::support::deploy::DeployOptions;
use crate::support::wait_until;

/// Users in the storm.
const USERS: usize = 500;
/// How long the first connects and the disconnects may take.
const SETUP_WAIT: Duration = Duration::from_secs(60);

/// `opts` whose reconnects wait at `gate` and then go to the server at once; every attempt
/// made while the gate is open is counted in `attempts`.
fn gated(
    opts: ConnectOptions,
    gate: watch::Receiver<bool>,
    attempts: Arc<AtomicUsize>,
) -> ConnectOptions {
    opts.reconnect_to_server_callback(move |servers, _info| {
        let (mut gate, attempts) = (gate.clone(), attempts.clone());
        async move {
            // The sender lives as long as the test; a closed gate stays closed.
            gate.wait_for(|open| *open).await.ok()?;
            attempts.fetch_add(1, Ordering::SeqCst);
            let addr = servers.first()?.addr.clone();
            Some(ReconnectToServer { addr, delay: Some(Duration::ZERO) })
        }
    })
}

/// How many of `clients` are in `state`.
fn in_state(clients: &[Client], state: State) -> usize {
    clients.iter().filter(|c| c.connection_state() == state).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnect_storm_after_a_restart_is_admitted_within_the_auth_timeout() {
    let mut d = setup(DeployOptions::default());
    let created = Instant::now();
    for i in 0..USERS {
        d.add_user(&format!("u{i}"), "APP", "app", &format!("{PW}-{i}"));
    }
    eprintln!("storm: {USERS} users created in {:?}", created.elapsed());
    d.start().await;

    let (gate, gate_rx) = watch::channel(true);
    let attempts = Arc::new(AtomicUsize::new(0));
    let url = d.url(0);
    let connects = (0..USERS).map(|i| {
        let opts = password(&format!("u{i}"), &format!("{PW}-{i}")).retry_on_initial_connect();
        gated(opts, gate_rx.clone(), attempts.clone()).connect(url.clone())
    });
    let clients: Vec<Client> = futures::stream::iter(connects)
        .buffer_unordered(64)
        .map(|c| c.expect("retrying connect"))
        .collect()
        .await;
    wait_until(SETUP_WAIT, "every user connected", || {
        in_state(&clients, State::Connected) == USERS
    })
    .await;

    // Hold every reconnect at the gate while the server restarts and the callout is back.
    gate.send_replace(false);
    d.server_mut(0).stop().await;
    wait_until(SETUP_WAIT, "every user disconnected", || in_state(&clients, State::Connected) == 0)
        .await;
    d.server_mut(0).restart().await;
    d.wait_callout_ready().await;

    attempts.store(0, Ordering::SeqCst);
    let opened = Instant::now();
    gate.send_replace(true);
    wait_until(SETUP_WAIT, "every user reconnected", || {
        in_state(&clients, State::Connected) == USERS
    })
    .await;
    let took = opened.elapsed();
    eprintln!("storm: {USERS} users reconnected in {took:?}");
    // One attempt each: nobody was refused or timed out and had to try again.
    assert_eq!(attempts.load(Ordering::SeqCst), USERS);
    let auth_timeout = DeployOptions::default().auth_timeout;
    assert!(took < auth_timeout, "the storm took {took:?}, over the auth timeout");
}
