//! Import and export against stores made by `init::init_store_with` in a temp dir.

use super::export::{export, Format, Sink};
use super::*;
use crate::admin::init::init_store_with;
use crate::admin::{execute, AccountAdd, AdminError, Request, RoleAdd, RolePatch, UserAdd};
use crate::keys::{KeyKind, KeyPair, UserPublicKey};
use crate::model::ApiToken;
use crate::store::{StoreRead, MAX_JOURNAL_BYTES};

const NOW: i64 = 1_800_000_000;
const PHC: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

fn ctx() -> Context {
    Context { now: NOW, now_ms: NOW * 1000, defaults: crate::issue::default_permissions() }
}

fn fresh(dir: &tempfile::TempDir, name: &str) -> Store {
    let key = Some(crate::seal::KeySource::Key(crate::seal::StoreKey::generate()));
    init_store_with(&dir.path().join(name), "test", false, &ctx(), key).expect("init").0
}

fn run(store: &Store, req: impl Into<Request>) -> Result<Outcome, AdminError> {
    execute(store, &req.into(), &ctx())
}

/// A store with two accounts, a role and users with a password, tokens and an nkey.
fn populated(dir: &tempfile::TempDir) -> Store {
    let store = fresh(dir, "a.redb");
    for name in ["orders", "billing"] {
        run(&store, AccountAdd { name: name.into(), ..Default::default() }).unwrap();
    }
    run(&store, RoleAdd { name: "writer".into(), role: RolePatch::default() }).unwrap();
    for (user, acc) in [("alice", "orders"), ("bob", "billing"), ("carol", "orders")] {
        let add = UserAdd {
            name: user.into(),
            account: acc.into(),
            role: "writer".into(),
            password_hash: Some(PHC.into()),
            ..Default::default()
        };
        run(&store, add).unwrap();
    }
    store
        .write(|tx| {
            let mut bob = tx.require_user("bob")?;
            bob.tokens.push(ApiToken {
                id: "ci".into(),
                label: "ci".into(),
                hash: ApiToken::hash_secret("secret-token"),
                created: NOW,
                expires: Some(NOW + 100),
            });
            let key = KeyPair::generate(KeyKind::User);
            bob.nkey = Some(UserPublicKey::parse(key.public_key()).unwrap());
            tx.update_user(&bob)
        })
        .unwrap();
    store
}

fn exported(store: &Store, format: Format, secrets: bool) -> String {
    let sink = Sink::new(Vec::new(), format).unwrap();
    let bytes = export(store, sink, secrets).unwrap().finish().unwrap();
    String::from_utf8(bytes).unwrap()
}

fn import(store: &Store, text: &str) -> Result<Outcome, AdminError> {
    let items = parse::parse(text).map_err(AdminError::Bulk)?;
    run(store, BulkImport { records: items })
}

fn bulk_err(r: Result<Outcome, AdminError>) -> BulkError {
    match r {
        Err(AdminError::Bulk(e)) => e,
        Err(e) => panic!("not a bulk error: {e}"),
        Ok(_) => panic!("succeeded"),
    }
}

#[test]
fn export_import_export_with_secrets_is_identical_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir);
    for (i, format) in [Format::Ndjson, Format::Json].into_iter().enumerate() {
        let first = exported(&store, format, true);
        let target = fresh(&dir, &format!("b{i}.redb"));
        import(&target, &first).unwrap();
        assert_eq!(exported(&target, format, true), first);
        // The imported users log in with what they had: hashes and keys moved over.
        let bob = target.read(|tx| tx.require_user("bob")).unwrap();
        assert_eq!(bob.password_hash.as_deref(), Some(PHC));
        assert_eq!(bob.tokens[0].hash, ApiToken::hash_secret("secret-token"));
        let (a, b) = store
            .read(|tx| {
                Ok::<_, AdminError>((tx.require_account("orders")?, tx.require_account("orders")?))
            })
            .unwrap();
        assert_eq!(a.public_key, b.public_key);
        let moved = target.read(|tx| tx.require_account("orders")).unwrap();
        assert_eq!(moved.public_key, a.public_key);
        assert_eq!(moved.identity, a.identity);
    }
}

