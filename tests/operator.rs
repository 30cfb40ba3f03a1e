//! Proves that JWTs made by `pbn::claims` alone are accepted by a real nats-server in operator
//! mode with a full resolver: operator, accounts and users are generated here, the accounts are
//! preloaded, and users connect with async-nats from creds written by `format_user_creds`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, Event};
use futures::StreamExt;
use pbn::claims::{format_user_creds, AccountClaims, Claims, OperatorClaims, UserClaims};
use pbn::keys::{KeyKind, KeyPair};

use crate::support::{wait_until, NatsServer};

const WAIT: Duration = Duration::from_secs(10);

/// One operator (self-signed, with a signing key that signs every account), the system account
/// `SYS`, the account `TEST` with one signing key, and the account `BARE` with none.
struct Setup {
    test: KeyPair,
    test_signer: KeyPair,
    bare: KeyPair,
    server: NatsServer,
}

impl Setup {
    /// Generates every key and JWT, then starts a server that preloads the three accounts.
    async fn start() -> Setup {
        let operator = KeyPair::generate(KeyKind::Operator);
        let operator_signer = KeyPair::generate(KeyKind::Operator);
        let sys = KeyPair::generate(KeyKind::Account);
        let test = KeyPair::generate(KeyKind::Account);
        let test_signer = KeyPair::generate(KeyKind::Account);
        let bare = KeyPair::generate(KeyKind::Account);

        let body = OperatorClaims::new()
            .with_system_account(sys.public_key())
            .with_signing_key(operator_signer.public_key());
        let operator_jwt = Claims::new(operator.public_key(), body)
            .with_name("op")
            .encode(&operator)
            .expect("encode operator");
        let mut test_body = AccountClaims::new();
        test_body.add_signing_key(test_signer.public_key());
        let account_jwt = |key: &KeyPair, name: &str, body: AccountClaims| {
            Claims::new(key.public_key(), body)
                .with_name(name)
                .encode(&operator_signer)
                .expect("encode account")
        };
        let preload = [
            (sys.public_key(), account_jwt(&sys, "SYS", AccountClaims::new())),
            (test.public_key(), account_jwt(&test, "TEST", test_body)),
            (bare.public_key(), account_jwt(&bare, "BARE", AccountClaims::new())),
        ];
        let preload: String =
            preload.iter().map(|(key, jwt)| format!("  {key}: \"{jwt}\"\n")).collect();
        let config = format!(
            "operator: \"{operator_jwt}\"\n\
             system_account: {sys}\n\
             resolver {{ type: full, dir: \"{{{{DIR}}}}/jwt\", allow_delete: true }}\n\
             resolver_preload {{\n{preload}}}\n",
            sys = sys.public_key(),
        );
        let server = NatsServer::builder(&config).start().await;
        Setup { test, test_signer, bare, server }
    }

    /// Creds of a fresh user with `body`, signed by `signer`.
    fn creds(&self, signer: &KeyPair, body: UserClaims) -> String {
        let user = KeyPair::generate(KeyKind::User);
        let jwt = Claims::new(user.public_key(), body).encode(signer).expect("encode user");
        format_user_creds(&jwt, &user.seed()).to_string()
    }

    /// Connects with `creds`, forwarding every server error text into `errors` when given.
    async fn try_connect(
        &self,
        creds: &str,
        errors: Option<Arc<Mutex<Vec<String>>>>,
    ) -> Result<Client, async_nats::ConnectError> {
        let options = async_nats::ConnectOptions::with_credentials(creds).expect("parse creds");
        let options = options.event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let (Event::ServerError(err), Some(errors)) = (event, errors) {
                    errors.lock().unwrap_or_else(PoisonError::into_inner).push(err.to_string());
                }
            }
        });
        options.connect(self.server.client_url()).await
    }

    /// Connects with `creds`, panicking with the server log on failure.
    async fn connect(&self, creds: &str, errors: Option<Arc<Mutex<Vec<String>>>>) -> Client {
        match self.try_connect(creds, errors).await {
            Ok(client) => client,
            Err(err) => panic!("connect: {err}; log:\n{}", self.server.log()),
        }
    }

    /// Asserts that a user with `creds` is refused at connect with an authorization violation.
    async fn assert_refused(&self, creds: &str, case: &str) {
        match self.try_connect(creds, None).await {
            Err(err) => assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{case}"),
            Ok(_) => panic!("{case}: connected, but the server should refuse the user"),
        }
    }
}

