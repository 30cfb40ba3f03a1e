//! pbn: a NATS auth-callout service and account-claims publisher on an embedded redb store.
//!
//! Module map (see `DESIGN.md` for the full contract):
//! - [`keys`]: typed nkeys (public keys per kind, redacted seeds, key pairs, xkeys).
//! - [`claims`]: NATS JWT v2 claims: encode + sign, decode + verify, validate, creds, xkey boxes.
//! - [`model`]: plain records (operator, accounts, roles, users, tokens) and their validation.
//! - [`store`]: the redb store: tables, versioned records, one write transaction per operation.
//! - [`auth`]: credential checks (argon2id passwords, API tokens, nkey signatures), cache, throttle.
//! - [`lifecycle`]: live effects of admin operations (which sessions to close, kicking them).
//!
//! `claims`, `model` and `keys` are pure: no I/O, no async.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod backoff;
pub mod claims;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fsutil;
pub mod issue;
pub mod keys;
pub mod model;
pub mod natsconf;
pub mod natsd;
pub mod server;
pub mod shutdown;
pub mod store;
