//! Validating an import whole, against itself and the store, before anything is written.

use std::collections::HashMap;

use super::schema::check_role;
use super::{BulkError, Item, Location, Missing, Record};
use crate::admin::{AdminError, Context};
use crate::issue;
use crate::model::{Account, AccountKind, ModelError, Role, User};
use crate::store::StoreRead;

/// What to do with a user naming an account or role the store and the records lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refs {
    /// Refuse it ([`BulkError::MissingRef`]): the records are the whole file.
    Require,
    /// Return it ([`Planned::missing`]): the records are one chunk of a file.
    Collect,
}

/// Checked records, ready to write: accounts, then roles, then users, each in file order.
#[derive(Debug, Default)]
pub struct Planned {
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Roles.
    pub roles: Vec<Role>,
    /// Users.
    pub users: Vec<User>,
    /// References left to the rest of the file ([`Refs::Collect`]).
    pub missing: Vec<super::Missing>,
}

/// Names, keys and hashes seen so far, each with where it was first given.
#[derive(Default)]
struct Seen {
    first: HashMap<(&'static str, String), Location>,
}

impl Seen {
    /// Notes `name` as a `what` at `at`; a second one is [`BulkError::Duplicate`].
    fn note(&mut self, at: Location, what: &'static str, name: &str) -> Result<(), BulkError> {
        match self.first.insert((what, name.to_string()), at) {
            Some(first) => Err(BulkError::Duplicate { at, what, name: name.to_string(), first }),
            None => Ok(()),
        }
    }