/// Receives one message within [`WAIT`], or panics naming `what`.
async fn next_message(sub: &mut async_nats::Subscriber, what: &str) -> async_nats::Message {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(msg)) => msg,
        _ => panic!("no message {what} within {WAIT:?}"),
    }
}

#[tokio::test]
async fn signing_key_user_publishes_within_its_permissions_only() {
    let setup = Setup::start().await;
    let account = setup.test.public_key();
    let listener = UserClaims::new().with_issuer_account(account);
    let listener = setup.connect(&setup.creds(&setup.test_signer, listener), None).await;
    let mut sub = listener.subscribe("op.>").await.expect("subscribe");
    listener.flush().await.expect("flush");

    let restricted = UserClaims::new()
        .with_issuer_account(account)
        .allow_pub("op.public.>")
        .deny_pub("op.public.secret");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let creds = setup.creds(&setup.test_signer, restricted);
    let client = setup.connect(&creds, Some(errors.clone())).await;

    client.publish("op.public.first", "allowed".into()).await.expect("publish");
    client.flush().await.expect("flush");
    let msg = next_message(&mut sub, "on the allowed subject").await;
    assert_eq!((msg.subject.as_str(), msg.payload.as_ref()), ("op.public.first", &b"allowed"[..]));

    // One subject outside the allow list, one on the deny list.
    client.publish("op.private", "denied".into()).await.expect("publish");
    client.publish("op.public.secret", "denied".into()).await.expect("publish");
    client.flush().await.expect("flush");
    let violation_for = |subject: &str| {
        let errors = errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors.iter().any(|e| e.contains("Permissions Violation") && e.contains(subject))
    };
    wait_until(WAIT, "permission violations for both denied publishes", || {
        violation_for("op.private") && violation_for("op.public.secret")
    })
    .await;

    // Messages of one connection arrive in order: the next one proves nothing denied got through.
    client.publish("op.public.last", "allowed".into()).await.expect("publish");
    client.flush().await.expect("flush");
    let msg = next_message(&mut sub, "after the denied publishes").await;
    assert_eq!(msg.subject.as_str(), "op.public.last");
}

#[tokio::test]
async fn users_of_keys_the_account_does_not_list_are_refused() {
    let setup = Setup::start().await;
    let test = setup.test.public_key();
    let stranger = KeyPair::generate(KeyKind::Account);
    let unknown = setup.creds(&stranger, UserClaims::new().with_issuer_account(test));
    setup.assert_refused(&unknown, "user signed by an unknown key").await;

    let no_issuer_account = setup.creds(&setup.test_signer, UserClaims::new());
    setup.assert_refused(&no_issuer_account, "signing-key user without issuer_account").await;

    let bare = setup.bare.public_key();
    let foreign = setup.creds(&setup.test_signer, UserClaims::new().with_issuer_account(bare));
    setup.assert_refused(&foreign, "user of an account that lists no signing key").await;
}

#[tokio::test]
async fn users_signed_by_the_account_identity_key_connect() {
    let setup = Setup::start().await;
    for (account, name) in [(&setup.test, "TEST"), (&setup.bare, "BARE")] {
        let client = setup.connect(&setup.creds(account, UserClaims::new()), None).await;
        let mut sub = client.subscribe("op.identity").await.expect("subscribe");
        client.publish("op.identity", name.into()).await.expect("publish");
        client.flush().await.expect("flush");
        let msg = next_message(&mut sub, "for an identity-key user").await;
        assert_eq!(msg.payload.as_ref(), name.as_bytes());
    }
}

/// Subscribe permissions from our JWT are enforced too: a denied subscription is reported.
#[tokio::test]
async fn denied_subscribe_is_reported() {
    let setup = Setup::start().await;
    let body = UserClaims::new().with_issuer_account(setup.test.public_key()).deny_sub("op.>");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let client = setup.connect(&setup.creds(&setup.test_signer, body), Some(errors.clone())).await;
    let _sub = client.subscribe("op.hidden").await.expect("subscribe is sent");
    client.flush().await.expect("flush");
    wait_until(WAIT, "a permissions violation for the denied subscription", || {
        let errors = errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors.iter().any(|e| e.contains("Permissions Violation for Subscription"))
    })
    .await;
}
