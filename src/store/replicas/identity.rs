//! A joined replica's own NATS identity, kept in its store: its name, its user JWT and its
//! seed, sealed under the store key (plain in a plain store, like every seed there).
//!
//! The table is local: it is not in the registry of replicated tables, so no journal, full
//! state or snapshot carries it, and it is written outside the journal (a replica's store
//! refuses journaled local writes). Written once, by the join; read by `pbn serve`, which then
//! connects with these creds instead of the AUTH service user's.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::super::{backend, Db, Store, StoreError};
use crate::keys::Seed;
use crate::seal::{self, Slot};

/// The local table: one row, [`ROW`].
const IDENTITY: TableDefinition<&str, &[u8]> = TableDefinition::new("replica_identity");
/// Its one row's key.
const ROW: &str = "self";

/// A replica's identity towards the servers. `Debug` shows its name only.
#[derive(Clone)]
pub struct ReplicaIdentity {
    /// The replica's name (its record in the replicated `replicas` table).
    pub name: String,
    /// Its user JWT (public).
    pub jwt: String,
    /// Its user seed.
    pub seed: Seed,
}

impl std::fmt::Debug for ReplicaIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaIdentity").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The stored row: the seed sealed (or plain in a plain store).
#[derive(Serialize, Deserialize)]
struct Row {
    name: String,
    jwt: String,
    seed: String,
    sealed: bool,
}

fn slot(name: &str) -> Slot<'_> {
    Slot { table: "replica_identity", key: name, field: "seed" }
}

impl Store {
    /// Keeps `identity` as this replica's own (replacing one kept before).
    pub fn set_replica_identity(&self, identity: &ReplicaIdentity) -> Result<(), StoreError> {
        let Db::ReadWrite(db) = &self.inner.db else {
            return Err(StoreError::ReadOnly(self.inner.path.clone()));
        };
        let ring = self.inner.key.current();
        let (seed, sealed) = match &ring {
            Some(ring) => (seal::seal_seed(ring.key(), slot(&identity.name), &identity.seed), true),
            None => (identity.seed.expose().to_string(), false),
        };
        let row = Row { name: identity.name.clone(), jwt: identity.jwt.clone(), seed, sealed };
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&row).expect("strings"));
        let txn = db.begin_write().map_err(backend("starting a write"))?;
        {
            let mut table = txn.open_table(IDENTITY).map_err(backend("opening a table"))?;
            table.insert(ROW, bytes.as_slice()).map_err(backend("writing the identity"))?;
        }
        txn.commit().map_err(backend("committing"))
    }

    /// This replica's own identity, `None` when it has none (a store that was not joined).
    pub fn replica_identity(&self) -> Result<Option<ReplicaIdentity>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(backend("starting a read"))?;
        let table = match txn.open_table(IDENTITY) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend("opening a table")(e)),
        };
        let Some(bytes) = table.get(ROW).map_err(backend("reading the identity"))? else {
            return Ok(None);
        };
        let bad = || StoreError::Corrupt { table: "replica_identity".into(), key: ROW.into() };
        let row: Row = serde_json::from_slice(bytes.value()).map_err(|_| bad())?;
        let seed = match (row.sealed, self.inner.key.current()) {
            (true, Some(ring)) => {
                seal::open_seed(ring.key(), slot(&row.name), &row.seed).map_err(|_| bad())?
            }
            (false, _) => Seed::new(row.seed.as_str()).map_err(|_| bad())?,
            (true, None) => return Err(bad()),
        };
        Ok(Some(ReplicaIdentity { name: row.name, jwt: row.jwt, seed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyKind, KeyPair};
    use crate::seal::{KeySource, StoreKey};

    #[test]
    fn an_identity_is_kept_sealed_and_read_back_and_never_replicated() {
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let store =
            Store::create_with(dir.path().join("s.redb"), Some(KeySource::Key(key))).unwrap();
        assert!(store.replica_identity().unwrap().is_none());
        let kp = KeyPair::generate(KeyKind::User);
        let seed = kp.seed();
        let id = ReplicaIdentity { name: "r1".into(), jwt: "eyJ.x.y".into(), seed: seed.clone() };
        store.set_replica_identity(&id).unwrap();
        let back = store.replica_identity().unwrap().expect("kept");
        assert_eq!((back.name.as_str(), back.jwt.as_str()), ("r1", "eyJ.x.y"));
        assert_eq!(back.seed.expose(), seed.expose());
        assert!(!format!("{back:?}").contains(seed.expose()));
        let raw = std::fs::read(dir.path().join("s.redb")).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains(seed.expose()), "the seed is sealed on disk");
        let rows = store.snapshot_rows().unwrap();
        assert!(rows.tables.iter().all(|(name, _)| name != "replica_identity"));
    }
}
