//! Standard output of the commands: writes that return errors instead of panicking.
//!
//! `println!` panics when standard output is a closed pipe (`pbn admin … | head -c 10`); every
//! command prints through [`out`] instead, and a closed pipe becomes [`OutputClosed`], which the
//! binary turns into a quiet exit (no message, exit code [`CLOSED_EXIT_CODE`]) like other Unix
//! tools.

use std::io::{ErrorKind, Write};

/// Exit code when standard output was closed early: what a shell reports for a process ended by
/// SIGPIPE (128 + 13), so pipelines with `pipefail` see pbn like any other tool.
pub const CLOSED_EXIT_CODE: u8 = 141;

/// Standard output was closed by its reader.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct OutputClosed;

/// Writes `text` to standard output and flushes it.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// Whether `err` is a closed standard output (to exit without a message).
pub fn is_closed_output(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<OutputClosed>())
}

/// `println!` through [`out`]: evaluates to `anyhow::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::out(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
