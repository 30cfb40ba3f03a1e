//! The admin API's wire format: what `pbn admin --server` sends and `pbn serve` answers.
//!
//! A request is the JSON of one [`Request`] (at most [`MAX_REQUEST_BYTES`]) sent to
//! [`REQUEST_SUBJECT`] in the system account; the answer is a `Reply`:
//! `{"ok": <Response>}` or `{"error": {"class": "usage|not_found|conflict|locked|other",
//! "message": "..."}}`. The service is a NATS micro service named [`SERVICE_NAME`], so
//! `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` discover it.
//!
//! Who may call it is decided by nats-server, not by pbn: only users of the system account whose
//! permissions allow publishing to `pbn.admin.>` reach the endpoint (the `pbn-admin` role's
//! permissions, carried by the admin creds `pbn init` writes).

use serde::{Deserialize, Serialize};

use super::{AdminError, ErrorClass, Outcome, Request, Response};

/// Name of the micro service (as `$SRV.PING` reports it).
pub const SERVICE_NAME: &str = "pbn-admin";
/// Version the micro service reports: pbn's own.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The one endpoint: a JSON [`Request`] in, a JSON `Reply` out.
pub const REQUEST_SUBJECT: &str = "pbn.admin.request";
/// Largest request accepted. The biggest legitimate request (a role with long subject lists) is
/// a few KiB; anything near a server's payload limit is a mistake or an attack.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Header of a micro-service error reply (set beside the JSON error body, for generic clients).
pub const SERVICE_ERROR_HEADER: &str = "Nats-Service-Error";
/// Header of a successful reply whose follow-up was not confirmed (a push not yet applied on the
/// servers, a session that could not be closed): the change is committed, the client says so.
pub const WARNING_HEADER: &str = "Pbn-Warning";
/// Header of a request naming its idempotency key: a retry with the same key gets the first
/// attempt's answer instead of being applied again (see [`check_idempotency_key`]).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Pbn-Idempotency-Key";
/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// Header with the numeric code of a micro-service error reply.
pub const SERVICE_ERROR_CODE_HEADER: &str = "Nats-Service-Error-Code";

/// Why a request payload is not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Over [`MAX_REQUEST_BYTES`].
    #[error("request of {size} bytes is larger than the maximum of {max} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// Not JSON, or JSON that is not a request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A well-formed request whose `op` is not an admin operation.
    #[error("unknown operation {0:?}")]
    UnknownOp(String),
    /// An idempotency key that is empty, too long or not made of `A-Z a-z 0-9 - _`.
    #[error(
        "invalid idempotency key {0:?}: use 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters \
         A-Z, a-z, 0-9, '-' or '_'"
    )]
    BadIdempotencyKey(String),
}

/// Checks an idempotency key (one the client chose, or the user gave).
pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    let ok = (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        let shown: String = key.chars().take(MAX_IDEMPOTENCY_KEY_LEN + 1).collect();
        Err(ApiError::BadIdempotencyKey(shown))
    }
}

