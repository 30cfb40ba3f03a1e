//! Reading passwords (never from argv) and writing secret files (always 0600).

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use super::args::PasswordArgs;
use crate::fsutil::{Mode, PendingFile};

/// A password that was not given, or not acceptable: a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// No password source and no terminal to prompt on.
    #[error("no password given: use --password-stdin or --password-file (or run in a terminal)")]
    NotGiven,
    /// The prompt's two entries differ.
    #[error("the two passwords differ")]
    Mismatch,
    /// Shorter than [`MIN_PASSWORD_LEN`] characters.
    #[error("password too short: {0} characters, at least {MIN_PASSWORD_LEN} needed")]
    TooShort(usize),
    /// Longer than [`MAX_PASSWORD_LEN`] characters.
    #[error("password too long: {0} characters, at most {MAX_PASSWORD_LEN} allowed")]
    TooLong(usize),
}

/// Shortest password accepted.
const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (argon2 input is bounded to keep hashing cost predictable).
const MAX_PASSWORD_LEN: usize = 1024;

/// Reads a new password from stdin, a file, or a terminal prompt (asked twice), in that order,
/// and applies the password policy.
pub fn read_password(args: &PasswordArgs) -> Result<Zeroizing<String>> {
    let pw = read(args, true)?;
    check_password(&pw)?;
    Ok(pw)
}

/// Reads an existing password (to log in with) the same way, asked once at a prompt. The policy
/// is not applied: it governs new passwords, and the server is the judge of an existing one.
pub fn read_existing_password(args: &PasswordArgs) -> Result<Zeroizing<String>> {
    read(args, false)
}

fn read(args: &PasswordArgs, confirm: bool) -> Result<Zeroizing<String>> {
    Ok(if args.password_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).context("cannot read password from stdin")?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
    } else if let Some(path) = &args.password_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read password file {}", path.display()))?,
        );
        Zeroizing::new(text.lines().next().unwrap_or("").to_string())
    } else {
        if !std::io::stdin().is_terminal() {
            return Err(PasswordError::NotGiven.into());
        }
        let first = Zeroizing::new(rpassword::prompt_password("password: ")?);
        if !confirm {
            return Ok(first);
        }
        let second = Zeroizing::new(rpassword::prompt_password("repeat password: ")?);
        if first != second {
            return Err(PasswordError::Mismatch.into());
        }
        first
    })
}

/// Applies the password policy (length bounds) to a new password.
pub(super) fn check_password(pw: &str) -> Result<(), PasswordError> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort(n));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong(n));
    }
    Ok(())
}

/// A file for a secret (creds), prepared with mode 0600 *before* the operation that produces the
/// secret, so an unwritable path, an existing file (without `--force`) or a symlink fails before
/// anything changes in the store. Written through [`crate::fsutil`]: temp file, sync, rename.
#[derive(Debug)]
pub struct SecretFile(PendingFile);

impl SecretFile {
    /// Prepares `path`, refusing an existing file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    /// Prepares `path`; an existing regular file is replaced only with `force`.
    pub fn open_with(path: &Path, force: bool) -> Result<Self> {
        Ok(SecretFile(PendingFile::create(path, Mode::Secret, force)?))
    }

    /// The path of the file.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Puts `contents` in place (synced, mode 0600).
    pub fn write(self, contents: &str) -> Result<()> {
        Ok(self.0.commit(contents.as_bytes())?)
    }

    /// Drops the prepared file: nothing is written and the target is untouched.
    pub fn discard(self) {}
}
