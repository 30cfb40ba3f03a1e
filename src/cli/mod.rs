//! The command line: clap definitions ([`args`]) and what each command does.
//!
//! This is the binary's edge: errors are `anyhow` with context here, and [`run`] returns them
//! as a [`Failure`] that carries its exit class (see [`exit`] for how each error is classified).

mod admin_token;
mod admins;
pub mod args;
mod audit_list;
pub mod audit_tail;
mod bulk;
mod check;
pub mod exit;
mod idp;
mod nats_conf;
pub mod output;
pub(crate) mod rekey;
mod replicas;
pub(crate) mod requests;
mod secrets;
mod serve;
mod session;
pub mod status;
pub mod store_key;
mod up;
mod up_cluster;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::admin::remote::{self, AdminClient};
use crate::admin::{self, AdminError, Context, Response};
use crate::store::{Store, StoreError};
pub use args::{Cli, Command};

pub use exit::Failure;
use output::outln;

/// The log filter for a command line from `base` (`--log` or the default), adjusted for `pbn check` (which reports the
/// server's reason itself rather than through the client library's log lines).
pub fn log_filter(cli: &Cli, base: &str) -> String {
    match cli.command {
        Command::Check(_) => check::log_filter(base),
        _ => base.to_string(),
    }
}

/// The log format: `--log-format` or `PBN_LOG_FORMAT` when given (`explicit`), else the
/// `log_format` key of `pbn serve --config FILE`, else text. A file that cannot be read or a
/// bad value is reported when the command resolves its settings.
pub fn log_format(cli: &Cli, explicit: bool) -> args::LogFormat {
    let from_file = match &cli.command {
        Command::Serve(a) if !explicit => a.config.as_deref(),
        _ => None,
    };
    let key = from_file.and_then(|p| crate::config::RawConfig::from_file(p).ok()?.log_format);
    match key.as_deref() {
        Some("json") => args::LogFormat::Json,
        Some("text") => args::LogFormat::Text,
        _ => cli.log_format,
    }
}

/// Runs a parsed command line; a failure carries the exit code it ends the process with.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let done = match cli.command {
        Command::Init(a) => init(a),
        Command::NatsConf(a) => nats_conf::nats_conf(*a),
        Command::Admin(a) => admin_cmd(*a),
        Command::Serve(a) => serve::serve(a),
        Command::Up(a) => up::up(a),
        Command::Check(a) => check::check(a),
        Command::Status(a) => status::status(a),
    };
    done.map_err(Failure::from)
}

/// The default place of the admin creds: `admin.creds` beside the store file.
pub fn admin_creds_path(store: &Path) -> PathBuf {
    store.with_file_name(ADMIN_CREDS_FILE)
}

/// File name of the admin creds `pbn init` writes beside the store.
pub const ADMIN_CREDS_FILE: &str = "admin.creds";

/// Mints the creds of the first named admin (living `expires`) from `store` into `file`
/// (mode 0600).
fn write_admin_creds(
    store: &Store,
    file: secrets::SecretFile,
    expires: Option<Duration>,
) -> Result<()> {
    let secs = expires.map(|d| d.as_secs().max(1));
    let creds = admin::init::admin_creds_expiring(store, &Context::now(), secs)
        .context("cannot mint admin creds")?;
    file.write(&creds)
}

fn init(a: args::InitArgs) -> Result<()> {
    let ctx = Context::now();
    let store_path = &a.store.store;
    let creds_path = a.admin_creds.clone().unwrap_or_else(|| admin_creds_path(store_path));
    // Never overwrite a secret: an existing file may be another store's admin creds. Named with
    // --admin-creds that is a mistake; beside the store it is skipped (a warning says so).
    let creds_exist = crate::fsutil::occupied(&creds_path);
    if creds_exist && a.admin_creds.is_some() && !store_path.exists() {
        let name = creds_path.display().to_string();
        return Err(AdminError::Conflict { what: "admin creds file", name }.into());
    }
    // Opened first: an unwritable path fails before a store exists without its admin creds.
    let file = (!creds_exist).then(|| secrets::SecretFile::open(&creds_path)).transpose()?;
    let (key, key_written) = store_key::for_init(store_path, a.store.key_file.as_deref())?;
    let init = admin::init::init_store_with(store_path, &a.operator, a.xkey, &ctx, Some(key));
    let (store, report) = match init {
        Ok(done) => done,
        Err(e) => {
            if let Some(file) = file {
                file.discard();
            }
            // A key generated for this store goes with it: it would seal nothing.
            if let Some(written) = &key_written {
                let _ = std::fs::remove_file(written);
            }
            return Err(anyhow::Error::new(e)
                .context(format!("cannot initialise store {}", store_path.display())));
        }
    };
    if let Some(file) = file {
        write_admin_creds(&store, file, a.expires)?;
    }
    if let Some(written) = &key_written {
        outln!("store key:      {} (back it up apart from the store)", written.display())?;
    }
    print_init_report(&report, &creds_path, creds_exist, store_path)
}

