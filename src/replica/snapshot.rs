//! Snapshots of the log: every replicated row at one log position, kept in JetStream in the
//! account of the log, so a joining replica reads the snapshot and then only the log's tail.
//!
//! Layout: the stream [`SNAPSHOT_STREAM`] (subjects `pbn.snapshot.>`, one message per
//! subject). A snapshot's body (see [`encode`]) is cut into chunks of [`CHUNK_BYTES`], each
//! published on `pbn.snapshot.<id>.<n>`; then its manifest (JSON: id, log position, schema,
//! size, sha-256 of the body and of every chunk, and the stream sequence of every chunk) on
//! [`HEAD_SUBJECT`]. The manifest is written last, so a reader never sees a snapshot whose
//! chunks are not all stored, and only over the manifest its writer read first
//! (`Nats-Expected-Last-Subject-Sequence`): of two writers at once one wins, and the other
//! purges its own chunks ([`SnapshotError::Superseded`]). After a manifest is written, every
//! chunk older than it that it does not list is purged: the previous snapshot's, and those of
//! a writer that died before its manifest, so no chunk outlives a second snapshot. Reading
//! checks every chunk's and the body's checksum: a corrupt or truncated snapshot is refused
//! ([`SnapshotError::Corrupt`]), never half-applied.

use async_nats::{Client, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use crate::admin::replicas::{SNAPSHOT_STREAM, SNAPSHOT_SUBJECTS};
use crate::store::{SnapshotRows, Store, StoreError};

/// The subject of the newest snapshot's manifest.
pub const HEAD_SUBJECT: &str = "pbn.snapshot.head";

/// The size of a chunk: half of nats-server's default `max_payload` (1 MiB), so a chunk with
/// its headers always fits one message.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// The encoding version of a snapshot's body.
const BODY_VERSION: u8 = 1;

/// JetStream's error code for a message get of a subject or sequence it does not hold.
const NO_MESSAGE: u64 = 10037;
/// JetStream's error code for a stream that does not exist.
const NO_STREAM: u64 = 10059;
/// JetStream's error code for creating a stream that exists with the same config.
const STREAM_EXISTS: u64 = 10058;
/// JetStream's error code for a publish whose expected last subject sequence is not the one.
const WRONG_LAST_SEQUENCE: u64 = 10071;

/// Errors of snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A snapshot whose chunks, checksums or body do not hold together.
    #[error("snapshot {id} is corrupt: {detail}")]
    Corrupt {
        /// The snapshot's id (`?` when its manifest cannot be read).
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// A JetStream request that failed or was refused.
    #[error("jetstream request {subject} failed: {detail}")]
    Request {
        /// The API subject.
        subject: String,
        /// What went wrong.
        detail: String,
    },
    /// Another snapshot's manifest was written while this one was: this one is dropped (its
    /// chunks purged) and the other stands.
    #[error("snapshot {0} was not written: another snapshot was written at the same time")]
    Superseded(String),
    /// The store could not be read or restored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One chunk of a snapshot: where it is stored and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Its stream sequence.
    pub seq: u64,
    /// Hex sha-256 of its bytes.
    pub sha256: String,
}

/// The manifest of a snapshot, the message on [`HEAD_SUBJECT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Its id (the subject token of its chunks).
    pub id: String,
    /// The log position the rows are the state after.
    pub seq: u64,
    /// The store schema of the rows.
    pub schema: u64,
    /// Size of the body in bytes.
    pub size: u64,
    /// Hex sha-256 of the body.
    pub sha256: String,
    /// The chunks, in order.
    pub chunks: Vec<Chunk>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The body of a snapshot: a version byte, the log position and schema (u64 LE), the table
/// count (u32 LE), then per table its name (u8 length), its row count (u32) and per row the
/// key and value (u32 length each).
pub fn encode(rows: &SnapshotRows) -> Vec<u8> {
    let mut out = vec![BODY_VERSION];
    out.extend_from_slice(&rows.seq.to_le_bytes());
    out.extend_from_slice(&rows.schema.to_le_bytes());
    out.extend_from_slice(&(rows.tables.len() as u32).to_le_bytes());
    for (name, table) in &rows.tables {
        // Table names are the registry's, a few bytes long.
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(table.len() as u32).to_le_bytes());
        for (k, v) in table {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    out
}

/// Decodes a body made by [`encode`]; `Err` names what is wrong.
pub fn decode(bytes: &[u8]) -> Result<SnapshotRows, String> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.take(1)?[0];
    if version != BODY_VERSION {
        return Err(format!("body version {version} (this build reads {BODY_VERSION})"));
    }
    let seq = u64::from_le_bytes(r.array()?);
    let schema = u64::from_le_bytes(r.array()?);
    let count = u32::from_le_bytes(r.array()?);
    let mut tables = Vec::new();
    for _ in 0..count {
        let len = r.take(1)?[0] as usize;
        let name = std::str::from_utf8(r.take(len)?).map_err(|_| "a table name is not utf-8")?;
        let rows = u32::from_le_bytes(r.array()?);
        let mut table = Vec::new();
        for _ in 0..rows {
            let k = r.bytes()?.to_vec();
            table.push((k, r.bytes()?.to_vec()));
        }
        tables.push((name.to_string(), table));
    }
    if r.at != bytes.len() {
        return Err(format!("{} bytes after the last table", bytes.len() - r.at));
    }
    Ok(SnapshotRows { seq, schema, tables })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("the body ends early at byte {}", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        s.try_into().map_err(|_| format!("the body ends early at byte {}", self.at))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        self.take(len)
    }
}

/// Snapshots through one NATS connection in the account of the log.
#[derive(Debug, Clone)]
pub struct Snapshots {
    client: Client,
}

impl Snapshots {
    /// Snapshots reached through `client`.
    pub fn new(client: Client) -> Snapshots {
        Snapshots { client }
    }

    /// Creates the stream with `replicas` copies unless it exists.
    pub async fn ensure_stream(&self, replicas: u32) -> Result<(), SnapshotError> {
        let config = json!({
            "name": SNAPSHOT_STREAM, "subjects": [SNAPSHOT_SUBJECTS], "storage": "file",
            "retention": "limits", "discard": "old", "max_msgs_per_subject": 1,
            "num_replicas": replicas, "max_msg_size": CHUNK_BYTES + 64 * 1024,
            "allow_direct": true,
        });
        let subject = format!("$JS.API.STREAM.CREATE.{SNAPSHOT_STREAM}");
        match self.api(&subject, None, config.to_string().into_bytes()).await? {
            Ok(_) | Err((STREAM_EXISTS, _)) => Ok(()),
            Err((_, detail)) => Err(SnapshotError::Request { subject, detail }),
        }
    }

    /// Writes a snapshot of `store` at the position it has applied, then purges every chunk
    /// older than its manifest that it does not list (see the module docs). Returns its
    /// manifest. A failure purges the chunks this call wrote.
    pub async fn write(&self, store: &Store) -> Result<Manifest, SnapshotError> {
        let source = store.clone();
        let rows = tokio::task::spawn_blocking(move || source.snapshot_rows())
            .await
            .map_err(|e| StoreError::TaskFailed(e.to_string()))??;
        let body = encode(&rows);
        // The head this snapshot replaces: its manifest is written only over this one.
        let previous = self.get(json!({ "last_by_subj": HEAD_SUBJECT })).await?.map_or(0, |m| m.1);
        let id = format!("s{}x{:08x}", rows.seq, rand::random::<u32>());
        let written = self.write_body(&id, &rows, &body, previous).await;
        let (manifest, head) = match written {
            Ok(done) => done,
            Err(e) => {
                if let Err(purge) = self.purge(&id).await {
                    tracing::warn!(error = %purge, id, "chunks of an unwritten snapshot kept");
                }
                return Err(e);
            }
        };
        self.purge_unlisted(&manifest, head).await?;
        tracing::info!(seq = manifest.seq, bytes = manifest.size, "snapshot of the log written");
        Ok(manifest)
    }

    /// Publishes the chunks of `body` and then its manifest over the head at stream sequence
    /// `previous` (0: none); returns the manifest and the head's new stream sequence.
    async fn write_body(
        &self,
        id: &str,
        rows: &SnapshotRows,
        body: &[u8],
        previous: u64,
    ) -> Result<(Manifest, u64), SnapshotError> {
        let mut chunks = Vec::with_capacity(body.len() / CHUNK_BYTES + 1);
        for (n, part) in body.chunks(CHUNK_BYTES).enumerate() {
            let seq = self.publish(&format!("pbn.snapshot.{id}.{n}"), part.to_vec(), None).await?;
            chunks.push(Chunk { seq, sha256: hex(&Sha256::digest(part)) });
        }
        let manifest = Manifest {
            id: id.to_string(),
            seq: rows.seq,
            schema: rows.schema,
            size: body.len() as u64,
            sha256: hex(&Sha256::digest(body)),
            chunks,
        };
        let text = serde_json::to_vec(&manifest).expect("a manifest is strings and numbers");
        let head = self.publish(HEAD_SUBJECT, text, Some(previous)).await?;
        Ok((manifest, head))
    }

    /// Writes a snapshot when the store has applied at least `min_entries` log entries past
    /// the newest snapshot (or there is none): what the runtime calls periodically. Returns
    /// the manifest written, if one was.
    pub async fn write_if_behind(
        &self,
        store: &Store,
        min_entries: u64,
    ) -> Result<Option<Manifest>, SnapshotError> {
        let applied = store.applied_seq()?;
        let newest = match self.manifest().await {
            Ok(m) => m.map(|m| m.seq),
            // An unreadable manifest is replaced by a good one.
            Err(SnapshotError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        match newest {
            Some(seq) if applied < seq.saturating_add(min_entries) => Ok(None),
            _ => self.write(store).await.map(Some),
        }
    }

    /// Every `every`, writes a snapshot when the store is `min_entries` past the newest one
    /// ([`Snapshots::write_if_behind`]), until `shutdown` turns true: the task the runtime of
    /// a replicated store runs. A failed round is logged and tried again at the next tick (the
    /// log stays whole meanwhile, so joins still work, only slower).
    pub async fn run(
        self,
        store: Store,
        every: std::time::Duration,
        min_entries: u64,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = crate::shutdown::requested(&mut shutdown) => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.write_if_behind(&store, min_entries).await {
                tracing::warn!(error = %e, "no snapshot of the log this round");
            }
        }
    }

    /// The newest snapshot's manifest, `None` when there is no snapshot (or no stream).
    pub async fn manifest(&self) -> Result<Option<Manifest>, SnapshotError> {
        let Some((bytes, _)) = self.get(json!({ "last_by_subj": HEAD_SUBJECT })).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| SnapshotError::Corrupt {
            id: "?".into(),
            detail: format!("its manifest is not readable: {e}"),
        })
    }

    /// The newest snapshot, checked chunk by chunk and as a whole; `None` when there is none.
    pub async fn latest(&self) -> Result<Option<SnapshotRows>, SnapshotError> {
        let Some(m) = self.manifest().await? else { return Ok(None) };
        let corrupt = |detail: String| SnapshotError::Corrupt { id: m.id.clone(), detail };
        let mut body = Vec::with_capacity(m.size.min(1 << 30) as usize);
        for (n, chunk) in m.chunks.iter().enumerate() {
            let found = self.get(json!({ "seq": chunk.seq })).await?;
            let (bytes, _) = found.ok_or_else(|| corrupt(format!("chunk {n} is missing")))?;
            if hex(&Sha256::digest(&bytes)) != chunk.sha256 {
                return Err(corrupt(format!("chunk {n} does not match its checksum")));
            }
            body.extend_from_slice(&bytes);
        }
        if body.len() as u64 != m.size || hex(&Sha256::digest(&body)) != m.sha256 {
            return Err(corrupt(format!("its {} bytes do not match the manifest", body.len())));
        }
        let rows = decode(&body).map_err(corrupt)?;
        if rows.seq != m.seq || rows.schema != m.schema {
            return Err(corrupt("its body and manifest disagree on the position".into()));
        }
        Ok(Some(rows))
    }

    async fn purge(&self, id: &str) -> Result<(), SnapshotError> {
        let subject = format!("$JS.API.STREAM.PURGE.{SNAPSHOT_STREAM}");
        let body = json!({ "filter": format!("pbn.snapshot.{id}.>") }).to_string().into_bytes();
        match self.api(&subject, None, body).await? {
            Ok(_) => Ok(()),
            Err((_, detail)) => Err(SnapshotError::Request { subject, detail }),
        }
    }

    /// Purges the chunks of every snapshot but `manifest`'s that were stored before its head
    /// (stream sequence `head`): the one it replaced, and those of writers that died before
    /// their manifest. A chunk stored after the head belongs to a writer still at work (whose
    /// manifest will then be refused, and who purges its own chunks).
    async fn purge_unlisted(&self, manifest: &Manifest, head: u64) -> Result<(), SnapshotError> {
        for (id, newest) in self.chunk_ids().await? {
            if id != manifest.id && newest < head {
                self.purge(&id).await?;
            }
        }
        Ok(())
    }

    /// Every snapshot id that has chunks stored, with the stream sequence of its newest chunk.
    pub async fn chunk_ids(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, SnapshotError> {
        let subject = format!("$JS.API.STREAM.INFO.{SNAPSHOT_STREAM}");
        let body = json!({ "subjects_filter": "pbn.snapshot.*.*" }).to_string().into_bytes();
        let info = match self.api(&subject, None, body).await? {
            Ok(info) => info,
            Err((_, detail)) => return Err(SnapshotError::Request { subject, detail }),
        };
        let mut ids = std::collections::BTreeMap::new();
        let subjects = info.pointer("/state/subjects").and_then(Value::as_object);
        for name in subjects.into_iter().flat_map(|m| m.keys()) {
            let Some(id) = name.split('.').nth(2) else { continue };
            let seq = self.get(json!({ "last_by_subj": name })).await?.map_or(0, |m| m.1);
            let newest = ids.entry(id.to_string()).or_insert(0);
            *newest = seq.max(*newest);
        }
        Ok(ids)
    }

    /// Publishes `payload` on `subject` of the stream; with `over`, only if the subject's last
    /// message is at that stream sequence (0: it has none), else [`SnapshotError::Superseded`].
    async fn publish(
        &self,
        subject: &str,
        payload: Vec<u8>,
        over: Option<u64>,
    ) -> Result<u64, SnapshotError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Expected-Stream", SNAPSHOT_STREAM);
        if let Some(seq) = over {
            headers.insert("Nats-Expected-Last-Subject-Sequence", seq.to_string().as_str());
        }
        match self.api(subject, Some(headers), payload).await? {
            Ok(ack) => ack.get("seq").and_then(Value::as_u64).ok_or_else(|| {
                let detail = format!("publish acknowledgement without seq: {ack}");
                SnapshotError::Request { subject: subject.into(), detail }
            }),
            Err((WRONG_LAST_SEQUENCE, _)) if over.is_some() => {
                Err(SnapshotError::Superseded(subject.into()))
            }
            Err((_, detail)) => Err(SnapshotError::Request { subject: subject.into(), detail }),
        }
    }

    /// One stored message's data and stream sequence by `query` (`seq` or `last_by_subj`),
    /// `None` if absent.
    async fn get(&self, query: Value) -> Result<Option<(Vec<u8>, u64)>, SnapshotError> {
        let subject = format!("$JS.API.STREAM.MSG.GET.{SNAPSHOT_STREAM}");
        let answer = match self.api(&subject, None, query.to_string().into_bytes()).await? {
            Ok(answer) => answer,
            Err((NO_MESSAGE | NO_STREAM, _)) => return Ok(None),
            Err((_, detail)) => return Err(SnapshotError::Request { subject, detail }),
        };
        let data = answer.pointer("/message/data").and_then(Value::as_str).unwrap_or("");
        let seq = answer.pointer("/message/seq").and_then(Value::as_u64).unwrap_or(0);
        let bytes = data_encoding::BASE64.decode(data.as_bytes()).map_err(|e| {
            SnapshotError::Corrupt { id: "?".into(), detail: format!("stored data: {e}") }
        })?;
        Ok(Some((bytes, seq)))
    }

    /// One API request: the JSON answer, or JetStream's (error code, description).
    async fn api(
        &self,
        subject: &str,
        headers: Option<HeaderMap>,
        payload: Vec<u8>,
    ) -> Result<Result<Value, (u64, String)>, SnapshotError> {
        let failed =
            |detail: String| SnapshotError::Request { subject: subject.to_string(), detail };
        let reply = match headers {
            Some(h) => {
                self.client.request_with_headers(subject.to_string(), h, payload.into()).await
            }
            None => self.client.request(subject.to_string(), payload.into()).await,
        }
        .map_err(|e| failed(e.to_string()))?;
        let answer: Value =
            serde_json::from_slice(&reply.payload).map_err(|e| failed(format!("not JSON: {e}")))?;
        Ok(match answer.get("error") {
            None => Ok(answer),
            Some(e) => {
                let code = e.get("err_code").and_then(Value::as_u64).unwrap_or(0);
                let text = e.get("description").and_then(Value::as_str).unwrap_or("unknown");
                Err((code, text.to_string()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> SnapshotRows {
        SnapshotRows {
            seq: 42,
            schema: 4,
            tables: vec![
                ("meta".into(), vec![(b"schema_version".to_vec(), 4u64.to_le_bytes().to_vec())]),
                ("users".into(), vec![(b"a".to_vec(), vec![1; 10]), (b"b".to_vec(), vec![])]),
                ("audit".into(), vec![]),
            ],
        }
    }

    #[test]
    fn bodies_round_trip_and_truncated_ones_are_refused() {
        let body = encode(&rows());
        assert_eq!(decode(&body).unwrap(), rows());
        for cut in [0, 1, 9, body.len() / 2, body.len() - 1] {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = body.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut other = body;
        other[0] = 9;
        assert!(decode(&other).unwrap_err().contains("version 9"));
    }
}
