//! Journals: capture, encoding, and replay onto a replica made from the first store's genesis.

use std::collections::BTreeSet;
use std::time::Duration;

use redb::TableHandle;

use super::journal::{Journal, JournalError, Op, MAX_JOURNAL_BYTES};
use super::tables::{self, REPLICATED};
use super::StoreRead;
use super::{Store, StoreError};
use crate::admin::audit::{audited_execute, Actor};
use crate::admin::{Context, Request};
use crate::seal::{KeySource, StoreKey};

const NOW: i64 = 1_800_000_000;

fn ctx() -> Context {
    Context { now: NOW, now_ms: NOW * 1000, defaults: crate::issue::default_permissions() }
}

/// Two replicas: A made by `pbn init` (its write prepared, then applied as position 1) and B
/// created from A's genesis and fed the same journal.
struct Pair {
    _dir: tempfile::TempDir,
    a: Store,
    b: Store,
    seq: u64,
}

impl Pair {
    fn new() -> Pair {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = StoreKey::generate();
        let text = key.to_file_text();
        let source = || Some(KeySource::Key(StoreKey::from_file_text(&text).expect("key")));
        let (made, journal) = Store::prepared(|| {
            crate::admin::init::init_store_with(
                &dir.path().join("a.redb"),
                "t",
                true,
                &ctx(),
                source(),
            )
        });
        let (a, _) = made.expect("init");
        let journal = journal.expect("init writes");
        let genesis = a.genesis().expect("genesis");
        assert!(!genesis.is_empty(), "a sealed store has seal metadata");
        let b = Store::create_replica(dir.path().join("b.redb"), &genesis, source()).expect("b");
        let mut pair = Pair { _dir: dir, a, b, seq: 0 };
        pair.apply(&journal);
        pair
    }

    /// Applies `journal` (through its encoding) to both stores at the next position.
    fn apply(&mut self, journal: &Journal) {
        let wire = journal.encode().expect("encode");
        let journal = Journal::decode(&wire).expect("decode");
        self.seq += 1;
        self.a.apply(&journal, self.seq).expect("apply on a");
        self.b.apply(&journal, self.seq).expect("apply on b");
    }

    /// Prepares `req` on A (audited, as `pbn admin` runs it) and applies it to both.
    fn run(&mut self, req: serde_json::Value) {
        let req: Request =
            serde_json::from_value(req.clone()).unwrap_or_else(|e| panic!("{req}: {e}"));
        let key = format!("request-{}", self.seq);
        let (result, journal) = Store::prepared(|| {
            // As the admin API runs a request: remembered under its idempotency key, audited.
            self.a.with_idempotency_key(&key, NOW * 1000 + self.seq as i64, || {
                audited_execute(&self.a, &req, &ctx(), &Actor::local(), Duration::from_secs(3600))
            })
        });
        result.unwrap_or_else(|e| panic!("{req:?}: {e}"));
        self.apply(&journal.expect("a change writes"));
        assert_same(&self.a, &self.b);
        // Opens (and caches by raw bytes) every sealed account on B: a later change to one
        // must be read as its new version, never the cached old one.
        self.b.read(|tx| tx.list_accounts()).expect("accounts on b");
    }
}

fn assert_same(a: &Store, b: &Store) {
    let (a, b) = (a.raw_rows().expect("rows of a"), b.raw_rows().expect("rows of b"));
    for ((name, rows_a), (_, rows_b)) in a.iter().zip(&b) {
        assert_eq!(rows_a, rows_b, "table {name} differs");
    }
}

