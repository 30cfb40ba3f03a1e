//! `pbn serve` as a whole (`service::run_with_store`): the callout on a managed connection,
//! sessions ended by `$SYS` disconnect events, clean shutdown.

use std::time::Duration;

use async_nats::ConnectOptions;
use pbn::RolePatch;

use crate::support::deploy::{round_trip, ClientEvents, DeployOptions, Deployment};
use crate::support::wait_until_async;

fn capped_role() -> RolePatch {
    RolePatch { max_connections: Some(1), ..RolePatch::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn service_admits_and_frees_the_connection_cap_on_disconnect() {
    let mut d = Deployment::new(DeployOptions::default());
    d.add_account("APP");
    d.add_role("one", capped_role());
    d.add_user("solo", "APP", "one", "solo-password");
    let service = d.start_service().await;

    let events = ClientEvents::new();
    let first = d.login("solo", "solo-password", &events).await;
    round_trip(&first).await;
    let opts = ConnectOptions::with_user_and_password("solo".into(), "solo-password".into());
    let second = d.connect(0, opts, &ClientEvents::new()).await;
    assert!(second.is_err(), "a second connection is over the per-user cap of 1");

    // Closing the first connection raises a disconnect event; the service frees the slot.
    drop(first);
    wait_until_async(Duration::from_secs(10), "the cap to free after a disconnect", || async {
        let opts = ConnectOptions::with_user_and_password("solo".into(), "solo-password".into());
        d.connect(0, opts, &ClientEvents::new()).await.is_ok()
    })
    .await;
    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_stops_on_the_shutdown_signal_and_stops_answering() {
    let mut d = Deployment::new(DeployOptions::default());
    d.add_account("APP");
    d.add_role("r", RolePatch::default());
    d.add_user("ann", "APP", "r", "ann-password");
    let service = d.start_service().await;
    let events = ClientEvents::new();
    round_trip(&d.login("ann", "ann-password", &events).await).await;
    service.stop().await.expect("run_with_store returns Ok after shutdown");
    // Nobody answers the callout now: the login cannot complete (the server would refuse it at
    // its 5 s auth timeout; the client gives up first).
    let opts = ConnectOptions::with_user_and_password("ann".into(), "ann-password".into())
        .connection_timeout(Duration::from_secs(2));
    let refused = d.connect(0, opts, &ClientEvents::new()).await;
    assert!(refused.is_err(), "no callout answers after shutdown");
}
