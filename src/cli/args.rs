//! clap definitions for the `pbn` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
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
}

/// Where the store file is.
#[derive(Debug, Args, Clone)]
pub struct StoreArg {
    /// Store file; defaults to `$PBN_STORE`, else `./pbn.redb`.
    #[arg(long, env = "PBN_STORE", default_value = "pbn.redb")]
    pub store: PathBuf,
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
    /// The claims outbox: account pushes pending or failed.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

/// `pbn admin outbox`.
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List pending and failed pushes with their last error.
    List,
    /// Re-queue an entry (a failed one, typically) for an immediate push.
    Retry {
        /// Account name or public key.
        id: String,
    },
}

/// `pbn admin operator`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Show the operator.
    Show {
        /// Print the operator JWT only.
        #[arg(long)]
        jwt: bool,
    },
    /// Mint admin creds: a system-account user with the `pbn-admin` role's permissions (what
    /// nats-server enforces for the admin API), shown once; they do not expire.
    AdminCreds {
        /// Write to FILE (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace FILE if it exists (symlinks are always refused).
        #[arg(long, requires = "out")]
        force: bool,
    },
}

/// Account limit flags (`-1` unlimited, `0` disabled, `N` a cap).
#[derive(Debug, Args, Clone, Default)]
pub struct AccountLimitArgs {
    /// Max client connections.
    #[arg(long, allow_negative_numbers = true)]
    pub max_connections: Option<i64>,
    /// Max subscriptions (account-wide).
    #[arg(long, allow_negative_numbers = true)]
    pub max_subscriptions: Option<i64>,
    /// Max data bytes (not enforced by nats-server).
    #[arg(long, allow_negative_numbers = true)]
    pub max_data: Option<i64>,
    /// Max message payload bytes.
    #[arg(long, allow_negative_numbers = true)]
    pub max_payload: Option<i64>,
    /// Max leafnode connections.
    #[arg(long, allow_negative_numbers = true)]
    pub max_leafnodes: Option<i64>,
    /// Max imports.
    #[arg(long, allow_negative_numbers = true)]
    pub max_imports: Option<i64>,
    /// Max exports.
    #[arg(long, allow_negative_numbers = true)]
    pub max_exports: Option<i64>,
    /// JetStream file storage bytes (0 = off, the default).
    #[arg(long, allow_negative_numbers = true)]
    pub js_disk: Option<i64>,
    /// JetStream memory storage bytes (0 = off, the default).
    #[arg(long, allow_negative_numbers = true)]
    pub js_memory: Option<i64>,
    /// JetStream max streams.
    #[arg(long, allow_negative_numbers = true)]
    pub js_streams: Option<i64>,
    /// JetStream max consumers.
    #[arg(long, allow_negative_numbers = true)]
    pub js_consumers: Option<i64>,
}

/// `pbn admin account`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account (limits default to unlimited, JetStream off).
    Add {
        /// Account name.
        name: String,
        /// Free-text description.
        #[arg(long)]
        description: Option<String>,
        /// Flattened options.
        #[command(flatten)]
        limits: AccountLimitArgs,
        /// Refuse bearer user JWTs.
        #[arg(long)]
        disallow_bearer: bool,
    },
    /// List accounts.
    List,
    /// Show one account.
    Show {
        /// Account name.
        name: String,
        /// Print the account JWT only.
        #[arg(long)]
        jwt: bool,
    },
    /// Change an account.
    Edit {
        /// Account name.
        name: String,
        /// Free-text description.
        #[arg(long)]
        description: Option<String>,
        /// Flattened options.
        #[command(flatten)]
        limits: AccountLimitArgs,
        /// Activate or deactivate.
        #[arg(long)]
        active: Option<bool>,
        /// Refuse bearer user JWTs.
        #[arg(long)]
        disallow_bearer: Option<bool>,
    },
    /// Delete an account (refused while users belong to it).
    Delete {
        /// Account name.
        name: String,
    },
    /// Emergency rotation: a new signing key, every old one removed; connections signed by an
    /// old key are closed, and users holding creds (listed) need new ones.
    RotateKeys {
        /// Account name.
        name: String,
    },
    /// Signing keys, for a graceful rotation: add a key (it signs new logins), later remove the
    /// old one.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Exports of an account.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Imports of an account.
    #[command(subcommand)]
    Import(ImportCommand),
}

