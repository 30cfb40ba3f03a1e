//! What a tenant admin's creds may subscribe to in the system account: the replies to its own
//! requests and its account's login events, never every inbox (where other admins' replies,
//! minted creds among them, arrive) nor every audit event.

use std::sync::{Arc, Mutex, PoisonError};

use async_nats::{ConnectOptions, Event};

use super::admins::{add_admin, admin_as};
use super::Live;
use crate::support::deploy::{DeployOptions, WAIT};
use crate::support::wait_until;

/// Subscribes to `subject` with `creds` and returns the server errors seen after it.
async fn subscription_errors(live: &Live, creds: &std::path::Path, subject: &str) -> Vec<String> {
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = errors.clone();
    let client = ConnectOptions::with_credentials_file(creds)
        .await
        .expect("tenant creds")
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let Event::ServerError(e) = event {
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push(e.to_string());
                }
            }
        })
        .connect(live.d.url(live.home))
        .await
        .expect("tenant connects");
    let _sub = client.subscribe(subject.to_string()).await.expect("subscribe sent");
    client.flush().await.expect("flush");
    let refused = || {
        let seen = errors.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter().any(|e| e.to_lowercase().contains("permissions violation"))
    };
    wait_until(WAIT, &format!("the server refuses a subscription to {subject}"), refused).await;
    let seen = errors.lock().unwrap_or_else(PoisonError::into_inner).clone();
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_admin_cannot_read_other_admins_replies_nor_every_audit_event() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let creds = add_admin(&live, "tenant", &["--scope", "account:APP"]).await;
    for subject in ["_INBOX.>", "pbn.audit.>", "pbn.audit.login.*.refused"] {
        let errors = subscription_errors(&live, &creds, subject).await;
        assert!(errors.iter().any(|e| e.contains(subject)), "{subject}: {errors:?}");
    }
    // Its own requests are still answered (replies come under its own inbox prefix).
    let out = admin_as(&live, &creds, &["user", "list"]).await;
    out.success();
}
