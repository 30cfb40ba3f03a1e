//! The command line: clap definitions ([`args`]) and what each command does.
//!
//! This is the binary's edge: errors are `anyhow` with context here, and [`exit_code`] maps the
//! typed errors underneath to the documented exit codes.

pub mod args;
mod requests;
mod secrets;
mod serve;

use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::admin::{self, AdminError, Context, ErrorClass, Response};
use crate::natsconf::{self, Layout};
use crate::store::{Store, StoreError};
pub use args::{Cli, Command};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(a) => init(a),
        Command::NatsConf(a) => nats_conf(a),
        Command::Admin(a) => admin_cmd(*a),
        Command::Serve(a) => serve::serve(a),
        Command::Up(a) => serve::up(a),
        Command::Check(a) => serve::check(a),
    }
}

/// The exit code for an error (see [`args::EXIT_CODES`]).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let class = err.chain().find_map(|e| {
        if let Some(a) = e.downcast_ref::<AdminError>() {
            Some(a.class())
        } else if e.is::<crate::config::ConfigError>() || e.is::<secrets::PasswordError>() {
            Some(ErrorClass::Usage)
        } else if let Some(n) = e.downcast_ref::<natsconf::NatsConfError>() {
            Some(match n {
                natsconf::NatsConfError::Io { .. } => ErrorClass::Other,
                _ => ErrorClass::Usage,
            })
        } else {
            e.downcast_ref::<StoreError>().map(admin::store_class)
        }
    });
    match class {
        Some(ErrorClass::Usage) => 2,
        Some(ErrorClass::NotFound) => 3,
        Some(ErrorClass::Conflict) => 4,
        Some(ErrorClass::Locked) => 5,
        Some(ErrorClass::Other) | None => 1,
    }
}

fn init(a: args::InitArgs) -> Result<()> {
    let ctx = Context::now();
    let (_store, report) = admin::init::init_store(&a.store.store, &a.operator, a.xkey, &ctx)
        .with_context(|| format!("cannot initialise store {}", a.store.store.display()))?;
    println!("created store {}", report.store);
    println!("operator:       {}", report.operator);
    println!("system account: {}", report.system_account);
    println!("auth account:   {}", report.auth_account);
    println!("service user:   {}", report.service_user);
    if let Some(x) = &report.xkey {
        println!("callout xkey:   {x}");
    }
    println!("next: pbn nats-conf --store {} --out DIR", a.store.store.display());
    Ok(())
}

pub(crate) fn open_store(path: &std::path::Path) -> Result<Store> {
    Store::open(path).map_err(|e| {
        let hint = match e {
            StoreError::Locked(_) => {
                "\nhint: stop `pbn serve`, or administer it remotely: pbn admin --server URL --creds FILE ..."
            }
            _ => "",
        };
        anyhow::Error::new(e).context(format!("cannot open store {}{hint}", path.display()))
    })
}

fn nats_conf(a: args::NatsConfArgs) -> Result<()> {
    let out = std::path::absolute(&a.out)
        .with_context(|| format!("invalid output directory {}", a.out.display()))?;
    let layout = Layout {
        out_dir: out,
        port: a.port,
        cluster: a.cluster,
        auth_timeout: Duration::from_secs(a.auth_timeout),
        host: "127.0.0.1".into(),
    };
    // Checked before the store is touched: issuing the preload JWTs records their `iat`.
    layout.validate()?;
    let store = open_store(&a.store.store)?;
    let trust = admin::init::trust(&store, &Context::now()).context("cannot read the store")?;
    let files = natsconf::render(&trust, &layout)?;
    natsconf::write_configs(&files)?;
    for f in &files {
        println!("wrote {} (client port {})", f.path.display(), f.client_port);
    }
    Ok(())
}

fn admin_cmd(a: args::AdminArgs) -> Result<()> {
    use args::{AdminCommand as C, UserCommand as U};
    let req = requests::build(&a.command)?;
    let store = open_store(&a.store.store)?;
    let out = match &a.command {
        C::User(U::Creds { out: Some(path), .. }) => Some(secrets::SecretFile::open(path)?),
        _ => None,
    };
    match admin::execute(&store, &req, &Context::now()) {
        Ok(resp) => print_response(&a, &resp, out),
        Err(e) => {
            if let Some(file) = out {
                file.discard();
            }
            Err(e.into())
        }
    }
}

fn print_response(
    a: &args::AdminArgs,
    resp: &Response,
    out: Option<secrets::SecretFile>,
) -> Result<()> {
    use args::{AccountCommand as A, AdminCommand as C, OperatorCommand as O};
    match (&a.command, resp, out) {
        (C::Operator(O::Show { jwt: true }), Response::Operator(o), _) if !a.json => {
            println!("{}", o.jwt)
        }
        (C::Account(A::Show { jwt: true, .. }), Response::Account(acc), _) if !a.json => {
            println!("{}", acc.jwt.as_deref().unwrap_or_default())
        }
        (_, Response::Creds { creds, public_key, revoked, .. }, Some(file)) => {
            let path = file.path().to_path_buf();
            file.write(creds)?;
            if a.json {
                let v =
                    serde_json::json!({"file": path, "public_key": public_key, "revoked": revoked});
                println!("{v}");
            } else {
                println!(
                    "wrote {} (user key {public_key}; {} previous creds revoked)",
                    path.display(),
                    revoked.len()
                );
            }
        }
        _ if a.json => println!("{}", serde_json::to_string_pretty(resp)?),
        _ => print!("{}", resp.to_text()),
    }
    Ok(())
}
