//! `vmlane shell`: the user's login shell in a throwaway VM. With a terminal on stdin the guest
//! shell gets a pseudo-terminal of the same size and every key; without one, stdin is piped to
//! it as a script. Either way vmlane exits with the shell's status.

use crate::args::{disk_parser, parse_env, parse_memory, AccelArg, MachineArg, ShareArg};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vmlane::launch::{
    launch_vm, BackendChoice, BootChoice, Launch, LaunchError, OsChoice, Streams,
};
use vmlane_backend::{ConsoleLog, StopSignals};
use vmlane_spec::{DiskSpec, Input, Outcome, RunSpec};

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Kernel image (bzImage, vmlinux), kernel build tree, or the name or release of a cached
    /// kernel; found as `vmlane run` finds it. Linux only.
    #[arg(short, long, value_name = "KERNEL")]
    pub kernel: Option<PathBuf>,
    /// Directory of the kernel's modules (a lib/modules/<release> directory or a build tree).
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Set an environment variable for the shell (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(OsString, OsString)>,
    /// Add the options of this profile (repeatable; later ones add to and override earlier
    /// ones, and flags override them): a name in .vmlane/profiles/, ~/.config/vmlane/profiles/
    /// or vmlane's own (`vmlane profile list`), or a path to a .toml file.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// Guest memory, in MiB or with a suffix (512M, 2G) [default: 512M].
    #[arg(short, long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u32>,
    /// Number of virtual CPUs [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub cpus: Option<u32>,
    /// End the VM after this many seconds and exit 124.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// CPU accelerator: auto picks KVM only where it can boot stock kernels.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// QEMU machine type: auto picks microvm for kernels with virtio-mmio command-line
    /// devices built in, q35 for the rest.
    #[arg(long, value_enum, default_value_t = MachineArg::Auto)]
    pub machine: MachineArg,
    /// How the host's files reach the guest.
    #[arg(long, value_enum, default_value_t = ShareArg::Auto)]
    pub share: ShareArg,
    /// Extra kernel command-line arguments, appended after vmlane's own.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub append: Vec<String>,
    /// Attach a disk as /dev/vda, /dev/vdb, ... (repeatable): IMAGE, IMAGE,ro or SIZE, as for
    /// `vmlane run`.
    #[arg(long = "disk", value_name = "IMAGE[,ro]|SIZE", value_parser = disk_parser())]
    pub disks: Vec<DiskSpec>,
    /// Write the guest console here (it is kept whenever a session fails even without this).
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Say what vmlane chose and how long each phase took.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs the shell and returns the exit code vmlane should exit with.
pub fn shell(args: ShellArgs) -> Result<i32> {
    let signals = StopSignals::register().context("failed to catch SIGINT and SIGTERM")?;
    let clock = Instant::now();
    let verbose = args.verbose;
    let say = |what: &str| {
        if verbose {
            eprintln!("vmlane: {:>6} ms  {what}", clock.elapsed().as_millis());
        }
    };
    // SAFETY: isatty only inspects the descriptor.
    let terminal = unsafe { libc::isatty(libc::STDIN_FILENO) } == 1;
    let mut spec = shell_spec(&args, terminal)?;
    let mut append = args.append.clone();
    crate::profile::apply(
        &args.profiles,
        &mut spec,
        &mut append,
        args.cpus,
        args.memory,
    )?;
    let launch = Launch {
        spec,
        kernel: args.kernel.clone(),
        modules: args.modules.clone(),
        machine: args.machine.into(),
        append,
        os: OsChoice::Linux,
        image: None,
        backend: BackendChoice::Auto,
        boot: BootChoice::Auto,
        debugger: false,
        keep_image: false,
    };
    let cache = vmlane_kernel::cache_dir();
    let log_path = args
        .log
        .clone()
        .unwrap_or_else(|| crate::run::default_log_path(&cache));
    let mut console = ConsoleLog::create(&log_path)
        .with_context(|| format!("failed to create the console log {}", log_path.display()))?;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let streams = Streams {
        stdout: &mut stdout,
        stderr: &mut stderr,
        console: &mut console,
    };
    // The terminal is raw only inside the session, and restored however it ends.
    let result = launch_vm(&launch, streams, &signals, &say);
    drop(stdout);
    let outcome = match result {
        Ok((outcome, _)) => outcome,
        Err(error) => {
            // Most errors come before the VM started: an empty log has nothing to show.
            let empty = std::fs::metadata(console.path()).is_ok_and(|m| m.len() == 0);
            if empty && args.log.is_none() {
                let _ = std::fs::remove_file(console.path());
            } else if console.path().exists() {
                eprintln!("vmlane: console log: {}", log_path.display());
            }
            if let LaunchError::WrongOs { kernel, found, .. } = error {
                bail!(
                    "`vmlane shell` supports Linux guests; {} is a {found} kernel",
                    kernel.display()
                );
            }
            return Err(error.into());
        }
    };
    // Ctrl-A X (the session said so already) and --timeout end a shell as the user asked;
    // only the rest are failures worth the console's last lines.
    let escaped = terminal && outcome == Outcome::Interrupted(libc::SIGINT);
    if terminal && !outcome.completed() && !escaped {
        // The guest's last line, a prompt, has no newline of its own.
        eprintln!();
    }
    if outcome.completed() || escaped || outcome == Outcome::TimedOut {
        if outcome == Outcome::TimedOut {
            eprintln!("vmlane: {outcome}");
        }
        let splats = std::fs::read(console.path())
            .map(|bytes| vmlane_checks::splat::scan(&String::from_utf8_lossy(&bytes)))
            .unwrap_or_default();
        for splat in &splats {
            eprintln!(
                "vmlane: the guest kernel reported {}: {}",
                splat.kind, splat.first_line
            );
        }
        if !splats.is_empty() {
            eprintln!("vmlane: console log: {}", console.path().display());
        } else if args.log.is_none() {
            let _ = std::fs::remove_file(console.path());
        }
    } else {
        crate::run::report(&outcome, &mut console, args.log.is_some(), verbose);
    }
    Ok(outcome.exit_code())
}

/// The spec of a shell: no command (the guest runs the login shell), the host's `SHELL`, and
/// stdin as a terminal or a pipe.
fn shell_spec(args: &ShellArgs, terminal: bool) -> Result<RunSpec> {
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let mut spec = RunSpec::new(Vec::new(), cwd);
    spec.env = std::env::var_os("SHELL")
        .map(|shell| ("SHELL".into(), shell))
        .into_iter()
        .chain(args.env.iter().cloned())
        .collect();
    spec.input = if terminal {
        Input::Terminal
    } else {
        Input::Pipe
    };
    spec.cpus = args.cpus.unwrap_or(1);
    spec.memory_mib = args.memory.unwrap_or(512);
    spec.accel = args.accel.into();
    spec.share = args.share.into();
    spec.disks = args.disks.clone();
    spec.timeout = match args.timeout {
        Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Some(secs) => bail!("--timeout must be a positive number of seconds, got {secs}"),
        None => None,
    };
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(argv: &[&str]) -> ShellArgs {
        let mut full = vec!["vmlane", "shell"];
        full.extend_from_slice(argv);
        match crate::args::Cli::try_parse_from(&full).unwrap().command {
            crate::args::Command::Shell(args) => args,
            _ => panic!("not a shell"),
        }
    }

    #[test]
    fn a_shell_runs_no_command_and_reads_stdin() {
        let args = parse(&["-k", "6.1", "-e", "A=b", "--cpus", "2", "-m", "1G"]);
        let spec = shell_spec(&args, true).unwrap();
        assert!(spec.argv.is_empty());
        assert_eq!(spec.input, Input::Terminal);
        assert_eq!((spec.cpus, spec.memory_mib), (2, 1024));
        assert_eq!(spec.env.last().unwrap(), &("A".into(), "b".into()));
        assert_eq!(shell_spec(&args, false).unwrap().input, Input::Pipe);
        assert_eq!(args.kernel, Some(PathBuf::from("6.1")));
    }

    #[test]
    fn a_shell_takes_no_command() {
        assert!(crate::args::Cli::try_parse_from(["vmlane", "shell", "--", "ls"]).is_err());
    }
}
