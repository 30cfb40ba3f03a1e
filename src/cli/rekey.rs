//! `pbn admin store rekey`: every seed of the store re-sealed under a new key, in one
//! transaction, on the store file (the service holds the file while it runs, and the new key
//! must reach every process that opens the store: stop `pbn serve`, rekey, start it again).
//!
//! The new key is `PBN_NEW_KEY_PASSPHRASE` (a passphrase), else the key in `--new-key-file`
//! (generated into it, mode 0600, when the file does not exist). Without either, a new key
//! file is generated beside the key in use: when that is the default `<store>.key`, the new key
//! takes its place once the store is re-sealed and the old key is kept as `<store>.key.old`
//! for backups made under it. The new key file is written and synced before the store commits,
//! so no crash leaves a store sealed under a key that exists nowhere.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use zeroize::Zeroizing;

use super::args::{AdminArgs, RekeyArgs};
use super::output::outln;
use super::secrets::SecretFile;
use super::store_key::{self, StoreKeyError};
use crate::seal::{KeySource, StoreKey};

/// The variable holding the new passphrase of a rekey.
pub const NEW_PASSPHRASE_VAR: &str = "PBN_NEW_KEY_PASSPHRASE";

/// Errors of a rekey request, before the store is touched.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// `--server`: the service cannot hand its store to a rekey.
    #[error("store rekey works on the store file, not through --server {0}: stop pbn serve, rekey, then start it with the new key")]
    Remote(String),
    /// The new key file is the key file in use.
    #[error("the new key file {0} is the store's current key file")]
    SameFile(PathBuf),
}

/// Runs `pbn admin store rekey`.
pub(super) fn rekey(a: &AdminArgs, args: &RekeyArgs) -> Result<()> {
    if let Some(url) = &a.server {
        return Err(RekeyError::Remote(crate::config::redact_url(url)).into());
    }
    let path = &a.store.store;
    let current = current_key_file(path, a.store.key_file.as_deref());
    let store = super::open_store(path, a.store.key_file.as_deref())?;
    // Before a new key file is made: a replica's key is the log's, changed on every replica.
    store.refuse_on_replica().with_context(|| format!("cannot rekey store {}", path.display()))?;
    let (source, target) = new_key(path, current.as_deref(), args.new_key_file.as_deref())?;
    store.rekey(source).with_context(|| format!("cannot rekey store {}", path.display()))?;
    drop(store);
    match target {
        None => outln!("store {} re-sealed under the new passphrase", path.display()),
        Some(written) => finish(path, current.as_deref(), &written),
    }
}

/// The key file the store is opened with, if it is a file (not a passphrase).
fn current_key_file(store: &Path, flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_path_buf());
    }
    if std::env::var_os(store_key::PASSPHRASE_VAR).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    Some(store_key::beside(store)).filter(|p| p.exists())
}

/// The new key and, for a key file, where it is.
fn new_key(
    store: &Path,
    current: Option<&Path>,
    flag: Option<&Path>,
) -> Result<(KeySource, Option<PathBuf>)> {
    if let Some(pass) = std::env::var(NEW_PASSPHRASE_VAR).ok().filter(|p| !p.is_empty()) {
        return Ok((KeySource::Passphrase(Zeroizing::new(pass)), None));
    }
    let path = match flag {
        Some(path) => path.to_path_buf(),
        None => {
            with_suffix(current.map_or_else(|| store_key::beside(store), Path::to_path_buf), ".new")
        }
    };
    if current.is_some_and(|c| same_file(c, &path)) {
        return Err(RekeyError::SameFile(path).into());
    }
    match store_key::read_key_file(&path) {
        Ok(key) => return Ok((KeySource::Key(key), Some(path))),
        Err(StoreKeyError::Missing(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let key = StoreKey::generate();
    SecretFile::open(&path)?.write(&key.to_file_text())?;
    Ok((KeySource::Key(key), Some(path)))
}

/// Moves a new default key into place (`<store>.key`, the old one kept as `.key.old`) and says
/// where the keys are.
fn finish(store: &Path, current: Option<&Path>, written: &Path) -> Result<()> {
    let default = store_key::beside(store);
    let is_default_pair =
        current.is_some_and(|c| c == default) && written == with_suffix(default.clone(), ".new");
    if !is_default_pair {
        outln!("store {} re-sealed under the key in {}", store.display(), written.display())?;
        return outln!(
            "open it with --key-file {} (or PBN_KEY_FILE) from now on",
            written.display()
        );
    }
    let old = with_suffix(default.clone(), ".old");
    std::fs::rename(&default, &old).with_context(|| {
        format!(
            "store re-sealed; the new key is in {}, but cannot move the old key aside",
            written.display()
        )
    })?;
    std::fs::rename(written, &default).with_context(|| {
        format!(
            "store re-sealed; the new key is in {}, but cannot move it to {}",
            written.display(),
            default.display()
        )
    })?;
    outln!("store {} re-sealed under a new key in {}", store.display(), default.display())?;
    outln!(
        "the old key is in {}: keep it apart, as long as you keep backups made before now",
        old.display()
    )
}

fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let mut name = path.into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
