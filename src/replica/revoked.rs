//! A joined replica removed while it could not read the log (the servers closed its
//! connection once they applied the AUTH account's new JWT, before it applied its removal)
//! learns it from that JWT: looked up through the system connection, which the removal does
//! not touch.

use std::time::Duration;

use async_nats::Client;
use tokio::sync::watch;

use super::{Replica, ReplicaError};

/// How often the AUTH account's JWT is looked up while the replica's own connection is down:
/// a reconnect attempt of the connection takes about as long.
const POLL: Duration = Duration::from_secs(2);

/// The longest wait for the servers' answer to one lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

impl Replica {
    /// Returns [`ReplicaError::Revoked`] once the JWT of the AUTH account `auth` (its public
    /// key) that the servers hold revokes `key` (this replica's user), looked up through
    /// `system` every [`POLL`] while this replica's own connection is down; `Ok` on `stop`.
    pub(crate) async fn revoked(
        &self,
        name: &str,
        key: &str,
        auth: &str,
        system: watch::Receiver<Option<Client>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ReplicaError> {
        let subject = format!("$SYS.REQ.ACCOUNT.{auth}.CLAIMS.LOOKUP");
        loop {
            tokio::select! {
                _ = crate::shutdown::requested(&mut stop) => return Ok(()),
                _ = tokio::time::sleep(POLL) => {}
            }
            if self.log().is_ok() {
                continue;
            }
            let Some(client) = system.borrow().clone() else { continue };
            let asked = client.request(subject.clone(), Vec::new().into());
            let Ok(Ok(reply)) = tokio::time::timeout(LOOKUP_TIMEOUT, asked).await else { continue };
            if revokes(&reply.payload, key) {
                let e = ReplicaError::Revoked { name: name.to_string() };
                tracing::error!(error = %e, "stopping after a grace period");
                return Err(e);
            }
        }
    }
}

/// Whether the account JWT `jwt` lists `key` in its revocations. Its signature is not checked:
/// it comes from the servers over the system connection, and the answer only stops this
/// replica.
fn revokes(jwt: &[u8], key: &str) -> bool {
    let Some(payload) = jwt.split(|b| *b == b'.').nth(1) else { return false };
    let Ok(bytes) = data_encoding::BASE64URL_NOPAD.decode(payload) else { return false };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
    claims.pointer("/nats/revocations").and_then(|r| r.get(key)).is_some()
}

#[cfg(test)]
mod tests {
    use super::revokes;

    fn jwt(claims: serde_json::Value) -> Vec<u8> {
        let body = data_encoding::BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
        format!("eyJhbGciOiJlZDI1NTE5LW5rZXkifQ.{body}.sig").into_bytes()
    }

    #[test]
    fn a_revocation_of_the_key_is_seen_and_nothing_else_is() {
        let revoked = jwt(serde_json::json!({ "nats": { "revocations": { "UABC": 5 } } }));
        assert!(revokes(&revoked, "UABC"));
        assert!(!revokes(&revoked, "UOTHER"));
        assert!(!revokes(&jwt(serde_json::json!({ "nats": {} })), "UABC"));
        assert!(!revokes(b"not a jwt", "UABC"));
    }
}
