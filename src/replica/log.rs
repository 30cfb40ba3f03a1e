//! The log: the stream [`LOG_STREAM`] on subject [`LOG_SUBJECT`], spoken through JetStream's
//! JSON API on a plain NATS connection (publish with expected last sequence, get by sequence).

use async_nats::{Client, HeaderMap};
use serde_json::{json, Value};

use super::ReplicaError;
use crate::store::{Journal, JournalError, Store, StoreError, MAX_JOURNAL_BYTES};

/// The stream holding the log.
pub const LOG_STREAM: &str = "PBN_LOG";
/// The subject journals are appended on.
pub const LOG_SUBJECT: &str = "pbn.log";

/// JetStream's error code for a publish whose expected last sequence is not the stream's.
const WRONG_LAST_SEQUENCE: u64 = 10071;
/// JetStream's error code for a message get of a sequence the stream does not hold.
const NO_MESSAGE: u64 = 10037;
/// JetStream's error code for creating a stream that exists with the same config.
const STREAM_EXISTS: u64 = 10058;

/// A handle on the log through one NATS connection (in the account that owns the stream).
#[derive(Debug, Clone)]
pub struct Log {
    client: Client,
}

impl Log {
    /// The log reached through `client`.
    pub fn new(client: Client) -> Log {
        Log { client }
    }

    /// Creates the stream with `replicas` copies (1 on a single server, 3 on a cluster) unless
    /// it exists. Entries leave it only by compaction ([`Log::purge_before`]), once a snapshot
    /// covers them.
    pub async fn ensure_stream(&self, replicas: u32) -> Result<(), ReplicaError> {
        let config = json!({
            "name": LOG_STREAM, "subjects": [LOG_SUBJECT], "storage": "file",
            "retention": "limits", "discard": "new", "num_replicas": replicas,
            "max_msg_size": MAX_JOURNAL_BYTES + 1024, "allow_direct": true,
        });
        let subject = format!("$JS.API.STREAM.CREATE.{LOG_STREAM}");
        match self.api(&subject, None, config.to_string().into_bytes()).await? {
            Ok(_) => Ok(()),
            Err((STREAM_EXISTS, _)) => Ok(()),
            Err((_, detail)) => Err(ReplicaError::Request { subject, detail }),
        }
    }

    /// Appends `journal` as the entry after `expected_last` (the last position the appender
    /// applied) and returns its position. [`ReplicaError::Conflict`] when the log has moved on.
    pub async fn append(&self, journal: &Journal, expected_last: u64) -> Result<u64, ReplicaError> {
        let payload = journal.encode().map_err(StoreError::from)?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Stream", LOG_STREAM);
        headers.insert("Nats-Expected-Last-Sequence", expected_last.to_string().as_str());
        match self.api(LOG_SUBJECT, Some(headers), payload).await? {
            Ok(ack) => ack.get("seq").and_then(Value::as_u64).ok_or_else(|| {
                bad(LOG_SUBJECT, format!("publish acknowledgement without seq: {ack}"))
            }),
            Err((WRONG_LAST_SEQUENCE, detail)) => {
                let last = last_in(&detail);
                Err(ReplicaError::Conflict { expected: expected_last, last, detail })
            }
            Err((_, detail)) => Err(ReplicaError::Request { subject: LOG_SUBJECT.into(), detail }),
        }
    }

    /// The position of the last entry of the log (0: empty), from the stream's state.
    pub async fn last_seq(&self) -> Result<u64, ReplicaError> {
        let subject = format!("$JS.API.STREAM.INFO.{LOG_STREAM}");
        match self.api(&subject, None, Vec::new()).await? {
            Ok(info) => info.pointer("/state/last_seq").and_then(Value::as_u64).ok_or_else(|| {
                bad(&subject, format!("stream info without state.last_seq: {info}"))
            }),
            Err((_, detail)) => Err(ReplicaError::Request { subject, detail }),
        }
    }

    /// The log's first and last positions (first 1 and last 0 for a log never written).
    pub async fn bounds(&self) -> Result<(u64, u64), ReplicaError> {
        let subject = format!("$JS.API.STREAM.INFO.{LOG_STREAM}");
        match self.api(&subject, None, Vec::new()).await? {
            Ok(info) => {
                let state = |k: &str| info.pointer(&format!("/state/{k}")).and_then(Value::as_u64);
                let (first, last) = (state("first_seq").unwrap_or(1), state("last_seq"));
                let last =
                    last.ok_or_else(|| bad(&subject, format!("no state.last_seq: {info}")))?;
                Ok((if last == 0 { 1 } else { first.max(1) }, last))
            }
            Err((_, detail)) => Err(ReplicaError::Request { subject, detail }),
        }
    }

