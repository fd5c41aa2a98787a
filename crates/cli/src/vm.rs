//! What `vmlane run` and `vmlane shell` make of their shared VM options: the launch (with
//! profiles applied under the flags) and the console log.

use crate::args::{NetArg, VmArgs};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use vmlane::launch::{
    launch_vm, BackendChoice, BootChoice, Launch, LaunchError, OsChoice, Streams,
};
use vmlane_backend::{ConsoleLog, StopSignals, Timings};
use vmlane_spec::Outcome;
use vmlane_spec::{Network, RunSpec};

impl VmArgs {
    /// The run spec for `argv` (empty: the login shell) in the current directory.
    pub fn spec(&self, argv: Vec<OsString>) -> Result<RunSpec> {
        let cwd = std::env::current_dir().context("failed to read the current directory")?;
        let mut spec = RunSpec::new(argv, cwd);
        spec.env = self.env.clone();
        spec.cpus = self.cpus.unwrap_or(1);
        spec.memory_mib = self.memory.unwrap_or(512);
        spec.accel = self.accel.into();
        spec.share = self.share.into();
        spec.disks = self.disks.clone();
        spec.network = match self.net {
            Some(NetArg::User) => Network::User {
                forwards: self.forwards.clone(),
            },
            _ if !self.forwards.is_empty() => bail!("--forward needs --net user"),
            _ => Network::None,
        };
        spec.gdb = self.gdb;
        spec.timeout = match self.timeout {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            Some(secs) => bail!("--timeout must be a positive number of seconds, got {secs}"),
            None => None,
        };
        Ok(spec)
    }

    /// The launch these options describe for `spec`: the profiles first, then the flags,
    /// which win. FreeBSD-only choices are left at their defaults for the caller to set.
    pub fn launch(&self, mut spec: RunSpec) -> Result<Launch> {
        let mut append = self.append.clone();
        crate::profile::apply(
            &self.profiles,
            &mut spec,
            &mut append,
            self.cpus,
            self.memory,
        )?;
        Ok(Launch {
            spec,
            kernel: self.kernel.clone(),
            modules: self.modules.clone(),
            machine: self.machine.into(),
            append,
            os: OsChoice::Auto,
            image: None,
            backend: BackendChoice::Auto,
            boot: BootChoice::Auto,
            debugger: false,
            keep_image: false,
        })
    }

    /// The console log: `--log`, or a new file under vmlane's cache.
    pub fn console_log(&self) -> Result<(PathBuf, ConsoleLog)> {
        let path = self
            .log
            .clone()
            .unwrap_or_else(|| crate::run::default_log_path(&vmlane_kernel::cache_dir()));
        let console = ConsoleLog::create(&path)
            .with_context(|| format!("failed to create the console log {}", path.display()))?;
        Ok((path, console))
    }
}

/// Runs `launch` with the guest's output on this process's stdout and stderr.
pub fn launch_here(
    launch: &Launch,
    console: &mut ConsoleLog,
    signals: &StopSignals,
    say: &dyn Fn(&str),
) -> Result<(Outcome, Timings), LaunchError> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let streams = Streams {
        stdout: &mut stdout,
        stderr: &mut stderr,
        console,
    };
    launch_vm(launch, streams, signals, say)
}
