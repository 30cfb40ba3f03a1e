//! Where the store key comes from, at the edge: `--key-file` / `PBN_KEY_FILE`, else
//! `PBN_KEY_PASSPHRASE`, else the key file beside the store (`<store>.key`, which `pbn init`
//! writes), else none (a plain store). A passphrase is read from the environment only, never
//! from a flag, so it is never in argv; on a terminal an encrypted store without a configured
//! key asks for its passphrase ([`open_with`]).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::secrets::SecretFile;
use crate::seal::{KeySource, SealError, StoreKey};
use crate::store::StoreError;

/// The variable naming the store key file (commands without `--key-file` read it too).
pub const KEY_FILE_VAR: &str = "PBN_KEY_FILE";

/// The variable holding a store passphrase.
pub const PASSPHRASE_VAR: &str = "PBN_KEY_PASSPHRASE";

/// Errors of finding the store key.
#[derive(Debug, thiserror::Error)]
pub enum StoreKeyError {
    /// A named key file does not exist.
    #[error("store key file {0} does not exist")]
    Missing(PathBuf),
    /// A key file that cannot be read.
    #[error("cannot read store key file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file that does not hold a key.
    #[error("store key file {path} does not hold a store key")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: SealError,
    },
}

/// The key file `pbn init` writes beside `store`: its path with `.key` appended.
pub fn beside(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

/// Reads a key file written by `pbn init` (or [`StoreKey::to_file_text`]).
pub fn read_key_file(path: &Path) -> Result<StoreKey, StoreKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => StoreKeyError::Missing(path.to_path_buf()),
        _ => StoreKeyError::Read { path: path.to_path_buf(), source },
    })?;
    let text = Zeroizing::new(text);
    StoreKey::from_file_text(&text)
        .map_err(|source| StoreKeyError::Invalid { path: path.to_path_buf(), source })
}

fn passphrase() -> Option<Zeroizing<String>> {
    std::env::var(PASSPHRASE_VAR).ok().filter(|p| !p.is_empty()).map(Zeroizing::new)
}

/// The key source for opening `store` (see the module doc); `None` for a plain store.
pub fn source(store: &Path, key_file: Option<&Path>) -> Result<Option<KeySource>, StoreKeyError> {
    let from_env = std::env::var_os(KEY_FILE_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = key_file.map(Path::to_path_buf).or(from_env) {
        return read_key_file(&path).map(|k| Some(KeySource::Key(k)));
    }
    if let Some(pass) = passphrase() {
        return Ok(Some(KeySource::Passphrase(pass)));
    }
    let path = beside(store);
    match read_key_file(&path) {
        Ok(key) => Ok(Some(KeySource::Key(key))),
        Err(StoreKeyError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The key source for a new store: a passphrase, or the key file (named, else beside the
/// store). An existing key file is used as it is, never overwritten; a missing one is
/// generated with mode 0600. Returns the source and the key file written, if any.
pub fn for_init(
    store: &Path,
    key_file: Option<&Path>,
) -> anyhow::Result<(KeySource, Option<PathBuf>)> {
    if key_file.is_none() {
        if let Some(pass) = passphrase() {
            return Ok((KeySource::Passphrase(pass), None));
        }
    }
    let path = key_file.map(Path::to_path_buf).unwrap_or_else(|| beside(store));
    match read_key_file(&path) {
        Ok(key) => return Ok((KeySource::Key(key), None)),
        Err(StoreKeyError::Missing(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let key = StoreKey::generate();
    SecretFile::open(&path)?.write(&key.to_file_text())?;
    Ok((KeySource::Key(key), Some(path)))
}

/// Runs `open` with the key source of `store` (see [`source`]). When none is configured and
/// the store turns out to be encrypted, the passphrase is asked on the terminal (never echoed)
/// and `open` runs again with it; without a terminal the [`StoreError::KeyRequired`] stands.
pub fn open_with<T>(
    store: &Path,
    key_file: Option<&Path>,
    open: impl Fn(Option<KeySource>) -> Result<T, StoreError>,
) -> anyhow::Result<Result<T, StoreError>> {
    let key = source(store, key_file)?;
    let asked = key.is_none();
    match open(key) {
        Err(StoreError::KeyRequired(_)) if asked && std::io::stdin().is_terminal() => {
            let prompt = format!("passphrase of store {}: ", store.display());
            let pass = Zeroizing::new(rpassword::prompt_password(prompt)?);
            Ok(open(Some(KeySource::Passphrase(pass))))
        }
        opened => Ok(opened),
    }
}
