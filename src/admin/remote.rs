//! The admin API's client: sends a typed [`Request`] to a running `pbn serve` and returns its
//! [`Response`], so `pbn admin --server URL --creds FILE` prints what local mode prints.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, RequestErrorKind};

use super::admins::envelope::Signed;
use super::api::{
    check_idempotency_key, new_idempotency_key, ApiError, Reply, IDEMPOTENCY_KEY_HEADER,
    MAX_REQUEST_BYTES, REQUEST_SUBJECT,
};
use super::{ErrorClass, Request, Response};
use crate::config::redact_url;
use crate::keys::KeyPair;
use zeroize::Zeroizing;

/// How long `pbn admin` waits for the connection and for the answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a pending request checks for a permissions violation.
const VIOLATION_POLL: Duration = Duration::from_millis(50);

/// Errors of a remote admin call. [`RemoteError::class`] gives the exit code's class.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The creds file cannot be read or is not a creds file.
    #[error("cannot use creds file {path}: {reason}")]
    Creds {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No connection to the server (the URL is shown without any password).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The server URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request is over the size the service accepts.
    #[error(transparent)]
    TooLarge(ApiError),
    /// The idempotency key given for a retry is malformed.
    #[error(transparent)]
    BadKey(ApiError),
    /// Nobody serves the admin API on that server's cluster.
    #[error("no pbn admin service answers at {0} (is `pbn serve` running and connected?)")]
    NoService(String),
    /// The server refused the request for the user's permissions.
    #[error("the server refused the request: {0} (are these admin creds?)")]
    NotPermitted(String),
    /// No answer in time. For a change (`key` is set) the outcome is unknown: it may have been
    /// applied, and the same request with the same key is applied at most once.
    #[error("no answer from the pbn admin service within {after:?}{}", retry_hint(.key))]
    Timeout {
        /// How long the client waited.
        after: Duration,
        /// The idempotency key of a change, to retry it safely.
        key: Option<String>,
    },
    /// The request could not be sent.
    #[error("admin request failed: {0}")]
    Request(String),
    /// The answer is not an admin reply.
    #[error("unreadable answer from the pbn admin service: {0}")]
    BadReply(ApiError),
    /// The service ran the request and it failed (its message is local mode's message).
    #[error("{message}")]
    Refused {
        /// The error class.
        class: ErrorClass,
        /// The error message.
        message: String,
    },
}

fn retry_hint(key: &Option<String>) -> String {
    match key {
        Some(key) => format!(
            "; the change may have been applied: check with `show` or `list`, or run the same \
             command again with `--idempotency-key {key}` (a request with the same key is \
             applied at most once, and a retry answers with the first result)"
        ),
        None => String::new(),
    }
}

impl RemoteError {
    /// The class of this error, for exit codes.
    pub fn class(&self) -> ErrorClass {
        match self {
            RemoteError::Refused { class, .. } => *class,
            RemoteError::Creds { .. } | RemoteError::TooLarge(_) | RemoteError::BadKey(_) => {
                ErrorClass::Usage
            }
            RemoteError::Connect { .. }
            | RemoteError::NoService(_)
            | RemoteError::NotPermitted(_)
            | RemoteError::Timeout { .. }
            | RemoteError::Request(_)
            | RemoteError::BadReply(_) => ErrorClass::Other,
        }
    }
}

/// The key pair of the admin whose creds file is `path` (its seed signs requests).
fn read_signer(path: &Path) -> Result<KeyPair, RemoteError> {
    let bad = |reason: String| RemoteError::Creds { path: path.to_path_buf(), reason };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
    let creds = crate::claims::parse_creds(&text).map_err(|e| bad(e.to_string()))?;
    creds.key_pair().map_err(|e| bad(e.to_string()))
}

/// The inbox prefix of the admin with public key `key`: replies to its requests come under it,
/// and an `account:` admin may subscribe to nothing else in the system account.
pub fn inbox_prefix(key: &str) -> String {
    format!("_INBOX.{key}")
}

/// A connection to a server as an admin user.
#[derive(Debug)]
pub struct AdminClient {
    client: async_nats::Client,
    url: String,
    timeout: Duration,
    /// Server errors (`-ERR`) seen on this connection, e.g. a permissions violation.
    errors: Arc<Mutex<Vec<String>>>,
    /// The idempotency key of the next change; a fresh random one when unset.
    idempotency_key: Option<String>,
    /// The admin's key pair (from the creds file): every request is signed with it.
    signer: KeyPair,
}

