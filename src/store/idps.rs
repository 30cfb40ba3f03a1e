//! Identity providers and the users their logins created: reads ([`IdpRead`]) and writes.
//!
//! A provider's `issuer` is unique among providers (a token names its provider by `iss`). The
//! link table `idp_users` says which user records a provider's logins made (`--provision`):
//! a login may only ever reuse a record its own provider made, never a local user's.

use redb::ReadableTable;

use super::read::get_record;
use super::tables;
use super::{backend, RecordKind, StoreError, StoreRead, WriteTx};
use crate::model::{IdentityProvider, MAX_IDPS};

/// Reads of identity providers, on read and write transactions alike.
pub trait IdpRead: StoreRead {
    /// The provider `name`, if any.
    fn get_idp(&self, name: &str) -> Result<Option<IdentityProvider>, StoreError> {
        get_record(self, tables::IDPS, name)
    }

    /// The provider `name`, or `NotFound`.
    fn require_idp(&self, name: &str) -> Result<IdentityProvider, StoreError> {
        self.get_idp(name)?
            .ok_or_else(|| StoreError::NotFound { kind: RecordKind::Idp, name: name.into() })
    }

    /// Every provider, by name (at most [`MAX_IDPS`]).
    fn list_idps(&self) -> Result<Vec<IdentityProvider>, StoreError> {
        let table = self.table(tables::IDPS)?;
        let mut names = Vec::new();
        for item in table.iter().map_err(backend("listing identity providers"))? {
            let (k, _) = item.map_err(backend("listing identity providers"))?;
            names.push(k.value().to_string());
        }
        drop(table);
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.extend(self.get_idp(&name)?);
        }
        Ok(out)
    }

    /// The provider whose issuer is exactly `issuer`.
    fn idp_by_issuer(&self, issuer: &str) -> Result<Option<IdentityProvider>, StoreError> {
        Ok(self.list_idps()?.into_iter().find(|p| p.issuer == issuer))
    }

    /// The provider whose login created user `user`, if one did.
    fn provisioned_by(&self, user: &str) -> Result<Option<String>, StoreError> {
        let table = self.table(tables::IDP_USERS)?;
        let hit = table.get(user).map_err(backend("reading idp users"))?;
        Ok(hit.map(|g| g.value().to_string()))
    }

    /// The users provider `provider`'s logins created, by name.
    fn users_of_idp(&self, provider: &str) -> Result<Vec<String>, StoreError> {
        let table = self.table(tables::IDP_USERS)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(backend("listing idp users"))? {
            let (user, by) = item.map_err(backend("listing idp users"))?;
            if by.value() == provider {
                out.push(user.value().to_string());
            }
        }
        Ok(out)
    }
}

impl<T: StoreRead + ?Sized> IdpRead for T {}

impl WriteTx {
    /// Stores a new provider; `Conflict` if its name or its issuer is taken or the store holds
    /// [`MAX_IDPS`] already.
    pub fn insert_idp(&mut self, idp: &IdentityProvider) -> Result<(), StoreError> {
        let name = idp.name.as_str();
        let all = self.list_idps()?;
        if all.iter().any(|p| p.name == idp.name) {
            return Err(StoreError::Conflict { kind: RecordKind::Idp, name: name.into() });
        }
        if all.len() >= MAX_IDPS {
            let name = format!("{name} (the store holds the maximum of {MAX_IDPS})");
            return Err(StoreError::Conflict { kind: RecordKind::Idp, name });
        }
        self.check_issuer(idp, &all)?;
        self.put_record(tables::IDPS, name, idp)
    }

    /// Replaces an existing provider; `NotFound` if missing, `Conflict` if another provider
    /// has its issuer.
    pub fn update_idp(&mut self, idp: &IdentityProvider) -> Result<(), StoreError> {
        self.require_idp(idp.name.as_str())?;
        let all = self.list_idps()?;
        self.check_issuer(idp, &all)?;
        self.put_record(tables::IDPS, idp.name.as_str(), idp)
    }

    fn check_issuer(
        &self,
        idp: &IdentityProvider,
        all: &[IdentityProvider],
    ) -> Result<(), StoreError> {
        match all.iter().find(|p| p.issuer == idp.issuer && p.name != idp.name) {
            Some(_) => {
                Err(StoreError::Conflict { kind: RecordKind::Idp, name: idp.issuer.clone() })
            }
            None => Ok(()),
        }
    }

