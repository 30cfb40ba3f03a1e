//! The store across builds and restarts: a store file an older build wrote still serves its
//! users after migration, and remote admin requests are idempotent across a lost reply and a
//! service restart.

use std::path::Path;

use async_nats::ConnectOptions;
use serde_json::Value;

use crate::support::deploy::{ClientEvents, DeployOptions, Deployment, USER_INFO_SUBJECT, WAIT};

/// The nats.rs test user's public nkey, registered for `olga` in the v1 fixture (its seed is
/// `SUACH75…` in `tests/data/vectors.json`, a published test vector).
const V1_SEED: &str = "SUACH75SWCM5D2JMJM6EKLR2WDARVGZT4QC6LX3AGHSWOMVAKERABBBRWM";

fn v1_fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store_v1_before_nkey_index.redb")
}

#[tokio::test(flavor = "multi_thread")]
async fn nkey_user_of_a_store_written_before_the_nkey_index_logs_in() {
    let mut d = Deployment::from_store_file(DeployOptions::default(), &v1_fixture());
    d.start().await;
    let opts = ConnectOptions::with_nkey(V1_SEED.to_string());
    let client = d.connect(0, opts, &ClientEvents::new()).await.expect("nkey login of olga");
    let reply = tokio::time::timeout(WAIT, client.request(USER_INFO_SUBJECT, "".into()))
        .await
        .expect("user info within the deadline")
        .expect("user info request");
    let info: Value = serde_json::from_slice(&reply.payload).expect("user info is JSON");
    assert_eq!(info["data"]["account"].as_str(), Some(d.account("APP").public_key.as_str()));
}
