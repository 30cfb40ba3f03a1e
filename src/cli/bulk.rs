//! `pbn admin import FILE` and `pbn admin export`: local on the store file, or remote through
//! the admin API in chunks and pages (see `admin::bulk`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use super::args::{AdminArgs, AdminCommand};
use super::output::outln;
use crate::admin::api::MAX_REQUEST_BYTES;
use crate::admin::bulk::export::{Format, Sink};
use crate::admin::bulk::{
    parse, BulkAnswer, BulkCheck, BulkError, BulkExport, BulkImport, Counts, Item, Record, Section,
};
use crate::admin::remote::{self, AdminClient};
use crate::admin::{self, Context, Request, Response};
use crate::fsutil::{Mode, PendingFile};

/// `pbn admin import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: NDJSON (a `{"version":1}` line, then one record a line) or one JSON document.
    pub file: PathBuf,
}

/// `pbn admin export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Include account seeds, password hashes and token hashes (needs --out, written 0600; the
    /// store file only, not --server).
    #[arg(long)]
    pub with_secrets: bool,
    /// File format.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: FormatArg,
    /// Replace an existing --out file.
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A version line, then one record a line.
    Ndjson,
    /// One JSON document.
    Json,
}

/// Misuse of import or export the command line catches.
#[derive(Debug, thiserror::Error)]
pub enum BulkCliError {
    /// Secrets asked for standard output.
    #[error("--with-secrets writes seeds and hashes: give --out FILE (written with mode 0600), never standard output")]
    SecretsToStdout,
    /// Secrets asked from a remote service.
    #[error("--with-secrets reads the store file only; secrets never leave pbn serve over NATS")]
    SecretsRemote,
    /// An idempotency key for a command of many requests.
    #[error("--idempotency-key does not apply to import, which sends many requests")]
    IdempotencyKey,
}

/// Runs `pbn admin import` or `export`.
pub fn run(a: &AdminArgs) -> Result<()> {
    match &a.command {
        AdminCommand::Import(i) => import(a, i),
        AdminCommand::Export(e) => export(a, e),
        _ => unreachable!("bulk::run is called for import and export only"),
    }
}

fn import(a: &AdminArgs, i: &ImportArgs) -> Result<()> {
    let io = |source| BulkError::Io { what: "read", path: i.file.display().to_string(), source };
    let text = std::fs::read_to_string(&i.file).map_err(io)?;
    let mut items = parse::parse(&text)?;
    drop(text);
    // Accounts, then roles, then users (stable: file order within each).
    items.sort_by_key(Item::section);
    let counts = match (&a.server, &a.creds) {
        (Some(url), Some(creds)) => {
            if a.idempotency_key.is_some() {
                return Err(BulkCliError::IdempotencyKey.into());
            }
            runtime()?.block_on(remote_import(url, creds, items))?
        }
        _ => {
            let store = super::open_store(&a.store.store, a.store.key_file.as_deref())?;
            let req = Request::BulkImport(BulkImport { records: items });
            let (ctx, owner) = (Context::now(), admin::audit::Actor::local());
            let retention = admin::audit::DEFAULT_RETENTION;
            let outcome = admin::audit::audited_execute(&store, &req, &ctx, &owner, retention)?;
            imported(&outcome.response)
        }
    };
    if a.json {
        outln!("{}", serde_json::json!({ "imported": counts }))
    } else {
        outln!("imported {counts}")
    }
}

