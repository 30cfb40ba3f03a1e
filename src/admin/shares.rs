//! Exports and imports of an account: each change is an account JWT push.

use serde::{Deserialize, Serialize};

use super::accounts::{enqueue, view};
use super::patch::ExportKind as WireKind;
use super::view::Response;
use super::{writing, AdminError, Command, Context, Outcome};
use crate::keys::AccountPublicKey;
use crate::model::{clip, Account, Effects, Export, ExportKind, Import, OutboxAction, Subject};
use crate::store::{Store, StoreRead, WriteTx};

fn export_kind(k: WireKind) -> ExportKind {
    match k {
        WireKind::Stream => ExportKind::Stream,
        WireKind::Service => ExportKind::Service,
    }
}

/// Runs `change` on account `name` (given the parsed `subject`), then stores and pushes it.
fn change_account(
    store: &Store,
    ctx: &Context,
    name: &str,
    subject: &str,
    change: impl FnOnce(&WriteTx, &mut Account, Subject) -> Result<(), AdminError>,
) -> Result<Outcome, AdminError> {
    writing(store, |tx, fx: &mut Effects| {
        let subject = Subject::parse(subject)?;
        let mut acc = tx.require_account(name)?;
        change(tx, &mut acc, subject)?;
        acc.updated = ctx.now;
        tx.update_account(&acc)?;
        enqueue(tx, fx, &acc, OutboxAction::Upsert, ctx)?;
        Ok(Response::Account(view(tx, &acc, None)?))
    })
}

/// Add an export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportAdd {
    /// Exporting account.
    pub account: String,
    /// Subject.
    pub subject: String,
    /// Stream or service.
    pub kind: WireKind,
    /// Export name.
    pub name: Option<String>,
    /// Activation token required.
    pub token_req: bool,
}

impl Command for ExportAdd {
    const NAME: &'static str = "export_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        change_account(store, ctx, &self.account, &self.subject, |_, acc, subject| {
            if acc.exports.iter().any(|e| e.subject == subject) {
                return Err(AdminError::Conflict { what: "export", name: clip(subject.as_str()) });
            }
            acc.exports.push(Export {
                name: self.name.clone().unwrap_or_default(),
                subject,
                kind: export_kind(self.kind),
                token_req: self.token_req,
                response_type: None,
                account_token_position: None,
                description: String::new(),
                advertise: false,
            });
            Ok(())
        })
    }
}

/// Remove an export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRemove {
    /// Exporting account.
    pub account: String,
    /// Subject.
    pub subject: String,
}

impl Command for ExportRemove {
    const NAME: &'static str = "export_remove";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        change_account(store, ctx, &self.account, &self.subject, |_, acc, subject| {
            let before = acc.exports.len();
            acc.exports.retain(|e| e.subject != subject);
            if acc.exports.len() == before {
                return Err(AdminError::NotFound { what: "export", name: clip(subject.as_str()) });
            }
            Ok(())
        })
    }
}

/// Add an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportAdd {
    /// Importing account.
    pub account: String,
    /// Subject as exported.
    pub subject: String,
    /// Exporting account: a managed account's name or an `A…` key.
    pub from: String,
    /// Stream or service.
    pub kind: WireKind,
    /// Local subject.
    pub local_subject: Option<String>,
    /// Import name.
    pub name: Option<String>,
}

impl Command for ImportAdd {
    const NAME: &'static str = "import_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        change_account(store, ctx, &self.account, &self.subject, |tx, acc, subject| {
            let exporter = match AccountPublicKey::parse(&self.from) {
                Ok(key) => key,
                Err(_) => tx.require_account(&self.from)?.public_key,
            };
            if exporter == acc.public_key {
                let name = &self.account;
                return Err(AdminError::Invalid(format!(
                    "account {name} cannot import from itself"
                )));
            }
            if acc.imports.iter().any(|i| i.subject == subject && i.account == exporter) {
                return Err(AdminError::Conflict { what: "import", name: clip(subject.as_str()) });
            }
            acc.imports.push(Import {
                name: self.name.clone().unwrap_or_default(),
                subject,
                account: exporter,
                kind: export_kind(self.kind),
                local_subject: self.local_subject.as_deref().map(Subject::parse).transpose()?,
                share: false,
                token: None,
            });
            Ok(())
        })
    }
}

/// Remove an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRemove {
    /// Importing account.
    pub account: String,
    /// Subject.
    pub subject: String,
}

impl Command for ImportRemove {
    const NAME: &'static str = "import_remove";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        change_account(store, ctx, &self.account, &self.subject, |_, acc, subject| {
            let before = acc.imports.len();
            acc.imports.retain(|i| i.subject != subject);
            if acc.imports.len() == before {
                return Err(AdminError::NotFound { what: "import", name: clip(subject.as_str()) });
            }
            Ok(())
        })
    }
}
