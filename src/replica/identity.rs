//! A joined replica's creds kept current with this build.
//!
//! `pbn admin replica add` mints the replica's user JWT with the permissions of the build that
//! ran it ([`PUB_ALLOW`], [`sub_allow`]); a replica added by an older build lacks what later
//! builds use (the lease bucket, `$KV.PBN_LEASES.>`), and its publisher and snapshot writer
//! would be refused by the servers. So at start ([`with_current_permissions`], `pbn serve` on a
//! joined store) a replica whose kept JWT grants other permissions than this build's gets a
//! new one for the same key, name and expiry, signed by AUTH as `replica add` signs it, kept in
//! place of the old one. No log entry is needed: the JWT is this replica's own (kept in its
//! local identity, never replicated) and every replica holds AUTH's key, as the callout needs.
//! A replica whose record is gone or whose key AUTH revokes was removed: nothing is minted.

use std::collections::BTreeSet;

use serde_json::Value;
use tracing::{info, warn};

use crate::admin::replicas::{replica_jwt, sub_allow, PUB_ALLOW};
use crate::keys::KeyPair;
use crate::model::AUTH_ACCOUNT;
use crate::store::{get_replica, ReplicaIdentity, Store, StoreRead};

/// What a user JWT grants and when it expires, read from its claims (not verified: it is
/// this replica's own, read from its store).
#[derive(Debug, PartialEq, Eq)]
struct Grants {
    publish: BTreeSet<String>,
    subscribe: BTreeSet<String>,
    /// Unix seconds; 0: never.
    expires: i64,
}

fn grants(jwt: &str) -> Option<Grants> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let list = |path: &str| -> BTreeSet<String> {
        let items = claims.pointer(path).and_then(Value::as_array);
        items.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    Some(Grants {
        publish: list("/nats/pub/allow"),
        subscribe: list("/nats/sub/allow"),
        expires: claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
    })
}

/// Whether a replica with key `key` and the JWT's grants has this build's permissions.
fn current(have: &Grants, key: &str) -> bool {
    let publish: BTreeSet<String> = PUB_ALLOW.iter().map(|s| s.to_string()).collect();
    let subscribe: BTreeSet<String> = sub_allow(key).into_iter().collect();
    have.publish == publish && have.subscribe == subscribe
}

/// `id` with a JWT granting this build's permissions (see the module docs): `id` itself when
/// its JWT does, or when a new one cannot or must not be minted (logged).
pub(crate) fn with_current_permissions(store: &Store, id: ReplicaIdentity) -> ReplicaIdentity {
    match refreshed(store, &id, crate::clock::unix_now()) {
        Ok(Some(new)) => {
            info!(
                replica = id.name.as_str(),
                "re-issued this replica's creds with this build's permissions"
            );
            new
        }
        Ok(None) => id,
        Err(e) => {
            warn!(replica = id.name.as_str(), error = %e, "this replica's creds could not be re-issued with this build's permissions");
            id
        }
    }
}

