//! clap definitions for the `pbn` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, stable across releases (also shown by `pbn --help`).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure (I/O, NATS, a corrupt store, ...)
  2  usage error (bad flags or values)
  3  not found (store, account, role, user, token)
  4  conflict (name exists, record still in use, store exists)
  5  store locked (a running `pbn serve` holds it; use `pbn admin --server URL --creds FILE`)
  6  `pbn check`: login refused (wrong password, unknown or disabled user)
  7  `pbn check`: permission violation reported by the server
  8  `pbn check`: no answer within --timeout
  9  store key missing or wrong (an encrypted store needs its key file or passphrase)
 10  admin API: the request is not signed by a known admin (creds not minted by `admin add`)
 11  admin API: the request is stale (clocks more than 30 s apart) or replayed
 12  admin API: the admin was revoked or has expired
 13  admin API: outside the admin's scope (an account admin asked for another account)
 14  admin API: a read-only admin asked for a change
 15  replicated mode: the change kept conflicting with changes made through other replicas
 16  replicated mode: the log on JetStream is unavailable (no quorum); nothing was changed
 17  replicated mode: `pbn serve` stopped because its replica was removed (creds revoked)

141  standard output closed early (e.g. piped into `head`), as for a process ended by SIGPIPE";

/// pbn: NATS auth callout and account-claims publisher on an embedded store.
#[derive(Debug, Parser)]
#[command(name = "pbn", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `pbn=debug`.
    #[arg(
        long,
        global = true,
        env = "PBN_LOG",
        default_value = "warn",
        help_heading = "Global options"
    )]
    pub log: String,
    /// Log line format: `text` (human-readable) or `json` (one JSON object a line, for log
    /// collectors).
    #[arg(
        long,
        global = true,
        env = "PBN_LOG_FORMAT",
        value_enum,
        default_value = "text",
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new store: operator, SYS, AUTH, service user, sentinel, admin role.
    Init(InitArgs),
    /// Write nats-server config files for the store's operator and accounts.
    NatsConf(Box<NatsConfArgs>),
    /// Manage records (accounts, roles, users, tokens, creds).
    Admin(Box<AdminArgs>),
    /// Run the auth callout service (and, with it, the claims publisher).
    Serve(ServeArgs),
    /// First run: init a store if missing, write the config, start nats-server, serve.
    Up(UpArgs),
    /// Log in as a user through the callout and do a publish/subscribe round trip.
    Check(CheckArgs),
    /// What a running `pbn serve` is doing (its HTTP listener, or --server/--creds).
    Status(crate::cli::status::StatusArgs),
}

/// `pbn check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Server URL (without credentials).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub server: String,
    /// User name.
    #[arg(long)]
    pub user: String,
    /// Subject for the round trip (the user's role must allow publishing and subscribing it).
    #[arg(long)]
    pub subject: String,
    /// How to read the password.
    #[command(flatten)]
    pub password: PasswordArgs,
    /// Give up after this long, e.g. `10s` (a refused login or a permission violation is
    /// reported as soon as the server sends it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `pbn serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Store file (overrides the config file and `$PBN_STORE`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, env = "PBN_CONFIG")]
    pub config: Option<PathBuf>,
    /// NATS server URL; repeat for backups (the first is the primary).
    #[arg(long = "server", value_name = "URL")]
    pub servers: Vec<String>,
    /// Serve `/healthz` and `/readyz` over HTTP on this address (e.g. 127.0.0.1:8222; overrides
    /// `http` in the config file and `$PBN_HTTP`). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Join the log as a new replica with the bundle `pbn admin replica add` wrote: builds the
    /// store at --store (which must not exist) from the log, writes its key beside it, then
    /// serves it.
    #[arg(long, value_name = "BUNDLE", requires = "store")]
    pub join: Option<PathBuf>,
    /// Replicated mode: this store is one replica of the log on JetStream, in pbn's AUTH
    /// account (same as `replicated = true` in the config file or `PBN_REPLICATED=1`).
    #[arg(long)]
    pub replicated: bool,
    /// Serve HTTPS with this certificate chain (PEM; with --http-tls-key).
    #[arg(long, value_name = "FILE", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-tls-cert.
    #[arg(long, value_name = "FILE", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,
    /// A reverse proxy (CIDR or address) whose X-Forwarded-For the console's sign-in
    /// throttle believes (repeatable; none by default: the header is ignored).
    #[arg(long = "http-trusted-proxy", value_name = "CIDR")]
    pub http_trusted_proxy: Vec<String>,
}

