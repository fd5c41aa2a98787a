//! What `vmlane run`, `vmlane shell` and `vmlane test` make of their shared options: the
//! request, the console log, and the engine's events on stderr.

use crate::args::{BootArgs, NetArg, VmArgs};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::time::{Duration, Instant};
use vmlane::boot::Io;
use vmlane::launch::launch;
use vmlane::result::Finished;
use vmlane::{LaunchEvent, Request};
use vmlane_backend::{ConsoleLog, StopSignals};
use vmlane_spec::Network;

impl BootArgs {
    /// Puts these options into `request`, after what it has.
    pub fn apply(&self, request: &mut Request) {
        request.modules_dir = self.modules.clone();
        request.profiles.extend(self.profiles.iter().cloned());
        request.accel = self.accel.into();
        request.arch = self.arch.or(request.arch);
        request.linux.root = self.root.clone().or(request.linux.root.take());
        request.machine = self.machine.into();
        request.linux.share = self.share.into();
        request.append.extend(self.append.iter().cloned());
        request.rwdirs.extend(self.rwdirs.iter().cloned());
        request.cold |= self.cold;
    }
}

impl VmArgs {
    /// The request for `argv` (empty: the login shell) in the current directory.
    pub fn request(&self, argv: Vec<OsString>) -> Result<Request> {
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let mut request = Request::new(argv, cwd);
        request.kernel = self.kernel.clone();
        self.boot.apply(&mut request);
        request.env = self.env.clone();
        request.cpus = self.cpus;
        request.memory_mib = self.memory;
        request.disks = self.disks.clone();
        request.network = match self.net {
            Some(NetArg::User) => Network::User {
                forwards: self.forwards.clone(),
            },
            _ if !self.forwards.is_empty() => bail!("--forward needs --net user"),
            _ => Network::None,
        };
        request.gdb = self.gdb;
        request.timeout = match self.timeout {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            Some(secs) => bail!("--timeout must be a positive number of seconds, got {secs}"),
            None => None,
        };
        Ok(request)
    }

    /// The console log: `--log`, or a new file under vmlane's cache.
    pub fn console_log(&self) -> Result<ConsoleLog> {
        let path = self
            .log
            .clone()
            .unwrap_or_else(|| crate::run::default_log_path(&vmlane_kernel::cache_dir()));
        ConsoleLog::create(&path)
            .with_context(|| format!("failed to create the console log {}", path.display()))
    }
}

/// After a run that failed with an error: a log the guest wrote to is kept and named; an
/// empty one (most errors come before any VM starts) is removed unless `--log` asked for it.
pub fn settle_log_after_error(console: &ConsoleLog, log_requested: bool) {
    let empty = std::fs::metadata(console.path()).is_ok_and(|m| m.len() == 0);
    if empty && !log_requested {
        let _ = std::fs::remove_file(console.path());
    } else if console.path().exists() {
        eprintln!("vmlane: console log: {}", console.path().display());
    }
}

/// Shows the engine's events on stderr: each notice once per process, what it found and decided
/// only with `-v` (with the time since vmlane started), a debugger's attach command always.
pub struct Events {
    verbose: bool,
    clock: Instant,
}

impl Events {
    /// A printer for a run started now.
    pub fn new(verbose: bool) -> Events {
        Events {
            verbose,
            clock: Instant::now(),
        }
    }

    /// Prints `event` if it is one to print.
    pub fn show(&self, event: LaunchEvent) {
        match event {
            LaunchEvent::Notice(notice) => {
                // `vmlane test` starts many VMs; each notice is said once.
                static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
                let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
                if !said.contains(&notice) {
                    eprintln!("vmlane: {notice}");
                    said.push(notice);
                }
            }
            LaunchEvent::WaitingForDebugger { .. } => {
                for line in event.to_string().lines() {
                    eprintln!("vmlane: {line}");
                }
            }
            LaunchEvent::Kernel { .. } | LaunchEvent::Detail(_) => self.say(&event.to_string()),
        }
    }

    /// Says `what` with `-v`.
    pub fn say(&self, what: &str) {
        if self.verbose {
            eprintln!("vmlane: {:>6} ms  {what}", self.clock.elapsed().as_millis());
        }
    }
}

/// Runs `request` with the guest's output on this process's stdout and stderr.
pub fn launch_here(
    request: Request,
    console: &mut ConsoleLog,
    signals: &StopSignals,
    events: &Events,
) -> Result<Finished, vmlane::Error> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let io = Io {
        stdout: &mut stdout,
        stderr: &mut stderr,
        console,
        signals,
        turn: None,
    };
    launch(request, io, &|event| events.show(event))
}
