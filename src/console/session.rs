//! Console sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over
//! TLS), kept in memory with its admin and its CSRF token. A session names its admin by name
//! and key and the admin is checked at every request, so revoking an admin ends its sessions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use data_encoding::BASE64URL_NOPAD;
use rand::rngs::OsRng;
use rand::RngCore;

/// The session cookie's name.
pub const COOKIE: &str = "pbn_session";
/// The cookie of the sign-in form's CSRF token (before there is a session).
pub const SIGNIN_COOKIE: &str = "pbn_signin";
/// How long a session lasts from sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most. Each is a few hundred bytes; admins are few, and a full table
/// drops the oldest session rather than refusing a sign-in, so the bound costs a signed-in
/// admin nothing but memory stays fixed whatever is sent.
pub const MAX_SESSIONS: usize = 4096;

/// One signed-in admin (or, in the self-service table, user).
#[derive(Clone)]
pub struct Session {
    /// The admin's (or user's) name.
    pub admin: String,
    /// The admin's key at sign-in (a user's: the fingerprint of its password hash).
    pub key: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// When it started.
    pub started: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, <csrf redacted>)", self.admin)
    }
}

/// The live sessions by id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `admin` (key `key`); returns its id.
    pub fn start(&self, admin: &str, key: &str) -> String {
        let id = random_token();
        let session = Session {
            admin: admin.into(),
            key: key.into(),
            csrf: random_token(),
            started: Instant::now(),
        };
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.started.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS {
            let oldest = map.iter().min_by_key(|(_, s)| s.started).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session with id `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).filter(|s| s.started.elapsed() < LIFETIME).cloned()
    }

    /// Replaces session `id`'s key (a self-service user who changed their own password keeps
    /// the session that did it).
    pub fn rekey(&self, id: &str, key: &str) {
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(id) {
            s.key = key.into();
        }
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }
}

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    BASE64URL_NOPAD.encode(&b)
}

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/`, `Secure` when `secure`;
/// `max_age` 0 removes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_start_are_found_and_end() {
        let s = Sessions::default();
        let id = s.start("ops", "UKEY");
        let got = s.get(&id).expect("live");
        assert_eq!((got.admin.as_str(), got.key.as_str()), ("ops", "UKEY"));
        assert_eq!(got.csrf.len(), 43);
        assert!(s.get("other").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
        assert!(!format!("{got:?}").contains(&got.csrf));
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::default();
        let first = s.start("a", "k");
        for _ in 0..MAX_SESSIONS {
            s.start("b", "k");
        }
        assert!(s.get(&first).is_none(), "the oldest made room");
        assert_eq!(s.by_id.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; pbn_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie(COOKIE, "v", LIFETIME, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie(COOKIE, "v", LIFETIME, false).contains("Secure"));
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("a", "ab"));
    }
}
