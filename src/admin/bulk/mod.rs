//! Bulk import and export of accounts, roles and users in pbn's own format (see `schema` and
//! the README section "Bulk import and export").
//!
//! An import is validated whole before anything is written ([`plan`]): every record's fields,
//! duplicates within the file, names and keys already in the store, and the accounts and roles
//! users name. Only then is it written, in batched write transactions ([`write`]), each small
//! enough that its journal fits one replica log message. Accounts it creates get their JWT
//! pushes queued in the outbox in the same transaction, like `account add`.
//!
//! Three commands carry it over the admin API, whose requests are at most 64 KiB: the client
//! splits a file into chunks, checks every chunk with [`BulkCheck`] (nothing written), then
//! sends each with [`BulkImport`]; [`BulkExport`] returns one page of records, never secrets.
//! Locally the whole file is one [`BulkImport`], and `export --with-secrets` reads the store
//! itself ([`export::export`]).

pub mod export;
pub mod parse;
pub mod plan;
pub mod schema;
pub mod write;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::view::Response;
use super::{reading, AdminError, Command, Context, Outcome};
use crate::model::Effects;
use crate::store::Store;
pub use schema::{AccountRecord, Record, UserRecord, BULK_VERSION};

/// Where a record is in its file: a line of NDJSON, or an entry of a JSON document's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Line `n` (from 1) of an NDJSON file.
    Line(u64),
    /// Entry `index` (from 0) of the list `section` of a JSON document.
    Entry {
        /// `accounts`, `roles` or `users`.
        section: Section,
        /// Index in the list.
        index: u64,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Entry { section, index } => write!(f, "{}[{index}]", section.name()),
        }
    }
}

/// The kinds of records, in the order an import writes them (users name accounts and roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Accounts.
    Accounts,
    /// Roles.
    Roles,
    /// Users.
    Users,
}

impl Section {
    /// The list's name in a JSON document.
    pub fn name(self) -> &'static str {
        match self {
            Section::Accounts => "accounts",
            Section::Roles => "roles",
            Section::Users => "users",
        }
    }
}

/// One record of an import with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Where it is in the file.
    pub at: Location,
    /// The record.
    pub record: Record,
}

impl Item {
    /// The section the record belongs to.
    pub fn section(&self) -> Section {
        match self.record {
            Record::Account(_) => Section::Accounts,
            Record::Role(_) => Section::Roles,
            Record::User(_) => Section::Users,
        }
    }
}

/// Why an import or export failed. Every error about the file names where (line or entry).
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// Not JSON, or JSON that is not a record.
    #[error("{at}: {detail}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the parser said.
        detail: String,
    },
    /// A field with a bad value.
    #[error("{at}: field {field}: {detail}")]
    Field {
        /// Where.
        at: Location,
        /// The field (a path like `tokens[0].hash`).
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// No version, or one this build does not read.
    #[error("{at}: format version {found} is not supported (this build reads version {BULK_VERSION}; the first line of NDJSON or the document's \"version\" field)")]
    Version {
        /// Where.
        at: Location,
        /// The version found (0 when missing).
        found: u64,
    },
    /// A name, key or token hash given twice in the file.
    #[error("{at}: {what} {name:?} appears twice (first at {first})")]
    Duplicate {
        /// Where the second one is.
        at: Location,
        /// What is duplicated.
        what: &'static str,
        /// The name, key or token id.
        name: String,
        /// Where the first one is.
        first: Location,
    },
    /// A name, key or token hash the store has already.
    #[error("{at}: {what} {name:?} exists already in the store")]
    Exists {
        /// Where.
        at: Location,
        /// What.
        what: &'static str,
        /// The name, key or token id.
        name: String,
    },
    /// A user naming an account or role that is neither in the file nor in the store.
    #[error("{at}: field {field}: {field} {name:?} is neither in the file nor in the store")]
    MissingRef {
        /// Where.
        at: Location,
        /// `account` or `role`.
        field: &'static str,
        /// The name.
        name: String,
    },
    /// A record larger than one admin request can carry.
    #[error("{at}: record of {size} bytes is larger than the {max} bytes one request carries")]
    TooLarge {
        /// Where.
        at: Location,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The file cannot be read or the export cannot be written.
    #[error("cannot {what} {path}: {source}")]
    Io {
        /// `read` or `write`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl BulkError {
    /// The class for exit codes: conflicts with the store are conflicts, missing references are
    /// not-found, everything else is bad input.
    pub fn class(&self) -> super::ErrorClass {
        use super::ErrorClass;
        match self {
            BulkError::Exists { .. } => ErrorClass::Conflict,
            BulkError::MissingRef { .. } => ErrorClass::NotFound,
            BulkError::Io { .. } => ErrorClass::Other,
            _ => ErrorClass::Usage,
        }
    }
}

/// A reference to an account or role a checked chunk names but the store lacks: the client
/// looks for it in the rest of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// Where the user naming it is.
    pub at: Location,
    /// `account` or `role`.
    pub field: String,
    /// The name.
    pub name: String,
}

/// What a bulk command answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAnswer {
    /// A chunk is valid except, maybe, for references the rest of the file must hold.
    Checked {
        /// References not in the store.
        missing: Vec<Missing>,
    },
    /// Records written.
    Imported(Counts),
    /// One page of an export.
    Page {
        /// The records, in name order.
        records: Vec<Record>,
        /// The name to continue after; `None` at the end of the section.
        next: Option<String>,
    },
}

