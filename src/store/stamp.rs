//! The clean-close stamp: `STORE.clean`, written beside the store file when a pbn process has
//! closed it for writing, so the next open can tell the file is exactly as pbn left it.
//!
//! redb's whole-file integrity check (every page read and its checksum verified, the allocator
//! rebuilt) costs time in proportion to the file: one to two seconds for a store of a million
//! users. redb itself runs that check (a full repair) whenever the file was not shut down
//! cleanly, so a crash, a kill or a power loss never needs pbn's help. What redb does not check
//! on a clean file is damage done to it from outside: a partial copy, a restore, an editor, a
//! tool. The stamp records the file's identity and change times (device, inode, size, mtime and
//! ctime to the nanosecond) right after pbn closed it; any write to the file by anything changes
//! the ctime (which no tool can set back), so a stamp that still matches means nothing but pbn
//! wrote the file since pbn's last check of it, and the open can skip the check.
//!
//! The trade-off: damage that leaves the file's metadata untouched (the storage medium flipping
//! bits under the file system) is not found on open when the stamp matches; reads then fail on
//! the damaged record (a record that does not decode is an error, never a default), and the next
//! open without a stamp (after a crash, a copy, or deleting `STORE.clean`) checks the whole file.
//! A write within the same clock tick as pbn's close (a few ms on Linux) could also keep the
//! same times. The stamp is removed as soon as a writer has opened the store, so an open store,
//! or one left by a crash, never has one.

use std::fs::Metadata;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The first line of a stamp file: what it is and its format version.
const HEADER: &str = "pbn clean close v1";
/// The longest stamp file read; anything beyond is not a stamp.
const MAX_BYTES: u64 = 512;

/// The stamp file of `store`.
pub(crate) fn path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".clean");
    store.with_file_name(name)
}

/// The stamp text for the store file's metadata `meta`.
fn text(meta: &Metadata) -> String {
    format!(
        "{HEADER}\ndev={}\nino={}\nsize={}\nmtime={}.{:09}\nctime={}.{:09}\n",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Whether `store` has a stamp that matches the file as it is now.
pub(crate) fn matches(store: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(store) else { return false };
    let Ok(file) = std::fs::File::open(path(store)) else { return false };
    let mut found = String::new();
    match file.take(MAX_BYTES).read_to_string(&mut found) {
        Ok(_) => found == text(&meta),
        Err(_) => false,
    }
}

/// Removes the stamp of `store`: a writer has it open. Best effort: the open itself writes the
/// file's header, so a stamp left behind no longer matches anyway.
pub(crate) fn remove(store: &Path) {
    let _ = std::fs::remove_file(path(store));
}

/// Records `store` as closed cleanly by pbn, as it is now. Best effort: without a stamp (say,
/// in a read-only folder) the next open checks the whole file, which is slower, never unsafe.
pub(crate) fn write(store: &Path) {
    let Ok(meta) = std::fs::metadata(store) else { return };
    let path = path(store);
    let tmp = path.with_extension(format!("clean.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    // create_new never follows a symlink at `tmp`; rename replaces a link at `path` itself.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text(&meta).as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %path.display(), error = %e, "cannot write the clean-close stamp");
    }
}
