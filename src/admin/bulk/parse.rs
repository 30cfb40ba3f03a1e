//! Reading an import file: NDJSON (a version line, then one record a line) or one JSON
//! document (`{"version": 1, "accounts": [...], "roles": [...], "users": [...]}`).
//!
//! The format is told by the first line: NDJSON's is a complete object holding only
//! `version`. Every error names the line (NDJSON) or the list entry (JSON) and, for a bad
//! value, the field's path.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::schema::{AccountRecord, UserRecord, BULK_VERSION};
use super::{BulkError, Item, Location, Record, Section};
use crate::model::Role;

/// The first line of an NDJSON file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    version: u64,
}

/// A JSON document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    // Checked before the document is typed (a missing one is a version error).
    #[serde(rename = "version")]
    _version: u64,
    #[serde(default)]
    accounts: Vec<serde_json::Value>,
    #[serde(default)]
    roles: Vec<serde_json::Value>,
    #[serde(default)]
    users: Vec<serde_json::Value>,
}

/// The records of `text`, in file order; the first bad record is the error.
pub fn parse(text: &str) -> Result<Vec<Item>, BulkError> {
    let first = text.lines().next().unwrap_or_default();
    match serde_json::from_str::<Header>(first) {
        Ok(header) => {
            check_version(Location::Line(1), header.version)?;
            parse_lines(text)
        }
        Err(_) => parse_document(text),
    }
}

fn check_version(at: Location, found: u64) -> Result<(), BulkError> {
    if found != u64::from(BULK_VERSION) {
        return Err(BulkError::Version { at, found });
    }
    Ok(())
}

/// `T` from `value` (a JSON text or value), with the failing field's path in the error.
fn typed<'de, T: Deserialize<'de>>(
    at: Location,
    de: impl serde::Deserializer<'de, Error = serde_json::Error>,
) -> Result<T, BulkError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let detail = e.inner().to_string();
        if path == "." || path.is_empty() {
            BulkError::Syntax { at, detail }
        } else {
            BulkError::Field { at, field: path, detail }
        }
    })
}

fn parse_lines(text: &str) -> Result<Vec<Item>, BulkError> {
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::Line(i as u64 + 1);
        let record: Record = typed(at, &mut serde_json::Deserializer::from_str(line))?;
        items.push(Item { at, record });
    }
    Ok(items)
}

fn parse_document(text: &str) -> Result<Vec<Item>, BulkError> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| BulkError::Syntax {
        at: Location::Line(e.line() as u64),
        detail: e.to_string(),
    })?;
    let version = doc.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    check_version(Location::Line(1), version)?;
    let doc: Document = typed(Location::Line(1), doc)?;
    let mut items = Vec::new();
    section::<AccountRecord>(&mut items, Section::Accounts, doc.accounts, |r| {
        Record::Account(Box::new(r))
    })?;
    section::<Role>(&mut items, Section::Roles, doc.roles, |r| Record::Role(Box::new(r)))?;
    section::<UserRecord>(&mut items, Section::Users, doc.users, |r| Record::User(Box::new(r)))?;
    Ok(items)
}

fn section<T: DeserializeOwned>(
    items: &mut Vec<Item>,
    section: Section,
    values: Vec<serde_json::Value>,
    wrap: impl Fn(T) -> Record,
) -> Result<(), BulkError> {
    for (index, value) in values.into_iter().enumerate() {
        let at = Location::Entry { section, index: index as u64 };
        items.push(Item { at, record: wrap(typed(at, value)?) });
    }
    Ok(())
}