    /// Removes a provider and its links to the users it created (the user records stay for
    /// the caller to delete); returns it and those users. `NotFound` if missing.
    pub fn delete_idp(
        &mut self,
        name: &str,
    ) -> Result<(IdentityProvider, Vec<String>), StoreError> {
        let idp = self.require_idp(name)?;
        let users = self.users_of_idp(name)?;
        let mut links = self.open(tables::IDP_USERS)?;
        for u in &users {
            links.remove(u.as_str()).map_err(backend("writing idp users"))?;
        }
        drop(links);
        self.remove_record(tables::IDPS, name)?;
        Ok((idp, users))
    }

    /// Records that provider `provider`'s login created user `user` (or drops the link with
    /// `None`).
    pub fn link_idp_user(&mut self, user: &str, provider: Option<&str>) -> Result<(), StoreError> {
        let mut links = self.open(tables::IDP_USERS)?;
        match provider {
            Some(p) => links.insert(user, p).map(drop),
            None => links.remove(user).map(drop),
        }
        .map_err(backend("writing idp users"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeySource, Name, DEFAULT_LEEWAY_SECS};
    use crate::store::Store;

    fn idp(name: &str, issuer: &str) -> IdentityProvider {
        IdentityProvider {
            name: Name::parse(name).unwrap(),
            issuer: issuer.into(),
            audience: "nats".into(),
            keys: KeySource::Discovery,
            username_claim: "sub".into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            provision: false,
            mappings: vec![],
            default: None,
            created: 1,
            updated: 1,
        }
    }

    #[test]
    fn providers_are_unique_by_name_and_issuer_and_take_their_links_along() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().join("s.redb")).unwrap();
        store.write(|tx| tx.insert_idp(&idp("kc", "https://kc/realms/a"))).unwrap();
        let dup = store.write(|tx| tx.insert_idp(&idp("kc", "https://other"))).unwrap_err();
        assert!(matches!(dup, StoreError::Conflict { kind: RecordKind::Idp, .. }), "{dup:?}");
        let same_iss = store.write(|tx| tx.insert_idp(&idp("kc2", "https://kc/realms/a")));
        assert!(matches!(same_iss, Err(StoreError::Conflict { .. })), "{same_iss:?}");
        store.write(|tx| tx.insert_idp(&idp("gh", "https://gh"))).unwrap();
        let found = store.read(|tx| tx.idp_by_issuer("https://gh")).unwrap().unwrap();
        assert_eq!(found.name.as_str(), "gh");
        store.write(|tx| tx.link_idp_user("alice", Some("kc"))).unwrap();
        store.write(|tx| tx.link_idp_user("bob", Some("gh"))).unwrap();
        assert_eq!(store.read(|tx| tx.provisioned_by("alice")).unwrap().as_deref(), Some("kc"));
        let (gone, users) = store.write(|tx| tx.delete_idp("kc")).unwrap();
        assert_eq!((gone.name.as_str(), users), ("kc", vec!["alice".to_string()]));
        assert_eq!(store.read(|tx| tx.provisioned_by("alice")).unwrap(), None);
        assert_eq!(store.read(|tx| tx.provisioned_by("bob")).unwrap().as_deref(), Some("gh"));
        let missing = store.write(|tx| tx.delete_idp("kc")).unwrap_err();
        assert!(matches!(missing, StoreError::NotFound { kind: RecordKind::Idp, .. }));
    }

    #[test]
    fn a_schema_3_store_opens_with_empty_provider_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        drop(Store::create(&path).unwrap());
        {
            // Make it a schema-3 file: no provider tables, version 3.
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.delete_table(tables::IDPS).unwrap();
            txn.delete_table(tables::IDP_USERS).unwrap();
            txn.open_table(tables::META).unwrap().insert(tables::SCHEMA_VERSION_KEY, 3).unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.read(|tx| tx.schema_version()).unwrap(), tables::SCHEMA_VERSION);
        assert!(store.read(|tx| tx.list_idps()).unwrap().is_empty());
        store.write(|tx| tx.insert_idp(&idp("kc", "https://kc"))).unwrap();
    }
}
