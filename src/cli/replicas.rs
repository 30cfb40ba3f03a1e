//! `pbn admin replica …`: replicas of the log (arguments, their requests, and the bundle
//! `add` writes).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Subcommand;

use crate::admin::{ReplicaAdd, ReplicaList, ReplicaRemove, ReplicaShow, Request, Response};
use crate::replica::bundle::{Bundle, BundleError, BUNDLE_VERSION};

/// `pbn admin replica <command>`.
#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Add a replica and write its join bundle (mode 0600, never over an existing file) to
    /// --out: its NATS creds, the store key and the servers, for `pbn serve --join BUNDLE`.
    Add {
        /// Replica name.
        name: String,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Lifetime of the replica's creds, e.g. `90d`. Default: never expire.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// NATS server URL the replica joins through; repeat for several. Default with
        /// --server: that URL.
        #[arg(long = "url", value_name = "URL")]
        urls: Vec<String>,
    },
    /// List replicas.
    List,
    /// Show a replica.
    Show {
        /// Replica name.
        name: String,
    },
    /// Remove a replica: its key is revoked on the servers (its connections close, its creds
    /// are refused) and its record deleted.
    Remove {
        /// Replica name.
        name: String,
    },
}

/// The request of a replica command.
pub fn request(cmd: &ReplicaCommand) -> Result<Request> {
    use super::requests::name_arg;
    use ReplicaCommand as C;
    Ok(match cmd {
        C::Add { name, expires, .. } => Request::ReplicaAdd(ReplicaAdd {
            name: name_arg(name)?,
            expires_secs: expires.map(|d| d.as_secs().max(1)),
        }),
        C::List => Request::ReplicaList(ReplicaList {}),
        C::Show { name } => Request::ReplicaShow(ReplicaShow { name: name_arg(name)? }),
        C::Remove { name } => Request::ReplicaRemove(ReplicaRemove { name: name_arg(name)? }),
    })
}

/// Where `add` writes its bundle and the servers it names, checked before the request runs:
/// an existing file or no server URL fails before a replica is added.
pub fn prepare(
    cmd: &ReplicaCommand,
    server: Option<&str>,
) -> Result<Option<(PathBuf, Vec<String>)>> {
    let ReplicaCommand::Add { out, urls, .. } = cmd else { return Ok(None) };
    if crate::fsutil::occupied(out) {
        return Err(BundleError::Exists(out.clone()).into());
    }
    let urls = match (urls.is_empty(), server) {
        (false, _) => urls.clone(),
        (true, Some(url)) => vec![url.to_string()],
        (true, None) => {
            return Err(crate::admin::AdminError::Invalid(
                "replica add on a store file needs --url URL (the servers the replica joins \
                 through)"
                    .into(),
            )
            .into())
        }
    };
    Ok(Some((out.clone(), urls)))
}

/// Writes the bundle of a `replica add` answer.
pub fn write_bundle(resp: &Response, out: &Path, servers: Vec<String>, json: bool) -> Result<()> {
    let Response::Replica { name, public_key, creds, store_key, passphrase, genesis, stream } =
        resp
    else {
        anyhow::bail!("the answer to replica add holds no replica");
    };
    let bundle = Bundle {
        version: BUNDLE_VERSION,
        name: name.clone(),
        creds: creds.clone(),
        store_key: store_key.clone(),
        passphrase: *passphrase,
        genesis: genesis.clone(),
        servers,
        stream: stream.clone(),
    };
    bundle.write(out).with_context(|| {
        format!(
            "replica {name} was added, but its bundle was not written; remove it and add it again"
        )
    })?;
    if json {
        let v = serde_json::json!({"file": out, "name": name, "public_key": public_key});
        super::output::outln!("{v}")?;
    } else {
        super::output::outln!("wrote {} (replica {name}, user key {public_key})", out.display())?;
        if *passphrase {
            super::output::outln!(
                "the store is opened by a passphrase: give it to the joiner as PBN_KEY_PASSPHRASE"
            )?;
        }
    }
    Ok(())
}
