//! Which sessions an admin change's effects close (no NATS needed: the registry is filled by
//! hand), and the notified push wait.

use super::*;
use crate::admin::init::init_store;
use crate::admin::{self, AdminError, Context, LimitPatch, Outcome, Request, RolePatch};
use crate::admin::{
    AccountAdd, AccountEdit, AccountRotateKeys, AccountSigningKeyAdd, AccountSigningKeyRemove,
    RoleAdd, RoleEdit, UserAdd, UserDelete, UserEdit,
};
use crate::keys::{KeyKind, KeyPair, ServerPublicKey, UserPublicKey};
use crate::model::{Limit, Name};

const NOW: i64 = 1_800_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    registry: SessionRegistry,
    server: ServerPublicKey,
    next_cid: std::cell::Cell<u64>,
}

fn ctx(now: i64) -> Context {
    Context { now, now_ms: now * 1000, defaults: crate::issue::default_permissions() }
}

/// Accounts `app` and `other`, roles `r` and `s`, users `amy` and `bob` (app, r) and `cat`
/// (other, r), `dan` (app, s).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = init_store(&dir.path().join("pbn.redb"), "t", false, &ctx(NOW)).unwrap();
    let f = Fixture {
        _dir: dir,
        store,
        registry: SessionRegistry::new(),
        server: ServerPublicKey::parse(KeyPair::generate(KeyKind::Server).public_key()).unwrap(),
        next_cid: std::cell::Cell::new(1),
    };
    for acc in ["app", "other"] {
        f.ok(Request::AccountAdd(AccountAdd {
            name: acc.into(),
            description: None,
            limits: LimitPatch::default(),
            disallow_bearer: false,
        }));
    }
    for role in ["r", "s"] {
        f.ok(Request::RoleAdd(RoleAdd { name: role.into(), role: RolePatch::default() }));
    }
    for (user, acc, role) in [("amy", "app", "r"), ("bob", "app", "r"), ("cat", "other", "r")] {
        f.add_user(user, acc, role);
    }
    f.add_user("dan", "app", "s");
    f
}

impl Fixture {
    fn ok(&self, req: Request) {
        admin::execute(&self.store, &req, &ctx(NOW)).unwrap_or_else(|e| panic!("{req:?}: {e}"));
    }

    fn add_user(&self, name: &str, account: &str, role: &str) {
        self.ok(Request::UserAdd(UserAdd {
            name: name.into(),
            account: account.into(),
            role: role.into(),
            email: None,
            description: None,
            password_hash: None,
            tags: Default::default(),
        }));
    }

    /// Registers a live session of `user` issued at `issued`; returns its client id.
    fn login(&self, user: &str, issued: i64) -> u64 {
        let u = self.store.read(|tx| tx.require_user(user)).unwrap();
        let acc = self.store.read(|tx| tx.require_account(u.account.as_str())).unwrap();
        let cid = self.next_cid.get();
        self.next_cid.set(cid + 1);
        let s = Session {
            server_id: self.server.clone(),
            client_id: cid,
            user: Name::parse(user).unwrap(),
            account: acc.public_key,
            user_nkey: Some(
                UserPublicKey::parse(KeyPair::generate(KeyKind::User).public_key()).unwrap(),
            ),
            issuer: None,
            issued,
            expires: issued + 3600,
            host: String::new(),
            method: None,
            since: issued,
            provider: None,
        };
        self.registry.try_admit(s, Limit::UNLIMITED, issued).unwrap();
        cid
    }

    /// Applies `req` at `now` and returns the client ids to kick, sorted (and forgets them).
    fn kicks_at(&self, req: Request, now: i64) -> Vec<u64> {
        let outcome = admin::execute(&self.store, &req, &ctx(now));
        let Outcome { effects, .. } = outcome.unwrap_or_else(|e| panic!("{req:?}: {e}"));
        let sessions = sessions_to_close(&effects, &self.registry);
        // As `kick` does once the servers closed them.
        for s in &sessions {
            self.registry.remove(s.server_id.as_str(), s.client_id);
        }
        let mut cids: Vec<u64> = sessions.iter().map(|s| s.client_id).collect();
        cids.sort_unstable();
        cids
    }

    fn kicks(&self, req: Request) -> Vec<u64> {
        self.kicks_at(req, NOW)
    }

    fn signing_keys(&self, account: &str) -> Vec<String> {
        let acc = self.store.read(|tx| tx.require_account(account)).unwrap();
        acc.signing_keys.iter().map(|k| k.public().to_string()).collect()
    }
}

