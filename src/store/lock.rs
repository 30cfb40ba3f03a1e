//! Who holds the store: a small lock-info file beside the store file.
//!
//! redb's file lock says only that the store is busy. Whoever opens the store for writing
//! writes `STORE.holder` (pid, command, start time) and removes it again on close, so a process
//! that finds the store busy can name the holder. The file is advisory: one whose pid is not
//! alive (left by a killed process) is ignored, and a missing or unreadable one just means the
//! holder is unknown.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest lock-info file read; anything beyond is not ours.
const MAX_INFO_BYTES: u64 = 4096;

/// The process holding a store open for writing, as its lock-info file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// What it runs, e.g. `pbn serve` or `pbn admin`.
    pub command: String,
    /// When it opened the store, unix seconds.
    pub since: i64,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` (pid {}, since unix time {})", self.command, self.pid, self.since)
    }
}

/// The lock-info file of `store`.
pub(crate) fn info_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".holder");
    store.with_file_name(name)
}

/// Records this process as the holder of `store`. Best effort: a store in a read-only folder
/// still opens, its holder is then unknown to others.
pub(crate) fn write(store: &Path, command: &str) -> Option<PathBuf> {
    let path = info_path(store);
    let since = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Control characters would break the line format; the command is ours, but stay safe.
    let command: String = command.chars().filter(|c| !c.is_control()).take(64).collect();
    let text = format!("pid={}\ncommand={command}\nsince={since}\n", std::process::id());
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    // create_new never follows a symlink at `tmp`; rename replaces a link at `path` itself.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(file = %path.display(), error = %e, "cannot record the store holder");
            None
        }
    }
}

/// Removes the lock-info file at `path` if it still names this process.
pub(crate) fn remove(path: &Path) {
    if read_file(path).is_some_and(|h| h.pid == std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The live holder of `store`, if its lock-info file names a running process.
pub(crate) fn holder(store: &Path) -> Option<Holder> {
    read_file(&info_path(store)).filter(|h| pid_alive(h.pid))
}

fn read_file(path: &Path) -> Option<Holder> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path).ok()?.take(MAX_INFO_BYTES).read_to_string(&mut text).ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<Holder> {
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
    };
    Some(Holder {
        pid: field("pid")?.parse().ok()?,
        command: field("command")?,
        since: field("since")?.parse().ok()?,
    })
}

/// Whether a process with `pid` exists (Linux: it has a `/proc` entry).
fn pid_alive(pid: u32) -> bool {
    pid > 0 && Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_holder_is_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        let path = write(&store, "pbn admin").expect("written");
        let h = holder(&store).expect("our own pid is alive");
        assert_eq!((h.pid, h.command.as_str()), (std::process::id(), "pbn admin"));
        remove(&path);
        assert!(!path.exists());
    }

    #[test]
    fn a_stale_holder_whose_process_is_gone_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.redb");
        // pid_max on Linux is at most 2^22, so this pid cannot be running.
        std::fs::write(info_path(&store), "pid=99999999\ncommand=pbn serve\nsince=1\n").unwrap();
        assert_eq!(holder(&store), None);
        assert_eq!(parse("garbage"), None);
    }
}
