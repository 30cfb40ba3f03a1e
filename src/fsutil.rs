//! Writing output files safely: every file pbn writes (creds, admin creds, nats-server configs)
//! goes through [`PendingFile`].
//!
//! Invariants:
//! - the content is written to a fresh temporary file in the target's folder (created with
//!   `O_CREAT|O_EXCL`, which by POSIX never follows a symbolic link), synced, and renamed into
//!   place, so a reader sees the old file or the complete new one, never a partial one;
//! - a symbolic link at the target path is refused, with or without `force`: pbn never writes
//!   through a link, nor replaces one;
//! - an existing target is kept unless `force` is given; without it the final step is a hard
//!   link, which fails atomically if the target appeared meanwhile;
//! - secrets are created with mode 0600 from the first byte.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why an output file was not written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The target exists and `--force` was not given.
    #[error("{0} already exists; use --force to replace it")]
    Exists(PathBuf),
    /// The target is a symbolic link: pbn never writes through one.
    #[error("{0} is a symbolic link; refusing to write through it")]
    Symlink(PathBuf),
    /// The target is a directory or another non-regular file.
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    /// The path has no file name (`/`, `..`).
    #[error("{0} does not name a file")]
    NoFileName(PathBuf),
    /// An I/O error on the file.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The new content could not be moved into place; it was kept in `kept` so nothing is lost.
    #[error("cannot put {path} in place; the new content is kept in {kept}")]
    Kept {
        /// The target.
        path: PathBuf,
        /// The temporary file still holding the content.
        kept: PathBuf,
        /// The cause.
        source: Box<FsError>,
    },
}

/// Who may read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Owner only (0600): creds, keys.
    Secret,
    /// Readable by all (0644 before the umask): config files.
    Public,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Secret => 0o600,
            Mode::Public => 0o644,
        }
    }
}

/// How many temporary names are tried before giving up (another process racing on the same
/// names; each try has a fresh random part, so more than a few collisions means something odd).
const TEMP_TRIES: usize = 16;

/// A file about to be written: its temporary file exists (so an unwritable folder fails before
/// anything else happens), the target is checked, and [`PendingFile::commit`] puts the content
/// in place. Dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct PendingFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
    force: bool,
}

