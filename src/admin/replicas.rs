//! Replicas: `pbn admin replica add|list|show|remove`.
//!
//! A replica is a `pbn serve` that joins the log with a bundle (`replica::bundle`). Its
//! identity towards nats-server is a user of the AUTH account: its key is listed in AUTH's
//! `auth_users` (so its connections bypass the callout, as the service user's do) and its JWT
//! allows only what a replica does ([`permissions`]). Adding one answers with its creds and
//! the store key (once; never stored, never remembered for a retry); removing one takes its
//! key out of `auth_users`, revokes it in AUTH's JWT and queues that JWT for a push: once the
//! servers apply it they close the replica's connections and refuse its creds.

use serde::{Deserialize, Serialize};

use super::accounts::enqueue;
use super::init::AUTH_ACCOUNT;
use super::{check_lifetime, reading, writing, AdminError, Command, Context, Outcome, Response};
use crate::issue;
use crate::keys::{KeyKind, KeyPair, UserPublicKey};
use crate::model::{Account, Effects, Name, OutboxAction};
use crate::replica::{LOG_STREAM, LOG_SUBJECT};
use crate::store::{self, BundleKey, ReplicaRecord, Store, StoreRead, WriteTx};

/// The stream holding snapshots of the log (see `replica::snapshot`).
pub const SNAPSHOT_STREAM: &str = "PBN_SNAPSHOTS";
/// The subjects of [`SNAPSHOT_STREAM`].
pub const SNAPSHOT_SUBJECTS: &str = "pbn.snapshot.>";

/// A replica as shown by `list` and `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// Name.
    pub name: String,
    /// Public key of its creds (a user of the AUTH account).
    pub public_key: String,
    /// `active` or `expired`.
    pub state: String,
    /// Created (unix seconds).
    pub created: i64,
    /// Expires (unix seconds); `0` never.
    pub expires: i64,
}

fn view(r: &ReplicaRecord, now: i64) -> ReplicaView {
    let expired = r.expires != 0 && r.expires <= now;
    ReplicaView {
        name: r.name.to_string(),
        public_key: r.public_key.to_string(),
        state: if expired { "expired" } else { "active" }.into(),
        created: r.created,
        expires: r.expires,
    }
}

/// The text table of replicas.
pub(super) fn text(s: &mut String, replicas: &[ReplicaView]) {
    use std::fmt::Write as _;
    let _ = writeln!(s, "{:<24} {:<8} {:<11} PUBLIC KEY", "NAME", "STATE", "EXPIRES");
    for r in replicas {
        let expires = if r.expires == 0 { "never".to_string() } else { r.expires.to_string() };
        let _ = writeln!(s, "{:<24} {:<8} {:<11} {}", r.name, r.state, expires, r.public_key);
    }
}

/// What a replica's user may publish in the AUTH account: the JetStream API and acks (the
/// account holds only pbn's streams), the log and snapshot subjects, the leases of the
/// publisher and the snapshot writer, and callout replies.
pub const PUB_ALLOW: &[&str] = &[
    "$JS.API.>",
    "$JS.ACK.>",
    LOG_SUBJECT,
    SNAPSHOT_SUBJECTS,
    "$KV.PBN_LEASES.>",
    "$SYS._INBOX.>",
];

/// What a replica's user may subscribe to: callout requests, appends to the log and its own
/// inbox (`_INBOX.<its key>.>`; the joiner's client uses that prefix).
pub fn sub_allow(key: &str) -> Vec<String> {
    vec![CALLOUT_SUBJECT.to_string(), LOG_SUBJECT.to_string(), format!("{}.>", inbox_prefix(key))]
}

/// The inbox prefix of a replica's client: its replies are its alone.
pub fn inbox_prefix(key: &str) -> String {
    format!("_INBOX.{key}")
}

/// The subject nats-server sends callout requests on (in the AUTH account).
const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// Add a replica: its AUTH user (creds minted now, shown once) and what joining needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaAdd {
    /// Name.
    pub name: String,
    /// Lifetime of its creds in seconds; none: they never expire.
    pub expires_secs: Option<u64>,
}