/// A fresh random idempotency key (128 bits, hex).
pub fn new_idempotency_key() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The error half of a `Reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What kind of failure (decides the exit code of `pbn admin`).
    pub class: ErrorClass,
    /// The error message, as local mode would print it.
    pub message: String,
}

/// The answer to one admin API request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The operation succeeded.
    Ok(Box<Response>),
    /// It did not (nothing was changed).
    Error(ErrorReply),
}

impl Reply {
    /// The reply for the outcome of [`super::execute`].
    pub fn from_result(result: &Result<Outcome, AdminError>) -> Reply {
        match result {
            Ok(outcome) => Reply::Ok(Box::new(outcome.response.clone())),
            Err(e) => Reply::error(e.class(), e.to_string()),
        }
    }

    /// An error reply.
    pub fn error(class: ErrorClass, message: impl Into<String>) -> Reply {
        Reply::Error(ErrorReply { class, message: message.into() })
    }

    /// The JSON bytes sent on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Invariant: every response is made of strings, numbers, lists and maps with string
        // keys, which always serialize.
        serde_json::to_vec(self).expect("admin replies always serialize")
    }

    /// Parses a reply received from the service.
    pub fn parse(payload: &[u8]) -> Result<Reply, ApiError> {
        serde_json::from_slice(payload).map_err(|e| ApiError::Malformed(e.to_string()))
    }

    /// The micro-service error code of an error reply (HTTP-like), `None` for success.
    pub fn error_code(&self) -> Option<u16> {
        match self {
            Reply::Ok(_) => None,
            Reply::Error(e) => Some(match e.class {
                ErrorClass::Usage => 400,
                ErrorClass::NotFound => 404,
                ErrorClass::Conflict => 409,
                ErrorClass::Locked => 423,
                ErrorClass::StoreKey => 403,
                ErrorClass::Other => 500,
                ErrorClass::Unauthenticated => 401,
                ErrorClass::Replay => 408,
                ErrorClass::AdminInactive => 401,
                ErrorClass::OutOfScope | ErrorClass::ReadOnlyAdmin => 403,
                ErrorClass::LogConflict => 409,
                ErrorClass::Unavailable => 503,
            }),
        }
    }
}

impl From<&ApiError> for Reply {
    fn from(e: &ApiError) -> Reply {
        Reply::error(ErrorClass::Usage, e.to_string())
    }
}

/// Decodes a request payload: size first (nothing bigger is parsed), then the JSON.
pub fn decode_request(payload: &[u8]) -> Result<Request, ApiError> {
    if payload.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::TooLarge { size: payload.len(), max: MAX_REQUEST_BYTES });
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let op = value.get("op").and_then(|v| v.as_str()).map(str::to_string);
    serde_json::from_value(value).map_err(|e| match op {
        // serde names an unknown tag "unknown variant"; anything else is a bad field.
        Some(op) if e.to_string().starts_with("unknown variant") => ApiError::UnknownOp(op),
        _ => ApiError::Malformed(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{OperatorShow, UserShow};

    #[test]
    fn requests_round_trip_and_bad_payloads_are_classified() {
        let req = Request::UserShow(UserShow { name: "alice".into() });
        let bytes = serde_json::to_vec(&req).unwrap();
        assert_eq!(decode_request(&bytes), Ok(req));
        assert_eq!(
            decode_request(br#"{"op":"operator_show"}"#),
            Ok(Request::OperatorShow(OperatorShow {}))
        );

        assert!(matches!(decode_request(b"{not json"), Err(ApiError::Malformed(_))));
        assert!(matches!(decode_request(b"[1,2]"), Err(ApiError::Malformed(_))));
        assert!(matches!(decode_request(br#"{"name":"x"}"#), Err(ApiError::Malformed(_))));
        assert!(matches!(
            decode_request(br#"{"op":"user_show","name":7}"#),
            Err(ApiError::Malformed(_))
        ));
        assert_eq!(
            decode_request(br#"{"op":"drop_tables"}"#),
            Err(ApiError::UnknownOp("drop_tables".into()))
        );
    }

    #[test]
    fn oversize_payloads_are_refused_before_parsing() {
        let mut big = br#"{"op":"user_show","name":""#.to_vec();
        big.resize(MAX_REQUEST_BYTES + 1, b'a');
        let err = decode_request(&big).unwrap_err();
        assert_eq!(err, ApiError::TooLarge { size: MAX_REQUEST_BYTES + 1, max: MAX_REQUEST_BYTES });
        // Exactly at the limit it is parsed (and here malformed: the string is not closed).
        big.truncate(MAX_REQUEST_BYTES);
        assert!(matches!(decode_request(&big), Err(ApiError::Malformed(_))));
    }

    #[test]
    fn replies_have_the_documented_json_shape() {
        let ok = Reply::Ok(Box::new(Response::Done { message: "done".into() }));
        let v: serde_json::Value = serde_json::from_slice(&ok.to_bytes()).unwrap();
        assert_eq!(v["ok"]["kind"], "done");
        assert_eq!(ok.error_code(), None);
        assert_eq!(Reply::parse(&ok.to_bytes()).unwrap(), ok);

        let err = Reply::from_result(&Err(AdminError::NotFound { what: "user", name: "x".into() }));
        let v: serde_json::Value = serde_json::from_slice(&err.to_bytes()).unwrap();
        assert_eq!(v["error"]["class"], "not_found");
        assert_eq!(v["error"]["message"], "user \"x\" not found");
        assert_eq!(err.error_code(), Some(404));

        let usage = Reply::from(&ApiError::UnknownOp("x".into()));
        let v: serde_json::Value = serde_json::from_slice(&usage.to_bytes()).unwrap();
        assert_eq!(v["error"]["class"], "usage");
        assert!(matches!(Reply::parse(b"{}"), Err(ApiError::Malformed(_))));
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let key = new_idempotency_key();
        assert_eq!(key.len(), 32);
        assert_ne!(key, new_idempotency_key());
        assert_eq!(check_idempotency_key(&key), Ok(()));
        for bad in ["", "a b", "x\u{1b}[31m", &"k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1)] {
            assert!(matches!(check_idempotency_key(bad), Err(ApiError::BadIdempotencyKey(_))));
        }
    }
}
