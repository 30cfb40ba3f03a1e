//! Signing-key rotation of an account: emergency (all keys replaced) and graceful (add, then
//! remove). Removing a key closes the sessions it signed.

use serde::{Deserialize, Serialize};

use super::accounts::{enqueue, view};
use super::view::Response;
use super::{writing, AdminError, Command, Context, Outcome};
use crate::keys::KeyKind;
use crate::model::{clip, Account, AccountKind, CloseSessions, Effects, OutboxAction, SigningKey};
use crate::store::{Store, StoreRead, WriteTx};

/// A managed account about to get new signing keys. SYS and AUTH are refused: AUTH's key signs
/// the sentinel in every server config and the callout responses, SYS's the service's own users.
fn rekeyable(tx: &WriteTx, name: &str) -> Result<Account, AdminError> {
    let acc = tx.require_account(name)?;
    if acc.kind != AccountKind::Managed {
        return Err(AdminError::Protected(format!("account {name:?}"), "re-keyed"));
    }
    Ok(acc)
}

/// A fresh account signing key that is the newest of `acc` (so it signs), created at `now` or,
/// should a stored key claim a later time, at that time (the later entry wins a tie).
fn newest_key(acc: &Account, now: i64) -> SigningKey {
    let created = acc.signing_keys.iter().map(|k| k.created).fold(now, i64::max);
    SigningKey::generate(KeyKind::Account, created)
}

/// Stores `acc` with its new signing keys (the ones it had are `before`) and queues its push;
/// sessions signed by a key that is gone are to be closed.
fn store_rekeyed(
    tx: &mut WriteTx,
    fx: &mut Effects,
    acc: &mut Account,
    before: &[SigningKey],
    ctx: &Context,
) -> Result<(), AdminError> {
    acc.updated = ctx.now;
    tx.update_account(acc)?;
    let removed: Vec<String> = before
        .iter()
        .map(|k| k.public().to_string())
        .filter(|k| !acc.signing_keys.iter().any(|now| now.public() == k))
        .collect();
    if !removed.is_empty() {
        fx.close(CloseSessions::SignedBy {
            account: acc.public_key.clone(),
            keys: before.iter().map(|k| (k.public().to_string(), k.created)).collect(),
            removed,
            at: ctx.now,
        });
    }
    enqueue(tx, fx, acc, OutboxAction::Upsert, ctx)
}

/// Emergency key rotation: a new signing key, every old one removed (connections and creds
/// signed by an old key stop working once the account is pushed). Creds were signed by an old
/// key, so their holders are listed (creds stay recorded so their revocation stays possible).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRotateKeys {
    /// Account name.
    pub name: String,
}

impl Command for AccountRotateKeys {
    const NAME: &'static str = "account_rotate_keys";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let name = &self.name;
            let mut acc = rekeyable(tx, name)?;
            let key = newest_key(&acc, ctx.now);
            let signing_key = key.public().to_string();
            let removed = std::mem::replace(&mut acc.signing_keys, vec![key]);
            store_rekeyed(tx, fx, &mut acc, &removed, ctx)?;
            let creds_users = tx
                .list_users_of_account(name)?
                .into_iter()
                .filter(|u| !u.creds.is_empty())
                .map(|u| u.name.to_string())
                .collect();
            Ok(Response::KeysRotated {
                account: name.to_string(),
                signing_key,
                removed: removed.iter().map(|k| k.public().to_string()).collect(),
                creds_users,
            })
        })
    }
}

/// Graceful rotation, step 1: add a signing key, which signs from now on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSigningKeyAdd {
    /// Account name.
    pub name: String,
}

impl Command for AccountSigningKeyAdd {
    const NAME: &'static str = "account_signing_key_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let mut acc = rekeyable(tx, &self.name)?;
            let before = acc.signing_keys.clone();
            acc.signing_keys.push(newest_key(&acc, ctx.now));
            store_rekeyed(tx, fx, &mut acc, &before, ctx)?;
            Ok(Response::Account(view(tx, &acc, None)?))
        })
    }
}

/// Graceful rotation, step 2: remove a signing key (never the last one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSigningKeyRemove {
    /// Account name.
    pub name: String,
    /// The signing key's public key (`A…`).
    pub key: String,
}

impl Command for AccountSigningKeyRemove {
    const NAME: &'static str = "account_signing_key_remove";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let (name, key) = (&self.name, &self.key);
            let mut acc = rekeyable(tx, name)?;
            let Some(pos) = acc.signing_keys.iter().position(|k| k.public() == key) else {
                return Err(AdminError::NotFound { what: "signing key", name: clip(key) });
            };
            if acc.signing_keys.len() == 1 {
                return Err(AdminError::Invalid(format!(
                    "signing key {key} is the last one of account {name}; add another first \
                     (or use `account rotate-keys`)"
                )));
            }
            let before = acc.signing_keys.clone();
            acc.signing_keys.remove(pos);
            store_rekeyed(tx, fx, &mut acc, &before, ctx)?;
            Ok(Response::Account(view(tx, &acc, None)?))
        })
    }
}
