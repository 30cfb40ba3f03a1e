//! Child processes tied to this one: spawned from one long-lived thread with a parent-death
//! signal (Linux), so none outlives this process even when it is killed.

use std::io;
use std::process::{Child, Command};
use std::sync::{mpsc, OnceLock};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from one long-lived thread, with a parent-death signal on Linux, so the
/// child cannot outlive this process (see the module docs).
pub fn spawn_tied(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<io::Result<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new().name("pbn-spawner".into()).spawn(move || {
            for (mut command, reply) in incoming {
                // The requester waits on `reply`; it is gone only if it panicked.
                let _ = reply.send(spawn_here(&mut command));
            }
        })?;
        Ok(requests)
    });
    let gone = || io::Error::other("the process spawner thread is gone");
    let spawner = spawner.as_ref().map_err(|err| io::Error::new(err.kind(), err.to_string()))?;
    let (reply, response) = mpsc::channel();
    spawner.send((command, reply)).map_err(|_| gone())?;
    response.recv().map_err(|_| gone())?
}

#[cfg(target_os = "linux")]
fn spawn_here(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2) and
    // getppid(2), which are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then no signal would come.
            if libc::getppid() != parent {
                return Err(io::Error::other("the parent died while starting the child"));
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

/// Sends `signal` to a child that has not been reaped yet.
///
/// An unreaped child's pid cannot be reused, so this never hits an unrelated process.
pub fn send_signal(child: &Child, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
