//! The join bundle: one JSON file holding what a new replica needs to join the log.
//!
//! `pbn admin replica add NAME --out BUNDLE` writes it (mode 0600, never over an existing
//! file); `pbn serve --join BUNDLE --store NEW.redb` reads it. It holds the replica's NATS
//! creds, the store key (the key file's text; for a store opened by a passphrase only the
//! word that one is needed, since a passphrase never travels), the store's seal metadata, the
//! server URLs and the log's stream. Its path is given on the command line, its contents
//! never: they are secrets, kept out of argv, logs and `Debug` output.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// The bundle format this build writes and reads.
pub const BUNDLE_VERSION: u32 = 1;

/// The largest bundle read: creds and a key are a few KiB; anything far larger is not one.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024;

/// Errors of reading and writing bundles.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file to write exists already (a bundle is never overwritten).
    #[error("bundle file {0} already exists (a bundle is never overwritten)")]
    Exists(PathBuf),
    /// The bundle file does not exist.
    #[error("bundle file {0} does not exist")]
    Missing(PathBuf),
    /// The file cannot be read or written.
    #[error("cannot access bundle file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("bundle file {path} has {size} bytes, more than a bundle's {MAX_BUNDLE_BYTES}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Not the JSON of a bundle (truncated, edited, another file).
    #[error("bundle file {path} is not a pbn join bundle: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (never its contents).
        detail: String,
    },
    /// A bundle of another format version.
    #[error(
        "bundle file {path} has format version {found}; this build reads version {BUNDLE_VERSION}"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u64,
    },
    /// A bundle without a field joining needs.
    #[error("bundle file {path} has no {field}")]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// The empty field.
        field: &'static str,
    },
}

/// What a new replica needs to join (see the module docs).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// [`BUNDLE_VERSION`].
    pub version: u32,
    /// The replica's name.
    pub name: String,
    /// The replica's NATS creds (a user of the AUTH account).
    pub creds: String,
    /// The store key file's text; `None` for a plain store or a passphrase.
    pub store_key: Option<String>,
    /// Whether a passphrase opens the store: the joiner reads it from `PBN_KEY_PASSPHRASE`.
    pub passphrase: bool,
    /// The store's seal metadata (`Store::genesis`), encoded, in base64.
    pub genesis: String,
    /// NATS server URLs to join through.
    pub servers: Vec<String>,
    /// The log's stream.
    pub stream: String,
}

/// Only the name, the servers and whether a key is held: never the creds or the key.
impl fmt::Debug for Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("version", &self.version)
            .field("name", &self.name)
            .field("creds", &"<redacted>")
            .field("store_key", &self.store_key.as_ref().map(|_| "<redacted>"))
            .field("passphrase", &self.passphrase)
            .field("servers", &self.servers)
            .field("stream", &self.stream)
            .finish()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        self.creds.zeroize();
        if let Some(key) = self.store_key.as_mut() {
            key.zeroize();
        }
    }
}