/// `pbn up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for the store, the config and the server's data.
    #[arg(long, default_value = "pbn-data")]
    pub dir: PathBuf,
    /// Client port of the nats-server started.
    #[arg(long, default_value_t = 4222, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// nats-server binary (default: `$PBN_NATS_SERVER`, `.tools/bin/nats-server`, then PATH).
    #[arg(long)]
    pub nats_server: Option<PathBuf>,
    /// Replicas to start: with 2 to 5, a cluster of that many nats-servers with JetStream
    /// (client ports --port, --port+1, …) and one `pbn serve --replicated` per server.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
    pub replicas: u16,
}

/// Where the store file is.
#[derive(Debug, Args, Clone)]
pub struct StoreArg {
    /// Store file; defaults to `$PBN_STORE`, else `./pbn.redb`.
    #[arg(long, env = "PBN_STORE", default_value = "pbn.redb")]
    pub store: PathBuf,
    /// Store key file; defaults to `$PBN_KEY_FILE`, else `$PBN_KEY_PASSPHRASE` (a passphrase),
    /// else `<store>.key` when it exists. `pbn init` writes a missing one (mode 0600).
    #[arg(long, env = "PBN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// `pbn init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Flattened options.
    #[command(flatten)]
    pub store: StoreArg,
    /// Operator name.
    #[arg(long, default_value = "pbn")]
    pub operator: String,
    /// Encrypt callout requests with a curve (xkey) key of the AUTH account.
    #[arg(long)]
    pub xkey: bool,
    /// Where to write the admin creds (mode 0600); default `admin.creds` beside the store.
    #[arg(long, value_name = "PATH")]
    pub admin_creds: Option<PathBuf>,
    /// Lifetime of the first admin (and of its creds), e.g. `30d`. Default: never expires.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<std::time::Duration>,
}

/// `pbn nats-conf`.
#[derive(Debug, Args)]
pub struct NatsConfArgs {
    /// Store file; defaults to `$PBN_STORE`, then the config file's `store`, else `./pbn.redb`.
    #[arg(long, env = "PBN_STORE")]
    pub store: Option<PathBuf>,
    /// TOML file: its `store` and `[nats_conf]` section set what the flags set (flags win).
    #[arg(long, value_name = "FILE", conflicts_with = "cluster")]
    pub config: Option<PathBuf>,
    /// Directory for the config files (and resolver directories unless --resolver-dir).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Client port on 127.0.0.1 (of the first node with --cluster); see --listen.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..), conflicts_with = "listen")]
    pub port: Option<u16>,
    /// Write N test nodes routed on loopback (N >= 2); for real machines use --server-name,
    /// --cluster-listen and --routes, one file per server.
    #[arg(long, value_parser = clap::value_parser!(u16).range(2..=64))]
    pub cluster: Option<u16>,
    /// Client auth timeout in seconds (also the callout's deadline; above --tls-timeout).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub auth_timeout: Option<u64>,
    /// Remote mode: fetch what the file needs from the running `pbn serve` through this server.
    #[arg(long, value_name = "URL", requires = "creds")]
    pub server: Option<String>,
    /// Admin creds for --server (the `admin.creds` written by `pbn init`).
    #[arg(long, value_name = "FILE", requires = "server")]
    pub creds: Option<PathBuf>,
    /// Replace config files that exist already (symlinks are always refused).
    #[arg(long)]
    pub force: bool,
    /// What the server's file says.
    #[command(flatten)]
    pub server_opts: NatsConfServerArgs,
}

