//! The [`Run`] builder: the options of `vmlane run` as methods, the outcome as a value.

use crate::launch::{
    launch_captured, BackendChoice, BootChoice, Launch, LaunchError, MachineChoice, OsChoice,
};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use vmlane_checks::events::{extract_events, Event};
use vmlane_checks::splat::{scan, Splat};
use vmlane_spec::{DiskSpec, Outcome, RunSpec};

/// One command in one throwaway VM.
#[derive(Debug, Clone)]
pub struct Run {
    launch: Launch,
    /// As given to [`Run::disk`]; read once the run's directory is final.
    disks: Vec<PathBuf>,
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
        Run {
            launch: Launch {
                spec: RunSpec::new(argv.into_iter().map(Into::into).collect(), cwd),
                kernel: None,
                modules: None,
                machine: MachineChoice::Auto,
                append: Vec::new(),
                os: OsChoice::Auto,
                image: None,
                backend: BackendChoice::Auto,
                boot: BootChoice::Auto,
                debugger: false,
                keep_image: false,
            },
            disks: Vec::new(),
        }
    }

    /// The kernel, as `vmlane run -k` takes it: an image, a build tree, or a cached kernel's
    /// name or release (prefix).
    pub fn kernel(mut self, kernel: impl Into<PathBuf>) -> Run {
        self.launch.kernel = Some(kernel.into());
        self
    }

    /// An environment variable for the command.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Run {
        self.launch.spec.env.push((key.into(), value.into()));
        self
    }

    /// The directory the command runs in (default: the current one).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Run {
        self.launch.spec.cwd = dir.into();
        self
    }

    /// Virtual CPUs.
    pub fn cpus(mut self, cpus: u32) -> Run {
        self.launch.spec.cpus = cpus.max(1);
        self
    }

    /// Guest memory in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Run {
        self.launch.spec.memory_mib = mib;
        self
    }

    /// End the VM after this long; the outcome is then [`Outcome::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Run {
        self.launch.spec.timeout = Some(timeout);
        self
    }

    /// A disk for the guest (`/dev/vda`, then `/dev/vdb`, ...), as `vmlane run --disk` takes
    /// it: an image whose writes are thrown away with the VM, `IMAGE,ro` for a read-only
    /// device, or a size such as `1G` for an empty scratch disk.
    pub fn disk(mut self, disk: impl Into<PathBuf>) -> Run {
        self.disks.push(disk.into());
        self
    }

    /// The guest OS the kernel must be (default: whatever it is).
    pub fn os(mut self, os: OsChoice) -> Run {
        self.launch.os = os;
        self
    }

    /// FreeBSD: run the command (a path inside the image) in this FreeBSD image instead of
    /// vmlane's minimal guest.
    pub fn image(mut self, image: impl Into<PathBuf>) -> Run {
        self.launch.image = Some(image.into());
        self
    }

    /// An extra kernel command-line argument (a kernel environment word for FreeBSD).
    pub fn append(mut self, arg: impl Into<String>) -> Run {
        self.launch.append.push(arg.into());
        self
    }

    /// Boots, runs, and collects everything. The console log is written to a temporary file
    /// that is gone afterwards; its text is in the result.
    pub fn output(&self) -> Result<RunResult, LaunchError> {
        let mut launch = self.launch.clone();
        let cwd = launch.spec.cwd.clone();
        for disk in &self.disks {
            let spec = DiskSpec::parse(disk.as_os_str(), |p| cwd.join(p).exists());
            launch.spec.disks.push(spec.map_err(LaunchError::DiskSpec)?);
        }
        let dir = tempfile::tempdir().map_err(LaunchError::RunDir)?;
        let log = dir.path().join("console.log");
        let captured = match launch_captured(&launch, &log) {
            Ok(captured) => captured,
            Err(error) => {
                // A run that failed mid-way keeps its serial log for the developer to read.
                if log.metadata().is_ok_and(|m| m.len() > 0) {
                    let kept = dir.keep();
                    eprintln!(
                        "vmlane: console log: {}",
                        kept.join("console.log").display()
                    );
                }
                return Err(error);
            }
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
        })
    }
}