#[test]
fn every_admin_command_family_replays_to_identical_tables() {
    let mut p = Pair::new();
    assert_same(&p.a, &p.b);
    let cmds = [
        serde_json::json!({"op": "account_add", "name": "APP", "limits": {}, "disallow_bearer": false}),
        serde_json::json!({"op": "account_add", "name": "OTHER", "limits": {}, "disallow_bearer": false}),
        serde_json::json!({"op": "account_edit", "name": "APP", "description": "d", "limits": {"max_connections": 5}}),
        serde_json::json!({"op": "role_add", "name": "dev", "role": {}}),
        serde_json::json!({"op": "role_edit", "name": "dev", "role": {"description": "x"}}),
        serde_json::json!({"op": "user_add", "name": "alice", "account": "APP", "role": "dev"}),
        serde_json::json!({"op": "user_edit", "name": "alice", "email": "a@example.com"}),
        serde_json::json!({"op": "token_add", "name": "alice"}),
        serde_json::json!({"op": "export_add", "account": "APP", "subject": "svc.>", "kind": "service", "token_req": false}),
        serde_json::json!({"op": "import_add", "account": "OTHER", "subject": "svc.>", "from": "APP", "kind": "service"}),
        serde_json::json!({"op": "import_remove", "account": "OTHER", "subject": "svc.>"}),
        serde_json::json!({"op": "export_remove", "account": "APP", "subject": "svc.>"}),
        serde_json::json!({"op": "account_signing_key_add", "name": "APP"}),
        serde_json::json!({"op": "account_rotate_keys", "name": "APP"}),
        serde_json::json!({"op": "admin_add", "name": "ops", "read_only": false}),
        serde_json::json!({"op": "admin_revoke", "name": "ops"}),
        serde_json::json!({"op": "admin_delete", "name": "ops"}),
        serde_json::json!({"op": "user_delete", "name": "alice"}),
        serde_json::json!({"op": "role_delete", "name": "dev"}),
        serde_json::json!({"op": "account_delete", "name": "OTHER"}),
    ];
    for cmd in cmds {
        p.run(cmd);
    }
    // The publisher's writes replay too: complete every outbox entry.
    let (_, journal) =
        p.a.prepare(|tx| -> Result<(), StoreError> {
            for e in tx.list_outbox()? {
                tx.complete_outbox(&e.account, e.revision)?;
            }
            Ok(())
        })
        .expect("prepare");
    assert!(!journal.is_empty());
    p.apply(&journal);
    assert_same(&p.a, &p.b);
    assert_eq!(p.b.applied_seq().expect("seq"), p.seq);
    let rows = p.b.raw_rows().expect("rows");
    for table in ["audit", "idempotency", "idempotency_by_time", "tokens", "admin_keys"] {
        let found = rows.iter().find(|(name, _)| *name == table).expect("table listed");
        let expect_rows = !matches!(table, "tokens" | "admin_keys");
        assert_eq!(!found.1.is_empty(), expect_rows, "rows of {table} on b");
    }
    let users = p.b.read(|tx| tx.list_users()).expect("users");
    assert!(users.is_empty());
    let apps = p.b.read(|tx| tx.require_account("APP")).expect("APP on b");
    assert_eq!(apps.description, "d", "b reads A's sealed account under the shared key");
}

#[test]
fn a_committed_write_journal_replays_on_another_store() {
    let p = Pair::new();
    let (_, journal) =
        p.a.write_journaled(|tx| -> Result<(), StoreError> {
            let role = crate::model::Role::new(crate::model::Name::parse("ro").unwrap(), NOW);
            tx.insert_role(&role)
        })
        .expect("write");
    assert_eq!(journal.ops.len(), 1, "{journal:?}");
    p.b.apply(&journal, 2).expect("apply");
    assert!(p.b.read(|tx| tx.require_role("ro")).is_ok());
}

#[test]
fn a_prepared_write_commits_nothing() {
    let p = Pair::new();
    let before = p.a.raw_rows().expect("rows");
    let role = crate::model::Role::new(crate::model::Name::parse("ro").unwrap(), NOW);
    let (_, journal) = p.a.prepare(|tx| tx.insert_role(&role)).expect("prepare");
    assert!(!journal.is_empty());
    assert_eq!(p.a.raw_rows().expect("rows"), before);
}

#[test]
fn a_second_write_in_a_prepared_scope_is_refused() {
    let p = Pair::new();
    let role = |n: &str| crate::model::Role::new(crate::model::Name::parse(n).unwrap(), NOW);
    let (second, journal) = Store::prepared(|| {
        p.a.write(|tx| tx.insert_role(&role("one"))).expect("first");
        p.a.write(|tx| tx.insert_role(&role("two")))
    });
    assert!(matches!(second, Err(StoreError::Journal(JournalError::PreparedTwice))), "{second:?}");
    assert_eq!(journal.expect("first journal").ops.len(), 1);
}

