//! Unit tests of the registry: caps, confirmation, snapshots.

use super::*;
use crate::keys::{AccountPublicKey, KeyKind, KeyPair, ServerPublicKey, UserPublicKey};
use crate::model::Name;

fn session(user: &str, cid: u64, expires: i64) -> Session {
    let server = KeyPair::generate(KeyKind::Server);
    let acc = KeyPair::generate(KeyKind::Account);
    let u = KeyPair::generate(KeyKind::User);
    Session {
        server_id: ServerPublicKey::parse(server.public_key()).unwrap(),
        client_id: cid,
        user: Name::parse(user).unwrap(),
        account: AccountPublicKey::parse(acc.public_key()).unwrap(),
        user_nkey: Some(UserPublicKey::parse(u.public_key()).unwrap()),
        issuer: None,
        issued: 0,
        expires,
        host: "127.0.0.1".into(),
        method: Some("password".into()),
        since: 0,
        provider: None,
    }
}

#[test]
fn cap_counts_live_sessions_only() {
    let r = SessionRegistry::new();
    let two = Limit::try_from(2).unwrap();
    assert_eq!(r.try_admit(session("bob", 1, 100), two, 10), Ok(0));
    assert_eq!(r.try_admit(session("bob", 2, 20), two, 10), Ok(1));
    assert_eq!(r.try_admit(session("bob", 3, 100), two, 10), Err(2));
    // the second one expired at 20: room again at 30
    assert_eq!(r.try_admit(session("bob", 3, 100), two, 30), Ok(1));
    assert_eq!(r.try_admit(session("eve", 1, 100), Limit::UNLIMITED, 30), Ok(0));
    assert_eq!(r.try_admit(session("eve", 2, 100), Limit::DISABLED, 30), Err(1));
}

#[test]
fn remove_and_prune() {
    let r = SessionRegistry::new();
    let s = session("bob", 7, 50);
    let server = s.server_id.to_string();
    r.try_admit(s, Limit::UNLIMITED, 0).unwrap();
    r.try_admit(session("amy", 8, 10), Limit::UNLIMITED, 0).unwrap();
    assert_eq!(r.of_user("bob").len(), 1);
    assert!(r.remove(&server, 7).is_some());
    assert!(r.of_user("bob").is_empty());
    assert_eq!(r.prune(11), 1);
    assert!(r.is_empty());
}

#[test]
fn unconfirmed_sessions_are_dropped_only_while_events_are_watched() {
    let r = SessionRegistry::new();
    let one = Limit::try_from(1).unwrap();
    let (a, b) = (session("bob", 1, 100), session("bob", 2, 100));
    let server_a = a.server_id.to_string();
    // Not watching: a session without a connect event is kept (it may be live).
    r.try_admit(a, one, 0).unwrap();
    assert_eq!(r.prune_unconfirmed(Duration::ZERO), 0);
    r.remove(&server_a, 1);
    r.set_watching(true);
    r.try_admit(b, one, 0).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(r.prune_unconfirmed(Duration::from_secs(60)), 0, "not timed out yet");
    assert_eq!(r.prune_unconfirmed(Duration::ZERO), 1);
    // The slot is free again; a confirmed session stays.
    let c = session("bob", 3, 100);
    let server_c = c.server_id.to_string();
    assert_eq!(r.try_admit(c, one, 0), Ok(0));
    assert!(r.confirm(&server_c, 3));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(r.prune_unconfirmed(Duration::ZERO), 0);
    assert_eq!(r.of_user("bob").len(), 1);
}

/// A session as the servers report it (another replica admitted it).
fn reported(user: &str, cid: u64) -> Session {
    Session { user_nkey: None, issued: 0, expires: i64::MAX, ..session(user, cid, 0) }
}

#[test]
fn sessions_the_servers_report_count_against_the_cap() {
    let r = SessionRegistry::new();
    let two = Limit::try_from(2).unwrap();
    assert!(r.observe(reported("bob", 1)));
    assert!(r.observe(reported("bob", 2)));
    assert_eq!(r.try_admit(session("bob", 3, 100), two, 10), Err(2));
    assert_eq!(r.prune(i64::MAX - 1), 0, "reported sessions end by their disconnect event");
    let s = r.of_user("bob").pop().unwrap();
    r.remove(s.server_id.as_str(), s.client_id);
    assert_eq!(r.try_admit(session("bob", 3, 100), two, 10), Ok(1));
}

#[test]
fn an_own_session_reported_by_the_server_is_confirmed_not_doubled() {
    let r = SessionRegistry::new();
    let s = session("bob", 7, 100);
    r.try_admit(s.clone(), Limit::UNLIMITED, 0).unwrap();
    assert!(r.observe(Session { user_nkey: None, ..s.clone() }));
    assert_eq!(r.len(), 1);
    r.set_watching(true);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(r.prune_unconfirmed(Duration::ZERO), 0, "confirmed by the report");
    assert!(r.of_user("bob")[0].user_nkey.is_some(), "the admitted record is kept");
}

#[test]
fn a_snapshot_adds_listed_drops_missed_and_keeps_newer_and_ended() {
    let r = SessionRegistry::new();
    let old = reported("amy", 1);
    r.observe(old.clone());
    let own = session("amy", 2, 100);
    r.try_admit(own.clone(), Limit::UNLIMITED, 0).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    r.begin_sync();
    let during = reported("amy", 3);
    r.observe(during.clone());
    let listed_then_gone = reported("amy", 4);
    r.observe(listed_then_gone.clone());
    r.remove(listed_then_gone.server_id.as_str(), 4);
    let listed = reported("amy", 5);
    let (added, dropped) = r.finish_sync(vec![listed.clone(), listed_then_gone]);
    assert_eq!((added, dropped), (1, 1), "5 added; 1 was missed by the events");
    let mut cids: Vec<u64> = r.of_user("amy").iter().map(|s| s.client_id).collect();
    cids.sort_unstable();
    assert_eq!(cids, vec![2, 3, 5], "unconfirmed own and newer sessions stay; ended one not back");
    assert_eq!(r.finish_sync(vec![]), (0, 0), "no snapshot under way: nothing happens");
}

#[test]
fn the_registry_is_bounded() {
    let r = SessionRegistry::new();
    {
        let mut inner = r.lock();
        let template = reported("zed", 0);
        for cid in 0..MAX_SESSIONS as u64 {
            let s = Session { client_id: cid, ..template.clone() };
            let k = key(&s);
            inner.sessions.insert(k, s);
        }
    }
    assert!(!r.observe(reported("amy", 1)), "full: not recorded");
    assert!(r.try_admit(session("amy", 2, 100), Limit::UNLIMITED, 0).is_err(), "full: refused");
}