/// The production settings of `pbn nats-conf` (the `[nats_conf]` keys in brackets).
#[derive(Debug, Args, Default)]
pub struct NatsConfServerArgs {
    /// This server's name, unique in its cluster [server_name].
    #[arg(long, conflicts_with = "cluster", value_name = "NAME")]
    pub server_name: Option<String>,
    /// Client listen address, e.g. `0.0.0.0:4222` or `[::]:4222` [listen].
    #[arg(long, conflicts_with = "cluster", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Directory of the account JWT resolver on the server [resolver_dir].
    #[arg(long, conflicts_with = "cluster", value_name = "DIR")]
    pub resolver_dir: Option<PathBuf>,
    /// Server certificate (PEM) for client TLS [tls.cert_file].
    #[arg(long, conflicts_with = "cluster", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM) [tls.key_file].
    #[arg(long, conflicts_with = "cluster", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates are checked against [tls.ca_file].
    #[arg(long, conflicts_with = "cluster", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Require a client certificate signed by --tls-ca (mutual TLS) [tls.verify].
    #[arg(long, conflicts_with = "cluster")]
    pub tls_verify: bool,
    /// TLS handshake timeout, e.g. `2s` (below the auth timeout) [tls.timeout].
    #[arg(long, conflicts_with = "cluster", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tls_timeout: Option<std::time::Duration>,
    /// HTTP monitoring address, e.g. `127.0.0.1:8222` [http].
    #[arg(long, conflicts_with = "cluster", value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// Cluster name, the same on every server [cluster.name].
    #[arg(long, conflicts_with = "cluster", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Where this server accepts routes, e.g. `0.0.0.0:6222` [cluster.listen].
    #[arg(long, conflicts_with = "cluster", value_name = "HOST:PORT")]
    pub cluster_listen: Option<String>,
    /// Route addresses of the cluster's servers, comma-separated [cluster.routes].
    #[arg(long, conflicts_with = "cluster", value_name = "HOST:PORT,...", value_delimiter = ',')]
    pub routes: Vec<String>,
    /// Enable JetStream on the server with this store directory [jetstream.store_dir].
    #[arg(long, conflicts_with = "cluster", value_name = "DIR")]
    pub jetstream_dir: Option<PathBuf>,
    /// JetStream memory limit, e.g. `1G` [jetstream.max_mem].
    #[arg(long, conflicts_with = "cluster", value_name = "SIZE")]
    pub jetstream_max_mem: Option<String>,
    /// JetStream file limit, e.g. `100G` [jetstream.max_file].
    #[arg(long, conflicts_with = "cluster", value_name = "SIZE")]
    pub jetstream_max_file: Option<String>,
    /// Leaf node listen address, e.g. `0.0.0.0:7422` [leafnodes.listen].
    #[arg(long, conflicts_with = "cluster", value_name = "HOST:PORT")]
    pub leafnodes_listen: Option<String>,
}

/// `pbn admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Flattened options.
    #[command(flatten)]
    pub store: StoreArg,
    /// Print JSON instead of tables.
    #[arg(long, global = true, help_heading = "Admin options (any admin command)")]
    pub json: bool,
    /// Administer a running `pbn serve` through this NATS server instead of opening the store.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        requires = "creds",
        help_heading = "Admin options (any admin command)"
    )]
    pub server: Option<String>,
    /// Creds of an admin user for --server (the `admin.creds` written by `pbn init`; the server
    /// lets only users with the `pbn-admin` role's permissions reach the admin API).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        requires = "server",
        help_heading = "Admin options (any admin command)"
    )]
    pub creds: Option<PathBuf>,
    /// With --server: the idempotency key of this change, to retry one whose answer was lost
    /// (the timeout message prints it); the service applies a key at most once and answers a
    /// retry with the first result. A fresh random key is used when not given.
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        requires = "server",
        help_heading = "Admin options (any admin command)"
    )]
    pub idempotency_key: Option<String>,
    /// What to manage.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `pbn admin <record>`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The operator.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Roles (permission and limit templates for users).
    #[command(subcommand)]
    Role(RoleCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// OpenID Connect identity providers whose tokens log users in, and their mapping rules.
    #[command(subcommand)]
    Idp(super::idp::IdpCommand),
    /// The claims outbox: account pushes pending or failed.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The store file itself: its key.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Named admins: who may use the admin API, over what, until when.
    #[command(subcommand)]
    Admin(super::admins::AdminAdminCommand),
    /// The audit trail of admin changes (`list`), and audit events of a running service (`tail`).
    #[command(subcommand)]
    Audit(super::audit_list::AuditCommand),
    /// Live connections pbn admitted: list them, end them (asks the running service).
    #[command(subcommand)]
    Session(super::session::SessionCommand),
    /// Replicas of the log: who may join it (`add` writes a join bundle), and removal.
    #[command(subcommand)]
    Replica(super::replicas::ReplicaCommand),
    /// Import accounts, roles and users from a file (JSON or NDJSON; see the README).
    Import(super::bulk::ImportArgs),
    /// Export accounts, roles and users (without secrets unless --with-secrets).
    Export(super::bulk::ExportArgs),
}

mod records;

pub use records::*;
