//! The audit trail: every committed admin change, who made it and how it ended.
//!
//! [`audited_execute`] runs a request so that its write transaction also appends the entry
//! (see `Store::with_audit`): the change and its record commit together or not at all. A
//! failed change (nothing committed) and a refused request are recorded in a transaction of
//! their own. Reads are not recorded. The request is kept as JSON with every secret field
//! redacted ([`redact`]); creds and tokens created by a command are in its response, which is
//! never kept. Entries older than the retention are pruned whenever one is appended.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{execute, reading, AdminError, Command, Context, Outcome, Request, Response};
use crate::model::{AuditRecord, LOCAL_OWNER};
use crate::store::{Store, StoreRead};

/// How long entries are kept by default: 90 days (`audit_retention` in the config file).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// What replaces a secret in a recorded request.
pub const REDACTED: &str = "<redacted>";

/// Request fields that hold secrets (or hashes of them), at any depth.
const SECRET_FIELDS: &[&str] =
    &["password", "password_hash", "token", "seed", "creds", "secret", "jwt", "key_passphrase"];

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Admin name.
    pub name: String,
    /// Its public key; none for the local owner.
    pub key: Option<String>,
}

impl Actor {
    /// `pbn admin` on the store file.
    pub fn local() -> Actor {
        Actor { name: LOCAL_OWNER.into(), key: None }
    }
}

