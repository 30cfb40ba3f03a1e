//! Settings of replicated mode (`replicated`, `log_replicas`).

use super::ConfigError;

/// Checked settings of replicated mode: the store is a view of the log on JetStream, admin
/// writes go through the log (see `crate::replica`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// Copies of the log stream (and the publisher's lease bucket) JetStream keeps: 1 on a
    /// single server, 3 on a cluster (at most 5).
    pub log_replicas: u32,
    /// Log entries applied past the newest snapshot before a new one is written and the log
    /// compacted (see `replica::compact`).
    pub snapshot_entries: u64,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings { log_replicas: DEFAULT_LOG_REPLICAS, snapshot_entries: SNAPSHOT_ENTRIES }
    }
}

/// Entries between snapshots when none is configured: a joiner replays at most about twice
/// this many entries after the snapshot (the log keeps those since the one before), a few
/// seconds at the apply rate, while a snapshot of a large store (a few MiB per 10,000 users)
/// is written rarely.
pub(super) const SNAPSHOT_ENTRIES: u64 = 10_000;

/// Copies of the log when none are configured: 1 works on a single server and on a cluster
/// (the README recommends 3 on a cluster, so a node can be lost).
pub(super) const DEFAULT_LOG_REPLICAS: u32 = 1;
/// JetStream's largest replica count.
const MAX_LOG_REPLICAS: u32 = 5;

/// Replicated mode when `replicated` is true, with `log_replicas` copies (1 to 5) and a
/// snapshot every `snapshot_entries` entries (at least 1).
pub(super) fn replica_settings(
    replicated: Option<bool>,
    log_replicas: Option<u32>,
    snapshot_entries: Option<u64>,
) -> Result<Option<ReplicaSettings>, ConfigError> {
    let copies = log_replicas.unwrap_or(DEFAULT_LOG_REPLICAS);
    if copies == 0 || copies > MAX_LOG_REPLICAS {
        return Err(ConfigError::Invalid {
            name: "log_replicas",
            value: copies.to_string(),
            message: "must be between 1 and 5",
        });
    }
    let snapshot_entries = snapshot_entries.unwrap_or(SNAPSHOT_ENTRIES);
    if snapshot_entries == 0 {
        return Err(ConfigError::Invalid {
            name: "snapshot_entries",
            value: "0".into(),
            message: "must be at least 1",
        });
    }
    let settings = ReplicaSettings { log_replicas: copies, snapshot_entries };
    Ok(replicated.unwrap_or(false).then_some(settings))
}

/// A boolean environment variable: `1`/`true`/`yes` or `0`/`false`/`no`.
pub(super) fn env_flag(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        _ => Err(ConfigError::Env {
            name: name.to_string(),
            value: value.to_string(),
            message: "a flag is 1 or 0 (true or false)".into(),
        }),
    }
}
