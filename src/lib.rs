//! pbn: a NATS auth-callout service and account-claims publisher on an embedded redb store.
//!
//! # Map
//! The pure layers (no network, no tasks; callers pass the time in):
//! - `keys`: typed nkeys (public keys per kind, redacted seeds, key pairs, xkeys with their
//!   boxes precomputed per peer). Public.
//! - `claims`: NATS JWT v2 claims: encode + sign, decode + verify, validate, creds, xkey boxes.
//!   Public: a complete NATS JWT library, checked against Go-made vectors.
//! - `model`: plain records (operator, accounts, roles, users, tokens, outbox entries, callout
//!   sessions) with their validation, and the effects of an admin change ([`Effects`]).
//! - `seal`: XChaCha20-Poly1305 sealing of seeds under the store key. Public.
//! - `store`: the redb store: tables, versioned records, one write transaction per operation,
//!   seeds sealed under the store key (opened once per record version), rekey; every write's
//!   journal of raw table operations and its replay on another store (`store::journal`).
//! - `auth`: credential checks (argon2id passwords, API tokens, nkey signatures), cache, throttles.
//! - `issue`: minting: operator, account and user JWTs, creds, callout responses.
//! - `admin`: the admin commands, one type each ([`Command`]), run by [`execute`] in one store
//!   transaction that returns the answer and the change's effects ([`Outcome`]); its wire format
//!   (`admin::api`) and remote client ([`AdminClient`]); creating a store ([`init_store`]).
//!
//! The runtime, `server` (`pbn serve`, [`run`]): two managed NATS connections
//! (`server::connection`), the callout (`server::callout`), the claims publisher
//! (`server::publisher`), the callout session registry (`server::sessions`), the admin API
//! (`server::admin_api`), the application of effects (`server::lifecycle`), and the optional
//! HTTP listener with health, readiness and Prometheus metrics (`server::http`,
//! `server::metrics`), audit events on NATS (`server::audit`) and what `pbn status` shows
//! (`server::status`). `replica`: the log of journals on JetStream (append with an expected
//! last sequence, catch up, follow) and, in replicated mode, the replica `pbn serve` keeps
//! (`replica::node`: its view followed, every write through the log).
//!
//! At the edge: `config` (raw TOML and flags into checked [`Settings`]), `natsconf` (nats-server
//! configuration), [`natsd`] (the one nats-server harness of `pbn up`, the tests and the load
//! benchmark; public), `cli` (the binary: parse, dispatch, exit codes), and the small shared parts
//! `clock`, `backoff`, `shutdown`, `fsutil`.
//!
//! # The two flows
//! - **A login**: nats-server → `$SYS.REQ.USER.AUTH` → `server::callout::listener` →
//!   `Pipeline::handle` (decode, decrypt) → `authn` (password, token, nkey, creds; throttles) →
//!   admit (caps, CIDRs, session registry) → `issue::sign_user` → the signed response.
//! - **An admin change**: `pbn admin` (local store, or `pbn admin --server` → `server::admin_api`)
//!   → [`execute`] → the command's `run`: one write transaction that changes the records, queues
//!   the account JWT pushes in the outbox and records its [`Effects`] → the runtime waits for the
//!   publisher to push (notified per outbox entry) and kicks the sessions the effects name. The
//!   publisher drains the outbox to every server (`$SYS.REQ.CLAIMS.UPDATE`, read back).
//!
//! The runtime imports the pure layers, never the reverse; only the admin API imports `admin`.
//! `DESIGN.md` describes the architecture in full.

#![warn(missing_docs)]

mod admin;
mod auth;
mod backoff;
pub mod claims;
mod cli;
mod clock;
mod config;
mod console;
mod fsutil;
mod issue;
pub mod keys;
mod model;
mod natsconf;
pub mod natsd;
mod replica;
pub mod seal;
mod server;
mod shutdown;
mod store;

