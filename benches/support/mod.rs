//! Fixtures shared by the benches: a served store (operator, SYS, AUTH, one managed account and
//! an unlimited role) and fast bulk user inserts.
//!
//! Each bench target compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use pbn::{AccountAdd, RoleAdd};
use std::path::Path;

use pbn::Store;
use pbn::{token_hash, ApiTokenSecret};
use pbn::{ApiToken, Name, User};
use pbn::{Context, LimitPatch, Request, RolePatch};

/// The managed account the bench users live in.
pub const ACCOUNT: &str = "bench";
/// The role of the bench users: unlimited connections, default permissions.
pub const ROLE: &str = "bench";
/// A syntactically valid argon2id PHC string, for users whose password is never checked.
///
/// Lookups decode the whole record, so bulk users carry a hash of realistic size.
pub const FAKE_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2g$K3u2Jt9Bf2mX0hX2gU0Jb8Yy1Xc5wQ4d6Qy3zVbY2aE";

/// Creates a sealed store at `path` with the built-in accounts (AUTH with an xkey when `xkey`), the
/// managed account [`ACCOUNT`] and the role [`ROLE`] (unlimited connections per user).
pub fn served_store(path: &Path, xkey: bool) -> Store {
    let ctx = Context::now();
    // Sealed, as `pbn init` makes stores (key file beside it, where a `pbn serve` child finds
    // it): logins pay for opening sealed seeds.
    let key = pbn::seal::StoreKey::generate();
    let mut key_path = path.as_os_str().to_owned();
    key_path.push(".key");
    std::fs::write(&key_path, key.to_file_text().as_bytes()).expect("write the store key");
    let secret = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&key_path, secret).expect("chmod the store key");
    let key = Some(pbn::seal::KeySource::Key(key));
    let (store, _) =
        pbn::init_store_with(path, "bench", xkey, &ctx, key).expect("a fresh temp path");
    let requests = [
        Request::AccountAdd(AccountAdd {
            name: ACCOUNT.into(),
            description: Some("bench users".into()),
            limits: LimitPatch::default(),
            disallow_bearer: false,
        }),
        Request::RoleAdd(RoleAdd { name: ROLE.into(), role: RolePatch::default() }),
    ];
    for req in &requests {
        pbn::execute(&store, req, &ctx).expect("bench records are valid");
    }
    store
}

/// What [`bulk_users`] made.
pub struct BulkUsers {
    /// User names, in insertion order.
    pub names: Vec<String>,
    /// The API token of each user (same order), when tokens were asked for.
    pub tokens: Vec<String>,
}

/// Inserts `count` users named `{prefix}{i}` into [`ACCOUNT`] with role [`ROLE`], in
/// transactions of `batch` users (one durable commit per batch instead of per user).
///
/// `password_hash(i)` gives each user's PHC string (or none); with `tokens` every user gets one
/// fresh API token, returned in clear so clients can log in with it.
pub fn bulk_users(
    store: &Store,
    prefix: &str,
    count: usize,
    batch: usize,
    tokens: bool,
    password_hash: impl Fn(usize) -> Option<String>,
) -> BulkUsers {
    let now = pbn::unix_now();
    let account = Name::parse(ACCOUNT).expect("a valid name");
    let role = Name::parse(ROLE).expect("a valid name");
    let mut out = BulkUsers { names: Vec::with_capacity(count), tokens: Vec::new() };
    let mut start = 0;
    while start < count {
        let end = (start + batch.max(1)).min(count);
        let mut chunk = Vec::with_capacity(end - start);
        for i in start..end {
            let name = format!("{prefix}{i}");
            let mut user = User::new(
                Name::parse(&name).expect("bench names are valid"),
                account.clone(),
                role.clone(),
                now,
            );
            user.email = Some(format!("{name}@example.com"));
            user.password_hash = password_hash(i);
            if tokens {
                let secret = ApiTokenSecret::generate();
                user.tokens.push(ApiToken {
                    id: "bench".into(),
                    label: "bench".into(),
                    hash: token_hash(secret.expose()),
                    created: now,
                    expires: None,
                });
                out.tokens.push(secret.expose().to_string());
            }
            out.names.push(name);
            chunk.push(user);
        }
        store
            .write(|tx| -> Result<(), pbn::StoreError> {
                for user in &chunk {
                    tx.insert_user(user)?;
                }
                Ok(())
            })
            .expect("bulk users are valid and new");
        start = end;
    }
    out
}

/// A tiny deterministic generator (xorshift64*), so lookups hit scattered keys without an
/// extra dependency.
pub struct Scatter(u64);

impl Scatter {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Scatter(seed | 1)
    }

    /// The next index below `bound`.
    pub fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1) as u64) as usize
    }
}