#[test]
fn export_without_secrets_has_no_seeds_or_hashes_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir);
    let text = exported(&store, Format::Ndjson, false);
    let orders = store.read(|tx| tx.require_account("orders")).unwrap();
    for secret in [PHC, &ApiToken::hash_secret("secret-token"), orders.identity.expose()] {
        assert!(!text.contains(secret), "export holds a secret");
    }
    assert!(!text.contains("\"identity\"") && !text.contains("\"seed\""));
    let target = fresh(&dir, "b.redb");
    import(&target, &text).unwrap();
    assert_eq!(exported(&target, Format::Ndjson, false), text);
    // Accounts without seeds get fresh keys; users come without credentials.
    let moved = target.read(|tx| tx.require_account("orders")).unwrap();
    assert_ne!(moved.public_key, orders.public_key);
    assert_eq!(target.read(|tx| tx.require_user("alice")).unwrap().password_hash, None);
}

#[test]
fn imported_accounts_get_their_pushes_queued_with_the_auth_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(&dir, "a.redb");
    let text =
        "{\"version\":1}\n{\"account\":{\"name\":\"one\"}}\n{\"account\":{\"name\":\"two\"}}\n";
    let outcome = import(&store, text).unwrap();
    let outbox = store.read(|tx| tx.list_outbox()).unwrap();
    let names: Vec<_> = outbox.iter().map(|e| e.account_name.to_string()).collect();
    for name in ["one", "two", "AUTH"] {
        assert!(names.contains(&name.to_string()), "{name} not queued: {names:?}");
    }
    assert_eq!(outcome.effects.pushes.len(), 3);
    // Due at once, whatever the publisher's debounce (an hour here): nothing to coalesce.
    let due = store.read(|tx| tx.list_due_outbox(NOW * 1000 - 3_600_000)).unwrap();
    let due: Vec<_> = due.iter().map(|e| e.account_name.to_string()).collect();
    for name in ["one", "two", "AUTH"] {
        assert!(due.contains(&name.to_string()), "{name} not due at once: {due:?}");
    }
}

#[test]
fn a_plain_account_record_is_written_without_its_defaults_and_reads_back_the_same() {
    let text = "{\"version\":1}\n{\"account\":{\"name\":\"one\"}}\n";
    let items = parse::parse(text).unwrap();
    let json = serde_json::to_string(&items[0].record).unwrap();
    assert_eq!(
        json,
        r#"{"account":{"name":"one","active":true,"disallow_bearer":false,"created":null,"updated":null}}"#
    );
    let back: Record = serde_json::from_str(&json).unwrap();
    assert_eq!(back, items[0].record);
}

/// Counts users, to show a refused import wrote nothing.
fn users(store: &Store) -> usize {
    store.read(|tx| tx.list_users()).unwrap().len()
}

/// What a refused import's error must match.
type Expect = Box<dyn Fn(&BulkError) -> bool>;

