//! The record subcommands of `pbn admin`: operator, account, export, import, role, user, token
//! and outbox, each a clap enum whose variants are the verbs.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

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

/// `pbn admin store`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Re-seal every seed under a new key, in one transaction (on the store file: stop pbn serve
    /// first). The new key: `PBN_NEW_KEY_PASSPHRASE`, else `--new-key-file`, else a new key
    /// file that replaces `<store>.key` (the old one is kept as `<store>.key.old`).
    Rekey(RekeyArgs),
}

/// `pbn admin store rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// File of the new key: read when it exists, else generated into it (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub new_key_file: Option<std::path::PathBuf>,
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
    /// Users may sign in to the web console with their NATS password to change it and manage
    /// their API tokens (`--self-service=false` turns it off, and self-service creds with it).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          require_equals = true)]
    pub self_service: Option<bool>,
    /// Users may also download their own creds in the console (turns on `--self-service`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          require_equals = true)]
    pub self_service_creds: Option<bool>,
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
        /// A tag `KEY=VALUE` for the role's subject templates (`{{tag:KEY}}`); repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
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
        /// Set a tag `KEY=VALUE` (repeatable); a change of the user's subjects closes its
        /// sessions and revokes its creds.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Remove the tag KEY (repeatable).
        #[arg(long = "untag", value_name = "KEY")]
        untags: Vec<String>,
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
