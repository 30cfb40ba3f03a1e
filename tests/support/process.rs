//! Child processes that cannot outlive the test process.
//!
//! Drop handlers kill servers on every normal exit and on panics; a test process that is itself
//! killed (timeout, signal) runs no destructors, so on Linux each child also gets a parent-death
//! signal. That signal fires when the spawning *thread* exits, so all children are spawned from
//! one dedicated thread that lives as long as the process.

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the long-lived spawner thread (see the module docs).
pub fn spawn(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("pbn-test-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    // The requester waits on `reply`; it is gone only if it panicked.
                    let _ = reply.send(spawn_here(&mut command));
                }
            })
            .expect("a test process can start one helper thread");
        requests
    });
    let (reply, response) = mpsc::channel();
    let gone = || io::Error::other("the process spawner thread is gone");
    spawner.send((command, reply)).map_err(|_| gone())?;
    response.recv().map_err(|_| gone())?
}

#[cfg(target_os = "linux")]
fn spawn_here(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2) and
    // getppid(2), which are async-signal-safe and touch no memory of the parent.
    unsafe {
        let parent = libc::getpid();
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::other("test process died during spawn"));
            }
            Ok(())
        });
    }
    command.spawn()
}

#[cfg(not(target_os = "linux"))]
fn spawn_here(command: &mut Command) -> io::Result<Child> {
    command.spawn()
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to a child that has not been reaped yet.
///
/// An unreaped child's pid cannot be reused, so this never hits an unrelated process.
pub fn signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
