//! The [`Run`] builder: the options of `vmlane run` as methods, the outcome as a value.

use crate::launch::launch_captured;
use crate::request::{BootChoice, MachineChoice, OsChoice, Request};
use crate::Error;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use vmlane_checks::events::{extract_events, Event};
use vmlane_checks::splat::{scan, Splat};
use vmlane_spec::{Accel, DiskSpec, Outcome, RwDir, ShareKind};

/// One command in one throwaway VM.
#[derive(Debug, Clone)]
pub struct Run {
    request: Request,
    /// As given to [`Run::disk`]; read once the run's directory is final.
    disks: Vec<PathBuf>,
    /// As given to [`Run::rwdir`]; read when the run starts.
    rwdirs: Vec<OsString>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// How it ended.
    pub outcome: Outcome,
    /// The command's stdout.
    pub stdout: Vec<u8>,
    /// The command's stderr.
    pub stderr: Vec<u8>,
    /// The guest's serial console, whole.
    pub console: String,
    /// JSON-line events from stdout, then from the console.
    pub events: Vec<Event>,
    /// Kernel failure reports found on the console.
    pub splats: Vec<Splat>,
    /// The kernel's file with DWARF, when vmlane found one: `vmlane_symbols` turns the splats'
    /// frames into `file:line` with it.
    pub debug_info: Option<PathBuf>,
}

impl RunResult {
    /// The command ran and exited 0.
    pub fn success(&self) -> bool {
        self.outcome.exit_code() == 0 && self.outcome.completed()
    }

    /// The exit code `vmlane run` would have exited with.
    pub fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }
}

impl Run {
    /// `argv` in the current directory, on vmlane's default kernel, with 1 CPU and 512 MiB.
    pub fn new<I, S>(argv: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Run::from_request(Request::new(
            argv.into_iter().map(Into::into).collect(),
            cwd,
        ))
    }

    /// A run of a request built in full.
    pub fn from_request(request: Request) -> Run {
        Run {
            request,
            disks: Vec::new(),
            rwdirs: Vec::new(),
        }
    }

    /// The kernel, as `vmlane run -k` takes it: an image, a build tree, or a cached kernel's
    /// name or release (prefix).
    pub fn kernel(mut self, kernel: impl Into<PathBuf>) -> Run {
        self.request.kernel = Some(kernel.into());
        self
    }

    /// The kernel's modules directory, as `vmlane run --modules` takes it.
    pub fn modules(mut self, dir: impl Into<PathBuf>) -> Run {
        self.request.modules_dir = Some(dir.into());
        self
    }

    /// A profile to apply, by name or path, as `--profile` takes it (repeatable; the run's
    /// own settings win over the profiles').
    pub fn profile(mut self, profile: impl Into<String>) -> Run {
        self.request.profiles.push(profile.into());
        self
    }

    /// An environment variable for the command.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Run {
        self.request.env.push((key.into(), value.into()));
        self
    }

    /// The directory the command runs in (default: the current one).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Run {
        self.request.cwd = dir.into();
        self
    }

    /// Virtual CPUs.
    pub fn cpus(mut self, cpus: u32) -> Run {
        self.request.cpus = Some(cpus.max(1));
        self
    }

    /// Guest memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Run {
        self.request.memory_mib = Some(mib);
        self
    }

    /// End the VM after this long; the outcome is then [`Outcome::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Run {
        self.request.timeout = Some(timeout);
        self
    }

    /// The accelerator (default: KVM where it can boot stock kernels, else TCG).
    pub fn accel(mut self, accel: Accel) -> Run {
        self.request.accel = accel;
        self
    }

    /// The QEMU machine type (default: whatever the kernel boots on fastest).
    pub fn machine(mut self, machine: MachineChoice) -> Run {
        self.request.machine = machine;
        self
    }

    /// How the host's files reach a Linux guest (default: whichever the kernel has).
    pub fn share(mut self, share: ShareKind) -> Run {
        self.request.linux.share = share;
        self
    }

    /// A disk for the guest (`/dev/vda`, then `/dev/vdb`, ...), as `vmlane run --disk` takes
    /// it: an image whose writes are thrown away with the VM, `IMAGE,ro` for a read-only
    /// device, or a size such as `1G` for an empty scratch disk.
    pub fn disk(mut self, disk: impl Into<PathBuf>) -> Run {
        self.disks.push(disk.into());
        self
    }

    /// A host directory the guest may write to, as `vmlane run --rwdir` takes it: `HOST`
    /// (mounted at the same path in the guest) or `HOST=GUEST`, HOST relative to the run's
    /// directory unless absolute. The guest's writes there reach the host; everything else
    /// stays read-only. Linux guests only.
    pub fn rwdir(mut self, dir: impl Into<OsString>) -> Run {
        self.rwdirs.push(dir.into());
        self
    }

    /// The guest OS the kernel must be (default: whatever it is).
    pub fn os(mut self, os: OsChoice) -> Run {
        self.request.os = os;
        self
    }

    /// FreeBSD: run the command (a path inside the image) in this FreeBSD image instead of
    /// vmlane's minimal guest.
    pub fn image(mut self, image: impl Into<PathBuf>) -> Run {
        self.request.freebsd.image = Some(image.into());
        self
    }

    /// FreeBSD: how the kernel is entered (default: as fits the accelerator).
    pub fn boot(mut self, boot: BootChoice) -> Run {
        self.request.freebsd.boot = boot;
        self
    }

    /// An extra kernel command-line argument (a kernel environment word for FreeBSD).
    pub fn append(mut self, arg: impl Into<String>) -> Run {
        self.request.append.push(arg.into());
        self
    }

    /// Boots, runs, and collects everything. The console log is written to a temporary file
    /// that is gone afterwards; its text is in the result. When the run fails after its VM
    /// started, the log is kept and the error names it.
    pub fn output(&self) -> Result<RunResult, Error> {
        let mut request = self.request.clone();
        for disk in &self.disks {
            let spec = DiskSpec::parse(disk.as_os_str(), |p| request.cwd.join(p).exists())
                .map_err(crate::RequestError::Disk)?;
            request.disks.push(spec);
        }
        for dir in &self.rwdirs {
            let dir = RwDir::parse(dir).map_err(crate::RequestError::RwDir)?;
            request.rwdirs.push(dir);
        }
        let dir = tempfile::tempdir().map_err(|source| Error::ConsoleLog {
            path: std::env::temp_dir(),
            source,
        })?;
        let log = dir.path().join("console.log");
        let captured = match launch_captured(request, &log, &|_| {}) {
            Ok(captured) => captured,
            Err(error) if log.metadata().is_ok_and(|m| m.len() > 0) => {
                // A run that failed mid-way keeps its serial log for the developer to read.
                return Err(Error::LogKept {
                    console_log: dir.keep().join("console.log"),
                    source: Box::new(error),
                });
            }
            Err(error) => return Err(error),
        };
        let mut events = extract_events(&String::from_utf8_lossy(&captured.stdout));
        events.extend(extract_events(&captured.console));
        Ok(RunResult {
            outcome: captured.outcome,
            splats: scan(&captured.console),
            events,
            stdout: captured.stdout,
            stderr: captured.stderr,
            console: captured.console,
            debug_info: captured.debug_info,
        })
    }
}