/// What `pbn init` made, and where the admin creds are (or why they were not written).
fn print_init_report(
    report: &admin::init::InitReport,
    creds_path: &Path,
    creds_exist: bool,
    store_path: &Path,
) -> Result<()> {
    outln!("created store {}", report.store)?;
    outln!("operator:       {}", report.operator)?;
    outln!("system account: {}", report.system_account)?;
    outln!("auth account:   {}", report.auth_account)?;
    outln!("service user:   {}", report.service_user)?;
    if let Some(x) = &report.xkey {
        outln!("callout xkey:   {x}")?;
    }
    if creds_exist {
        eprintln!(
            "warning: {} exists and was left alone; mint admin creds for this store with \
             `pbn admin --store {} operator admin-creds --out FILE`",
            creds_path.display(),
            store_path.display()
        );
    } else {
        outln!(
            "admin creds:    {} (for pbn admin --server URL --creds FILE)",
            creds_path.display()
        )?;
    }
    outln!("next: pbn nats-conf --store {} --out DIR", store_path.display())
}

/// How long a local command waits for a store another process holds.
pub(super) const STORE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Opens the store for writing as `pbn admin`, waiting for a busy lock, with its key (see
/// [`store_key::source`]).
pub(crate) fn open_store(path: &std::path::Path, key_file: Option<&Path>) -> Result<Store> {
    let opened = store_key::open_with(path, key_file, |key| {
        Store::open_for_with(path, "pbn admin", STORE_LOCK_WAIT, key)
    })?;
    store_context(path, opened)
}

/// Opens the store read-only (a `0444` file works; nothing is written), waiting for a busy lock.
pub(super) fn open_store_read_only(
    path: &std::path::Path,
    key_file: Option<&Path>,
) -> Result<Store> {
    let opened = store_key::open_with(path, key_file, |key| {
        Store::open_read_only_with(path, STORE_LOCK_WAIT, key)
    })?;
    store_context(path, opened)
}

fn store_context(path: &std::path::Path, opened: Result<Store, StoreError>) -> Result<Store> {
    opened.map_err(|e| open_error(path, e))
}

/// The error of opening the store at `path`, with a hint when `pbn serve` may hold it.
fn open_error(path: &std::path::Path, e: StoreError) -> anyhow::Error {
    let hint = match e {
        StoreError::Locked { ref holder, .. }
            if holder.as_ref().is_none_or(|h| h.command != "pbn admin") =>
        {
            "\nhint: stop `pbn serve`, or administer it remotely: pbn admin --server URL --creds FILE ..."
        }
        _ => "",
    };
    anyhow::Error::new(e).context(format!("cannot open store {}{hint}", path.display()))
}

/// `pbn admin`: the same request, executed on the local store or by the running service
/// (`--server URL --creds FILE`), and the same output either way.
fn admin_cmd(a: args::AdminArgs) -> Result<()> {
    if let args::AdminCommand::Audit(audit_list::AuditCommand::Tail(t)) = &a.command {
        return audit_tail::run(a.server.as_deref(), a.creds.as_deref(), t);
    }
    if let args::AdminCommand::Import(_) | args::AdminCommand::Export(_) = &a.command {
        return bulk::run(&a);
    }
    if let args::AdminCommand::Store(args::StoreCommand::Rekey(r)) = &a.command {
        return rekey::rekey(&a, r);
    }
    let req = requests::build(&a.command)?;
    // Sessions live in the running service: without --server, ask the one beside the store.
    let local_service = matches!(a.command, args::AdminCommand::Session(_))
        .then(|| (session::LOCAL_SERVER.to_string(), admin_creds_path(&a.store.store)));
    let bundle = match &a.command {
        args::AdminCommand::Replica(r) => replicas::prepare(r, a.server.as_deref())?,
        _ => None,
    };
    let (result, out) = match (&a.server, &a.creds, &local_service) {
        (Some(url), Some(creds), _) | (None, _, Some((url, creds))) => {
            let out = creds_out(&a)?;
            (remote_execute(url, creds, a.idempotency_key.as_deref(), &req), out)
        }
        _ => {
            let store = if req.is_read_only() {
                open_store_read_only(&a.store.store, a.store.key_file.as_deref())?
            } else {
                open_store(&a.store.store, a.store.key_file.as_deref())?
            };
            let out = creds_out(&a)?;
            let (ctx, owner) = (Context::now(), admin::audit::Actor::local());
            let retention = admin::audit::DEFAULT_RETENTION;
            let result = admin::audit::audited_execute(&store, &req, &ctx, &owner, retention);
            let result = result.map(|o| o.response);
            (result.map_err(anyhow::Error::from), out)
        }
    };
    match (result, bundle) {
        (Ok(resp), Some((path, servers))) => replicas::write_bundle(&resp, &path, servers, a.json),
        (Ok(resp), None) => print_response(&a, &resp, out),
        (Err(e), _) => {
            if let Some(file) = out {
                file.discard();
            }
            Err(e)
        }
    }
}

/// The file `user creds --out FILE` writes, prepared before the request runs: a bad path, an
/// existing file without `--force` or a symlink fails before the old creds are revoked.
fn creds_out(a: &args::AdminArgs) -> Result<Option<secrets::SecretFile>> {
    use args::{AdminCommand as C, OperatorCommand as O, UserCommand as U};
    Ok(match &a.command {
        C::User(U::Creds { out: Some(path), force, .. })
        | C::Operator(O::AdminCreds { out: Some(path), force })
        | C::Admin(admins::AdminAdminCommand::Add { out: path, force, .. }) => {
            Some(secrets::SecretFile::open_with(path, *force)?)
        }
        _ => None,
    })
}

/// Sends `req` to the admin API through the server at `url`, as the user of `creds`.
fn remote_execute(
    url: &str,
    creds: &Path,
    key: Option<&str>,
    req: &admin::Request,
) -> Result<Response> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut client = AdminClient::connect(url, creds, remote::DEFAULT_TIMEOUT).await?;
        if let Some(key) = key {
            client = client.with_idempotency_key(key)?;
        }
        let result = client.call_with_warnings(req).await;
        client.close().await;
        let (resp, warnings) = result?;
        for w in warnings {
            eprintln!("warning: {w}");
        }
        Ok(resp)
    })
}

fn print_response(
    a: &args::AdminArgs,
    resp: &Response,
    out: Option<secrets::SecretFile>,
) -> Result<()> {
    use args::{AccountCommand as A, AdminCommand as C, OperatorCommand as O};
    match (&a.command, resp, out) {
        (C::Operator(O::Show { jwt: true }), Response::Operator(o), _) if !a.json => {
            outln!("{}", o.jwt)
        }
        (C::Account(A::Show { jwt: true, .. }), Response::Account(acc), _) if !a.json => {
            outln!("{}", acc.jwt.as_deref().unwrap_or_default())
        }
        (_, Response::Creds { creds, public_key, revoked, .. }, Some(file)) => {
            let path = file.path().to_path_buf();
            file.write(creds)?;
            if a.json {
                let v =
                    serde_json::json!({"file": path, "public_key": public_key, "revoked": revoked});
                outln!("{v}")
            } else {
                outln!(
                    "wrote {} (user key {public_key}; {} previous creds revoked)",
                    path.display(),
                    revoked.len()
                )
            }
        }
        _ if a.json => outln!("{}", serde_json::to_string_pretty(resp)?),
        _ => output::out(&resp.to_text()),
    }
}
