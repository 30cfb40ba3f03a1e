//! `pbn nats-conf`: the loopback test layout (`--cluster N`) or one production server's file,
//! from the local store or, with `--server URL --creds FILE`, from the running service.

use crate::admin::NatsConfTrust;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::args::{NatsConfArgs, NatsConfServerArgs};
use super::output::outln;
use crate::admin::{self, AdminError, Context, Request, Response};
use crate::natsconf::{
    self, Layout, RawCluster, RawFile, RawJetStream, RawLeafnodes, RawNatsConf, RawTls,
    RenderedConfig, Trust,
};
use crate::store::{Store, StoreError};

/// Runs `pbn nats-conf`: every setting is checked before the store or the service is asked.
pub(super) fn nats_conf(a: NatsConfArgs) -> Result<()> {
    let out = std::path::absolute(&a.out)
        .with_context(|| format!("invalid output directory {}", a.out.display()))?;
    let file = a.config.as_deref().map(RawFile::from_file).transpose()?.unwrap_or_default();
    let store = a.store.clone().or(file.store).unwrap_or_else(|| "pbn.redb".into());
    let files = match a.cluster {
        Some(n) => {
            let layout = Layout {
                out_dir: out,
                port: a.port.unwrap_or(4222),
                cluster: Some(n),
                auth_timeout: Duration::from_secs(a.auth_timeout.unwrap_or(5)),
                host: "127.0.0.1".into(),
            };
            layout.validate()?;
            natsconf::render(&fetch_trust(&a, &store)?, &layout)?
        }
        None => {
            let opts = file.nats_conf.overlay(flags(&a)).resolve(&out)?;
            let trust = fetch_trust(&a, &store)?;
            vec![natsconf::render_server(&trust, &opts, out.join("nats.conf"))]
        }
    };
    natsconf::write_new_configs(&files, a.force)?;
    print_written(&files)
}

fn print_written(files: &[RenderedConfig]) -> Result<()> {
    for f in files {
        outln!("wrote {} (client port {})", f.path.display(), f.client_port)?;
    }
    Ok(())
}

/// The settings given as flags, as a raw section (unset flags are `None`).
fn flags(a: &NatsConfArgs) -> RawNatsConf {
    let s: &NatsConfServerArgs = &a.server_opts;
    RawNatsConf {
        server_name: s.server_name.clone(),
        listen: s.listen.clone().or(a.port.map(|p| format!("127.0.0.1:{p}"))),
        auth_timeout: a.auth_timeout.map(Duration::from_secs),
        resolver_dir: s.resolver_dir.clone(),
        http: s.http.clone(),
        tls: RawTls {
            cert_file: s.tls_cert.clone(),
            key_file: s.tls_key.clone(),
            ca_file: s.tls_ca.clone(),
            verify: s.tls_verify.then_some(true),
            timeout: s.tls_timeout,
        },
        cluster: RawCluster {
            name: s.cluster_name.clone(),
            listen: s.cluster_listen.clone(),
            routes: (!s.routes.is_empty()).then(|| s.routes.clone()),
        },
        jetstream: RawJetStream {
            store_dir: s.jetstream_dir.clone(),
            max_mem: s.jetstream_max_mem.clone(),
            max_file: s.jetstream_max_file.clone(),
        },
        leafnodes: RawLeafnodes { listen: s.leafnodes_listen.clone() },
    }
}

/// The trust from the local store, or from the service with `--server URL --creds FILE`.
fn fetch_trust(a: &NatsConfArgs, store: &Path) -> Result<Trust> {
    if let (Some(url), Some(creds)) = (&a.server, &a.creds) {
        return match super::remote_execute(
            url,
            creds,
            None,
            &Request::NatsConfTrust(NatsConfTrust {}),
        )? {
            Response::Trust(t) => Ok(*t),
            other => anyhow::bail!("unexpected answer from the pbn admin service: {other:?}"),
        };
    }
    nats_conf_trust(store)
}

/// The trust for `nats-conf`: issued with recorded `iat`s when the store can be written (so
/// configs generated again in the same second still win on the servers), else read-only.
fn nats_conf_trust(path: &Path) -> Result<natsconf::Trust> {
    let ctx = Context::now();
    let unwritable = |e: &StoreError| match e {
        StoreError::Io { source, .. } => {
            source.kind() == std::io::ErrorKind::PermissionDenied
                || source.raw_os_error() == Some(EROFS)
        }
        StoreError::Backend { .. } => true,
        _ => false,
    };
    let key = super::store_key::source(path, None)?;
    let store = match Store::open_for_with(path, "pbn nats-conf", super::STORE_LOCK_WAIT, key) {
        Ok(store) => match admin::init::trust(&store, &ctx) {
            Err(AdminError::Store(e)) if unwritable(&e) => {
                eprintln!("warning: cannot record in {}: {e}; reading it only", path.display());
                store
            }
            done => return done.context("cannot read the store"),
        },
        Err(e) if unwritable(&e) => {
            eprintln!("warning: cannot write {}: {e}; reading it only", path.display());
            super::open_store_read_only(path, None)?
        }
        Err(e) => return Err(locked_hint(e, path)),
    };
    admin::init::trust_read_only(&store, &ctx).context("cannot read the store")
}

/// `errno` of a write to a read-only file system.
const EROFS: i32 = 30;

fn locked_hint(e: StoreError, path: &Path) -> anyhow::Error {
    let hint = match e {
        StoreError::Locked { ref holder, .. }
            if holder.as_ref().is_none_or(|h| h.command == "pbn serve") =>
        {
            "\nhint: `pbn serve` holds it; fetch the same data from the running service: \
             pbn nats-conf --server URL --creds admin.creds ..."
        }
        _ => "",
    };
    let path: PathBuf = path.to_path_buf();
    anyhow::Error::new(e).context(format!("cannot open store {}{hint}", path.display()))
}