fn imported(resp: &Response) -> Counts {
    match resp {
        Response::Bulk(b) => match **b {
            BulkAnswer::Imported(c) => c,
            _ => Counts::default(),
        },
        _ => Counts::default(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Room left in a request for everything around the records.
const REQUEST_MARGIN: usize = 1024;

/// Splits `items` into chunks whose request fits [`MAX_REQUEST_BYTES`].
fn chunks(items: Vec<Item>) -> Result<Vec<Vec<Item>>, BulkError> {
    let max = MAX_REQUEST_BYTES - REQUEST_MARGIN;
    let mut out: Vec<Vec<Item>> = Vec::new();
    let (mut current, mut bytes) = (Vec::new(), 0);
    for item in items {
        let size = serde_json::to_vec(&item).map_or(0, |v| v.len()) + 1;
        if size > max {
            return Err(BulkError::TooLarge { at: item.at, size, max });
        }
        if bytes + size > max {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

/// The names a file defines, per field a user references (`account`, `role`).
fn defined(items: &[Item]) -> HashSet<(&'static str, String)> {
    items
        .iter()
        .filter_map(|i| match &i.record {
            Record::Account(a) => Some(("account", a.name.clone())),
            Record::Role(r) => Some(("role", r.name.to_string())),
            Record::User(_) => None,
        })
        .collect()
}

/// Checks every chunk (the service writes nothing), then sends them in order: accounts and
/// roles are written before the users that name them.
async fn remote_import(url: &str, creds: &Path, items: Vec<Item>) -> Result<Counts> {
    admin::bulk::plan::duplicates(&items)?;
    let names = defined(&items);
    let chunks = chunks(items)?;
    let client = AdminClient::connect(url, creds, remote::DEFAULT_TIMEOUT).await?;
    let done = send_chunks(&client, chunks, &names).await;
    client.close().await;
    done
}

async fn send_chunks(
    client: &AdminClient,
    chunks: Vec<Vec<Item>>,
    names: &HashSet<(&'static str, String)>,
) -> Result<Counts> {
    for chunk in &chunks {
        let req = Request::BulkCheck(BulkCheck { records: chunk.clone() });
        if let Response::Bulk(b) = client.call(&req).await? {
            if let BulkAnswer::Checked { missing } = *b {
                for m in missing {
                    let field = if m.field == "account" { "account" } else { "role" };
                    if !names.contains(&(field, m.name.clone())) {
                        return Err(BulkError::MissingRef { at: m.at, field, name: m.name }.into());
                    }
                }
            }
        }
    }
    let mut counts = Counts::default();
    for chunk in chunks {
        let (resp, warnings) =
            client.call_with_warnings(&Request::BulkImport(BulkImport { records: chunk })).await?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        counts.add(imported(&resp));
    }
    Ok(counts)
}

fn export(a: &AdminArgs, e: &ExportArgs) -> Result<()> {
    if e.with_secrets && e.out.is_none() {
        return Err(BulkCliError::SecretsToStdout.into());
    }
    let remote = a.server.as_deref().zip(a.creds.as_deref());
    if e.with_secrets && remote.is_some() {
        return Err(BulkCliError::SecretsRemote.into());
    }
    let mode = if e.with_secrets { Mode::Secret } else { Mode::Public };
    // Prepared first: a bad path or an existing file fails before the store is read.
    let file = e.out.as_deref().map(|p| PendingFile::create(p, mode, e.force)).transpose()?;
    let format = match e.format {
        FormatArg::Ndjson => Format::Ndjson,
        FormatArg::Json => Format::Json,
    };
    let sink = Sink::new(Vec::new(), format)?;
    let bytes = match remote {
        Some((url, creds)) => runtime()?.block_on(remote_export(url, creds, sink))?,
        None => {
            let store = super::open_store_read_only(&a.store.store, a.store.key_file.as_deref())?;
            admin::bulk::export::export(&store, sink, e.with_secrets)?.finish()?
        }
    };
    match file {
        Some(file) => Ok(file.commit(&bytes)?),
        None => super::output::out(&String::from_utf8_lossy(&bytes)),
    }
}

/// Every section, page by page, from the running service.
async fn remote_export(url: &str, creds: &Path, mut sink: Sink<Vec<u8>>) -> Result<Vec<u8>> {
    let client = AdminClient::connect(url, creds, remote::DEFAULT_TIMEOUT).await?;
    let done = pages(&client, &mut sink).await;
    client.close().await;
    done?;
    Ok(sink.finish()?)
}

async fn pages(client: &AdminClient, sink: &mut Sink<Vec<u8>>) -> Result<()> {
    for section in [Section::Accounts, Section::Roles, Section::Users] {
        let mut after = None;
        sink.records(section, &[])?;
        loop {
            let req = Request::BulkExport(BulkExport { section, after: after.take() });
            let Response::Bulk(b) = client.call(&req).await? else { break };
            let BulkAnswer::Page { records, next } = *b else { break };
            sink.records(section, &records)?;
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}
