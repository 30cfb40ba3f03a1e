//! The publisher against fake resolvers on a plain nats-server: behaviours a real resolver only
//! shows in rare states (a 200 for a JWT it does not keep; servers disagreeing), made on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use pbn::claims::AccountClaims;
use pbn::PublisherSettings;
use pbn::{Publisher, CLAIMS_UPDATE, SERVER_PING};
use tokio::sync::watch;

use super::env::{settings, Env, WAIT};
use crate::support::{wait_until_async, NatsServer};

/// How a fake resolver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// 200 to updates, and lookups return the last JWT pushed for the account.
    Honest,
    /// 200 to updates, but it keeps nothing: lookups return no JWT.
    Forgetful,
    /// Error replies to updates, sent 50 ms late (after an honest peer's 200).
    Refusing,
    /// Honest, except that it refuses updates of the account named `bad`.
    RefusesBad,
}

/// Answers the claims API on `client` as `behaviour` says, until the client closes.
async fn fake_resolver(client: Client, behaviour: Behaviour) {
    // Per account, as a resolver keeps them: pushes of several accounts may be in flight.
    let kept = Arc::new(Mutex::new(HashMap::<String, Vec<u8>>::new()));
    let mut subs = futures::stream::select_all([
        client.subscribe(CLAIMS_UPDATE).await.expect("subscribe"),
        client.subscribe("$SYS.REQ.ACCOUNT.*.CLAIMS.LOOKUP").await.expect("subscribe"),
        client.subscribe(SERVER_PING).await.expect("subscribe"),
    ]);
    client.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(msg) = subs.next().await {
            let Some(reply) = msg.reply.clone() else { continue };
            let body: Vec<u8> = match msg.subject.as_str() {
                SERVER_PING => b"{}".to_vec(),
                CLAIMS_UPDATE if behaviour == Behaviour::Refusing => {
                    // A slow refusal is the behaviour simulated, not a wait.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    br#"{"server":{},"error":{"code":500,"description":"simulated refusal"}}"#
                        .to_vec()
                }
                CLAIMS_UPDATE => {
                    let jwt = String::from_utf8_lossy(&msg.payload).to_string();
                    let claims = pbn::claims::decode::<AccountClaims>(&jwt);
                    if behaviour == Behaviour::RefusesBad
                        && claims.as_ref().is_ok_and(|c| c.name == "bad")
                    {
                        let refusal = r#"{"server":{},"error":{"code":500,"description":"bad"}}"#;
                        let _ = client.publish(reply, refusal.into()).await;
                        continue;
                    }
                    let account = claims.map(|c| c.sub);
                    let keeps = matches!(behaviour, Behaviour::Honest | Behaviour::RefusesBad);
                    if let (true, Ok(account)) = (keeps, account) {
                        kept.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(account, msg.payload.to_vec());
                    }
                    br#"{"server":{},"data":{"code":200,"message":"jwt updated"}}"#.to_vec()
                }
                lookup => {
                    // $SYS.REQ.ACCOUNT.<account>.CLAIMS.LOOKUP
                    let account = lookup.split('.').nth(3).unwrap_or_default();
                    let kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                    kept.get(account).cloned().unwrap_or_default()
                }
            };
            let _ = client.publish(reply, body.into()).await;
        }
    });
}

/// Runs a publisher for `env` on a plain server answered by fakes behaving as `fakes`.
async fn run_against(env: &Env, fakes: &[Behaviour]) -> (NatsServer, watch::Sender<bool>) {
    let server = NatsServer::start("").await;
    for b in fakes {
        let c = async_nats::connect(server.client_url()).await.expect("connect a fake");
        fake_resolver(c, *b).await;
    }
    let client = async_nats::connect(server.client_url()).await.expect("connect the publisher");
    let (clients_tx, clients) = watch::channel(Some(client));
    let (stop, shutdown) = watch::channel(false);
    let publisher = Publisher::new(env.store.clone(), publisher_settings(env));
    tokio::spawn(async move {
        // The sender lives as long as the publisher: a dropped sender would stop it.
        let _sender = clients_tx;
        publisher.run(clients, shutdown).await
    });
    (server, stop)
}

fn publisher_settings(env: &Env) -> PublisherSettings {
    settings(env, vec!["nats://127.0.0.1:1".into()], Duration::from_millis(20), 1).publisher
}

/// Waits until the entry of account `name` has failed and returns its last error.
async fn failure_of(env: &Env, name: &str) -> String {
    let failed =
        || env.outbox().into_iter().find(|e| e.account_name == name && e.state == "failed");
    wait_until_async(WAIT, "the entry to fail", || async { failed().is_some() }).await;
    failed().and_then(|e| e.last_error).unwrap_or_default()
}

#[tokio::test]
async fn a_200_without_the_jwt_held_is_a_failure() {
    let env = Env::new();
    env.add_account("ghost", -1);
    let (_server, _stop) = run_against(&env, &[Behaviour::Forgetful]).await;
    let error = failure_of(&env, "ghost").await;
    assert!(error.contains("not applied") && error.contains("no jwt"), "last error: {error}");
}

#[tokio::test]
async fn every_server_reply_is_read() {
    let env = Env::new();
    env.add_account("split", -1);
    let (_server, _stop) = run_against(&env, &[Behaviour::Honest, Behaviour::Refusing]).await;
    let error = failure_of(&env, "split").await;
    assert!(error.contains("simulated refusal"), "last error: {error}");
}

#[tokio::test]
async fn a_refused_account_fails_alone_and_the_rest_of_its_batch_completes() {
    let env = Env::new();
    for i in 0..40 {
        env.add_account(&format!("good{i}"), -1);
    }
    env.add_account("bad", -1);
    let (_server, _stop) = run_against(&env, &[Behaviour::RefusesBad]).await;
    let error = failure_of(&env, "bad").await;
    assert!(error.contains("bad"), "last error: {error}");
    let only_bad = || env.outbox().iter().all(|e| e.account_name == "bad");
    wait_until_async(WAIT, "every other entry to complete", || async { only_bad() }).await;
}

#[tokio::test]
async fn agreeing_servers_complete_the_entry() {
    let env = Env::new();
    env.add_account("fine", -1);
    let (_server, _stop) = run_against(&env, &[Behaviour::Honest, Behaviour::Honest]).await;
    env.wait_outbox_empty().await;
}
