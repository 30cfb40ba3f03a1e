//! Joining: `pbn serve --join BUNDLE --store NEW.redb` builds a new replica's store from the
//! log before serving it.
//!
//! On an empty path only: an existing store (or key file beside it) is refused, never
//! replaced. The replica connects with the bundle's creds, creates its store from the newest
//! snapshot (see [`super::snapshot`]) and applies the log's tail after the snapshot's position;
//! without a snapshot, or with one that is corrupt, it starts from the bundle's seal metadata
//! and applies the log from position 1, provided the log still holds it. The store key is
//! written to `<store>.key` (mode 0600) for the later opens of `pbn serve`, and the bundle's
//! creds into the store (seed sealed, `store::ReplicaIdentity`): `pbn serve` on this store
//! connects with them from then on. A join that fails
//! removes what it made, so it can be run again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bundle::{Bundle, BundleError};
use super::snapshot::{SnapshotError, Snapshots};
use super::{catch_up, Log, ReplicaError};
use crate::seal::{KeySource, SealError, StoreKey};
use crate::store::{start_entries, Journal, ReplicaIdentity, Store, StoreError};

/// The variable a joiner reads a store passphrase from (a passphrase never travels in a bundle).
pub const PASSPHRASE_VAR: &str = "PBN_KEY_PASSPHRASE";

/// How long connecting to the bundle's servers may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of joining.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The store path is taken: joining builds a new store only.
    #[error("store file {0} already exists; --join builds a new store on an empty path")]
    StoreExists(PathBuf),
    /// The key file beside the store exists.
    #[error("store key file {0} already exists; --join writes a new one")]
    KeyFileExists(PathBuf),
    /// The bundle is missing or bad.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle's store key cannot be read.
    #[error("the store key in bundle {path} is not a store key")]
    BadKey {
        /// The bundle.
        path: PathBuf,
        /// Why.
        source: SealError,
    },
    /// The bundle's seal metadata cannot be read.
    #[error("the seal metadata in bundle {path} is not readable: {detail}")]
    BadGenesis {
        /// The bundle.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// A passphrase store, and no passphrase was given.
    #[error("the store of bundle {0} is opened by a passphrase: set PBN_KEY_PASSPHRASE")]
    PassphraseRequired(PathBuf),
    /// No server of the bundle accepted the replica's creds.
    #[error("cannot connect to {servers} with the creds of replica {name}: {detail}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// The replica.
        name: String,
        /// Why.
        detail: String,
    },
    /// The log no longer holds its first entry and no good snapshot covers it.
    #[error("the log starts at position {first}, and no usable snapshot covers what came before")]
    LogTruncated {
        /// The log's first position.
        first: u64,
    },
    /// Nothing to join from: the log is empty and there is no snapshot (a replicated
    /// `pbn serve` on the first store starts the log).
    #[error("the log is empty and there is no snapshot: start the first replica before joining")]
    EmptyLog,
    /// The log's start (the first replica's full state, in several entries for a big store)
    /// was still incomplete when the wait ended.
    #[error(
        "the log's start reached only position {reached} of {target} within {secs} s: is the \
         first replica still starting the log? join again once it logs that the log started"
    )]
    StartIncomplete {
        /// The position applied.
        reached: u64,
        /// The position the start and the log at the join reach.
        target: u64,
        /// How long the join waited.
        secs: u64,
    },
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] ReplicaError),
    /// Reading a snapshot failed (other than by corruption).
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The new store could not be made.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key file could not be written.
    #[error("cannot write store key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a join did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The replica's name.
    pub name: String,
    /// The log position reached.
    pub seq: u64,
    /// The position of the snapshot it started from, if it used one.
    pub snapshot: Option<u64>,
    /// How long it took.
    pub elapsed: Duration,
}

