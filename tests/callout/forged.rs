//! Requests published straight onto the callout subject, with a reply inbox: nats-server lets no
//! client of the callout account do that; where a client can (a plain server), a well-formed
//! request with good credentials is answered with a JWT (the control), every broken variant of
//! it, and a real request replayed after its expiry, gets no JWT, and the service keeps serving.

use std::time::Duration;

use pbn::claims::{self, AuthorizationRequestClaims, AuthorizationResponseClaims, Claims};
use pbn::keys::{KeyKind, KeyPair};

use futures::StreamExt;
use pbn::CALLOUT_SUBJECT;

use super::{setup, PW};
use crate::support::deploy::{
    round_trip, send_request, service_options, CalloutRunner, ClientEvents, DeployOptions,
    Deployment, WAIT,
};
use crate::support::{wait_until, wait_until_async, NatsServer};

/// How long a request that must not be answered with a JWT gets to be answered anyway.
const SILENCE: Duration = Duration::from_secs(1);

/// A request for `alice` with her password, from the fresh server key `server`, adjusted by
/// `edit` before it is signed.
fn forge(
    d: &Deployment,
    server: &KeyPair,
    edit: impl FnOnce(&mut Claims<AuthorizationRequestClaims>),
) -> String {
    let mut c = d.request_claims(server);
    c.nats.connect_opts.username = "alice".into();
    c.nats.connect_opts.password = PW.into();
    edit(&mut c);
    c.encode(server).expect("encode a forged request")
}

/// The JWT carried by an answer, if any (empty when the answer is an error or not a response).
fn minted_jwt(answer: &async_nats::Message) -> String {
    let token = std::str::from_utf8(&answer.payload).unwrap_or_default();
    claims::decode::<AuthorizationResponseClaims>(token).map(|c| c.nats.jwt).unwrap_or_default()
}

/// The cases: name and payload. Each is the control request with one thing wrong.
fn broken_requests(d: &Deployment) -> Vec<(&'static str, Vec<u8>)> {
    let server = KeyPair::generate(KeyKind::Server);
    let other = KeyPair::generate(KeyKind::Server);
    let good = forge(d, &server, |_| {});
    let by_other = forge(d, &other, |_| {});
    let (signed, _) = good.rsplit_once('.').expect("a JWT has a signature part");
    let (_, other_sig) = by_other.rsplit_once('.').expect("a JWT has a signature part");
    let now = pbn::unix_now();
    let app = d.account("APP").public_key.to_string();
    let account_key = KeyPair::generate(KeyKind::Account).public_key().to_string();
    let big = "x".repeat(claims::MAX_TOKEN_SIZE);
    vec![
        ("garbage", b"this is not a jwt".to_vec()),
        ("wrong signature", format!("{signed}.{other_sig}").into_bytes()),
        ("wrong audience", forge(d, &server, |c| c.aud = "nats-something-else".into()).into()),
        ("expired", forge(d, &server, |c| (c.iat, c.exp) = (now - 10, now - 5)).into()),
        (
            "issuer not server_id",
            forge(d, &server, |c| c.nats.server.id = other.public_key().into()).into(),
        ),
        ("not our account", forge(d, &server, |c| c.sub = app).into()),
        ("user_nkey not a user key", forge(d, &server, |c| c.nats.user_nkey = account_key).into()),
        ("user_nkey empty", forge(d, &server, |c| c.nats.user_nkey.clear()).into()),
        ("oversized", forge(d, &server, |c| c.nats.connect_opts.name = big).into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_the_callout_account_cannot_publish_requests() {
    // What keeps forged requests away from the callout in a real deployment: nats-server
    // denies every client of the callout account, the service user included, publishing on
    // the callout subject. Only the server's own requests reach it.
    let d = super::started(DeployOptions::default()).await;
    let events = ClientEvents::new();
    let client =
        d.connect(0, service_options(d.store(), "forger"), &events).await.expect("connect");
    let request = forge(&d, &KeyPair::generate(KeyKind::Server), |_| {});
    let answer = send_request(&client, request.into_bytes(), None, SILENCE).await;
    assert!(answer.is_none(), "a client's request reached the callout");
    let denied = format!("Permissions Violation for Publish to \"{CALLOUT_SUBJECT}\"");
    wait_until(WAIT, "the publish violation", || events.has_server_error(&denied)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_requests_get_no_jwt_and_the_service_keeps_serving() {
    // Real requests come from `d` (operator mode, short auth timeout so a captured request
    // expires quickly). Forged ones go to a second runner of the same store on a plain server,
    // where any client may publish on the callout subject; it allows payloads over 1 MiB.
    let mut d = setup(DeployOptions { auth_timeout: Duration::from_secs(2), ..Default::default() });
    d.start().await;
    let plain = NatsServer::start("max_payload: 4194304").await;
    let connect = || async_nats::connect(plain.client_url());
    let runner_client = connect().await.expect("runner connect");
    let runner = CalloutRunner::serve_on(runner_client, d.store().clone(), &Default::default());
    let client = connect().await.expect("forger connect");
    let subscribed = || plain.monitor("/connz?subs=1");
    wait_until_async(WAIT, "the runner subscribed", || async {
        subscribed().await.to_string().contains(CALLOUT_SUBJECT)
    })
    .await;

    let control = forge(&d, &KeyPair::generate(KeyKind::Server), |_| {});
    let answer = send_request(&client, control.into_bytes(), None, WAIT).await;
    assert!(!minted_jwt(&answer.expect("the control is answered")).is_empty());

    let mut cases = broken_requests(&d);
    cases.push(("replayed after expiry", expired_real_request(&d).await));
    assert!(cases.iter().any(|(_, p)| p.len() > claims::MAX_TOKEN_SIZE));
    let sends = cases.into_iter().map(|(name, payload)| {
        let client = client.clone();
        async move { (name, send_request(&client, payload, None, SILENCE).await) }
    });
    for (name, answer) in futures::future::join_all(sends).await {
        if let Some(answer) = answer {
            assert_eq!(minted_jwt(&answer), "", "{name} was answered with a JWT");
        }
    }
    assert_eq!(runner.admitted(), 1, "only the control was admitted");

    // Still serving, on both runners.
    let control = forge(&d, &KeyPair::generate(KeyKind::Server), |_| {});
    let answer = send_request(&client, control.into_bytes(), None, WAIT).await;
    assert!(!minted_jwt(&answer.expect("the control is answered again")).is_empty());
    d.login("alice", PW, &ClientEvents::new()).await;
}

/// A request nats-server really sent (captured while `alice` logs in to `d`), once expired.
async fn expired_real_request(d: &Deployment) -> Vec<u8> {
    let observer = d.service_client(0).await;
    let mut requests = observer.subscribe(CALLOUT_SUBJECT).await.expect("observe requests");
    round_trip(&observer).await;
    d.login("alice", PW, &ClientEvents::new()).await;
    let captured = tokio::time::timeout(WAIT, requests.next())
        .await
        .ok()
        .flatten()
        .expect("the login's request");
    let token = std::str::from_utf8(&captured.payload).expect("a plaintext request");
    let exp = claims::decode::<AuthorizationRequestClaims>(token).expect("a real request").exp;
    wait_until(Duration::from_secs(10), "the captured request to expire", || pbn::unix_now() > exp)
        .await;
    captured.payload.to_vec()
}
