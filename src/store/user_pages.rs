//! Pages of users for the web console: read in key order from the users table or the
//! per-account index, starting after the last name shown, so a page costs the same with
//! 100 or 100,000 users (nothing but the page is read or decoded).

use redb::ReadableTable;

use super::read::decode_record;
use super::read::sealed::Source;
use super::{backend, tables, StoreError, StoreRead};
use crate::model::User;

/// Most users one page holds: a page is rendered whole, so its cost must stay small.
pub const MAX_PAGE: usize = 500;

/// One page of users and whether more follow.
#[derive(Debug, Clone)]
pub struct UserPage {
    /// The users, by name.
    pub users: Vec<User>,
    /// The name to continue after, when more users match.
    pub next: Option<String>,
}

/// Paged reads of users.
pub trait UserPages: StoreRead {
    /// Up to `limit` (at most [`MAX_PAGE`]) users whose names start with `prefix`, of
    /// `account` when given, after the name `after`, in name order.
    fn users_page(
        &self,
        account: Option<&str>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<UserPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let start = match after {
            Some(a) if a >= prefix => format!("{a}\0"),
            _ => prefix.to_string(),
        };
        let mut names = match account {
            Some(acc) => names_of_account(self, acc, prefix, &start, limit + 1)?,
            None => names_of_all(self, prefix, &start, limit + 1)?,
        };
        let next = (names.len() > limit).then(|| names[limit - 1].clone());
        names.truncate(limit);
        let table = self.table(tables::USERS)?;
        let mut users = Vec::with_capacity(names.len());
        for name in &names {
            let hit = table.get(name.as_str()).map_err(backend("reading a user"))?;
            if let Some(g) = hit {
                users.push(decode_record(self, "users", name, g.value())?);
            }
        }
        Ok(UserPage { users, next })
    }
}

impl<T: StoreRead + Source + ?Sized> UserPages for T {}

fn names_of_all<S: Source + ?Sized>(
    src: &S,
    prefix: &str,
    start: &str,
    n: usize,
) -> Result<Vec<String>, StoreError> {
    let table = src.table(tables::USERS)?;
    let mut out = Vec::with_capacity(n);
    for item in table.range(start..).map_err(backend("listing users"))? {
        let (k, _) = item.map_err(backend("listing users"))?;
        let name = k.value();
        if !name.starts_with(prefix) || out.len() == n {
            break;
        }
        out.push(name.to_string());
    }
    Ok(out)
}

fn names_of_account<S: Source + ?Sized>(
    src: &S,
    account: &str,
    prefix: &str,
    start: &str,
    n: usize,
) -> Result<Vec<String>, StoreError> {
    let table = src.table(tables::USERS_BY_ACCOUNT)?;
    let mut out = Vec::with_capacity(n);
    for item in table.range((account, start)..).map_err(backend("listing users"))? {
        let (k, _) = item.map_err(backend("listing users"))?;
        let (acc, name) = k.value();
        if acc != account || !name.starts_with(prefix) || out.len() == n {
            break;
        }
        out.push(name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{execute, AccountAdd, Context, Request, RoleAdd};
    use crate::store::Store;

    fn store_with_users(dir: &std::path::Path, n: usize) -> Store {
        let ctx = Context::now();
        let path = dir.join("pbn.redb");
        let store = crate::admin::init::init_store_with(&path, "t", false, &ctx, None).unwrap().0;
        for acc in ["A", "B"] {
            let add = AccountAdd { name: acc.into(), ..AccountAdd::default() };
            execute(&store, &Request::from(add), &ctx).unwrap();
        }
        let role = RoleAdd { name: "r".into(), ..RoleAdd::default() };
        execute(&store, &Request::from(role), &ctx).unwrap();
        store
            .write(|tx| {
                for i in 0..n {
                    let acc = if i % 2 == 0 { "A" } else { "B" };
                    let u = crate::model::User::new(
                        crate::model::Name::parse(&format!("u{i:05}")).unwrap(),
                        crate::model::Name::parse(acc).unwrap(),
                        crate::model::Name::parse("r").unwrap(),
                        ctx.now,
                    );
                    tx.insert_user(&u)?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        store
    }

    #[test]
    fn pages_follow_each_other_by_name_within_an_account_and_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_users(dir.path(), 1000);
        let first = store.read(|tx| tx.users_page(None, "", None, 100)).unwrap();
        assert_eq!(first.users.len(), 100);
        assert_eq!(first.users[0].name.as_str(), "u00000");
        assert_eq!(first.next.as_deref(), Some("u00099"));
        let second = store.read(|tx| tx.users_page(None, "", first.next.as_deref(), 100)).unwrap();
        assert_eq!(second.users[0].name.as_str(), "u00100");

        let of_b = store.read(|tx| tx.users_page(Some("B"), "u001", None, 500)).unwrap();
        assert!(of_b.users.iter().all(|u| u.account.as_str() == "B"));
        assert!(of_b.users.iter().all(|u| u.name.as_str().starts_with("u001")));
        assert_eq!(of_b.users.len(), 50);
        assert!(of_b.next.is_none());
        let last = store.read(|tx| tx.users_page(None, "u0099", None, 10)).unwrap();
        assert_eq!(last.users.len(), 10);
        assert!(last.next.is_none(), "exactly ten match");
        let none = store.read(|tx| tx.users_page(Some("A"), "zzz", None, 10)).unwrap();
        assert!(none.users.is_empty() && none.next.is_none());
    }
}