fn edit(name: &str) -> Request {
    Request::UserEdit(UserEdit {
        name: name.into(),
        account: None,
        role: None,
        active: None,
        email: None,
        description: None,
        nkey: None,
        tags: Default::default(),
    })
}

fn with(req: Request, f: impl FnOnce(&mut Request)) -> Request {
    let mut req = req;
    f(&mut req);
    req
}

fn set_active(v: bool) -> impl FnOnce(&mut Request) {
    move |r| {
        if let Request::UserEdit(UserEdit { active, .. })
        | Request::AccountEdit(AccountEdit { active, .. }) = r
        {
            *active = Some(v);
        }
    }
}

#[test]
fn deactivating_deleting_moving_or_re_roling_a_user_kicks_only_that_user() {
    let f = fixture();
    let amy = [f.login("amy", NOW), f.login("amy", NOW)];
    let bob = f.login("bob", NOW);
    assert_eq!(f.kicks(with(edit("amy"), set_active(false))), amy.to_vec());
    // Already inactive: nothing more to close; reactivating closes nothing either.
    assert_eq!(f.kicks(with(edit("amy"), set_active(false))), Vec::<u64>::new());
    assert_eq!(f.kicks(with(edit("amy"), set_active(true))), Vec::<u64>::new());

    let same_role = with(edit("bob"), |r| {
        if let Request::UserEdit(UserEdit { role, email, .. }) = r {
            *role = Some("r".into());
            *email = Some("bob@example.com".into());
        }
    });
    assert_eq!(f.kicks(same_role), Vec::<u64>::new(), "no grant changed");
    let new_role = with(edit("bob"), |r| {
        if let Request::UserEdit(UserEdit { role, .. }) = r {
            *role = Some("s".into());
        }
    });
    assert_eq!(f.kicks(new_role), vec![bob]);

    let bob2 = f.login("bob", NOW);
    let moved = with(edit("bob"), |r| {
        if let Request::UserEdit(UserEdit { account, .. }) = r {
            *account = Some("other".into());
        }
    });
    assert_eq!(f.kicks(moved), vec![bob2]);

    let bob3 = f.login("bob", NOW);
    assert_eq!(f.kicks(Request::UserDelete(UserDelete { name: "bob".into() })), vec![bob3]);
}

#[test]
fn a_role_edit_kicks_its_users_when_what_it_grants_changes() {
    let f = fixture();
    let r_users = [f.login("amy", NOW), f.login("bob", NOW), f.login("cat", NOW)];
    f.login("dan", NOW);
    let describe = RolePatch { description: Some("just words".into()), ..RolePatch::default() };
    assert_eq!(
        f.kicks(Request::RoleEdit(RoleEdit { name: "r".into(), role: describe })),
        Vec::<u64>::new()
    );
    let narrow = RolePatch {
        pub_allow: admin::ListPatch::Set(vec!["orders.>".into()]),
        ..RolePatch::default()
    };
    assert_eq!(
        f.kicks(Request::RoleEdit(RoleEdit { name: "r".into(), role: narrow })),
        r_users.to_vec()
    );
}

#[test]
fn deactivating_an_account_kicks_its_sessions_only() {
    let f = fixture();
    let app = [f.login("amy", NOW), f.login("dan", NOW)];
    f.login("cat", NOW);
    let off = with(
        Request::AccountEdit(AccountEdit {
            name: "app".into(),
            description: None,
            limits: LimitPatch::default(),
            active: None,
            disallow_bearer: None,
        }),
        set_active(false),
    );
    assert_eq!(f.kicks(off.clone()), app.to_vec());
    assert_eq!(f.kicks(off), Vec::<u64>::new(), "already inactive");
}

#[test]
fn rotation_kicks_every_session_of_the_account_signed_before_it() {
    let f = fixture();
    let app = [f.login("amy", NOW - 100), f.login("bob", NOW - 1)];
    f.login("cat", NOW - 1);
    // The rotation's own second may hold either key's sessions (the push closes the old ones);
    // later ones are the new key's.
    f.login("dan", NOW);
    f.login("dan", NOW + 1);
    assert_eq!(
        f.kicks(Request::AccountRotateKeys(AccountRotateKeys { name: "app".into() })),
        app.to_vec()
    );
}

#[test]
fn removing_a_key_kicks_the_sessions_it_signed() {
    let f = fixture();
    let old = f.signing_keys("app").remove(0);
    let by_old = f.login("amy", NOW);
    let later = NOW + 10;
    admin::execute(
        &f.store,
        &Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: "app".into() }),
        &ctx(later),
    )
    .unwrap();
    // Logged in the second the new key was added: it may be either key's, so not kicked.
    f.login("dan", later);
    let by_new = f.login("bob", later + 5);
    let remove =
        Request::AccountSigningKeyRemove(AccountSigningKeyRemove { name: "app".into(), key: old });
    assert_eq!(f.kicks_at(remove, later + 20), vec![by_old]);
    assert_eq!(f.registry.of_user("bob").len(), 1, "bob {by_new} stays");
}