    /// Compacts the log: removes every entry before position `seq` (a snapshot covers them).
    /// Returns how many were removed.
    pub async fn purge_before(&self, seq: u64) -> Result<u64, ReplicaError> {
        let subject = format!("$JS.API.STREAM.PURGE.{LOG_STREAM}");
        let body = json!({ "seq": seq }).to_string().into_bytes();
        match self.api(&subject, None, body).await? {
            Ok(answer) => Ok(answer.get("purged").and_then(Value::as_u64).unwrap_or(0)),
            Err((_, detail)) => Err(ReplicaError::Request { subject, detail }),
        }
    }

    /// The client this log is reached through.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The entry at `seq`, or `None` when the log does not hold it yet. A position the log
    /// held once but compacted away is [`ReplicaError::Compacted`]: the entry asked for is the
    /// first one at or after `seq`, so a gap is seen in the same request.
    pub async fn get(&self, seq: u64) -> Result<Option<Journal>, ReplicaError> {
        let subject = format!("$JS.API.STREAM.MSG.GET.{LOG_STREAM}");
        let body = json!({ "seq": seq, "next_by_subj": LOG_SUBJECT }).to_string().into_bytes();
        let answer = match self.api(&subject, None, body).await? {
            Ok(answer) => answer,
            Err((NO_MESSAGE, _)) => return Ok(None),
            Err((_, detail)) => return Err(ReplicaError::Request { subject, detail }),
        };
        let found = answer.pointer("/message/seq").and_then(Value::as_u64);
        match found {
            Some(found) if found == seq => {}
            Some(first) => return Err(ReplicaError::Compacted { wanted: seq, first }),
            None => return Err(bad(&subject, format!("message of seq {seq} without its seq"))),
        }
        let data = answer.pointer("/message/data").and_then(Value::as_str).unwrap_or("");
        let bytes = data_encoding::BASE64
            .decode(data.as_bytes())
            .map_err(|e| bad(&subject, format!("message data of seq {seq}: {e}")))?;
        let journal = Journal::decode(&bytes).map_err(|e: JournalError| StoreError::from(e))?;
        Ok(Some(journal))
    }

    /// One JetStream request (API, or publish to a stream): the JSON answer, or JetStream's
    /// (error code, description).
    pub(crate) async fn request(
        &self,
        subject: &str,
        headers: Option<HeaderMap>,
        payload: Vec<u8>,
    ) -> Result<Result<Value, (u64, String)>, ReplicaError> {
        self.api(subject, headers, payload).await
    }

    /// One API request: the JSON answer, or JetStream's (error code, description).
    async fn api(
        &self,
        subject: &str,
        headers: Option<HeaderMap>,
        payload: Vec<u8>,
    ) -> Result<Result<Value, (u64, String)>, ReplicaError> {
        use async_nats::RequestErrorKind;
        let reply = match headers {
            Some(h) => {
                self.client.request_with_headers(subject.to_string(), h, payload.into()).await
            }
            None => self.client.request(subject.to_string(), payload.into()).await,
        }
        .map_err(|e| match e.kind() {
            RequestErrorKind::TimedOut => ReplicaError::NoAnswer { subject: subject.to_string() },
            RequestErrorKind::NoResponders => ReplicaError::Request {
                subject: subject.to_string(),
                detail: "no responders (nothing in reach serves it: no jetstream quorum?)".into(),
            },
            _ => ReplicaError::Request { subject: subject.to_string(), detail: e.to_string() },
        })?;
        let answer: Value = serde_json::from_slice(&reply.payload)
            .map_err(|e| bad(subject, format!("not JSON: {e}")))?;
        match answer.get("error") {
            None => Ok(Ok(answer)),
            Some(e) => {
                let code = e.get("err_code").and_then(Value::as_u64).unwrap_or(0);
                let text = e.get("description").and_then(Value::as_str).unwrap_or("unknown");
                Ok(Err((code, text.to_string())))
            }
        }
    }
}

/// The log's last position in JetStream's refusal of an expected last sequence
/// (`wrong last sequence: N`), so a writer that lost knows how far to catch up.
fn last_in(detail: &str) -> Option<u64> {
    detail.rsplit(':').next()?.trim().parse().ok()
}

