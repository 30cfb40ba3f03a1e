//! Child processes that cannot outlive the test process (see [`pbn::natsd::spawn_tied`]).
//!
//! Drop handlers kill servers on every normal exit and on panics; a test process that is itself
//! killed (timeout, signal) runs no destructors, so on Linux each child also gets a parent-death
//! signal, from the one long-lived spawner thread of `pbn::natsd`.

use std::io;
use std::process::{Child, Command};

/// Spawns `command` tied to the test process (see the module docs).
pub fn spawn(command: Command) -> io::Result<Child> {
    pbn::natsd::spawn_tied(command)
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to a child that has not been reaped yet.
///
/// An unreaped child's pid cannot be reused, so this never hits an unrelated process.
pub fn signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    pbn::natsd::send_signal(child, signal)
}
