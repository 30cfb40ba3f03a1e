//! Creating a store (`pbn init`) and reading what nats-server must trust from it.

use std::path::Path;

use serde::Serialize;

use super::accounts::allowed_accounts;
use super::{AdminError, Context};
use crate::issue;
use crate::keys::{KeyKind, KeyPair, UserPublicKey, XKeyPair};
use crate::model::{
    Account, AccountKind, CalloutConfig, Name, Operator, Permissions, Role, SubSubject, Subject,
};
use crate::natsconf::Trust;
use crate::store::{Store, StoreRead};

/// Name of the system account.
pub const SYS_ACCOUNT: &str = "SYS";
/// Name of the callout account.
pub const AUTH_ACCOUNT: &str = "AUTH";
/// Name of the role that may call the admin API.
pub const ADMIN_ROLE: &str = "pbn-admin";
/// Subjects of the admin API (served in the AUTH account).
pub const ADMIN_SUBJECTS: &str = "pbn.admin.>";

/// What `pbn init` created.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The store file.
    pub store: String,
    /// Operator public key.
    pub operator: String,
    /// System account public key.
    pub system_account: String,
    /// Callout account public key.
    pub auth_account: String,
    /// Service user public key (in `auth_users`).
    pub service_user: String,
    /// xkey public key, when callout encryption is on.
    pub xkey: Option<String>,
}

/// Creates a new store with operator, SYS, AUTH (service user, optional xkey) and the admin
/// role. Refuses an existing file.
pub fn init_store(
    path: &Path,
    operator_name: &str,
    xkey: bool,
    ctx: &Context,
) -> Result<(Store, InitReport), AdminError> {
    if operator_name.trim().is_empty() || operator_name.len() > 64 {
        return Err(AdminError::Invalid(format!(
            "operator name {operator_name:?} must be 1 to 64 characters"
        )));
    }
    let sys = Account::generate(Name::parse(SYS_ACCOUNT)?, AccountKind::System, ctx.now);
    let op = Operator::generate(operator_name, sys.public_key.clone(), ctx.now);
    let mut auth = Account::generate(Name::parse(AUTH_ACCOUNT)?, AccountKind::Auth, ctx.now);
    auth.description = "pbn auth callout account".into();
    let service = KeyPair::generate(KeyKind::User);
    let service_pub = UserPublicKey::parse(service.public_key())?;
    let x = xkey.then(XKeyPair::generate);
    auth.callout = Some(CalloutConfig {
        auth_users: vec![service_pub.clone()],
        xkey: x.as_ref().map(XKeyPair::seed),
        service_user: Some(service.seed()),
    });
    let mut admin = Role::new(Name::parse(ADMIN_ROLE)?, ctx.now);
    admin.description = "may call the pbn admin API".into();
    admin.permissions = Permissions {
        pub_allow: Some(vec![Subject::parse(ADMIN_SUBJECTS)?]),
        pub_deny: None,
        sub_allow: Some(vec![SubSubject::parse("_INBOX.>")?]),
        sub_deny: None,
    };
    let store = Store::create(path)?;
    store.write(|tx| -> Result<(), AdminError> {
        tx.insert_account(&sys)?;
        tx.insert_account(&auth)?;
        tx.insert_operator(&op)?;
        tx.insert_role(&admin)?;
        Ok(())
    })?;
    let report = InitReport {
        store: path.display().to_string(),
        operator: op.public_key.to_string(),
        system_account: sys.public_key.to_string(),
        auth_account: auth.public_key.to_string(),
        service_user: service_pub.to_string(),
        xkey: x.map(|x| x.public_key().to_string()),
    };
    Ok((store, report))
}

/// Everything the servers must trust and preload, issuing each account JWT with a fresh,
/// strictly increasing `iat` that is recorded in the store (so a later push of the same account
/// in the same second still wins on the servers).
pub fn trust(store: &Store, ctx: &Context) -> Result<Trust, AdminError> {
    store.write(|tx| {
        let op = tx.require_operator()?;
        let allowed = allowed_accounts(tx)?;
        let mut preload = Vec::new();
        let mut sentinel = None;
        for mut acc in tx.list_accounts()? {
            let iat = acc.next_jwt_iat(ctx.now);
            tx.update_account(&acc)?;
            preload.push((acc.public_key.clone(), issue::account_jwt(&op, &acc, &allowed, iat)?));
            if acc.kind == AccountKind::Auth {
                sentinel = Some(issue::sentinel_jwt(&acc, ctx.now)?);
            }
        }
        let sentinel_jwt =
            sentinel.ok_or_else(|| AdminError::Invalid("the store has no AUTH account".into()))?;
        Ok(Trust {
            operator_jwt: issue::operator_jwt(&op)?,
            system_account: op.system_account.clone(),
            preload,
            sentinel_jwt,
        })
    })
}

/// The AUTH account (for the service and for tests).
pub fn auth_account(tx: &impl StoreRead) -> Result<Account, AdminError> {
    Ok(tx.require_account(AUTH_ACCOUNT)?)
}
