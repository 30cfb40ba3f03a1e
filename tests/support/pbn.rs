//! Runs the real `pbn` binary (the one cargo built for this test run) as a child process.
//!
//! `Pbn::new(["admin", "account", "list"]).stdin("…").env("K", "V").run()` returns a
//! [`PbnOutput`] with the exit code and both output streams. The child never inherits the test's
//! `PBN_STORE` or `PBN_LOG`, so a developer's environment cannot change what a test runs against.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Environment variables of pbn that a test must set explicitly if it wants them.
const PBN_ENV: [&str; 2] = ["PBN_STORE", "PBN_LOG"];

/// The path of the `pbn` binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pbn"))
}

/// One invocation of `pbn`: arguments, standard input and extra environment.
#[derive(Debug, Clone)]
pub struct Pbn {
    args: Vec<OsString>,
    stdin: Option<String>,
    env: Vec<(String, OsString)>,
    dir: Option<PathBuf>,
}

impl Pbn {
    /// An invocation with these arguments (no stdin, no extra environment).
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
            env: Vec::new(),
            dir: None,
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds `text` on standard input (otherwise stdin is empty and not a terminal).
    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(text.into());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the child in `dir` (otherwise in the test's working directory).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command for the binary: its arguments, a clean `PBN_*` environment plus what was set,
    /// and the working directory.
    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command.args(&self.args);
        for key in PBN_ENV {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs the binary to completion.
    ///
    /// # Panics
    /// If the binary cannot be started or its stdin not written (a broken test setup).
    pub fn run(&self) -> PbnOutput {
        let mut command = self.command();
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary().display()));
        let mut input = child.stdin.take().expect("stdin was configured as piped");
        if let Some(text) = &self.stdin {
            // A child that exits without reading stdin closes the pipe; that is its business.
            let _ = input.write_all(text.as_bytes());
        }
        drop(input);
        let output = child.wait_with_output().expect("waiting for a spawned child works");
        PbnOutput {
            args: self.args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Pbn {
    /// Starts the binary in the background (e.g. `pbn serve`), its output appended to `log`;
    /// the process is killed when the handle drops, and with the test process.
    ///
    /// # Panics
    /// If the binary cannot be started or the log not opened.
    pub fn spawn_logged(&self, log: &std::path::Path) -> PbnChild {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|err| panic!("open {}: {err}", log.display()));
        let err = out.try_clone().expect("duplicate a log handle");
        let mut command = self.command();
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = super::process::spawn(command)
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary().display()));
        PbnChild { child, log: log.to_path_buf() }
    }
}

/// A `pbn` running in the background (see [`Pbn::spawn_logged`]).
#[derive(Debug)]
pub struct PbnChild {
    child: std::process::Child,
    log: PathBuf,
}

impl PbnChild {
    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PbnChild {
    fn drop(&mut self) {
        // Errors mean it already exited; wait() reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- pbn log {} ----\n{}", self.log.display(), self.log());
        }
    }
}

/// What one run of `pbn` produced.
#[derive(Debug, Clone)]
pub struct PbnOutput {
    /// The arguments it ran with (for failure messages).
    pub args: Vec<String>,
    /// The exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl PbnOutput {
    /// Asserts a zero exit code (printing both streams otherwise) and returns `self`.
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "pbn {:?} failed:\n{}", self.args, self.streams());
        self
    }

    /// Asserts exit code `code` (printing both streams otherwise) and returns `self`.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "pbn {:?}: wrong exit code:\n{}",
            self.args,
            self.streams()
        );
        self
    }

    /// Standard output parsed as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!("pbn {:?}: stdout is not json ({err}):\n{}", self.args, self.streams())
        })
    }

    /// Both streams, labelled, for failure messages.
    pub fn streams(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// A long-running `pbn` (serve, up) started by [`Pbn::spawn`]; killed when dropped.
#[derive(Debug)]
pub struct Running {
    child: std::process::Child,
    stderr: tempfile::NamedTempFile,
}

impl Pbn {
    /// Starts the binary without waiting; standard error goes to a temp file read by
    /// [`Running::stderr`].
    ///
    /// # Panics
    /// If the binary cannot be started (a broken test setup).
    pub fn spawn(&self) -> Running {
        let stderr = tempfile::NamedTempFile::new().expect("create a temp file");
        let mut command = self.command();
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command.stderr(stderr.reopen().expect("reopen the temp file"));
        let child = super::process::spawn(command)
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary().display()));
        Running { child, stderr }
    }
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `libc::SIGKILL`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        super::process::signal(&self.child, signal).expect("signal a live child");
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait on a child")
    }

    /// Waits (polling) up to `timeout` for the process to exit; returns its exit status.
    ///
    /// # Panics
    /// When it is still running at the deadline (with its standard error).
    pub async fn wait_exit(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let deadline = super::Deadline::after(timeout, "pbn to exit");
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if deadline.expired() {
                panic!("pbn still runs after {timeout:?}; stderr:\n{}", self.stderr());
            }
            deadline.tick().await;
        }
    }

    /// Waits (polling) up to `timeout` until standard error contains `needle`.
    ///
    /// # Panics
    /// At the deadline, or when the process exits first (with its standard error).
    pub async fn wait_stderr(&mut self, needle: &str, timeout: std::time::Duration) {
        let deadline = super::Deadline::after(timeout, format!("{needle:?} on pbn's stderr"));
        while !self.stderr().contains(needle) {
            if let Some(status) = self.try_wait() {
                panic!("pbn exited ({status}) before printing {needle:?}:\n{}", self.stderr());
            }
            if deadline.expired() {
                panic!("no {needle:?} on pbn's stderr after {timeout:?}:\n{}", self.stderr());
            }
            deadline.tick().await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