impl Command for ReplicaAdd {
    const NAME: &'static str = "replica_add";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        let key = store.bundle_key()?;
        let genesis = store.genesis()?.encode().map_err(store::StoreError::from)?;
        writing(store, |tx, fx| {
            let (record, creds) = self.add(tx, fx, ctx)?;
            let (store_key, passphrase) = match &key {
                BundleKey::Plain => (None, false),
                BundleKey::Key(text) => (Some(text.to_string()), false),
                BundleKey::Passphrase => (None, true),
            };
            Ok(Response::Replica {
                name: record.name.to_string(),
                public_key: record.public_key.to_string(),
                creds: creds.to_string(),
                store_key,
                passphrase,
                genesis: data_encoding::BASE64.encode(&genesis),
                stream: LOG_STREAM.into(),
            })
        })
    }
}

impl ReplicaAdd {
    fn add(
        &self,
        tx: &mut WriteTx,
        fx: &mut Effects,
        ctx: &Context,
    ) -> Result<(ReplicaRecord, zeroize::Zeroizing<String>), AdminError> {
        let name = Name::parse(&self.name)?;
        if let Some(secs) = self.expires_secs {
            check_lifetime("replica lifetime", secs)?;
            if secs == 0 {
                return Err(AdminError::Invalid("replica lifetime must be above 0 s".into()));
            }
        }
        let expires = self.expires_secs.map_or(0, |s| ctx.now.saturating_add_unsigned(s));
        let kp = KeyPair::generate(KeyKind::User);
        let key = UserPublicKey::parse(kp.public_key())?;
        let record = ReplicaRecord { name, public_key: key.clone(), created: ctx.now, expires };
        if !tx.insert_replica(&record)? {
            return Err(AdminError::Conflict { what: "replica", name: self.name.clone() });
        }
        let mut auth = tx.require_account(AUTH_ACCOUNT)?;
        let callout = auth.callout.get_or_insert_with(Default::default);
        callout.auth_users.push(key.clone());
        update_auth(tx, fx, &mut auth, ctx)?;
        let ttl = self.expires_secs.map(std::time::Duration::from_secs);
        let jwt = replica_jwt(&auth, &record.name, key.as_str(), ctx.now, ttl)?;
        Ok((record, issue::creds(&jwt, &kp.seed())))
    }
}

/// The user JWT of replica `name` (key `key`), signed by AUTH, with this build's permissions
/// ([`PUB_ALLOW`], [`sub_allow`]), issued at `now` and valid for `ttl` (none: no expiry).
pub(crate) fn replica_jwt(
    auth: &Account,
    name: &Name,
    key: &str,
    now: i64,
    ttl: Option<std::time::Duration>,
) -> Result<String, issue::IssueError> {
    let subs = sub_allow(key);
    let subs: Vec<&str> = subs.iter().map(String::as_str).collect();
    let name = format!("pbn-replica-{}", name.as_str());
    issue::internal_user_jwt(auth, key, &name, PUB_ALLOW, &subs, now, ttl)
}

/// Stores AUTH and queues its JWT for a push.
fn update_auth(
    tx: &mut WriteTx,
    fx: &mut Effects,
    auth: &mut Account,
    ctx: &Context,
) -> Result<(), AdminError> {
    auth.updated = ctx.now;
    tx.update_account(auth)?;
    enqueue(tx, fx, auth, OutboxAction::Upsert, ctx)
}

/// List replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaList {}

impl Command for ReplicaList {
    const NAME: &'static str = "replica_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let all = store::list_replicas(tx)?;
            Ok(Response::Replicas(all.iter().map(|r| view(r, ctx.now)).collect()))
        })
    }
}

/// Show a replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaShow {
    /// Name.
    pub name: String,
}

impl Command for ReplicaShow {
    const NAME: &'static str = "replica_show";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let r = store::get_replica(tx, &self.name)?.ok_or_else(|| not_found(&self.name))?;
            Ok(Response::Replicas(vec![view(&r, ctx.now)]))
        })
    }
}

fn not_found(name: &str) -> AdminError {
    AdminError::NotFound { what: "replica", name: name.into() }
}

/// Remove a replica: its key leaves AUTH's `auth_users` and is revoked in AUTH's JWT (pushed),
/// so the servers close its connections and refuse its creds; its record is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRemove {
    /// Name.
    pub name: String,
}

impl Command for ReplicaRemove {
    const NAME: &'static str = "replica_remove";
    const READ_ONLY: bool = false;