pub use admin::admins::envelope::Signed as SignedAdminRequest;
pub use admin::admins::guard::Denied;
pub use admin::api::{decode_request, MAX_REQUEST_BYTES, REQUEST_SUBJECT, SERVICE_NAME};
pub use admin::bulk;
pub use admin::init::{admin_creds, auth_account, init_store, init_store_with, trust};
pub use admin::remote::{AdminClient, RemoteError};
pub use admin::{
    execute, AccountAdd, AccountDelete, AccountEdit, AccountList, AccountRotateKeys, AccountShow,
    AccountSigningKeyAdd, AccountSigningKeyRemove, AccountView, AdminError, Command, Context,
    ErrorClass, ExportAdd, ExportKind, ExportRemove, ImportAdd, ImportRemove, LimitPatch,
    LimitsView, ListPatch, NatsConfTrust, OperatorAdminCreds, OperatorShow, OperatorView,
    OutboxList, OutboxRetry, OutboxView, Outcome, Request, Response, RoleAdd, RoleDelete, RoleEdit,
    RoleList, RolePatch, RoleShow, RoleView, ShareView, TokenAdd, TokenList, TokenRevoke,
    TokenView, UserAdd, UserCreds, UserDelete, UserEdit, UserList, UserPasswd, UserShow, UserView,
};
pub use admin::{AdminAdd, AdminDelete, AdminList, AdminRevoke, AdminShow, AdminView, AuditList};
pub use admin::{AdminPasswd, AdminTokenAdd, AdminTokenList, AdminTokenRevoke};
pub use admin::{IdpAdd, IdpDelete, IdpEdit, IdpList, IdpMap, IdpShow, IdpUnmap, IdpView};
pub use admin::{ReplicaAdd, ReplicaList, ReplicaRemove, ReplicaShow, ReplicaView};
pub use admin::{SessionKick, SessionList, SessionView};
pub use auth::oidc::{OidcError, TOKEN_USER as OIDC_TOKEN_USER};
pub use auth::{
    hash_password, hash_password_with, token_hash, ApiTokenSecret, PasswordParams, Secret,
};
pub use cli::args::LogFormat;
pub use cli::{log_filter, log_format, run as run_cli, Cli, Failure};
pub use clock::unix_now;
pub use config::{
    CalloutSettings, ConfigError, PublisherSettings, RawConfig, RawPublisher, ReplicaSettings,
    Settings,
};
pub use issue::{creds, default_permissions, internal_user_jwt, sentinel_jwt, user_jwt, UserSpec};
pub use model::{
    Account, AccountKind, AdminRecord, AdminScope, ApiToken, AuditRecord, CloseSessions, Effects,
    Limit, Name, QueuedPush, Role, User, AUTH_ACCOUNT, LOCAL_OWNER, SYS_ACCOUNT,
};
pub use natsconf::{render, write_configs, Layout, RenderedConfig, Trust};
pub use replica::bundle::BUNDLE_VERSION;
pub use replica::{catch_up, follow, Log, ReplicaError, LOG_STREAM, LOG_SUBJECT};
pub use replica::{
    compact_once, join, Bundle, BundleError, Compaction, JoinError, Joined, Manifest,
    SnapshotError, Snapshots,
};
pub use server::callout::listener::{serve as serve_callout, CALLOUT_SUBJECT, XKEY_HEADER};
pub use server::callout::{CalloutError, Handled, Pipeline, PipelineOptions};
pub use server::connection::{
    ConnState, Connection, ConnectionAuth, ConnectionError, ConnectionSettings, Credentials,
    CredentialsError, CredentialsProvider,
};
pub use server::http::HttpError;
pub use server::publisher::{pending_jwt, Publisher, CLAIMS_UPDATE, SERVER_PING};
pub use server::sessions::{
    snapshot_paged as connz_sessions, SessionRegistry, SessionsError, CONFIRM_TIMEOUT,
};
pub use server::{run, run_with_store, ServerError};
pub use shutdown::channel as shutdown_channel;
pub use store::{
    Journal, JournalError, Op, ReadTx, Rows, SnapshotRows, Store, StoreError, StoreRead, WriteTx,
    JOURNAL_VERSION, MAX_JOURNAL_BYTES, SERVICE_COMMAND,
};