    fn has(&self, what: &'static str, name: &str) -> bool {
        self.first.contains_key(&(what, name.to_string()))
    }
}

fn exists(at: Location, what: &'static str, name: &str) -> AdminError {
    BulkError::Exists { at, what, name: name.to_string() }.into()
}

/// Checks every record (fields, duplicates in the records, names and keys in the store, the
/// accounts and roles users name, account JWT sizes) and returns them as model records.
pub fn plan(
    tx: &impl StoreRead,
    items: &[Item],
    ctx: &Context,
    refs: Refs,
) -> Result<Planned, AdminError> {
    let mut seen = Seen::default();
    let mut out = Planned::default();
    let operator = tx.require_operator()?;
    for item in items {
        let at = item.at;
        match &item.record {
            Record::Account(a) => {
                let acc = a.to_model(at, ctx.now)?;
                check_account(tx, &mut seen, at, &acc)?;
                if surely_small(&acc) {
                    out.accounts.push(acc);
                    continue;
                }
                let jwt = issue::account_jwt(&operator, &acc, &[], ctx.now)?;
                let max = issue::DEFAULT_MAX_PAYLOAD;
                if jwt.len() > max {
                    let name = acc.name.to_string();
                    let e = ModelError::JwtTooLarge { what: "account", name, size: jwt.len(), max };
                    return Err(BulkError::Field {
                        at,
                        field: "account".into(),
                        detail: e.to_string(),
                    }
                    .into());
                }
                out.accounts.push(acc);
            }
            Record::Role(role) => {
                check_role(at, role)?;
                seen.note(at, "role", role.name.as_str())?;
                if tx.get_role(role.name.as_str())?.is_some() {
                    return Err(exists(at, "role", role.name.as_str()));
                }
                out.roles.push((**role).clone());
            }
            Record::User(u) => out.users.push(u.to_model(at, ctx.now)?),
        }
    }
    let user_items = items.iter().filter(|i| matches!(i.record, Record::User(_)));
    let mut known = HashMap::new();
    for (item, user) in user_items.zip(&out.users) {
        check_user(tx, &mut seen, item.at, user)?;
        for (field, name) in [("account", user.account.as_str()), ("role", user.role.as_str())] {
            if !known_ref(tx, &seen, &mut known, (item.at, field), name)? {
                let missing = Missing { at: item.at, field: field.into(), name: name.into() };
                match refs {
                    Refs::Collect => out.missing.push(missing),
                    Refs::Require => {
                        let (at, name) = (item.at, name.to_string());
                        return Err(BulkError::MissingRef { at, field, name }.into());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Refuses a name, key or token hash given twice in `items` (an import sent in chunks is
/// checked against the store chunk by chunk, so the whole file is checked for this first).
pub fn duplicates(items: &[Item]) -> Result<(), BulkError> {
    let mut seen = Seen::default();
    for Item { at, record } in items {
        let at = *at;
        match record {
            Record::Account(a) => {
                seen.note(at, "account", &a.name)?;
                if let Some(key) = &a.public_key {
                    seen.note(at, "account key", key)?;
                }
            }
            Record::Role(r) => seen.note(at, "role", r.name.as_str())?,
            Record::User(u) => {
                seen.note(at, "user", &u.name)?;
                for t in &u.tokens {
                    seen.note(at, "token hash of token", &t.hash)?;
                }
                if let Some(key) = &u.nkey {
                    seen.note(at, "user nkey", key.as_str())?;
                }
            }
        }
    }
    Ok(())
}

/// Signing keys up to which an account with nothing else in lists needs no size check.
const FEW_SIGNING_KEYS: usize = 16;

/// Whether `acc`'s JWT is surely within the payload limit without building and signing it:
/// with no exports, imports or revocations and at most [`FEW_SIGNING_KEYS`] signing keys its
/// claims are a few KiB (every text field is length-checked by the model), far below the
/// 1 MiB limit. Signing every account of an import only to measure it doubled its planning.
fn surely_small(acc: &Account) -> bool {
    acc.exports.is_empty()
        && acc.imports.is_empty()
        && acc.revocations.is_empty()
        && acc.signing_keys.len() <= FEW_SIGNING_KEYS
}

fn check_account(
    tx: &impl StoreRead,
    seen: &mut Seen,
    at: Location,
    acc: &Account,
) -> Result<(), AdminError> {
    let (name, key) = (acc.name.as_str(), acc.public_key.as_str());
    seen.note(at, "account", name)?;
    seen.note(at, "account key", key)?;
    if tx.get_account(name)?.is_some() {
        return Err(exists(at, "account", name));
    }
    if tx.get_account_by_key(&acc.public_key)?.is_some() {
        return Err(exists(at, "account key", key));
    }
    Ok(())
}

fn check_user(
    tx: &impl StoreRead,
    seen: &mut Seen,
    at: Location,
    user: &User,
) -> Result<(), AdminError> {
    let name = user.name.as_str();
    seen.note(at, "user", name)?;
    if tx.get_user(name)?.is_some() {
        return Err(exists(at, "user", name));
    }
    for token in &user.tokens {
        seen.note(at, "token hash of token", &token.hash).map_err(|e| match e {
            BulkError::Duplicate { at, what, first, .. } => {
                BulkError::Duplicate { at, what, name: token.id.clone(), first }
            }
            e => e,
        })?;
        if tx.lookup_token(&token.hash)?.is_some() {
            return Err(exists(at, "token hash of token", &token.id));
        }
    }
    if let Some(key) = &user.nkey {
        seen.note(at, "user nkey", key.as_str())?;
        if tx.user_by_nkey_name(key.as_str())?.is_some() {
            return Err(exists(at, "user nkey", key.as_str()));
        }
    }
    Ok(())
}

/// Whether the account or role `name` is in the records or the store (store answers cached).
fn known_ref(
    tx: &impl StoreRead,
    seen: &Seen,
    known: &mut HashMap<(&'static str, String), bool>,
    (at, field): (Location, &'static str),
    name: &str,
) -> Result<bool, AdminError> {
    if seen.has(field, name) {
        return Ok(true);
    }
    if let Some(&hit) = known.get(&(field, name.to_string())) {
        return Ok(hit);
    }
    let hit = match field {
        "account" => match tx.get_account(name)? {
            Some(acc) if acc.kind != AccountKind::Managed => {
                let detail = format!("account {name:?} is built in and cannot be given users");
                return Err(BulkError::Field { at, field: field.into(), detail }.into());
            }
            hit => hit.is_some(),
        },
        _ => tx.get_role(name)?.is_some(),
    };
    known.insert((field, name.to_string()), hit);
    Ok(hit)
}
