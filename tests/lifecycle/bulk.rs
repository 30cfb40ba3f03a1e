//! `pbn admin import` and `export` against the running service (`--server`): a file larger than
//! one admin request is sent in chunks, the imported accounts are pushed to the servers (an
//! imported user logs in at once), and the export is read back in pages.

use pbn::bulk::export::{export, Format, Sink};

use super::{Live, PW};
use crate::support::deploy::DeployOptions;

/// Accounts and users enough for several 64 KiB requests and several export pages.
const ACCOUNTS: usize = 30;
const USERS: usize = 1500;

fn file() -> String {
    let hash = pbn::hash_password(&pbn::Secret::from(PW.to_string())).expect("hash");
    let mut text = String::from("{\"version\":1}\n");
    for a in 0..ACCOUNTS {
        text.push_str(&format!("{{\"account\":{{\"name\":\"BULK{a}\"}}}}\n"));
    }
    for u in 0..USERS {
        let acc = u % ACCOUNTS;
        let pw = if u == 7 { format!(",\"password_hash\":\"{hash}\"") } else { String::new() };
        text.push_str(&format!(
            "{{\"user\":{{\"name\":\"bulk{u}\",\"account\":\"BULK{acc}\",\"role\":\"app\",\"email\":\"bulk{u}@example.com\"{pw}}}}}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_import_in_chunks_pushes_accounts_and_remote_export_reads_pages() {
    let live = Live::start(DeployOptions::default(), |_| {}).await;
    let dir = live.creds.parent().unwrap().to_path_buf();
    let src = dir.join("bulk.ndjson");
    let text = file();
    assert!(text.len() > 2 * pbn::MAX_REQUEST_BYTES, "the file needs several requests");
    std::fs::write(&src, &text).unwrap();

    let out = live.admin(&["--json", "import", src.to_str().unwrap()]).await;
    out.success();
    assert_eq!(out.json()["imported"]["users"], USERS as u64, "{}", out.streams());
    assert_eq!(out.json()["imported"]["accounts"], ACCOUNTS as u64);

    // The account of bulk7 was pushed: the imported user logs in with its imported hash.
    let conn = live.login("bulk7").await;
    drop(conn);

    // A second import of the same file is refused whole, by the check pass, naming a line.
    let out = live.admin(&["import", src.to_str().unwrap()]).await;
    out.code(4);
    assert!(out.stderr.contains("line 2:") && out.stderr.contains("exists"), "{}", out.streams());

    // Remote export (pages) equals the local export of the same store, without secrets.
    let remote = live.admin(&["export"]).await;
    remote.success();
    let sink = Sink::new(Vec::new(), Format::Ndjson).unwrap();
    let local = export(live.d.store(), sink, false).unwrap().finish().unwrap();
    assert_eq!(remote.stdout, String::from_utf8(local).unwrap());
    assert_eq!(remote.stdout.lines().filter(|l| l.starts_with("{\"user\"")).count(), USERS + 3);
    assert!(!remote.stdout.contains("argon2"), "no hashes over NATS");
}