/// `pbn admin account signing-key`.
#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Add a signing key; it signs from now on, the old ones stay valid.
    Add {
        /// Account name.
        name: String,
    },
    /// Remove a signing key (never the last one); connections it signed are closed.
    Remove {
        /// Account name.
        name: String,
        /// Public key of the signing key (`A…`, see `account show`).
        key: String,
    },
}

/// Stream or service.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportKindArg {
    /// A message stream.
    Stream,
    /// A request/reply service.
    Service,
}

/// `pbn admin account export`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Add an export.
    Add {
        /// Exporting account.
        account: String,
        /// Exported subject.
        #[arg(long)]
        subject: String,
        /// Stream or service.
        #[arg(long, value_enum, default_value = "stream")]
        kind: ExportKindArg,
        /// Export name.
        #[arg(long)]
        name: Option<String>,
        /// Importers need an activation token.
        #[arg(long)]
        token_req: bool,
    },
    /// Remove an export by subject.
    Remove {
        /// Exporting account.
        account: String,
        /// Exported subject.
        #[arg(long)]
        subject: String,
    },
}

/// `pbn admin account import`.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Add an import.
    Add {
        /// Importing account.
        account: String,
        /// Subject as exported.
        #[arg(long)]
        subject: String,
        /// Exporting account (name of a managed account, or an `A…` public key).
        #[arg(long)]
        from: String,
        /// Stream or service.
        #[arg(long, value_enum, default_value = "stream")]
        kind: ExportKindArg,
        /// Local subject (rename).
        #[arg(long)]
        local_subject: Option<String>,
        /// Import name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove an import by subject.
    Remove {
        /// Importing account.
        account: String,
        /// Imported subject.
        #[arg(long)]
        subject: String,
    },
}

/// Role flags shared by `add` and `edit`.
#[derive(Debug, Args, Clone, Default)]
pub struct RoleArgs {
    /// Free-text description.
    #[arg(long)]
    pub description: Option<String>,
    /// Allow publishing to SUBJECT (repeatable; replaces the list on edit).
    #[arg(long = "pub", value_name = "SUBJECT")]
    pub pub_allow: Vec<String>,
    /// Deny publishing to SUBJECT (repeatable).
    #[arg(long = "pub-deny", value_name = "SUBJECT")]
    pub pub_deny: Vec<String>,
    /// Allow subscribing to SUBJECT (repeatable; `"subject queue"` for a queue).
    #[arg(long = "sub", value_name = "SUBJECT")]
    pub sub_allow: Vec<String>,
    /// Deny subscribing to SUBJECT (repeatable).
    #[arg(long = "sub-deny", value_name = "SUBJECT")]
    pub sub_deny: Vec<String>,
    /// Publish nothing at all (written as `deny: [">"]`; replaces any allow list).
    #[arg(long, conflicts_with = "pub_allow")]
    pub no_pub: bool,
    /// Subscribe to nothing at all (written as `deny: [">"]`; replaces any allow list).
    #[arg(long, conflicts_with = "sub_allow")]
    pub no_sub: bool,
    /// Allow replies to requests: MAX messages per request (-1 = unlimited; default 1).
    #[arg(long, value_name = "MAX", num_args = 0..=1, default_missing_value = "1",
          allow_negative_numbers = true)]
    pub allow_responses: Option<i64>,
    /// How long a reply permission lasts, e.g. `30s` (default: the server's 2m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub response_ttl: Option<std::time::Duration>,
    /// Max subscriptions per connection.
    #[arg(long, allow_negative_numbers = true)]
    pub max_subscriptions: Option<i64>,
    /// Max data bytes per connection (not enforced by nats-server).
    #[arg(long, allow_negative_numbers = true)]
    pub max_data: Option<i64>,
    /// Max payload bytes per message.
    #[arg(long, allow_negative_numbers = true)]
    pub max_payload: Option<i64>,
    /// Max simultaneous connections per user (checked by the callout).
    #[arg(long, allow_negative_numbers = true)]
    pub max_connections: Option<i64>,
    /// Lifetime of minted user JWTs, e.g. `1h` (at least 1s).
    #[arg(long, value_parser = parse_jwt_ttl)]
    pub jwt_ttl: Option<std::time::Duration>,
    /// Source network allowed to connect, e.g. `10.0.0.0/8` (repeatable).
    #[arg(long, value_name = "CIDR")]
    pub source_cidr: Vec<String>,
    /// Allowed connection type (STANDARD, WEBSOCKET, LEAFNODE, MQTT, ...; repeatable).
    #[arg(long, value_name = "TYPE")]
    pub connection_type: Vec<String>,
}

