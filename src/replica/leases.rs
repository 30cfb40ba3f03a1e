//! Leases in the JetStream KV bucket [`LEASE_BUCKET`] of the AUTH account: a key created
//! only if it does not exist (`Nats-Expected-Last-Subject-Sequence: 0`), so of the replicas
//! that want it exactly one takes it; the holder deletes it when done, and the bucket's
//! `max_age` ([`LEASE_TTL`]) frees it when the holder died. The publisher takes one per outbox
//! entry (`server/publisher/lease.rs`), the snapshot writer one for each snapshot
//! (`compact.rs`).

use std::time::Duration;

use async_nats::HeaderMap;
use serde_json::json;
use tracing::debug;

use super::{Log, ReplicaError};

/// The KV bucket of the leases, in the AUTH account beside the log.
pub const LEASE_BUCKET: &str = "PBN_LEASES";
/// How long a lease lives when its holder never releases it (it died): longer than a push
/// takes (a few request timeouts), short enough that a dead replica's entry waits little.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// JetStream's error code for a stream that exists already.
const STREAM_EXISTS: u64 = 10058;
/// JetStream's error code for a publish whose expected last subject sequence is not the one.
const WRONG_LAST_SEQUENCE: u64 = 10071;

/// Creates the lease bucket with `replicas` copies unless it exists.
pub(crate) async fn ensure_bucket(log: &Log, replicas: u32) -> Result<(), ReplicaError> {
    let stream = format!("KV_{LEASE_BUCKET}");
    let config = json!({
        "name": stream, "subjects": [format!("$KV.{LEASE_BUCKET}.>")],
        "max_msgs_per_subject": 1, "max_age": LEASE_TTL.as_nanos() as u64,
        "num_replicas": replicas, "storage": "file", "retention": "limits",
        "discard": "new", "allow_direct": true,
    });
    let subject = format!("$JS.API.STREAM.CREATE.{stream}");
    match log.request(&subject, None, config.to_string().into_bytes()).await? {
        Ok(_) | Err((STREAM_EXISTS, _)) => Ok(()),
        Err((_, detail)) => Err(ReplicaError::Request { subject, detail }),
    }
}

/// Takes the lease `key` of the bucket (created only if absent, so one taker wins) with
/// `owner` as its value: its bucket sequence, or `None` when someone holds it.
pub(crate) async fn take(
    log: &Log,
    key: &str,
    owner: Vec<u8>,
) -> Result<Option<u64>, ReplicaError> {
    let subject = format!("$KV.{LEASE_BUCKET}.{key}");
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
    match log.request(&subject, Some(headers), owner).await? {
        Ok(ack) => match ack.get("seq").and_then(serde_json::Value::as_u64) {
            Some(seq) => Ok(Some(seq)),
            None => Err(ReplicaError::BadAnswer { subject, detail: ack.to_string() }),
        },
        Err((WRONG_LAST_SEQUENCE, _)) => Ok(None),
        Err((_, detail)) => Err(ReplicaError::Request { subject, detail }),
    }
}

/// Gives back the lease at bucket sequence `seq`; a failure leaves it to expire.
pub(crate) async fn release(log: &Log, seq: u64) {
    let subject = format!("$JS.API.STREAM.MSG.DELETE.KV_{LEASE_BUCKET}");
    let body = json!({ "seq": seq, "no_erase": true }).to_string().into_bytes();
    if let Err(e) = log.request(&subject, None, body).await {
        debug!(error = %e, "cannot release a lease; it expires");
    }
}