impl PendingFile {
    /// Checks `target` (no symlink; absent unless `force`) and creates the temporary file beside
    /// it with `mode`.
    pub fn create(target: &Path, mode: Mode, force: bool) -> Result<Self, FsError> {
        check_target(target, force)?;
        let name = target.file_name().ok_or_else(|| FsError::NoFileName(target.into()))?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut last = None;
        for _ in 0..TEMP_TRIES {
            let temp = dir.join(format!(
                ".{}.{}.{:016x}.tmp",
                name.to_string_lossy(),
                std::process::id(),
                rand::random::<u64>()
            ));
            match OpenOptions::new().write(true).create_new(true).mode(mode.bits()).open(&temp) {
                Ok(file) => {
                    return Ok(PendingFile {
                        target: target.to_path_buf(),
                        temp,
                        file: Some(file),
                        force,
                    })
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
                Err(source) => return Err(FsError::Io { path: target.into(), source }),
            }
        }
        let source = last.unwrap_or_else(|| ErrorKind::AlreadyExists.into());
        Err(FsError::Io { path: target.into(), source })
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Writes `contents` to the temporary file, syncs it and moves it into place (then syncs
    /// the folder). If the content is written but cannot be moved into place, the temporary file
    /// is kept and [`FsError::Kept`] names it.
    pub fn commit(mut self, contents: &[u8]) -> Result<(), FsError> {
        let io = |source| FsError::Io { path: self.target.clone(), source };
        let mut file = self.file.take().expect("the file is present until commit");
        file.write_all(contents).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        if let Err(e) = self.place() {
            let kept = std::mem::take(&mut self.temp);
            return Err(FsError::Kept { path: self.target.clone(), kept, source: Box::new(e) });
        }
        self.temp = PathBuf::new();
        if let Some(dir) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Best effort: the rename is done; a folder that cannot be synced (some network
            // file systems) still holds the file.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Moves the synced temporary file to the target.
    fn place(&self) -> Result<(), FsError> {
        let io = |source| FsError::Io { path: self.target.clone(), source };
        check_target(&self.target, self.force)?;
        if self.force {
            // rename(2) replaces the directory entry; it never follows a link at the target.
            return std::fs::rename(&self.temp, &self.target).map_err(io);
        }
        // link(2) fails if the target exists (even as a dangling link): no check-then-write race.
        match std::fs::hard_link(&self.temp, &self.target) {
            Ok(()) => {
                std::fs::remove_file(&self.temp).map_err(io)?;
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(FsError::Exists(self.target.clone()))
            }
            // File systems without hard links: the target was checked absent just above.
            Err(_) => std::fs::rename(&self.temp, &self.target).map_err(io),
        }
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            // Best effort: an uncommitted temporary file holds nothing yet.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Refuses a symlink or non-file at `target`, and an existing file unless `force`.
fn check_target(target: &Path, force: bool) -> Result<(), FsError> {
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => Err(FsError::Symlink(target.into())),
        Ok(m) if !m.is_file() => Err(FsError::NotAFile(target.into())),
        Ok(_) if !force => Err(FsError::Exists(target.into())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FsError::Io { path: target.into(), source }),
    }
}

/// Whether anything (a file, a directory, a link, even a dangling one) is at `path`.
pub fn occupied(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Writes `contents` to `target` in one step (see the module invariants).
#[cfg(test)]
fn write_file(target: &Path, contents: &[u8], mode: Mode, force: bool) -> Result<(), FsError> {
    PendingFile::create(target, mode, force)?.commit(contents)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_a_new_secret_with_mode_0600_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.creds");
        write_file(&target, b"secret", Mode::Secret, false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        assert_eq!(mode_of(&target), 0o600);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn keeps_an_existing_file_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.conf");
        std::fs::write(&target, "old").unwrap();
        let err = write_file(&target, b"new", Mode::Public, false).unwrap_err();
        assert!(matches!(err, FsError::Exists(ref p) if p == &target));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        write_file(&target, b"new", Mode::Public, true).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn refuses_symlinks_even_dangling_and_forced() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link.creds");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for force in [false, true] {
            let err = write_file(&link, b"x", Mode::Secret, force).unwrap_err();
            assert!(matches!(err, FsError::Symlink(ref p) if p == &link), "{err}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(mode_of(&victim), 0o644);
        let dangling = dir.path().join("dangling.creds");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let err = write_file(&dangling, b"x", Mode::Secret, false).unwrap_err();
        assert!(matches!(err, FsError::Symlink(_)), "{err}");
        assert!(!dir.path().join("nowhere").exists());
    }

    #[test]
    fn a_target_that_appears_before_commit_is_kept_and_so_is_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("race.creds");
        let pending = PendingFile::create(&target, Mode::Secret, false).unwrap();
        std::fs::write(&target, "theirs").unwrap();
        let err = pending.commit(b"ours").unwrap_err();
        let FsError::Kept { kept, source, .. } = err else { panic!("{err}") };
        assert!(matches!(*source, FsError::Exists(_)));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "theirs");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "ours");
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("never.creds");
        drop(PendingFile::create(&target, Mode::Secret, false).unwrap());
        assert!(!target.exists());
        assert!(leftovers(dir.path()).is_empty());
        let missing = dir.path().join("no/such/dir/x.creds");
        assert!(matches!(
            PendingFile::create(&missing, Mode::Secret, false),
            Err(FsError::Io { .. })
        ));
        let d = dir.path().join("sub");
        std::fs::create_dir(&d).unwrap();
        assert!(matches!(write_file(&d, b"x", Mode::Secret, true), Err(FsError::NotAFile(_))));
    }
}