#[test]
fn a_bad_record_names_its_line_and_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir);
    let head = "{\"version\":1}\n{\"account\":{\"name\":\"fresh\"}}\n{\"user\":{\"name\":\"u1\",\"account\":\"fresh\",\"role\":\"writer\"}}\n";
    let cases: Vec<(String, Expect)> = vec![
        (format!("{head}{{not json\n"), Box::new(|e| matches!(e, BulkError::Syntax { at: Location::Line(4), .. }))),
        (
            format!("{head}{{\"user\":{{\"name\":\"u2\",\"account\":\"fresh\",\"role\":\"writer\",\"active\":\"yes\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::Field { at: Location::Line(4), field, .. } if field == "user.active")),
        ),
        (
            format!("{head}{{\"user\":{{\"name\":\"bad name\",\"account\":\"fresh\",\"role\":\"writer\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::Field { at: Location::Line(4), field, .. } if field == "name")),
        ),
        (
            format!("{head}{{\"user\":{{\"name\":\"u2\",\"account\":\"fresh\",\"role\":\"writer\",\"password_hash\":\"hunter2\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::Field { at: Location::Line(4), field, .. } if field == "password_hash")),
        ),
        (
            format!("{head}{{\"user\":{{\"name\":\"u1\",\"account\":\"fresh\",\"role\":\"writer\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::Duplicate { at: Location::Line(4), first: Location::Line(3), .. })),
        ),
        (
            format!("{head}{{\"user\":{{\"name\":\"alice\",\"account\":\"fresh\",\"role\":\"writer\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::Exists { at: Location::Line(4), what: "user", .. })),
        ),
        (
            format!("{head}{{\"user\":{{\"name\":\"u2\",\"account\":\"nowhere\",\"role\":\"writer\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::MissingRef { at: Location::Line(4), field: "account", .. })),
        ),
        (
            format!("{head}{{\"user\":{{\"name\":\"u2\",\"account\":\"SYS\",\"role\":\"writer\"}}}}\n"),
            Box::new(|e| matches!(e, BulkError::Field { at: Location::Line(4), field, .. } if field == "account")),
        ),
        (
            head.replace("\"version\":1", "\"version\":2"),
            Box::new(|e| matches!(e, BulkError::Version { at: Location::Line(1), found: 2 })),
        ),
    ];
    for (text, expected) in cases {
        let err = bulk_err(import(&store, &text));
        assert!(expected(&err), "{text:?} gave {err:?}");
        assert_eq!(users(&store), 3, "{text:?} wrote users");
        assert!(store.read(|tx| tx.get_account("fresh")).unwrap().is_none(), "{text:?} wrote");
    }
}

#[test]
fn json_documents_name_the_list_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = populated(&dir);
    let text = r#"{"version":1,"users":[{"name":"u1","account":"orders","role":"writer"},{"name":"u2","account":"orders","role":"nope"}]}"#;
    let err = bulk_err(import(&store, text));
    let at = Location::Entry { section: Section::Users, index: 1 };
    assert!(
        matches!(err, BulkError::MissingRef { at: a, field: "role", .. } if a == at),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "users[1]: field role: role \"nope\" is neither in the file nor in the store"
    );
    assert!(matches!(parse::parse("{\"version\":1,"), Err(BulkError::Syntax { .. })));
    assert_eq!(users(&store), 3);
}

#[test]
fn batches_keep_every_journal_within_one_log_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(&dir, "a.redb");
    let mut text = String::from("{\"version\":1}\n{\"account\":{\"name\":\"acc\"}}\n");
    text.push_str("{\"role\":{\"name\":\"r\",\"description\":\"\",\"permissions\":{\"pub_allow\":null,\"pub_deny\":null,\"sub_allow\":null,\"sub_deny\":null},\"allow_responses\":null,\"max_subscriptions\":-1,\"max_data\":-1,\"max_payload\":-1,\"max_connections\":-1,\"jwt_ttl\":null,\"connection_types\":[],\"source_cidrs\":[],\"created\":1,\"updated\":1}}\n");
    for i in 0..3000 {
        text.push_str(&format!("{{\"user\":{{\"name\":\"user-{i:05}\",\"account\":\"acc\",\"role\":\"r\",\"email\":\"u{i}@example.com\",\"password_hash\":\"{PHC}\"}}}}\n"));
    }
    let (result, journals) = Store::journaled(|| import(&store, &text));
    result.unwrap();
    assert!(journals.len() > 3, "one transaction for 3000 users");
    for j in &journals {
        let size = j.encode().expect("every journal encodes").len();
        assert!(size <= MAX_JOURNAL_BYTES, "journal of {size} bytes");
    }
    assert_eq!(users(&store), 3000);
}

#[test]
fn the_readme_example_parses_as_written() {
    let readme = include_str!("../../../README.md");
    let section = readme.split("## Bulk import and export").nth(1).expect("the section");
    let example = section.split("```json\n").nth(1).and_then(|s| s.split("```").next()).unwrap();
    let items = parse::parse(example).expect("the example parses");
    let kinds: Vec<_> = items.iter().map(|i| i.record.kind()).collect();
    assert_eq!(kinds, ["account", "role", "user", "user"]);
}

#[test]
fn an_account_whose_jwt_would_pass_the_payload_limit_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(&dir, "a.redb");
    let revocations: Vec<String> = (0..20_000)
        .map(|_| format!("\"{}\":1", KeyPair::generate(KeyKind::User).public_key()))
        .collect();
    let text = format!(
        "{{\"version\":1}}\n{{\"account\":{{\"name\":\"small\"}}}}\n\
         {{\"account\":{{\"name\":\"huge\",\"revocations\":{{{}}}}}}}\n",
        revocations.join(",")
    );
    let err = bulk_err(import(&store, &text));
    assert!(matches!(err, BulkError::Field { at: Location::Line(3), .. }), "{err:?}");
    assert!(store.read(|tx| tx.get_account("small")).unwrap().is_none(), "nothing written");
}
