//! Creating a store (`pbn init`) and reading what nats-server must trust from it.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::view::OperatorView;
use super::{reading, AdminError, Command, Context, Outcome, Response};
use crate::issue;
use crate::keys::{KeyKind, KeyPair, UserPublicKey, XKeyPair};
use crate::model::{
    Account, AccountKind, CalloutConfig, Name, Operator, Permissions, Role, SubSubject, Subject,
};
use crate::natsconf::Trust;
use crate::store::{Store, StoreRead};

pub use crate::model::{AUTH_ACCOUNT, SYS_ACCOUNT};
/// Name of the role whose permissions the admin creds carry (see [`admin_creds`]).
pub const ADMIN_ROLE: &str = "pbn-admin";
/// Subjects of the admin API (served in the SYS account, on the service's system connection).
pub const ADMIN_SUBJECTS: &str = "pbn.admin.>";
/// Subjects of micro-service discovery (`$SRV.PING`, `$SRV.INFO`, `$SRV.STATS`).
pub const DISCOVERY_SUBJECTS: &str = "$SRV.>";
/// Audit events the admin creds may follow (`pbn admin audit tail`).
pub const AUDIT_SUBJECTS: &str = "pbn.audit.>";
/// Name (`name` claim) of the user in the admin creds.
pub const ADMIN_USER: &str = "pbn-admin";

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
/// role. Refuses an existing file. The store's seeds are plain: see [`init_store_with`].
pub fn init_store(
    path: &Path,
    operator_name: &str,
    xkey: bool,
    ctx: &Context,
) -> Result<(Store, InitReport), AdminError> {
    init_store_with(path, operator_name, xkey, ctx, None)
}

/// [`init_store`] with a store key: every seed is sealed under it (`None`: plain seeds).
pub fn init_store_with(
    path: &Path,
    operator_name: &str,
    xkey: bool,
    ctx: &Context,
    key: Option<crate::seal::KeySource>,
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
        pub_allow: Some(vec![Subject::parse(ADMIN_SUBJECTS)?, Subject::parse(DISCOVERY_SUBJECTS)?]),
        pub_deny: None,
        sub_allow: Some(vec![SubSubject::parse("_INBOX.>")?, SubSubject::parse(AUDIT_SUBJECTS)?]),
        sub_deny: None,
    };
    let store = Store::create_with(path, key)?;
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
        let mut issued = Vec::new();
        let trust = trust_from(tx, ctx, |acc| {
            let iat = acc.next_jwt_iat(ctx.now);
            issued.push(acc.clone());
            Ok(iat)
        })?;
        for acc in &issued {
            tx.update_account(acc)?;
        }
        Ok(trust)
    })
}

/// [`trust`] without writing: for a store opened read-only. Each account JWT gets an `iat`
/// below every later one pbn can issue (the last recorded `iat`, or a second before now when
/// that is older), so any later push still wins on the servers.
pub fn trust_read_only(store: &Store, ctx: &Context) -> Result<Trust, AdminError> {
    store.read(|tx| trust_from(tx, ctx, |acc| Ok(acc.last_jwt_iat.max(ctx.now - 1))))
}

/// The trust of `tx`, the `iat` of each account JWT chosen by `iat_of`.
fn trust_from<T: StoreRead>(
    tx: &T,
    ctx: &Context,
    mut iat_of: impl FnMut(&mut crate::model::Account) -> Result<i64, AdminError>,
) -> Result<Trust, AdminError> {
    let op = tx.require_operator()?;
    let allowed = tx.allowed_accounts()?;
    let mut preload = Vec::new();
    let mut sentinel = None;
    for mut acc in tx.list_accounts()? {
        let iat = iat_of(&mut acc)?;
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
}

/// Creds of a new named admin of operator scope (see [`super::admins`]): a fresh user of the
/// system account, signed by its newest signing key with `issuer_account`, whose permissions
/// are the `ADMIN_ROLE` role's (as they are now: editing the role later changes only creds
/// minted afterwards), named [`ADMIN_USER`] (or `ADMIN_USER-2`, … when taken).
///
/// These permissions are what nats-server enforces: a system user whose JWT does not allow
/// publishing to `pbn.admin.>` gets a `Permissions Violation` and never reaches the admin API;
/// the admin record is what the admin API checks each request's signature against. The seed
/// exists only in the returned text. `expires_secs`: the admin's (and the JWT's) lifetime.
pub fn admin_creds_expiring(
    store: &Store,
    ctx: &Context,
    expires_secs: Option<u64>,
) -> Result<Zeroizing<String>, AdminError> {
    Ok(mint_admin_creds(store, ctx, expires_secs)?.1)
}

/// [`admin_creds_expiring`] for an admin that never expires.
pub fn admin_creds(store: &Store, ctx: &Context) -> Result<Zeroizing<String>, AdminError> {
    admin_creds_expiring(store, ctx, None)
}

/// Show the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorShow {}

impl Command for OperatorShow {
    const NAME: &'static str = "operator_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let op = tx.require_operator()?;
            Ok(Response::Operator(OperatorView {
                name: op.name.clone(),
                public_key: op.public_key.to_string(),
                signing_keys: op.signing_keys.iter().map(|k| k.public().to_string()).collect(),
                system_account: op.system_account.to_string(),
                jwt: issue::operator_jwt(&op)?,
            }))
        })
    }
}