fn bad(subject: &str, detail: String) -> ReplicaError {
    ReplicaError::BadAnswer { subject: subject.to_string(), detail }
}

/// Applies every entry of the log after the store's applied position, in order; returns the
/// position reached. Each entry is applied in its own transaction with its position.
pub async fn catch_up(store: &Store, log: &Log) -> Result<u64, ReplicaError> {
    let mut seq = store.applied_seq()?;
    while let Some(journal) = log.get(seq + 1).await? {
        let (target, next) = (store.clone(), seq + 1);
        tokio::task::spawn_blocking(move || target.apply(&journal, next))
            .await
            .map_err(|e| StoreError::TaskFailed(e.to_string()))??;
        seq = next;
    }
    Ok(seq)
}

/// Applies the log to `store` as it grows, until `shutdown` turns true: woken by every append
/// seen on [`LOG_SUBJECT`], and every `poll` in case a wake-up was missed (a reconnect, an
/// append made before the subscription). Wake-ups are coalesced: however many arrive during
/// a catch-up, one more catch-up follows, so the subscription's buffer (the client's bounded
/// per-subscription capacity) never holds work, only signals.
pub async fn follow(
    store: Store,
    log: Log,
    poll: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ReplicaError> {
    let mut wakes = Wakes::subscribe(&log.client).await?;
    let mut reached = store.applied_seq()?;
    loop {
        let before = reached;
        match catch_up(&store, &log).await {
            Ok(seq) => reached = seq,
            // A journal the store refuses needs an operator: applying past it would diverge.
            Err(e @ ReplicaError::Store(_)) => return Err(e),
            // The log unreachable: the view keeps serving; try again at the next wake-up.
            Err(e) => tracing::warn!(error = %e, "the log cannot be read; retrying"),
        }
        if wakes.next(&mut shutdown, poll, reached > before).await? {
            return Ok(());
        }
    }
}

/// How soon a follower reads the log again after a wake-up whose append it did not find: a
/// message on [`LOG_SUBJECT`] reaches subscribers when it is published, before the stream has
/// committed it, so the first read may come too early.
const RECHECK: std::time::Duration = std::time::Duration::from_millis(5);
/// How many such quick reads follow one wake-up (a commit later than 200 ms is left to the poll).
const RECHECKS: u32 = 40;

/// The reasons a follower reads the log: appends seen on [`LOG_SUBJECT`] (those already queued
/// are drained: one read catches up with all of them), quick re-reads after an append the last
/// read did not find yet, and a poll in case a wake-up was missed.
pub(super) struct Wakes {
    appends: async_nats::Subscriber,
    /// Quick re-reads made since the last append seen (0: none pending).
    rechecks: u32,
}

impl Wakes {
    /// Subscribes to the log's appends.
    pub(super) async fn subscribe(client: &Client) -> Result<Wakes, ReplicaError> {
        let appends = client.subscribe(LOG_SUBJECT).await.map_err(|e| ReplicaError::Request {
            subject: LOG_SUBJECT.into(),
            detail: e.to_string(),
        })?;
        Ok(Wakes { appends, rechecks: 0 })
    }

    /// Waits for the next reason to read the log; `progressed` says whether the last read
    /// applied anything. True when `shutdown` was requested; an error when the subscription
    /// closed.
    pub(super) async fn next(
        &mut self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
        poll: std::time::Duration,
        progressed: bool,
    ) -> Result<bool, ReplicaError> {
        use futures::StreamExt;
        if progressed {
            self.rechecks = 0;
        }
        let wait = match self.rechecks {
            n @ 1..=RECHECKS => {
                self.rechecks = n + 1;
                RECHECK
            }
            _ => poll,
        };
        tokio::select! {
            _ = crate::shutdown::requested(shutdown) => Ok(true),
            seen = self.appends.next() => {
                if seen.is_none() {
                    return Err(ReplicaError::Request {
                        subject: LOG_SUBJECT.into(),
                        detail: "the subscription closed".into(),
                    });
                }
                while futures::FutureExt::now_or_never(self.appends.next()).flatten().is_some() {}
                self.rechecks = 1;
                Ok(false)
            }
            _ = tokio::time::sleep(wait) => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::last_in;

    #[test]
    fn the_logs_last_position_is_read_from_a_refused_append() {
        assert_eq!(last_in("wrong last sequence: 42"), Some(42));
        assert_eq!(last_in("wrong last sequence"), None);
        assert_eq!(last_in("wrong last sequence: soon"), None);
    }
}