/// How many records of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Accounts.
    pub accounts: u64,
    /// Roles.
    pub roles: u64,
    /// Users.
    pub users: u64,
}

impl Counts {
    /// Adds `other`.
    pub fn add(&mut self, other: Counts) {
        self.accounts += other.accounts;
        self.roles += other.roles;
        self.users += other.users;
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} accounts, {} roles, {} users", self.accounts, self.roles, self.users)
    }
}

/// The text of a bulk answer.
pub(super) fn text(s: &mut String, answer: &BulkAnswer) {
    use std::fmt::Write;
    let _ = match answer {
        BulkAnswer::Checked { missing } => {
            writeln!(s, "checked ({} references elsewhere)", missing.len())
        }
        BulkAnswer::Imported(c) => writeln!(s, "imported {c}"),
        BulkAnswer::Page { records, .. } => writeln!(s, "{} records", records.len()),
    };
}

/// Check records against the store, writing nothing: everything an import checks, except that
/// users may name accounts and roles that are not in the store yet (they are returned, for the
/// client to find in the rest of its file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkCheck {
    /// The records.
    pub records: Vec<Item>,
}

impl Command for BulkCheck {
    const NAME: &'static str = "bulk_check";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let planned = plan::plan(tx, &self.records, ctx, plan::Refs::Collect)?;
            Ok(Response::Bulk(Box::new(BulkAnswer::Checked { missing: planned.missing })))
        })
    }
}

/// Import records: validated whole, then written in batched transactions (see [`write`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkImport {
    /// The records.
    pub records: Vec<Item>,
}

impl Command for BulkImport {
    const NAME: &'static str = "bulk_import";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        let planned = store.read(|tx| plan::plan(tx, &self.records, ctx, plan::Refs::Require))?;
        let mut effects = Effects::default();
        let counts = write::write(store, planned, ctx, &mut effects)?;
        Ok(Outcome { response: Response::Bulk(Box::new(BulkAnswer::Imported(counts))), effects })
    }
}

/// One page of an export, without secrets: the records of `section` after the name `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkExport {
    /// Which records (accounts when left out).
    #[serde(default = "first_section")]
    pub section: Section,
    /// Continue after this name (`None`: from the start).
    pub after: Option<String>,
}

fn first_section() -> Section {
    Section::Accounts
}

impl Default for BulkExport {
    fn default() -> Self {
        BulkExport { section: Section::Accounts, after: None }
    }
}

impl Command for BulkExport {
    const NAME: &'static str = "bulk_export";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let (records, next) =
                export::page(tx, self.section, self.after.as_deref(), export::PAGE_BYTES, false)?;
            Ok(Response::Bulk(Box::new(BulkAnswer::Page { records, next })))
        })
    }
}

impl From<BulkError> for AdminError {
    fn from(e: BulkError) -> Self {
        AdminError::Bulk(e)
    }
}

#[cfg(test)]
mod tests;