/// The key file beside `store`: its path with `.key` appended.
pub fn key_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Builds the store at `store` from the log as the replica of `bundle_path` (see the module
/// docs). The store is closed again when this returns: `pbn serve` opens it next.
pub async fn join(bundle_path: &Path, store: &Path) -> Result<Joined, JoinError> {
    let started = Instant::now();
    if crate::fsutil::occupied(store) {
        return Err(JoinError::StoreExists(store.to_path_buf()));
    }
    let key_file = key_path(store);
    let bundle = Bundle::read(bundle_path)?;
    let key = key_source(&bundle, bundle_path)?;
    if bundle.store_key.is_some() && crate::fsutil::occupied(&key_file) {
        return Err(JoinError::KeyFileExists(key_file));
    }
    let genesis = genesis(&bundle, bundle_path)?;
    let identity = identity(&bundle).ok_or_else(|| JoinError::Connect {
        servers: bundle.servers.join(", "),
        name: bundle.name.clone(),
        detail: "the bundle's creds hold no user JWT and seed".into(),
    })?;
    let client = connect(&bundle).await?;
    let built = build(&client, store, &genesis, key, &identity).await;
    let (seq, snapshot) = match built {
        Ok(done) => done,
        Err(e) => {
            // The path was empty when the join began: what is there now is its own.
            let _ = std::fs::remove_file(store);
            return Err(e);
        }
    };
    if let Some(text) = &bundle.store_key {
        if let Err(e) = write_key_file(&key_file, text) {
            let _ = std::fs::remove_file(store);
            return Err(e);
        }
    }
    let _ = client.flush().await;
    let joined = Joined { name: bundle.name.clone(), seq, snapshot, elapsed: started.elapsed() };
    tracing::info!(
        replica = joined.name.as_str(),
        seq,
        snapshot = ?snapshot,
        elapsed_ms = joined.elapsed.as_millis() as u64,
        "joined the log"
    );
    Ok(joined)
}

fn key_source(bundle: &Bundle, path: &Path) -> Result<Option<KeySource>, JoinError> {
    if let Some(text) = &bundle.store_key {
        let key = StoreKey::from_file_text(text)
            .map_err(|source| JoinError::BadKey { path: path.to_path_buf(), source })?;
        return Ok(Some(KeySource::Key(key)));
    }
    if bundle.passphrase {
        let pass = std::env::var(PASSPHRASE_VAR).ok().filter(|p| !p.is_empty());
        let pass = pass.ok_or_else(|| JoinError::PassphraseRequired(path.to_path_buf()))?;
        return Ok(Some(KeySource::Passphrase(zeroize::Zeroizing::new(pass))));
    }
    Ok(None)
}

fn genesis(bundle: &Bundle, path: &Path) -> Result<Journal, JoinError> {
    let bad = |detail: String| JoinError::BadGenesis { path: path.to_path_buf(), detail };
    let bytes = data_encoding::BASE64
        .decode(bundle.genesis.as_bytes())
        .map_err(|e| bad(format!("not base64: {e}")))?;
    Journal::decode(&bytes).map_err(|e| bad(e.to_string()))
}

/// A connection to the bundle's servers as the replica (its replies in its own inbox).
async fn connect(bundle: &Bundle) -> Result<async_nats::Client, JoinError> {
    let fail = |detail: String| JoinError::Connect {
        servers: bundle.servers.join(", "),
        name: bundle.name.clone(),
        detail,
    };
    let options = async_nats::ConnectOptions::with_credentials(&bundle.creds)
        .map_err(|e| fail(format!("the bundle's creds are not readable: {e}")))?;
    let key = creds_public_key(&bundle.creds).ok_or_else(|| fail("no seed in its creds".into()))?;
    let options = options
        .name(format!("pbn-join-{}", bundle.name))
        .custom_inbox_prefix(crate::admin::replicas::inbox_prefix(&key))
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(CONNECT_TIMEOUT))
        .max_reconnects(Some(3));
    let servers: Result<Vec<async_nats::ServerAddr>, _> =
        bundle.servers.iter().map(|s| s.parse::<async_nats::ServerAddr>()).collect();
    let servers = servers.map_err(|e| fail(format!("bad server URL: {e}")))?;
    let connecting = options.connect(servers);
    let client = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| fail(format!("no server answered within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    Ok(client)
}

/// The replica's identity from its creds text: the JWT and the seed.
fn identity(bundle: &Bundle) -> Option<ReplicaIdentity> {
    let mut lines = bundle.creds.lines().map(str::trim);
    lines.find(|l| l.starts_with("-----BEGIN NATS USER JWT"))?;
    let jwt = lines.next().filter(|l| l.starts_with("eyJ"))?.to_string();
    let seed = bundle.creds.lines().map(str::trim).find(|l| l.starts_with("SU"))?;
    let seed = crate::keys::Seed::new(seed).ok()?;
    Some(ReplicaIdentity { name: bundle.name.clone(), jwt, seed })
}

/// The user public key of a creds text (from its seed).
fn creds_public_key(creds: &str) -> Option<String> {
    let seed = creds.lines().map(str::trim).find(|l| l.starts_with("SU"))?;
    let kp = crate::keys::KeyPair::from_seed(&crate::keys::Seed::new(seed).ok()?).ok()?;
    Some(kp.public_key().to_string())
}

/// Creates the store from the newest good snapshot, else from `genesis` and the log from 1,
/// and applies the log after it. Returns the position reached and the snapshot's.
async fn build(
    client: &async_nats::Client,
    path: &Path,
    genesis: &Journal,
    key: Option<KeySource>,
    identity: &ReplicaIdentity,
) -> Result<(u64, Option<u64>), JoinError> {
    let log = Log::new(client.clone());
    let snapshots = Snapshots::new(client.clone());
    // A snapshot replaced while it was read has its chunks purged: the newer one is read.
    let snapshot = match snapshots.latest().await {
        Err(SnapshotError::Corrupt { .. }) => snapshots.latest().await,
        read => read,
    };
    let snapshot = match snapshot {
        Ok(found) => found,
        Err(e @ SnapshotError::Corrupt { .. }) => {
            tracing::warn!(error = %e, "the snapshot is refused; joining from the log");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let (p, from) = (path.to_path_buf(), snapshot.as_ref().map(|s| s.seq));
    let (first, last) = log_bounds(client).await?;
    if first > from.unwrap_or(0) + 1 {
        return Err(JoinError::LogTruncated { first });
    }
    // A replica made of nothing would start the log with its empty state.
    if last == 0 && from.is_none() {
        return Err(JoinError::EmptyLog);
    }
    let store = match snapshot {
        Some(snap) => blocking(move || Store::create_from_snapshot(&p, &snap, key)).await?,
        None => {
            let genesis = genesis.clone();
            blocking(move || Store::create_replica(&p, &genesis, key)).await?
        }
    };
    let seq = catch_up(&store, &log).await?;
    let seq = complete_start(&store, &log, seq, last, from.is_some()).await?;
    let (target, identity) = (store.clone(), identity.clone());
    blocking(move || target.set_replica_identity(&identity)).await?;
    drop(store);
    Ok((seq, from))
}

/// How long a join waits for a log start that the first replica is still writing.
const START_WAIT: Duration = Duration::from_secs(60);
/// How often a join waiting for the rest of the log's start reads the log again.
const START_POLL: Duration = Duration::from_millis(100);

/// Catches up until every entry of the log's start (as many as its first entry announces) and
/// everything the log held at the join (`last`) are applied: a store made of part of a start
/// lacks records that every later entry and `pbn serve` rely on. A join from a snapshot has
/// the whole start in the snapshot.
async fn complete_start(
    store: &Store,
    log: &Log,
    mut seq: u64,
    last: u64,
    from_snapshot: bool,
) -> Result<u64, JoinError> {
    let announced = match from_snapshot {
        true => 0,
        false => log.get(1).await?.map_or(0, |first| start_entries(&first).unwrap_or(1)),
    };
    let target = announced.max(last);
    let started = Instant::now();
    while seq < target {
        if started.elapsed() > START_WAIT {
            let secs = START_WAIT.as_secs();
            return Err(JoinError::StartIncomplete { reached: seq, target, secs });
        }
        tokio::time::sleep(START_POLL).await;
        seq = catch_up(store, log).await?;
    }
    Ok(seq)
}

/// The log's first and last positions (first 1 and last 0 for a log never written).
async fn log_bounds(client: &async_nats::Client) -> Result<(u64, u64), JoinError> {
    let subject = format!("$JS.API.STREAM.INFO.{}", super::LOG_STREAM);
    let failed = |detail: String| ReplicaError::Request { subject: subject.clone(), detail };
    let reply = client.request(subject.clone(), "".into()).await;
    let reply = reply.map_err(|e| failed(e.to_string()))?;
    let info: serde_json::Value =
        serde_json::from_slice(&reply.payload).map_err(|e| failed(format!("not JSON: {e}")))?;
    if let Some(e) = info.get("error") {
        return Err(failed(e.to_string()).into());
    }
    let state = |k: &str| info.pointer(&format!("/state/{k}")).and_then(|v| v.as_u64());
    let (first, last) = (state("first_seq").unwrap_or(1), state("last_seq").unwrap_or(0));
    Ok((if last == 0 { 1 } else { first }, last))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::TaskFailed(e.to_string()))?
}

/// Writes the store key file (mode 0600, never over an existing file).
fn write_key_file(path: &Path, text: &str) -> Result<(), JoinError> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |source| JoinError::KeyFile { path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(fail)
}
