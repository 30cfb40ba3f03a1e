//! `pbn admin import` and `pbn admin export` on a store file, through the real binary: round
//! trips, secrets only into a 0600 file, and a bad file refused whole with its line named.

use std::os::unix::fs::PermissionsExt;

use super::{read, Deployment};

const PHC: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

/// An NDJSON file of two accounts, a role and `users` users (half with a password hash).
fn file(users: usize) -> String {
    let mut text = String::from("{\"version\":1}\n");
    text.push_str("{\"account\":{\"name\":\"orders\",\"description\":\"shop\"}}\n");
    text.push_str("{\"account\":{\"name\":\"billing\"}}\n");
    let role = serde_json::json!({"role": {
        "name": "writer", "description": "", "permissions": {"pub_allow": ["orders.>"],
        "pub_deny": null, "sub_allow": null, "sub_deny": null}, "allow_responses": null,
        "max_subscriptions": -1, "max_data": -1, "max_payload": -1, "max_connections": -1,
        "jwt_ttl": null, "connection_types": [], "source_cidrs": [], "created": 1, "updated": 1}});
    text.push_str(&format!("{role}\n"));
    for i in 0..users {
        let hash = if i % 2 == 0 { format!(",\"password_hash\":\"{PHC}\"") } else { String::new() };
        text.push_str(&format!(
            "{{\"user\":{{\"name\":\"u{i}\",\"account\":\"orders\",\"role\":\"writer\"{hash}}}}}\n"
        ));
    }
    text
}

#[test]
fn import_then_export_with_secrets_round_trips_through_a_0600_file() {
    let d = Deployment::init();
    let src = d.dir().join("in.ndjson");
    std::fs::write(&src, file(50)).unwrap();
    let out = d.ok(&["--json", "import", src.to_str().unwrap()]);
    assert_eq!(out.json()["imported"]["users"], 50, "{}", out.streams());
    assert_eq!(out.json()["imported"]["accounts"], 2);
    // The new accounts' pushes are queued, like `account add`.
    let outbox = d.ok(&["--json", "outbox", "list"]).json();
    assert!(outbox.to_string().contains("orders"), "{outbox}");

    let first = d.dir().join("first.ndjson");
    d.ok(&["export", "--with-secrets", "--out", first.to_str().unwrap()]);
    let mode = std::fs::metadata(&first).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(read(&first).contains(PHC), "secrets were asked for");

    let other = Deployment::init();
    other.ok(&["import", first.to_str().unwrap()]);
    let second = other.dir().join("second.ndjson");
    other.ok(&["export", "--with-secrets", "--out", second.to_str().unwrap()]);
    assert_eq!(read(&first), read(&second));

    // Without secrets, to standard output: no hashes, no seeds.
    let plain = d.ok(&["export", "--format", "json"]).stdout.clone();
    assert!(!plain.contains(PHC) && !plain.contains("\"identity\""), "{plain}");
    let doc: serde_json::Value = serde_json::from_str(&plain).expect("one JSON document");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["users"].as_array().map(Vec::len), Some(50));
}

#[test]
fn secrets_never_go_to_standard_output_or_over_nats() {
    let d = Deployment::init();
    let out = d.admin(&["export", "--with-secrets"]);
    out.code(2);
    assert!(out.stderr.contains("--out"), "{}", out.streams());
    assert!(out.stdout.is_empty());
    let creds = d.dir().join("admin.creds");
    let out = d.admin(&[
        "--server",
        "nats://127.0.0.1:1",
        "--creds",
        creds.to_str().unwrap(),
        "export",
        "--with-secrets",
        "--out",
        d.dir().join("x").to_str().unwrap(),
    ]);
    out.code(2);
    assert!(!d.dir().join("x").exists());
}

#[test]
fn a_bad_line_is_named_and_nothing_is_written() {
    let d = Deployment::init();
    let before = d.snapshot();
    let mut text = file(20);
    text.push_str("{\"user\":{\"name\":\"u3\",\"account\":\"orders\",\"role\":\"writer\"}}\n");
    let src = d.dir().join("dup.ndjson");
    std::fs::write(&src, &text).unwrap();
    let out = d.admin(&["import", src.to_str().unwrap()]);
    out.code(2);
    assert!(out.stderr.contains("line 25") && out.stderr.contains("line 8"), "{}", out.streams());

    let missing =
        file(3).replace("\"account\":\"orders\",\"role\"", "\"account\":\"gone\",\"role\"");
    std::fs::write(&src, missing).unwrap();
    let out = d.admin(&["import", src.to_str().unwrap()]);
    out.code(3);
    assert!(out.stderr.contains("line 5: field account"), "{}", out.streams());

    std::fs::write(&src, file(1)).unwrap();
    d.ok(&["import", src.to_str().unwrap()]);
    let after_one = d.snapshot();
    assert_ne!(after_one, before);
    let out = d.admin(&["import", src.to_str().unwrap()]);
    out.code(4);
    assert!(out.stderr.contains("line 2") && out.stderr.contains("exists"), "{}", out.streams());
    assert_eq!(d.snapshot(), after_one, "a refused import changed the store");
}
