//! Exporting records: pages of one section (the admin API), and a whole store written as NDJSON
//! or one JSON document.
//!
//! Built-in records are left out (the system and auth accounts, the `pbn-admin` role): every
//! store has its own, and an import into another store would collide with them.

use std::io::Write;

use super::schema::{AccountRecord, UserRecord, BULK_VERSION};
use super::{Record, Section};
use crate::admin::init::ADMIN_ROLE;
use crate::admin::AdminError;
use crate::model::AccountKind;
use crate::store::{ReadTx, Store};

/// Encoded bytes of records per page of the admin API: the reply (JSON of the records) stays
/// well under nats-server's default 1 MiB max payload.
pub const PAGE_BYTES: usize = 128 * 1024;

/// Records read from the store per step while filling a page: a step's records are held in
/// memory at once.
const STEP: usize = 512;

/// Records of `section` after the name `after`, up to about `max_bytes` encoded, and the name to
/// continue after (`None` when the section is done). Secrets only when `secrets`.
pub fn page(
    tx: &ReadTx,
    section: Section,
    after: Option<&str>,
    max_bytes: usize,
    secrets: bool,
) -> Result<(Vec<Record>, Option<String>), AdminError> {
    let mut out = Vec::new();
    let (mut cursor, mut bytes) = (after.map(str::to_string), 0);
    loop {
        let (records, last) = step(tx, section, cursor.as_deref(), secrets)?;
        let Some(last) = last else { return Ok((out, None)) };
        for r in records {
            bytes += serde_json::to_vec(&r).map_or(0, |v| v.len());
            out.push(r);
        }
        cursor = Some(last);
        if bytes >= max_bytes {
            return Ok((out, cursor));
        }
    }
}

/// Up to [`STEP`] records after `after` (built-in ones dropped) and the last name read (`None`
/// when nothing was left).
fn step(
    tx: &ReadTx,
    section: Section,
    after: Option<&str>,
    secrets: bool,
) -> Result<(Vec<Record>, Option<String>), AdminError> {
    Ok(match section {
        Section::Accounts => {
            let all = tx.accounts_after(after, STEP)?;
            let last = all.last().map(|a| a.name.to_string());
            let records = all
                .iter()
                .filter(|a| a.kind == AccountKind::Managed)
                .map(|a| Record::Account(Box::new(AccountRecord::from_model(a, secrets))))
                .collect();
            (records, last)
        }
        Section::Roles => {
            let all = tx.roles_after(after, STEP)?;
            let last = all.last().map(|r| r.name.to_string());
            let records = all
                .into_iter()
                .filter(|r| r.name.as_str() != ADMIN_ROLE)
                .map(|r| Record::Role(Box::new(r)))
                .collect();
            (records, last)
        }
        Section::Users => {
            let all = tx.users_after(after, STEP)?;
            let last = all.last().map(|u| u.name.to_string());
            let records = all
                .iter()
                .map(|u| Record::User(Box::new(UserRecord::from_model(u, secrets))))
                .collect();
            (records, last)
        }
    })
}

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A version line, then one record a line.
    Ndjson,
    /// One document: `{"version": 1, "accounts": [...], "roles": [...], "users": [...]}`, one
    /// record a line.
    Json,
}

/// Writes records to a file in one [`Format`], section by section (accounts, roles, users).
pub struct Sink<W: Write> {
    out: W,
    format: Format,
    section: Option<Section>,
    first_in_section: bool,
}

impl<W: Write> Sink<W> {
    /// Starts a file: the version line or the document's opening.
    pub fn new(mut out: W, format: Format) -> std::io::Result<Self> {
        match format {
            Format::Ndjson => writeln!(out, "{{\"version\":{BULK_VERSION}}}")?,
            Format::Json => write!(out, "{{\"version\":{BULK_VERSION}")?,
        }
        Ok(Sink { out, format, section: None, first_in_section: true })
    }

    /// Writes `records` of `section` (sections in order: accounts, roles, users).
    pub fn records(&mut self, section: Section, records: &[Record]) -> std::io::Result<()> {
        if self.format == Format::Json && self.section != Some(section) {
            if self.section.is_some() {
                write!(self.out, "\n]")?;
            }
            write!(self.out, ",\n\"{}\":[", section.name())?;
            self.section = Some(section);
            self.first_in_section = true;
        }
        for r in records {
            match self.format {
                Format::Ndjson => serde_json::to_writer(&mut self.out, r)?,
                Format::Json => {
                    let sep = if self.first_in_section { "\n" } else { ",\n" };
                    self.out.write_all(sep.as_bytes())?;
                    self.first_in_section = false;
                    match r {
                        Record::Account(a) => serde_json::to_writer(&mut self.out, a)?,
                        Record::Role(r) => serde_json::to_writer(&mut self.out, r)?,
                        Record::User(u) => serde_json::to_writer(&mut self.out, u)?,
                    }
                }
            }
            if self.format == Format::Ndjson {
                self.out.write_all(b"\n")?;
            }
        }
        Ok(())
    }

    /// Ends the file and returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.format == Format::Json {
            if self.section.is_some() {
                write!(self.out, "\n]")?;
            }
            writeln!(self.out, "}}")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes every section of `store` to `sink`, from one snapshot. Returns the sink.
pub fn export<W: Write>(
    store: &Store,
    mut sink: Sink<W>,
    secrets: bool,
) -> Result<Sink<W>, AdminError> {
    let io = |e: std::io::Error| super::BulkError::Io {
        what: "write",
        path: "the export".into(),
        source: e,
    };
    store.read(|tx| {
        for section in [Section::Accounts, Section::Roles, Section::Users] {
            let mut after: Option<String> = None;
            sink.records(section, &[]).map_err(io)?;
            loop {
                let (records, last) = step(tx, section, after.as_deref(), secrets)?;
                sink.records(section, &records).map_err(io)?;
                match last {
                    Some(last) => after = Some(last),
                    None => break,
                }
            }
        }
        Ok(sink)
    })
}