impl AdminClient {
    /// Connects to `url` with the user in `creds` (a creds file), waiting at most `timeout`
    /// for the connection and, later, for each answer.
    pub async fn connect(url: &str, creds: &Path, timeout: Duration) -> Result<Self, RemoteError> {
        let signer = read_signer(creds)?;
        let opts = ConnectOptions::with_credentials_file(creds)
            .await
            .map_err(|e| RemoteError::Creds { path: creds.to_path_buf(), reason: e.to_string() })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let seen = errors.clone();
        let client = opts
            .name("pbn-admin-client")
            .custom_inbox_prefix(inbox_prefix(signer.public_key()))
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            .event_callback(move |event| {
                let seen = seen.clone();
                async move {
                    if let Event::ServerError(e) = event {
                        seen.lock().unwrap_or_else(PoisonError::into_inner).push(e.to_string());
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| RemoteError::Connect { url: redact_url(url), reason: e.to_string() })?;
        let url = redact_url(url);
        Ok(AdminClient { client, url, timeout, errors, idempotency_key: None, signer })
    }

    /// Sends changes with idempotency key `key` (the user's retry of a request whose answer
    /// was lost) instead of a fresh random one. Errors for a malformed key.
    pub fn with_idempotency_key(mut self, key: &str) -> Result<Self, RemoteError> {
        check_idempotency_key(key).map_err(RemoteError::BadKey)?;
        self.idempotency_key = Some(key.to_string());
        Ok(self)
    }

    /// Sends `req` and returns the service's response, or its error as [`RemoteError::Refused`].
    pub async fn call(&self, req: &Request) -> Result<Response, RemoteError> {
        Ok(self.call_with_warnings(req).await?.0)
    }

    /// Like [`AdminClient::call`], also returning the service's warnings: the change is
    /// committed, but a follow-up (the push, closing sessions) was not confirmed.
    pub async fn call_with_warnings(
        &self,
        req: &Request,
    ) -> Result<(Response, Vec<String>), RemoteError> {
        // Invariant: requests are plain data (strings, numbers, lists), which always serialize.
        let payload = serde_json::to_vec(req).expect("admin requests always serialize");
        if payload.len() > MAX_REQUEST_BYTES {
            let size = payload.len();
            return Err(RemoteError::TooLarge(ApiError::TooLarge { size, max: MAX_REQUEST_BYTES }));
        }
        // Every request carries a key (reads too: harmless, and one code path); the service
        // applies a change with a given key at most once.
        let key = self.idempotency_key.clone().unwrap_or_else(new_idempotency_key);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY_HEADER, key.as_str());
        let signed = Signed::sign(&self.signer, crate::clock::unix_now_ms(), &key, &payload);
        for (name, value) in signed.headers() {
            headers.insert(name, value.as_str());
        }
        let change_key = (!req.is_read_only()).then_some(key);
        let request = self.client.request_with_headers(REQUEST_SUBJECT, headers, payload.into());
        tokio::pin!(request);
        // A refused publish gets no reply, only an `-ERR`: watch for it instead of timing out.
        let msg = loop {
            tokio::select! {
                r = &mut request => break r.map_err(|e| self.request_error(e, &change_key))?,
                _ = tokio::time::sleep(VIOLATION_POLL) => {
                    if let Some(violation) = self.violation() {
                        return Err(RemoteError::NotPermitted(violation));
                    }
                }
            }
        };
        let warnings = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(super::api::WARNING_HEADER))
            .map(|v| vec![v.as_str().to_string()])
            .unwrap_or_default();
        match Reply::parse(&msg.payload).map_err(RemoteError::BadReply)? {
            Reply::Ok(resp) => Ok((*resp, warnings)),
            Reply::Error(e) => Err(RemoteError::Refused { class: e.class, message: e.message }),
        }
    }

    fn request_error(&self, e: async_nats::RequestError, key: &Option<String>) -> RemoteError {
        match e.kind() {
            RequestErrorKind::NoResponders => RemoteError::NoService(self.url.clone()),
            RequestErrorKind::TimedOut => match self.violation() {
                Some(violation) => RemoteError::NotPermitted(violation),
                None => RemoteError::Timeout { after: self.timeout, key: key.clone() },
            },
            _ => RemoteError::Request(e.to_string()),
        }
    }

    /// The first permissions violation the server reported on this connection.
    fn violation(&self) -> Option<String> {
        let errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors.iter().find(|e| e.to_lowercase().contains("permissions violation")).cloned()
    }

    /// Flushes and closes the connection.
    pub async fn close(self) {
        let _ = self.client.drain().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_class_of_the_service_and_say_what_local_mode_says() {
        let refused = RemoteError::Refused {
            class: ErrorClass::Conflict,
            message: "account \"APP\" already exists".into(),
        };
        assert_eq!(refused.class(), ErrorClass::Conflict);
        assert_eq!(refused.to_string(), "account \"APP\" already exists");
        let creds = RemoteError::Creds { path: "x.creds".into(), reason: "missing".into() };
        assert_eq!(creds.class(), ErrorClass::Usage);
        let big = RemoteError::TooLarge(ApiError::TooLarge { size: 2, max: 1 });
        assert_eq!(big.class(), ErrorClass::Usage);
        for other in [
            RemoteError::NoService("nats://h:4222".into()),
            RemoteError::NotPermitted("Permissions Violation".into()),
            RemoteError::Timeout { after: DEFAULT_TIMEOUT, key: None },
        ] {
            assert_eq!(other.class(), ErrorClass::Other, "{other}");
        }
        let lost = RemoteError::Timeout { after: DEFAULT_TIMEOUT, key: Some("k-1".into()) };
        assert!(lost.to_string().contains("may have been applied"), "{lost}");
        assert!(lost.to_string().contains("--idempotency-key k-1"), "{lost}");
    }

    #[tokio::test]
    async fn an_unreadable_creds_file_is_a_usage_error_naming_the_file() {
        let missing = Path::new("/nonexistent/admin.creds");
        let err = AdminClient::connect("nats://127.0.0.1:1", missing, DEFAULT_TIMEOUT)
            .await
            .expect_err("no such file");
        assert!(matches!(&err, RemoteError::Creds { path, .. } if path == missing), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/admin.creds"));
    }
}
