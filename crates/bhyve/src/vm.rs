//! A running bhyve, and the order it is ended in: the process, its console, then the VM's
//! kernel instance.

use crate::ctl::Destroy;
use crate::relay::Relay;
use crate::status::{report, BhyveExit};
use crate::sys;
use rustix::process::Signal;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use vmlane_backend::{BackendError, RunningVm};

/// How long the console may take to reach the session once bhyve has exited, while the session
/// waits in `try_wait` or `kill` and so is not reading.
const CONSOLE_WAIT: Duration = Duration::from_secs(2);
/// How long a bhyve that has closed its exit pipe may take to become reapable.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// A started bhyve.
pub struct BhyveVm {
    child: Child,
    /// Held so bhyve's com1 input never reaches end of file.
    stdin: Option<OwnedFd>,
    relay: Relay,
    stderr_log: PathBuf,
    destroy: Option<Destroy>,
    stop_grace: Duration,
    /// Set once bhyve is reaped: what `try_wait` reports.
    said: Option<String>,
}

/// How to start bhyve.
pub struct Launch<'a> {
    /// The program.
    pub bhyve: &'a Path,
    /// Its arguments.
    pub args: &'a [OsString],
    /// Where its stderr goes.
    pub stderr_log: PathBuf,
    /// The session's console connection.
    pub console: UnixStream,
    /// bhyveload's console output, to go first.
    pub loader_console: Vec<u8>,
    /// How long SIGTERM (an ACPI power-off request) gets before SIGKILL.
    pub stop_grace: Duration,
    /// Destroys the VM when it is over.
    pub destroy: Destroy,
}

impl BhyveVm {
    /// Starts bhyve in its own process group, so a Ctrl-C at the terminal reaches vmlane, which
    /// then ends the VM in order. On error the VM is not destroyed: the caller still owns that.
    pub fn spawn(launch: Launch<'_>) -> Result<BhyveVm, BackendError> {
        let io_err = |action: &str| {
            let action = action.to_string();
            move |source| BackendError::Io { action, source }
        };
        let stderr = File::create(&launch.stderr_log).map_err(io_err("create bhyve's log"))?;
        let pipes = (|| Ok::<_, io::Error>((sys::pipe()?, sys::pipe()?, sys::pipe()?)))()
            .map_err(io_err("make pipes for bhyve"))?;
        let ((in_r, in_w), (out_r, out_w), (exit_r, exit_w)) = pipes;
        let mut command = Command::new(launch.bhyve);
        command
            .args(launch.args)
            .stdin(Stdio::from(in_r))
            .stdout(Stdio::from(out_w))
            .stderr(stderr)
            .process_group(0);
        // SAFETY: the closure only makes async-signal-safe system calls in the forked child.
        unsafe {
            command.pre_exec(move || {
                sys::die_with_parent()?;
                // Only bhyve holds this pipe's write end: its end of file is bhyve's exit.
                sys::keep_across_exec(&exit_w)
            })
        };
        let spawned = command.spawn();
        // This also closes vmlane's copy of the exit pipe's write end, held by the closure.
        drop(command);
        let mut child = spawned.map_err(|source| BackendError::Spawn {
            program: launch.bhyve.display().to_string(),
            source,
        })?;
        let relay = match Relay::spawn(launch.loader_console, out_r, exit_r, launch.console) {
            Ok(relay) => relay,
            Err(source) => {
                sys::signal_group(&child, Signal::KILL);
                let _ = child.wait();
                return Err(io_err("start relaying bhyve's console")(source));
            }
        };
        Ok(BhyveVm {
            child,
            stdin: Some(in_w),
            relay,
            stderr_log: launch.stderr_log,
            destroy: Some(launch.destroy),
            stop_grace: launch.stop_grace,
            said: None,
        })
    }

    /// Everything after bhyve is reaped: the rest of its console, the VM instance, the report.
    fn finish(&mut self, status: Option<ExitStatus>) {
        self.relay.wait(CONSOLE_WAIT);
        self.stdin = None;
        if let Some(destroy) = self.destroy.take() {
            destroy.run();
        }
        let mut stderr = String::new();
        let _ = File::open(&self.stderr_log).and_then(|mut f| f.read_to_string(&mut stderr));
        self.said = Some(report(&stderr, status.map(BhyveExit::from_status)));
    }
}

impl RunningVm for BhyveVm {
    fn exit_fd(&self) -> RawFd {
        self.relay.done_fd().as_raw_fd()
    }

    fn try_wait(&mut self) -> io::Result<Option<String>> {
        if self.said.is_none() {
            // Once the relay is done bhyve has closed its end of the exit pipe, so it is exiting:
            // wait a moment for it rather than race its reaping.
            let status = if sys::wait_readable(self.relay.done_fd(), Some(Duration::ZERO))? {
                sys::wait_timeout(&mut self.child, REAP_WAIT)?
            } else {
                self.child.try_wait()?
            };
            match status {
                Some(status) => self.finish(Some(status)),
                None => return Ok(None),
            }
        }
        Ok(self.said.clone())
    }

    fn kill(&mut self) {
        if self.said.is_none() {
            let status = sys::stop_group(&mut self.child, self.stop_grace).ok();
            self.finish(status);
        }
    }
}

impl Drop for BhyveVm {
    fn drop(&mut self) {
        self.kill();
    }
}