/// `value` with every secret field replaced by [`REDACTED`].
pub fn redact(mut value: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if SECRET_FIELDS.contains(&k.as_str()) && !v.is_null() {
                        *v = serde_json::Value::String(REDACTED.into());
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// The records a request names: its `account`, `name`, `id` and `subject` fields.
fn target(value: &serde_json::Value) -> String {
    let parts: Vec<String> = ["account", "name", "id", "subject"]
        .iter()
        .filter_map(|k| value.get(*k).and_then(|v| v.as_str()).map(|v| format!("{k}={v}")))
        .collect();
    parts.join(" ")
}

/// The entry for `actor` running `req` at `now_ms`, ending with `result`.
pub fn entry(actor: &Actor, req: &Request, now_ms: i64, result: String) -> AuditRecord {
    let value = match req {
        // Its records may be a whole file, with seeds and hashes: only their number is kept.
        Request::BulkImport(b) => {
            serde_json::json!({"op": req.name(), "records": b.records.len()})
        }
        _ => redact(serde_json::to_value(req).unwrap_or_default()),
    };
    AuditRecord {
        at_ms: now_ms,
        admin: actor.name.clone(),
        admin_key: actor.key.clone(),
        verb: req.name().into(),
        target: target(&value),
        request: value.to_string(),
        result,
    }
}

/// Appends `record` in a transaction of its own; a failure is logged (the command's own
/// result stands).
pub fn record(store: &Store, record: AuditRecord, retention: Duration) {
    let ms = retention_ms(retention);
    if let Err(e) = store.write(|tx| tx.append_audit(&record, ms)) {
        warn!(error = %e, verb = record.verb, "cannot record an audit entry");
    }
}

fn retention_ms(retention: Duration) -> i64 {
    i64::try_from(retention.as_millis()).unwrap_or(i64::MAX)
}

/// [`execute`] with the audit trail: a change commits with its entry; a failed change is
/// recorded on its own; reads are not recorded.
pub fn audited_execute(
    store: &Store,
    req: &Request,
    ctx: &Context,
    actor: &Actor,
    retention: Duration,
) -> Result<Outcome, AdminError> {
    if req.is_read_only() {
        return execute(store, req, ctx);
    }
    let ok = entry(actor, req, ctx.now_ms, "ok".into());
    let (result, committed) =
        store.with_audit(ok.clone(), retention_ms(retention), || execute(store, req, ctx));
    match &result {
        Err(e) => record(store, entry(actor, req, ctx.now_ms, format!("error: {e}")), retention),
        // A change that wrote nothing (minting creds records no key): recorded on its own.
        Ok(_) if !committed => record(store, ok, retention),
        Ok(_) => {}
    }
    result
}

/// List the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditList {
    /// Only entries from this time on (unix ms).
    pub since_ms: Option<i64>,
    /// Only this admin's entries.
    pub admin: Option<String>,
}

impl Command for AuditList {
    const NAME: &'static str = "audit_list";
    const READ_ONLY: bool = true;

    fn run(&self, store: &Store, _: &Context) -> Result<Outcome, AdminError> {
        reading(store, |tx| {
            let mut entries = tx.list_audit(self.since_ms.unwrap_or(i64::MIN))?;
            if let Some(admin) = &self.admin {
                entries.retain(|e| &e.admin == admin);
            }
            Ok(Response::Audit(entries))
        })
    }
}

/// The text table of audit entries.
pub(super) fn text(s: &mut String, entries: &[AuditRecord]) {
    use std::fmt::Write as _;
    let _ =
        writeln!(s, "{:<14} {:<20} {:<24} {:<30} RESULT", "TIME (MS)", "ADMIN", "VERB", "TARGET");
    for e in entries {
        let _ = writeln!(
            s,
            "{:<14} {:<20} {:<24} {:<30} {}",
            e.at_ms, e.admin, e.verb, e.target, e.result
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{UserAdd, UserPasswd};

    #[test]
    fn secrets_are_redacted_at_any_depth_and_targets_named() {
        let phc = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";
        let req = Request::from(UserPasswd { name: "alice".into(), password_hash: phc.into() });
        let e = entry(&Actor::local(), &req, 5, "ok".into());
        assert!(!e.request.contains("argon2"), "{}", e.request);
        assert!(e.request.contains(REDACTED));
        assert_eq!((e.verb.as_str(), e.target.as_str()), ("user_passwd", "name=alice"));
        assert_eq!(e.admin, LOCAL_OWNER);
        let nested = redact(serde_json::json!({"a": [{"seed": "SUAB"}], "token": null}));
        assert_eq!(nested, serde_json::json!({"a": [{"seed": REDACTED}], "token": null}));
        let add = Request::from(UserAdd {
            name: "u".into(),
            account: "APP".into(),
            ..Default::default()
        });
        assert_eq!(entry(&Actor::local(), &add, 1, "ok".into()).target, "account=APP name=u");
    }

    #[test]
    fn changes_are_recorded_with_their_transaction_failures_apart_and_reads_not_at_all() {
        use crate::admin::{AccountAdd, AccountList};
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Context::now();
        let path = dir.path().join("s.redb");
        let (store, _) = crate::admin::init::init_store(&path, "t", false, &ctx).unwrap();
        let owner = Actor::local();
        let run = |req: Request| audited_execute(&store, &req, &ctx, &owner, DEFAULT_RETENTION);
        run(AccountAdd { name: "APP".into(), ..Default::default() }.into()).unwrap();
        run(AccountAdd { name: "APP".into(), ..Default::default() }.into()).unwrap_err();
        run(AccountList {}.into()).unwrap();
        let trail = store.read(|tx| tx.list_audit(0)).unwrap();
        let seen: Vec<(&str, &str, bool)> =
            trail.iter().map(|e| (e.admin.as_str(), e.verb.as_str(), e.result == "ok")).collect();
        assert_eq!(seen, [(LOCAL_OWNER, "account_add", true), (LOCAL_OWNER, "account_add", false)]);
        assert!(trail[1].result.contains("already exists"), "{}", trail[1].result);
    }

    #[test]
    fn entries_older_than_the_retention_are_pruned_when_one_is_appended() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ctx = Context::now();
        let path = dir.path().join("s.redb");
        let (store, _) = crate::admin::init::init_store(&path, "t", false, &ctx).unwrap();
        let req = Request::from(crate::admin::AccountList {});
        let at = |ms| entry(&Actor::local(), &req, ms, "ok".into());
        for ms in [1_000, 2_000, 2_000, 9_000] {
            store.write(|tx| tx.append_audit(&at(ms), 5_000)).unwrap();
        }
        let left = store.read(|tx| tx.list_audit(0)).unwrap();
        assert_eq!(left.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [9_000]);
        store.write(|tx| tx.append_audit(&at(9_000), 5_000)).unwrap();
        assert_eq!(store.read(|tx| tx.list_audit(0)).unwrap().len(), 2, "same ms, both kept");
        assert_eq!(store.read(|tx| tx.list_audit(9_001)).unwrap().len(), 0);
    }
}