/// The new identity, kept in `store`, when `id`'s JWT is out of date and may be replaced.
fn refreshed(
    store: &Store,
    id: &ReplicaIdentity,
    now: i64,
) -> Result<Option<ReplicaIdentity>, String> {
    let key = KeyPair::from_seed(&id.seed).map_err(|e| e.to_string())?.public_key().to_string();
    let have = grants(&id.jwt).ok_or("its JWT is not readable")?;
    if current(&have, &key) || (have.expires != 0 && have.expires <= now) {
        return Ok(None);
    }
    let name = id.name.clone();
    let (record, auth) = store
        .read(move |tx| {
            Ok::<_, crate::store::StoreError>((
                get_replica(tx, &name)?,
                tx.require_account(AUTH_ACCOUNT)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let Some(record) = record.filter(|r| r.public_key.as_str() == key) else { return Ok(None) };
    if auth.revocations.contains_key(&key) {
        return Ok(None);
    }
    let ttl =
        (have.expires != 0).then(|| std::time::Duration::from_secs((have.expires - now) as u64));
    let jwt = replica_jwt(&auth, &record.name, &key, now, ttl).map_err(|e| e.to_string())?;
    let new = ReplicaIdentity { jwt, ..id.clone() };
    store.set_replica_identity(&new).map_err(|e| e.to_string())?;
    Ok(Some(new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{execute, Context, ReplicaAdd, ReplicaRemove, Request, Response};

    /// A store with replica `r1` added, and r1's identity as its bundle gives it.
    fn added() -> (tempfile::TempDir, Store, ReplicaIdentity) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Context::now();
        let (store, _) =
            crate::admin::init::init_store(&dir.path().join("s.redb"), "t", false, &ctx).unwrap();
        let add = ReplicaAdd { name: "r1".into(), expires_secs: Some(3600) };
        let out = execute(&store, &Request::ReplicaAdd(add), &ctx).unwrap();
        let Response::Replica { creds, .. } = out.response else { panic!("a replica") };
        let creds = crate::claims::parse_creds(&creds).unwrap();
        let id = ReplicaIdentity { name: "r1".into(), jwt: creds.jwt.clone(), seed: creds.seed };
        (dir, store, id)
    }

    /// `id` with a JWT as a build before the lease bucket minted it.
    fn old(store: &Store, id: &ReplicaIdentity, now: i64) -> ReplicaIdentity {
        let key = KeyPair::from_seed(&id.seed).unwrap().public_key().to_string();
        let auth = store.read(|tx| tx.require_account(AUTH_ACCOUNT)).unwrap();
        let publish: Vec<&str> =
            PUB_ALLOW.iter().copied().filter(|s| !s.starts_with("$KV.")).collect();
        let subs = sub_allow(&key);
        let subs: Vec<&str> = subs.iter().map(String::as_str).collect();
        let ttl = Some(std::time::Duration::from_secs(1800));
        let jwt = crate::issue::internal_user_jwt(
            &auth,
            &key,
            "pbn-replica-r1",
            &publish,
            &subs,
            now,
            ttl,
        )
        .unwrap();
        ReplicaIdentity { jwt, ..id.clone() }
    }

    #[test]
    fn an_old_jwt_is_reissued_with_this_builds_permissions_and_its_expiry_kept() {
        let (_dir, store, id) = added();
        let now = crate::clock::unix_now();
        assert!(refreshed(&store, &id, now).unwrap().is_none(), "a current JWT is kept");
        let old = old(&store, &id, now);
        let before = grants(&old.jwt).unwrap();
        assert!(!before.publish.contains("$KV.PBN_LEASES.>"));
        let new = refreshed(&store, &old, now).unwrap().expect("re-issued");
        let after = grants(&new.jwt).unwrap();
        assert!(after.publish.contains("$KV.PBN_LEASES.>"), "{after:?}");
        assert_eq!(after.expires, before.expires, "the lifetime is not extended");
        assert_eq!(new.seed.expose(), id.seed.expose(), "the same key");
        let kept = store.replica_identity().unwrap().expect("kept");
        assert_eq!(kept.jwt, new.jwt);
        assert!(refreshed(&store, &new, now).unwrap().is_none(), "once");
    }

    #[test]
    fn a_removed_or_expired_replica_gets_no_new_jwt() {
        let (_dir, store, id) = added();
        let now = crate::clock::unix_now();
        let expired = old(&store, &id, now - 3600);
        assert!(refreshed(&store, &expired, now).unwrap().is_none());
        let old = old(&store, &id, now);
        let remove = Request::ReplicaRemove(ReplicaRemove { name: "r1".into() });
        execute(&store, &remove, &Context::now()).unwrap();
        assert!(refreshed(&store, &old, now).unwrap().is_none());
        assert!(store.replica_identity().unwrap().is_none(), "nothing kept");
    }
}
