//! `pbn serve`, and the runtime and signal handling `pbn up` shares.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::watch;

use super::args::ServeArgs;
use crate::config::{RawConfig, Settings};

/// The multi-threaded runtime the long-running commands run on.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A shutdown signal that turns true on SIGINT or SIGTERM.
fn signal_shutdown() -> Result<watch::Receiver<bool>> {
    let (tx, rx) = watch::channel(false);
    watch_signals(Arc::new(tx))?;
    Ok(rx)
}

/// Sets `tx` to true on SIGINT or SIGTERM (call inside the runtime).
pub(super) fn watch_signals(tx: Arc<watch::Sender<bool>>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    Ok(())
}

/// Settings from the config file, `PBN_*` variables and the flags (flags win).
fn settings(a: &ServeArgs) -> Result<Settings> {
    let file = a.config.as_deref().map(RawConfig::from_file).transpose()?;
    let env = RawConfig::from_env(std::env::vars())?;
    let flags = RawConfig {
        store: a.store.clone(),
        servers: (!a.servers.is_empty()).then(|| a.servers.clone()),
        http: a.http.clone(),
        replicated: (a.replicated || a.join.is_some()).then_some(true),
        http_tls_cert: a.http_tls_cert.clone(),
        http_tls_key: a.http_tls_key.clone(),
        http_trusted_proxies: (!a.http_trusted_proxy.is_empty())
            .then(|| a.http_trusted_proxy.clone()),
        ..RawConfig::default()
    };
    Ok(Settings::resolve(file, env, flags)?)
}

/// `pbn serve`.
pub fn serve(a: ServeArgs) -> Result<()> {
    let settings = settings(&a)?;
    runtime()?.block_on(async move {
        let shutdown = signal_shutdown()?;
        if let Some(bundle) = &a.join {
            join(bundle, &settings.store).await?;
        }
        run_service(settings, shutdown).await.context("pbn serve failed")
    })
}

/// `pbn serve --join BUNDLE`: builds the new replica's store from the log before it is
/// served (see `replica::join`).
async fn join(bundle: &std::path::Path, store: &std::path::Path) -> Result<()> {
    let joined = crate::replica::join(bundle, store).await.with_context(|| {
        format!("cannot join with bundle {} into store {}", bundle.display(), store.display())
    })?;
    eprintln!(
        "joined as replica {} at log position {} in {:.1} s{}",
        joined.name,
        joined.seq,
        joined.elapsed.as_secs_f64(),
        joined.snapshot.map(|s| format!(" (from the snapshot at {s})")).unwrap_or_default()
    );
    Ok(())
}

/// Opens the store of `settings` with its key (see [`super::store_key::open_with`]) and runs the
/// service on it until `shutdown` turns true.
pub(super) async fn run_service(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<()> {
    let path = settings.store.clone();
    let store = tokio::task::spawn_blocking(move || -> Result<crate::store::Store> {
        let wait = std::time::Duration::ZERO;
        Ok(super::store_key::open_with(&path, None, |key| {
            crate::store::Store::open_for_with(&path, crate::store::SERVICE_COMMAND, wait, key)
        })??)
    })
    .await
    .context("the store task failed")??;
    Ok(crate::server::run_with_store(settings, store, shutdown).await?)
}