/// `pbn admin role`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role.
    Add {
        /// Role name.
        name: String,
        /// Flattened options.
        #[command(flatten)]
        args: RoleArgs,
    },
    /// List roles.
    List,
    /// Show one role.
    Show {
        /// Role name.
        name: String,
    },
    /// Change a role (given permission lists replace the old ones). Creds of its users are
    /// revoked when the change alters what their JWTs grant.
    Edit {
        /// Role name.
        name: String,
        /// Flattened options.
        #[command(flatten)]
        args: RoleArgs,
    },
    /// Delete a role (refused while users have it).
    Delete {
        /// Role name.
        name: String,
    },
}

/// How a password reaches pbn: never as a flag value.
#[derive(Debug, Args, Clone, Default)]
pub struct PasswordArgs {
    /// Read the password from standard input (first line).
    #[arg(long, conflicts_with = "password_file")]
    pub password_stdin: bool,
    /// Read the password from a file (first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// `pbn admin user`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (prompts for a password unless --password-stdin/--password-file/--no-password).
    Add {
        /// User name.
        name: String,
        /// Account the user belongs to.
        #[arg(long)]
        account: String,
        /// Role of the user.
        #[arg(long)]
        role: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Free-text description.
        #[arg(long)]
        description: Option<String>,
        /// Flattened options.
        #[command(flatten)]
        password: PasswordArgs,
        /// Create the user without a password (tokens, nkey or creds only).
        #[arg(long, conflicts_with_all = ["password_stdin", "password_file"])]
        no_password: bool,
    },
    /// List users.
    List {
        /// Only users of this account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Show one user.
    Show {
        /// User name.
        name: String,
    },
    /// Change a user.
    Edit {
        /// User name.
        name: String,
        /// Move to another account.
        #[arg(long)]
        account: Option<String>,
        /// Give another role.
        #[arg(long)]
        role: Option<String>,
        /// Activate or deactivate.
        #[arg(long)]
        active: Option<bool>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Free-text description.
        #[arg(long)]
        description: Option<String>,
        /// Register a user nkey (`U…`) for nkey login.
        #[arg(long)]
        nkey: Option<String>,
    },
    /// Delete a user (its creds are revoked).
    Delete {
        /// User name.
        name: String,
    },
    /// Set a new password.
    Passwd {
        /// User name.
        name: String,
        /// Flattened options.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Mint creds (fresh key + JWT, shown once); previous creds are revoked.
    Creds {
        /// User name.
        name: String,
        /// Write to FILE (mode 0600) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace FILE if it exists (symlinks are always refused).
        #[arg(long, requires = "out")]
        force: bool,
        /// Keep the user's previous creds valid.
        #[arg(long)]
        keep_previous: bool,
    },
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `pbn admin user token`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (printed once).
    Add {
        /// User name.
        name: String,
        /// A label to recognise the token by.
        #[arg(long)]
        label: Option<String>,
        /// Lifetime, e.g. `30d` (default: no expiry).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// List a user's tokens (never the secrets).
    List {
        /// User name.
        name: String,
    },
    /// Revoke a token by id.
    Revoke {
        /// User name.
        name: String,
        /// Token id (from `token list`).
        id: String,
    },
}

/// Parses `--jwt-ttl`: a duration of at least [`crate::model::MIN_JWT_TTL_SECS`] seconds.
fn parse_jwt_ttl(text: &str) -> Result<std::time::Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let min = crate::model::MIN_JWT_TTL_SECS;
    if ttl.as_secs() < min {
        return Err(format!("{text} is below the minimum JWT lifetime of {min}s"));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::parse_jwt_ttl;

    #[test]
    fn jwt_ttl_below_the_minimum_names_it() {
        let err = parse_jwt_ttl("1ms").unwrap_err();
        assert!(err.contains("minimum") && err.contains("1s"), "{err}");
        assert_eq!(parse_jwt_ttl("1s").unwrap().as_secs(), 1);
        assert_eq!(parse_jwt_ttl("2h").unwrap().as_secs(), 7200);
    }
}