    fn run(&self, store: &Store, ctx: &Context) -> Result<Outcome, AdminError> {
        writing(store, |tx, fx| {
            let r = tx.delete_replica(&self.name)?.ok_or_else(|| not_found(&self.name))?;
            let mut auth = tx.require_account(AUTH_ACCOUNT)?;
            if let Some(callout) = auth.callout.as_mut() {
                callout.auth_users.retain(|k| *k != r.public_key);
            }
            auth.revoke(&r.public_key, ctx.now);
            update_auth(tx, fx, &mut auth, ctx)?;
            fx.revoked.push(r.public_key.clone());
            Ok(Response::Done {
                message: format!(
                    "replica {} removed (its key {} revoked)",
                    self.name, r.public_key
                ),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::init::{init_store, init_store_with};
    use crate::admin::{execute, Request};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) =
            init_store(&dir.path().join("s.redb"), "t", false, &Context::now()).unwrap();
        (dir, store)
    }

    fn run(store: &Store, req: impl Into<Request>) -> Result<Outcome, AdminError> {
        execute(store, &req.into(), &Context::now())
    }

    fn auth(store: &Store) -> Account {
        store.read(|tx| tx.require_account(AUTH_ACCOUNT)).unwrap()
    }

    #[test]
    fn add_lists_the_key_in_auth_users_and_remove_revokes_it() {
        let (_dir, store) = store();
        let add = ReplicaAdd { name: "r1".into(), expires_secs: Some(3600) };
        let out = run(&store, add.clone()).unwrap();
        let Response::Replica { public_key, creds, store_key, passphrase, .. } = out.response
        else {
            panic!("not a replica answer")
        };
        assert!(creds.contains("USER NKEY SEED") && store_key.is_none() && !passphrase);
        assert_eq!(out.effects.pushes.len(), 1, "AUTH is pushed");
        let key = UserPublicKey::parse(&public_key).unwrap();
        assert!(auth(&store).callout.unwrap().auth_users.contains(&key));
        let err = run(&store, add).unwrap_err();
        assert!(matches!(err, AdminError::Conflict { what: "replica", .. }), "{err:?}");

        let listed = run(&store, ReplicaList {}).unwrap().response;
        let Response::Replicas(v) = listed else { panic!("not a list") };
        assert_eq!(
            (v.len(), v[0].state.as_str(), v[0].public_key.as_str()),
            (1, "active", &*public_key)
        );

        let out = run(&store, ReplicaRemove { name: "r1".into() }).unwrap();
        assert_eq!(out.effects.revoked, vec![key.clone()]);
        let auth = auth(&store);
        assert!(!auth.callout.unwrap().auth_users.contains(&key));
        assert!(auth.revocations.contains_key(key.as_str()));
        let err = run(&store, ReplicaShow { name: "r1".into() }).unwrap_err();
        assert!(matches!(err, AdminError::NotFound { what: "replica", .. }), "{err:?}");
        let err = run(&store, ReplicaRemove { name: "r1".into() }).unwrap_err();
        assert!(matches!(err, AdminError::NotFound { what: "replica", .. }), "{err:?}");
    }

    #[test]
    fn bad_names_and_lifetimes_are_usage_errors() {
        let (_dir, store) = store();
        for add in [
            ReplicaAdd { name: "no spaces".into(), expires_secs: None },
            ReplicaAdd { name: "r".into(), expires_secs: Some(0) },
            ReplicaAdd { name: "r".into(), expires_secs: Some(u64::MAX) },
        ] {
            let err = run(&store, add).unwrap_err();
            assert_eq!(err.class(), crate::admin::ErrorClass::Usage, "{err}");
        }
    }

    #[test]
    fn the_answer_carries_the_store_key_and_never_shows_its_secrets_in_debug() {
        use crate::seal::{KeySource, StoreKey};
        let dir = tempfile::tempdir().unwrap();
        let key = StoreKey::generate();
        let text = key.to_file_text();
        let path = dir.path().join("s.redb");
        let ctx = Context::now();
        let source = Some(KeySource::Key(key));
        let (store, _) = init_store_with(&path, "t", false, &ctx, source).unwrap();
        let out = run(&store, ReplicaAdd { name: "r1".into(), expires_secs: None }).unwrap();
        let shown = format!("{:?}", out.response);
        let Response::Replica { creds, store_key, .. } = out.response else { panic!("answer") };
        assert_eq!(store_key.as_deref(), Some(text.as_str()));
        let seed = creds.lines().find(|l| l.starts_with("SU")).expect("a seed line");
        assert!(!shown.contains(seed) && !shown.contains(text.trim()), "{shown}");
        assert!(shown.contains("r1"), "{shown}");
    }
}
