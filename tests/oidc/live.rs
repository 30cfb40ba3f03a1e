//! Providers administered while the service runs (`pbn::run_with_store` in this process, the
//! real `pbn` binary for `pbn admin --server`): provisioned users, mapping changes and
//! deletion kick the sessions they invalidate.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectErrorKind, Event};
use pbn::{Context, IdpView, StoreRead};

use super::{assert_permissions, setup, with_token, AUD};
use crate::support::deploy::{ClientEvents, DeployOptions, Deployment};
use crate::support::oidc::OidcProvider;
use crate::support::pbn::{Pbn, PbnOutput};
use crate::support::wait_until;

/// How soon a kick must close a connection.
const EFFECT: Duration = Duration::from_secs(5);

/// Writes admin creds for `d` (mode 0600) and returns their path.
fn admin_creds(d: &Deployment) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = d.store().path().parent().expect("temp dir").join("admin.creds");
    let text = pbn::admin_creds(d.store(), &Context::now()).expect("admin creds");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create the creds file");
    f.write_all(text.as_bytes()).expect("write the creds");
    path
}

/// Runs `pbn admin --server URL --creds FILE ARGS…` off the runtime.
async fn remote(d: &Deployment, creds: &PathBuf, args: &[&str]) -> PbnOutput {
    let pbn = Pbn::new(["admin", "--server", &d.url(0), "--creds"]).args([creds]).args(args);
    tokio::task::spawn_blocking(move || pbn.run()).await.expect("pbn ran")
}

fn disconnected(events: &ClientEvents) -> bool {
    events.all().iter().any(|e| matches!(e, Event::Disconnected))
}

async fn refused(d: &Deployment, token: &str) {
    match d.connect(0, with_token(token), &ClientEvents::new()).await {
        Err(e) => assert_eq!(e.kind(), ConnectErrorKind::AuthorizationViolation, "{e}"),
        Ok(_) => panic!("admitted, but should be refused"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_changes_and_deletion_kick_the_sessions_they_invalidate() {
    let p = OidcProvider::start("k1").await;
    let mut d = setup(&p, DeployOptions { runners: 0, ..DeployOptions::default() }, true);
    let _service = d.start_service().await;
    let creds = admin_creds(&d);
    let shown = remote(&d, &creds, &["--json", "idp", "show", "kc"]).await;
    let view: IdpView = serde_json::from_value(shown.success().json()["data"].clone())
        .unwrap_or_else(|e| panic!("idp show --json: {e}: {}", shown.streams()));
    assert_eq!((view.issuer.as_str(), view.mappings.len()), (p.issuer().as_str(), 2));

    // Provisioned: the logins make user records, in the mapped account and role.
    let alice_token = p.token("alice", AUD).await;
    let alice_events = ClientEvents::new();
    let alice = d.connect(0, with_token(&alice_token), &alice_events).await.expect("alice");
    assert_permissions(&alice, &alice_events, "dev", "ops").await;
    let bob_token = p.token("bob", AUD).await;
    let bob_events = ClientEvents::new();
    let _bob = d.connect(0, with_token(&bob_token), &bob_events).await.expect("bob");
    let user = d.store().read(|tx| tx.get_user("alice")).unwrap().expect("alice provisioned");
    assert_eq!((user.account.as_str(), user.role.as_str()), ("DEV", "dev"));
    let listed = remote(&d, &creds, &["user", "list"]).await;
    assert!(listed.success().streams().contains("alice"), "{}", listed.streams());

    // A mapping change kicks the provider's sessions; alice's `groups: dev` no longer maps.
    remote(&d, &creds, &["idp", "unmap", "kc", "--claim", "groups", "--value", "dev"])
        .await
        .success();
    wait_until(EFFECT, "alice kicked by idp unmap", || disconnected(&alice_events)).await;
    wait_until(EFFECT, "bob kicked by idp unmap", || disconnected(&bob_events)).await;
    refused(&d, &alice_token).await;

    // Bob logs in again; deleting the provider kicks him and deletes the users it created.
    let bob_events = ClientEvents::new();
    let _bob = d.connect(0, with_token(&bob_token), &bob_events).await.expect("bob again");
    let deleted = remote(&d, &creds, &["idp", "delete", "kc"]).await;
    deleted.success();
    wait_until(EFFECT, "bob kicked by idp delete", || disconnected(&bob_events)).await;
    assert!(d.store().read(|tx| tx.get_user("bob")).unwrap().is_none(), "bob deleted");
    refused(&d, &bob_token).await;
    let gone = remote(&d, &creds, &["idp", "show", "kc"]).await;
    gone.code(3);
}
