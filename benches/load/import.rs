//! Bulk import speed: `import_base` users imported into the bench store, then `import_users`
//! more timed into that store (what `pbn admin import FILE` does locally: parse, validate the
//! whole file against the store, write in batched transactions). Each user has an email, an
//! argon2id PHC hash and one API token hash, so every index is written.

use std::time::Instant;

use pbn::bulk::{parse::parse, BulkImport};
use pbn::{execute, Context, Request, Store};

use crate::deploy::Workspace;
use crate::report::{secs, Report};
use crate::support::{ACCOUNT, ROLE};
use crate::{Args, LoadError};

/// A stored-looking PHC string (imports check its form, never recompute it).
const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

/// An NDJSON file of users `first..first + count`.
pub fn file(first: usize, count: usize) -> String {
    let mut text = String::from("{\"version\":1}\n");
    for i in first..first + count {
        let hash = pbn::token_hash(&format!("bench-token-{i}"));
        text.push_str(&format!(
            "{{\"user\":{{\"name\":\"imp{i:07}\",\"account\":\"{ACCOUNT}\",\"role\":\"{ROLE}\",\
             \"email\":\"imp{i}@example.com\",\"password_hash\":\"{PHC}\",\"tokens\":[{{\"id\":\"t\",\
             \"label\":\"bench\",\"hash\":\"{hash}\",\"created\":1,\"expires\":null}}]}}}}\n"
        ));
    }
    text
}

/// Parses and imports `text`; returns the users written and the seconds it took.
fn import(store: &Store, text: &str) -> Result<(u64, f64), LoadError> {
    let started = Instant::now();
    let records = parse(text).map_err(LoadError::setup)?;
    let req = Request::BulkImport(BulkImport { records });
    let out = execute(store, &req, &Context::now()).map_err(LoadError::setup)?;
    let users = match out.response {
        pbn::Response::Bulk(b) => match *b {
            pbn::bulk::BulkAnswer::Imported(c) => c.users,
            _ => 0,
        },
        _ => 0,
    };
    Ok((users, started.elapsed().as_secs_f64()))
}

/// Runs the scenario: the base import (reported too), then the timed one.
pub fn import_scenario(args: &Args, report: &mut Report) -> Result<(), LoadError> {
    let Workspace { dir: _dir, store_path, store } = Workspace::new()?;
    let (base, extra) = (args.import_base, args.import_users);
    eprintln!("import: {base} users into an empty store");
    let (n, took) = import(&store, &file(0, base))?;
    report.fact(
        &format!("bulk import: {n} users into an empty store"),
        format!("{:.0} users/s", n as f64 / took.max(1e-9)),
        format!("{}, parse + validate whole + batched writes", secs_f(took)),
    );
    eprintln!("import: {extra} more users into the store of {base}");
    let (n, took) = import(&store, &file(base, extra))?;
    let rate = n as f64 / took.max(1e-9);
    let verdict = if rate >= 10_000.0 {
        "target ≥ 10,000 users/s met"
    } else {
        "target ≥ 10,000 users/s missed"
    };
    report.fact(
        &format!("bulk import: {n} users into a store of {base}"),
        format!("{rate:.0} users/s"),
        format!("{}; {verdict}", secs_f(took)),
    );
    let size = std::fs::metadata(&store_path).map(|m| m.len()).unwrap_or(0);
    report.fact(
        &format!("store file with {} imported users", base + extra),
        format!("{:.1} MiB", size as f64 / 1048576.0),
        "",
    );
    Ok(())
}

fn secs_f(s: f64) -> String {
    secs(std::time::Duration::from_secs_f64(s))
}