impl Bundle {
    /// Writes the bundle to `path` with mode 0600; refuses an existing file (or symlink).
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let io = |source| BundleError::Io { path: path.to_path_buf(), source };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => BundleError::Exists(path.to_path_buf()),
                _ => io(e),
            })?;
        // The umask may only clear bits of 0600; setting it again makes the mode exact.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let mut text = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(self).expect("a bundle is strings, bools and numbers"),
        );
        text.push(b'\n');
        let written = file.write_all(&text).and_then(|()| file.sync_all());
        if let Err(e) = written {
            // Created exclusively above, so it is ours to remove.
            let _ = std::fs::remove_file(path);
            return Err(io(e));
        }
        Ok(())
    }

    /// Reads and checks the bundle at `path`.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let p = || path.to_path_buf();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BundleError::Missing(p()),
            _ => BundleError::Io { path: p(), source: e },
        })?;
        if meta.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge { path: p(), size: meta.len() });
        }
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|source| BundleError::Io { path: p(), source })?,
        );
        Bundle::parse(path, &bytes)
    }

    /// Parses bundle bytes read from `path` (named in errors only).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Bundle, BundleError> {
        let p = || path.to_path_buf();
        // serde_json's messages name positions and expected types, never the input's text.
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| BundleError::Malformed { path: p(), detail: e.to_string() })?;
        let version = value.get("version").and_then(serde_json::Value::as_u64);
        match version {
            Some(v) if v == u64::from(BUNDLE_VERSION) => {}
            Some(found) => return Err(BundleError::Version { path: p(), found }),
            None => {
                let detail = "no format version".to_string();
                return Err(BundleError::Malformed { path: p(), detail });
            }
        }
        let bundle: Bundle = serde_json::from_value(value)
            .map_err(|e| BundleError::Malformed { path: p(), detail: e.to_string() })?;
        let empty = [
            ("name", bundle.name.is_empty()),
            ("creds", bundle.creds.trim().is_empty()),
            ("genesis", bundle.genesis.is_empty()),
            ("server URL", bundle.servers.is_empty()),
            ("stream", bundle.stream.is_empty()),
        ];
        if let Some((field, _)) = empty.iter().find(|(_, empty)| *empty) {
            return Err(BundleError::Incomplete { path: p(), field });
        }
        Ok(bundle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            version: BUNDLE_VERSION,
            name: "r1".into(),
            creds: "-----BEGIN NATS USER JWT-----\neyJ\n-----\nSUSECRETSEED\n".into(),
            store_key: Some("KEYTEXTSECRET\n".into()),
            passphrase: false,
            genesis: "AQID".into(),
            servers: vec!["nats://127.0.0.1:4222".into()],
            stream: "PBN_LOG".into(),
        }
    }

    #[test]
    fn a_bundle_is_written_0600_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.bundle");
        bundle().write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Bundle::read(&path).unwrap(), bundle());
        let err = bundle().write(&path).unwrap_err();
        assert!(matches!(err, BundleError::Exists(_)), "{err:?}");
        assert_eq!(Bundle::read(&path).unwrap(), bundle(), "the first bundle is kept");
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", bundle());
        assert!(!shown.contains("SUSECRETSEED") && !shown.contains("KEYTEXTSECRET"), "{shown}");
        assert!(shown.contains("r1") && shown.contains("127.0.0.1"), "{shown}");
    }

    #[test]
    fn bad_truncated_and_foreign_bundles_are_refused_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let good = serde_json::to_vec(&bundle()).unwrap();
        let parse = |bytes: &[u8]| Bundle::parse(&path, bytes).unwrap_err();
        let truncated = parse(&good[..good.len() / 2]);
        assert!(matches!(truncated, BundleError::Malformed { .. }), "{truncated:?}");
        assert!(!truncated.to_string().contains("SUSECRETSEED"), "{truncated}");
        assert!(matches!(parse(b"not json"), BundleError::Malformed { .. }));
        assert!(matches!(parse(b"{}"), BundleError::Malformed { .. }));
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        v["version"] = 2.into();
        let err = parse(&serde_json::to_vec(&v).unwrap());
        assert!(matches!(err, BundleError::Version { found: 2, .. }), "{err:?}");
        v["version"] = 1.into();
        v["servers"] = serde_json::json!([]);
        let err = parse(&serde_json::to_vec(&v).unwrap());
        assert!(matches!(err, BundleError::Incomplete { field: "server URL", .. }), "{err:?}");
        let err = Bundle::read(&dir.path().join("none")).unwrap_err();
        assert!(matches!(err, BundleError::Missing(_)), "{err:?}");
        std::fs::write(&path, vec![b' '; MAX_BUNDLE_BYTES as usize + 1]).unwrap();
        assert!(matches!(Bundle::read(&path).unwrap_err(), BundleError::TooLarge { .. }));
    }
}