/// Mint creds of a new operator-scope admin (see [`admin_creds`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAdminCreds {}

impl Command for OperatorAdminCreds {
    const NAME: &'static str = "operator_admin_creds";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        let (record, creds) = mint_admin_creds(store, ctx, None)?;
        let response = Response::Creds {
            user: record.name.to_string(),
            public_key: record.public_key.to_string(),
            creds: creds.to_string(),
            revoked: vec![],
        };
        Ok(Outcome { response, effects: Default::default() })
    }
}

/// What `pbn nats-conf` renders from: the operator JWT, the system account and the account
/// JWTs to preload, and the sentinel JWT (public data only). Changes no record; it reserves
/// fresh `iat`s so the preloaded JWTs are newer than any pushed before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsConfTrust {}

impl Command for NatsConfTrust {
    const NAME: &'static str = "nats_conf_trust";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        let response = Response::Trust(Box::new(trust(store, ctx)?));
        Ok(Outcome { response, effects: Default::default() })
    }
}

fn mint_admin_creds(
    store: &Store,
    ctx: &Context,
    expires_secs: Option<u64>,
) -> Result<(crate::model::AdminRecord, Zeroizing<String>), AdminError> {
    store.write(|tx| {
        let name = super::admins::free_name(tx, ADMIN_USER)?;
        let add = super::AdminAdd { name, scope: None, read_only: false, expires_secs };
        add.add(tx, ctx)
    })
}

/// The AUTH account (for the service and for tests).
pub fn auth_account(tx: &impl StoreRead) -> Result<Account, AdminError> {
    Ok(tx.require_account(AUTH_ACCOUNT)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{decode, parse_creds, AccountClaims, UserClaims};

    #[test]
    fn read_only_trust_writes_nothing_and_stays_below_every_later_iat() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Context::now();
        let (store, _) = init_store(&dir.path().join("s.redb"), "t", false, &ctx).unwrap();
        let iats = |t: &Trust| -> Vec<i64> {
            let claims = t.preload.iter().map(|(_, jwt)| decode::<AccountClaims>(jwt).unwrap());
            claims.map(|c| c.iat).collect()
        };
        let recorded = |s: &Store| s.read(|tx| tx.list_accounts()).unwrap();
        let before = recorded(&store);
        let read_only = trust_read_only(&store, &ctx).unwrap();
        assert_eq!(recorded(&store), before, "nothing recorded");
        // Issued in the same second, a recorded trust (or a push) still wins on the servers.
        let written = trust(&store, &ctx).unwrap();
        for (ro, rw) in iats(&read_only).iter().zip(iats(&written)) {
            assert!(*ro < rw, "read-only iat {ro} must be older than {rw}");
        }
        let again = trust_read_only(&store, &ctx).unwrap();
        assert_eq!(iats(&again), iats(&written), "the last recorded iat, not newer");
    }

    #[test]
    fn admin_creds_are_a_system_user_with_the_admin_roles_permissions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Context::now();
        let (store, report) = init_store(&dir.path().join("s.redb"), "t", false, &ctx).unwrap();
        let creds = admin_creds(&store, &ctx).unwrap();
        let parsed = parse_creds(&creds).expect("a creds file");
        let claims = decode::<UserClaims>(&parsed.jwt).expect("a user JWT");
        let sys = store.read(|tx| tx.require_account(SYS_ACCOUNT)).unwrap();
        assert_eq!(claims.nats.issuer_account, report.system_account);
        assert_eq!(claims.iss, sys.current_signing_key().unwrap().public());
        assert_eq!(claims.sub, parsed.key_pair().unwrap().public_key());
        assert_eq!(claims.name, ADMIN_USER);
        assert_eq!(claims.exp, 0, "admin creds do not expire");
        let l = &claims.nats.limits;
        assert_eq!(l.publish.allow, vec![ADMIN_SUBJECTS.to_string(), DISCOVERY_SUBJECTS.into()]);
        assert_eq!(l.subscribe.allow, vec!["_INBOX.>".to_string(), AUDIT_SUBJECTS.into()]);
        assert!(l.publish.deny.is_empty() && l.subscribe.deny.is_empty());
        let again = admin_creds(&store, &ctx).unwrap();
        assert_ne!(parse_creds(&again).unwrap().jwt, parsed.jwt, "a fresh user key each time");
    }
}