fn one_op() -> Journal {
    let op = Op { table: "roles".into(), key: b"x".to_vec(), value: Some(b"\x01{}".to_vec()) };
    Journal { schema: tables::SCHEMA_VERSION, ops: vec![op] }
}

#[test]
fn out_of_order_journals_are_refused_and_change_nothing() {
    let p = Pair::new();
    let before = p.b.raw_rows().expect("rows");
    for seq in [1, 3, 0] {
        let err = p.b.apply(&one_op(), seq);
        assert!(
            matches!(err, Err(StoreError::Journal(JournalError::OutOfOrder { expected: 2, .. }))),
            "{seq}: {err:?}"
        );
    }
    assert_eq!(p.b.raw_rows().expect("rows"), before);
}

#[test]
fn bad_operations_are_refused_and_change_nothing() {
    let p = Pair::new();
    let before = p.b.raw_rows().expect("rows");
    let bad = |table: &str, key: &[u8], value: Option<&[u8]>| Journal {
        schema: tables::SCHEMA_VERSION,
        ops: vec![
            one_op().ops.remove(0),
            Op { table: table.into(), key: key.to_vec(), value: value.map(<[u8]>::to_vec) },
        ],
    };
    let cases = [
        bad("nope", b"k", None),
        bad("roles", b"\xff\xfe", Some(b"v")),
        bad("meta", b"applied_seq", Some(b"short")),
        bad("users_by_account", b"\xff\xff\xff\xff\xff", Some(b"")),
    ];
    for journal in &cases {
        let err = p.b.apply(journal, 2);
        assert!(
            matches!(
                err,
                Err(StoreError::Journal(
                    JournalError::UnknownTable(_) | JournalError::BadBytes { .. }
                ))
            ),
            "{err:?}"
        );
    }
    let mut old = one_op();
    old.schema += 1;
    let err = p.b.apply(&old, 2);
    assert!(matches!(err, Err(StoreError::Journal(JournalError::Schema { .. }))), "{err:?}");
    assert_eq!(p.b.raw_rows().expect("rows"), before);
    assert_eq!(p.b.applied_seq().expect("seq"), 1);
}

#[test]
fn garbage_and_truncated_encodings_are_refused() {
    let wire = one_op().encode().expect("encode");
    assert_eq!(Journal::decode(&wire).expect("decode"), one_op());
    for cut in 0..wire.len() {
        assert!(Journal::decode(&wire[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = wire.clone();
    flipped[12] ^= 1;
    assert!(matches!(Journal::decode(&flipped), Err(JournalError::Checksum(_))));
    let mut version = wire.clone();
    version[0] = 9;
    assert!(matches!(Journal::decode(&version), Err(JournalError::Version(9))));
    let huge = vec![1u8; MAX_JOURNAL_BYTES + 1];
    assert!(matches!(Journal::decode(&huge), Err(JournalError::TooLarge { .. })));
    let big =
        Op { table: "roles".into(), key: b"x".to_vec(), value: Some(vec![0; MAX_JOURNAL_BYTES]) };
    let big = Journal { schema: tables::SCHEMA_VERSION, ops: vec![big] };
    assert!(matches!(big.encode(), Err(JournalError::TooLarge { .. })));
}

#[test]
fn the_registry_covers_every_table_a_store_creates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::create(dir.path().join("s.redb")).expect("create");
    let txn = store.inner.db.begin_read().expect("read");
    let created: BTreeSet<String> =
        txn.list_tables().expect("tables").map(|t| t.name().to_string()).collect();
    let registered: BTreeSet<String> = REPLICATED.iter().map(|t| (t.name)().to_string()).collect();
    assert_eq!(created, registered);
    assert_eq!(registered.len(), REPLICATED.len(), "each table once");
}

#[test]
fn a_replica_without_the_key_is_not_created() {
    let p = Pair::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.redb");
    let genesis = p.a.genesis().expect("genesis");
    let err = Store::create_replica(&path, &genesis, None);
    assert!(matches!(err, Err(StoreError::KeyRequired(_))), "{err:?}");
    assert!(!path.exists());
    let other = Some(KeySource::Key(StoreKey::generate()));
    let err = Store::create_replica(&path, &genesis, other);
    assert!(matches!(err, Err(StoreError::WrongKey(_))), "{err:?}");
    assert!(!path.exists());
}