#[test]
fn a_failed_request_kicks_nobody() {
    let f = fixture();
    f.login("amy", NOW);
    let req = with(with(edit("amy"), set_active(false)), |r| {
        if let Request::UserEdit(UserEdit { account, .. }) = r {
            *account = Some("missing".into());
        }
    });
    let result = admin::execute(&f.store, &req, &ctx(NOW));
    assert!(matches!(result, Err(AdminError::Store(StoreError::NotFound { .. }))), "{result:?}");
    assert!(f.store.read(|tx| tx.require_user("amy")).unwrap().active, "nothing changed");
}

#[test]
fn kick_subjects_name_the_server() {
    assert_eq!(kick_subject("NABC"), "$SYS.REQ.SERVER.NABC.KICK");
}

#[test]
fn what_a_request_queued_is_reported() {
    let f = fixture();
    let queued = |req: Request| {
        let outcome = admin::execute(&f.store, &req, &ctx(NOW)).expect("request succeeds");
        let mut names: Vec<String> = outcome
            .effects
            .pushes
            .iter()
            .map(|p| {
                let entry = f.store.read(|tx| tx.get_outbox(&p.account)).unwrap().expect("queued");
                assert_eq!(entry.revision, p.revision, "the revision the change left");
                f.store.read(|tx| tx.require_account_by_key(&p.account)).unwrap().name.to_string()
            })
            .collect();
        names.sort();
        names
    };
    assert!(queued(with(edit("amy"), set_active(false))).is_empty(), "no creds: no push");
    assert_eq!(
        queued(Request::AccountRotateKeys(AccountRotateKeys { name: "app".into() })),
        ["app"]
    );
    // Queued again while still pending: a new revision counts as queued by this request.
    assert_eq!(
        queued(Request::AccountSigningKeyAdd(AccountSigningKeyAdd { name: "app".into() })),
        ["app"]
    );
    let off = with(
        Request::AccountEdit(AccountEdit {
            name: "other".into(),
            description: None,
            limits: LimitPatch::default(),
            active: None,
            disallow_bearer: None,
        }),
        set_active(false),
    );
    assert_eq!(queued(off), ["AUTH", "other"]);
}

#[tokio::test]
async fn waiting_for_a_push_ends_when_the_entry_is_gone_or_failed_as_notified() {
    let f = fixture();
    let key = f.store.read(|tx| tx.require_account("app")).unwrap().public_key;
    let entry = f.store.read(|tx| tx.get_outbox(&key)).unwrap().expect("queued");
    let push = [QueuedPush { account: key.clone(), revision: entry.revision }];
    let watch = std::sync::Arc::new(PushWatch::new());
    let short = Duration::from_millis(100);
    assert!(!wait_pushed(&f.store, &watch, &push, short).await, "still pending");

    // Marked failed and settled: the waiter wakes and gives up at once.
    let waiter = tokio::spawn({
        let (store, watch, push) = (f.store.clone(), watch.clone(), push.clone());
        async move { wait_pushed(&store, &watch, &push, WAIT_LONG).await }
    });
    let subscribed = tokio::time::Instant::now() + WAIT_LONG;
    while watch.is_empty() && tokio::time::Instant::now() < subscribed {
        tokio::task::yield_now().await;
    }
    let mut failed = entry.clone();
    failed.failed_at = Some(NOW * 1000);
    f.store.write(|tx| tx.update_outbox(&failed)).unwrap();
    watch.settled(&key);
    assert!(!waiter.await.unwrap(), "given up");

    // Pushed and settled: a waiter with a long deadline returns true long before it (without
    // the notification it would sleep until the deadline and return false).
    let waiter = tokio::spawn({
        let (store, watch, push) = (f.store.clone(), watch.clone(), push.clone());
        async move { wait_pushed(&store, &watch, &push, WAIT_LONG).await }
    });
    f.store.write(|tx| tx.delete_outbox(&key)).unwrap();
    watch.settled(&key);
    let started = std::time::Instant::now();
    assert!(waiter.await.unwrap(), "pushed");
    assert!(started.elapsed() < WAIT_LONG);
    assert!(wait_pushed(&f.store, &watch, &[], short).await, "nothing queued");
}

/// Longer than any test needs when the answer is already in the store.
const WAIT_LONG: Duration = Duration::from_secs(30);
