//! Command-line flags, parsed but not yet checked against the machine.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use vmlane_spec::{Accel, DiskSpec, PortForward, ShareKind};

/// `vmlane --version`: the version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("VMLANE_COMMIT"), ")");

/// Boot a kernel in a throwaway VM and run a command in it.
#[derive(Debug, Parser)]
#[command(name = "vmlane", version = VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a kernel, run CMD inside with the host's files visible, exit with CMD's exit code.
    Run(RunArgs),
    /// Boot a Linux kernel and open your login shell inside, on a terminal of its own
    /// (Ctrl-A X ends the VM); exit with the shell's exit code.
    Shell(crate::shell::ShellArgs),
    /// Build, list and remove the kernels in vmlane's cache.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Run a suite of tests (a TOML file or a directory of them) on one or more kernels and
    /// check exit statuses, console lines, JSON-line events and kernel splats.
    Test(TestArgs),
    /// Build disk images for FreeBSD runs into vmlane's cache.
    #[command(subcommand)]
    Image(crate::image::ImageCommand),
    /// List profiles, or show what some compose to.
    #[command(subcommand)]
    Profile(crate::profile::ProfileCommand),
    /// Make root filesystems of other architectures for `--root` (Debian's, with mmdebstrap).
    #[command(subcommand)]
    Rootfs(crate::rootfs::RootfsCommand),
    /// Work with the results of `vmlane test` runs: merge the shards of a partitioned run.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Print a completion script for a shell (`vmlane completions bash > /etc/bash_completion.d/vmlane`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print vmlane's man page (`vmlane man > vmlane.1`).
    Man,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The suite: a .toml file or a directory of them.
    #[arg(value_name = "SUITE")]
    pub suite: PathBuf,
    /// Run every test on this kernel, replacing the suite's kernels (repeatable).
    #[arg(short, long = "kernel", value_name = "KERNEL")]
    pub kernels: Vec<String>,
    /// Commands running at once. Default: from the CPU count and free memory.
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: Option<u32>,
    /// Restore no VM before a job is free. By default the next case that starts from a saved
    /// guest is restored, and its root mounted, while the cases before it run; its command
    /// still waits for a free job.
    #[arg(long)]
    pub no_ready_ahead: bool,
    /// Run only share K of N of the (test, kernel) matrix, for CI machines side by side:
    /// `count:K/N` (or `K/N`) deals every N-th case, `hash:K/N` deals by test name and kernel,
    /// so a case keeps its share when tests are added.
    #[arg(long, value_name = "[count:|hash:]K/N")]
    pub partition: Option<String>,
    /// Run only tests whose name matches: a glob (`probe-*`) or a regex between slashes
    /// (`/^probe-(a|b)$/`). Repeatable; a test matching any runs.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Leave out tests whose name matches (glob or /regex/; repeatable), even if filtered in.
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// Print the (test, kernel) runs that would be made, one a line, and boot nothing.
    #[arg(long)]
    pub list: bool,
    /// Start no further run once one has not passed (runs already going finish).
    #[arg(long)]
    pub fail_fast: bool,
    /// Run a case that failed or hung up to N more times; one that then passes is FLAKY.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Stream each run's console and output to stderr as it comes (runs one VM at a time).
    #[arg(short, long = "verbose", visible_alias = "no-capture")]
    pub verbose: bool,
    /// What goes to stdout: a human summary, JSON lines as cases end, JUnit XML or KTAP.
    /// The human view of each case goes to stderr whatever the format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
    /// The report files written alongside, each kept whole and up to date as cases end.
    #[command(flatten)]
    pub files: ReportFileArgs,
    /// Where each run's console log and output go. Default: ~/.cache/vmlane/results/<time>.
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// Write the normalised console of each test with a golden file as its new golden file.
    #[arg(long)]
    pub bless: bool,
    /// What every run of the suite gets (profiles from here come after each test's own).
    #[command(flatten)]
    pub boot: BootArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
    Junit,
    /// KTAP v1, as the kernel's own tools read it.
    Tap,
}

/// `--json`, `--junit`, `--tap`, `--kcidb`: report files, for `vmlane test` and `vmlane report
/// merge` alike.
#[derive(Debug, Args)]
pub struct ReportFileArgs {
    /// Write JSON lines (a start record, a result per case as it ends, an end record) here.
    #[arg(long = "json", value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write KTAP v1 here.
    #[arg(long, value_name = "PATH")]
    pub tap: Option<PathBuf>,
    /// Write a KCIDB I/O JSON report (schema 5.3) here, for KernelCI's database.
    #[arg(long, value_name = "PATH")]
    pub kcidb: Option<PathBuf>,
    /// The CI system KCIDB objects are submitted as (lower-case letters, digits, `_`).
    #[arg(long, value_name = "NAME", default_value = "vmlane", value_parser = parse_kcidb_origin)]
    pub kcidb_origin: String,
}

fn parse_kcidb_origin(text: &str) -> Result<String, String> {
    match vmlane_report::kcidb::valid_origin(text) {
        true => Ok(text.to_string()),
        false => {
            Err("a KCIDB origin is lower-case letters, digits and _ only (e.g. my_lab)".into())
        }
    }
}

/// `vmlane report ...`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Combine the results of a partitioned run's shards (their --results directories, or
    /// results.jsonl files) into one report, and say if a shard is missing or was cut short.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Results directories (or their results.jsonl files), one per shard.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// What goes to stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub format: ReportFormat,
    /// The merged report's files.
    #[command(flatten)]
    pub files: ReportFileArgs,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Build a kernel from a source tree into the cache, with everything a test VM needs
    /// built in. Rebuilding an unchanged tree with the same options is instant.
    Build(KernelBuildArgs),
    /// Download Debian's packaged kernel of an architecture, with its modules, into the cache
    /// (through an apt of vmlane's own: the host's apt sources are not touched).
    Fetch(KernelFetchArgs),
    /// List the kernels in the cache.
    List {
        /// Only the kernels of this architecture (amd64, arm64, ppc64, ppc64el, riscv64, s390x).
        #[arg(long, value_name = "ARCH")]
        arch: Option<vmlane_spec::Arch>,
    },
    /// Remove kernels from the cache.
    Rm {
        /// Cache names, as `vmlane kernel list` shows them.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct KernelFetchArgs {
    /// The architecture: amd64, arm64, ppc64el, riscv64 or s390x (default: the host's).
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<vmlane_spec::Arch>,
    /// Debian's flavour of it, e.g. `cloud` for linux-image-cloud-amd64.
    #[arg(long, value_name = "FLAVOUR")]
    pub flavour: Option<String>,
    /// Debian's release to take it from (default: bookworm; trixie for riscv64).
    #[arg(long, value_name = "SUITE")]
    pub suite: Option<String>,
}

#[derive(Debug, Args)]
pub struct KernelBuildArgs {
    /// The source tree (default: the current directory). Never written to.
    #[arg(value_name = "SRC")]
    pub source: Option<PathBuf>,
    /// Build Debian's packaged source (linux-source; for ppc64, linux-source-6.12, whose
    /// big-endian kernels are ELFv2), installing it if needed.
    #[arg(long, conflicts_with_all = ["source", "freebsd"])]
    pub debian: bool,
    /// Build a FreeBSD kernel (amd64, no modules) from this FreeBSD source tree, with FreeBSD's
    /// own build system (tools/build/make.py and the host's clang and lld on Linux).
    #[arg(
        long,
        value_name = "SRC",
        conflicts_with_all = ["source", "enable", "module", "disable", "config", "clang"]
    )]
    pub freebsd: Option<PathBuf>,
    /// FreeBSD kernel config, a file in SRC/sys/amd64/conf.
    #[arg(
        long,
        value_name = "KERNCONF",
        default_value = "FIRECRACKER",
        requires = "freebsd"
    )]
    pub conf: String,
    /// Turn an option on (`-e KASAN` or `-e CONFIG_KASAN`).
    #[arg(short = 'e', long = "enable", value_name = "CONFIG_X")]
    pub enable: Vec<String>,
    /// Build an option as a module.
    #[arg(short = 'm', long = "module", value_name = "CONFIG_X")]
    pub module: Vec<String>,
    /// Turn an option off.
    #[arg(short = 'd', long = "disable", value_name = "CONFIG_X")]
    pub disable: Vec<String>,
    /// Merge this config fragment on top of vmlane's.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Build with clang and LLVM's tools (LLVM=1).
    #[arg(long)]
    pub clang: bool,
    /// Linux: the architecture to build for, amd64 (x86_64), arm64 (aarch64), ppc64,
    /// ppc64el (ppc64le), riscv64 or s390x; another than the host's is cross-compiled
    /// (gcc-aarch64-linux-gnu, gcc-powerpc64-linux-gnu, ..., or LLVM with --clang). Their
    /// release ends in `-arm64`, `-powerpc64`, `-powerpc64le`, `-riscv64` or `-s390x`.
    /// Default: the host's.
    #[arg(long, value_name = "ARCH", conflicts_with = "freebsd")]
    pub arch: Option<vmlane_spec::Arch>,
    /// Parallel jobs (default: the number of CPUs).
    #[arg(short, long)]
    pub jobs: Option<u32>,
}

/// What shapes every VM, the same for `vmlane run`, `vmlane shell` and `vmlane test`.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// Directory of the kernel's modules (a lib/modules/<release> directory or a build tree).
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Add the options of this profile (repeatable; later ones add to and override earlier
    /// ones, and flags override them): a name in .vmlane/profiles/, ~/.config/vmlane/profiles/
    /// or vmlane's own (`vmlane profile list`), or a path to a .toml file.
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// CPU accelerator: auto picks KVM only where it can boot stock kernels.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// The guest's CPU architecture: amd64 (x86_64), arm64 (aarch64), ppc64, ppc64el (ppc64le),
    /// riscv64 or s390x, emulated when it is not the host's; a kernel built for another is
    /// refused. Default: the kernel's (-k), and without -k the newest cached kernel of the
    /// host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<vmlane_spec::Arch>,
    /// Linux: run from this root filesystem (one of the guest's architecture, such as a Debian
    /// root made with mmdebstrap) instead of the host's; read-only under a throwaway overlay,
    /// with the current directory still the host's, read-only.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// QEMU machine type: auto picks microvm for kernels with virtio-mmio command-line
    /// devices built in (vmlane's own builds), q35 for the rest.
    #[arg(long, value_enum, default_value_t = MachineArg::Auto)]
    pub machine: MachineArg,
    /// How the host's files reach the guest: auto takes 9p first where the guest may be
    /// saved, else virtio-fs first.
    #[arg(long, value_enum, default_value_t = ShareArg::Auto)]
    pub share: ShareArg,
    /// Extra kernel command-line arguments, appended after vmlane's own.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub append: Vec<String>,
    /// Let the guest write to this host directory (repeatable): HOST, mounted at the same path
    /// in the guest, or HOST=GUEST. Its writes reach the host (files owned by you); the rest
    /// of the host stays read-only. Linux guests.
    #[arg(long = "rwdir", value_name = "HOST[=GUEST]")]
    pub rwdirs: Vec<vmlane_spec::RwDir>,
    /// Boot the kernel even where a saved, ready guest of the same configuration could be
    /// restored instead, and save none.
    #[arg(long)]
    pub cold: bool,
}

/// The options of one VM, the same for `vmlane run` and `vmlane shell`.
#[derive(Debug, Args)]
pub struct VmArgs {
    /// Kernel image (bzImage, vmlinux), kernel build tree, or the name or release of a cached
    /// kernel. Default: $VMLANE_KERNEL, a build tree in the current directory, vmlane's kernel
    /// cache, then the newest /boot/vmlinuz-*.
    #[arg(short, long, value_name = "KERNEL")]
    pub kernel: Option<PathBuf>,
    /// What shapes the VM besides the kernel.
    #[command(flatten)]
    pub boot: BootArgs,
    /// Set an environment variable for the command or shell (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(OsString, OsString)>,
    /// Guest memory, in MiB or with a suffix (512M, 2G) [default: 512M].
    #[arg(short, long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u32>,
    /// Number of virtual CPUs [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub cpus: Option<u32>,
    /// End the VM after this many seconds and exit 124.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Attach a disk as /dev/vda, /dev/vdb, ... in order (repeatable): IMAGE (raw or qcow2;
    /// the guest's writes are thrown away), IMAGE,ro (a read-only device), or SIZE such as 1G
    /// (an empty sparse disk, gone with the VM).
    #[arg(long = "disk", value_name = "IMAGE[,ro]|SIZE", value_parser = disk_parser())]
    pub disks: Vec<DiskSpec>,
    /// Give the guest a network. user: QEMU's user-mode network; the guest is 10.0.2.15 and
    /// reaches the host's 127.0.0.1 as 10.0.2.2 (set up with the host's `ip`).
    #[arg(long, value_enum, value_name = "MODE")]
    pub net: Option<NetArg>,
    /// Forward TCP port HOSTPORT of the host's 127.0.0.1 to GUESTPORT in the guest
    /// (repeatable; needs --net user).
    #[arg(long = "forward", value_name = "HOSTPORT:GUESTPORT", value_parser = PortForward::parse)]
    pub forwards: Vec<PortForward>,
    /// Start the VM halted with a gdb stub on 127.0.0.1:PORT (default 1234) and print the gdb
    /// command that attaches with the kernel's symbols. --timeout still counts from the start.
    #[arg(
        long,
        value_name = "PORT",
        num_args = 0..=1,
        require_equals = false,
        default_missing_value = "1234",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub gdb: Option<u16>,
    /// Write the guest console here (it is kept whenever a run fails even without this).
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Say what vmlane chose and how long each phase took.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// What every VM of `run` and `shell` takes.
    #[command(flatten)]
    pub vm: VmArgs,
    /// The guest's OS, and what only FreeBSD guests take.
    #[command(flatten)]
    pub guest: GuestArgs,
    /// The command to run in the guest, and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The guest's OS and the FreeBSD options, the same for `vmlane run` and `vmlane shell`.
#[derive(Debug, Args)]
pub struct GuestArgs {
    /// The guest's operating system: auto follows the kernel image; linux or freebsd refuse a
    /// kernel of the other.
    #[arg(long, value_enum, default_value_t = OsArg::Auto)]
    pub os: OsArg,
    /// FreeBSD: run CMD (a path inside the image), or the shell, in this FreeBSD image (one
    /// made by `vmlane image build`, or a release VM image) instead of vmlane's minimal guest,
    /// where CMD is a host path to a static FreeBSD executable. The image is never written.
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// FreeBSD: how the kernel is entered. auto: through vmlane's boot stub (as FreeBSD's
    /// loader does) under TCG or without a PVH note, at the PVH entry under hardware KVM.
    #[arg(long, value_enum, default_value_t = BootArg::Auto)]
    pub boot: BootArg,
    /// FreeBSD: let the guest's writes to --image land in the image (by default they go to a
    /// throwaway overlay and the image never changes).
    #[arg(long, requires = "image")]
    pub keep_image: bool,
    /// FreeBSD: let a panic stop in the kernel debugger and hand its `db>` prompt (or a
    /// `mountroot>` prompt) to this terminal, instead of ending the run at once.
    #[arg(long)]
    pub debugger: bool,
    /// The VMM: auto picks bhyve for FreeBSD guests on FreeBSD hosts and QEMU everywhere else.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

impl GuestArgs {
    /// Puts the OS, backend and FreeBSD options into `request`.
    pub fn apply(&self, request: &mut vmlane::Request) {
        request.os = self.os.into();
        request.backend = self.backend.into();
        request.freebsd.image = self.image.clone();
        request.freebsd.keep_image = self.keep_image;
        request.freebsd.boot = self.boot.into();
        request.freebsd.debugger = self.debugger;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetArg {
    /// No network device.
    None,
    /// QEMU's user-mode network.
    User,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BootArg {
    Auto,
    Native,
    Pvh,
}

impl From<BootArg> for vmlane::BootChoice {
    fn from(arg: BootArg) -> Self {
        match arg {
            BootArg::Auto => Self::Auto,
            BootArg::Native => Self::Native,
            BootArg::Pvh => Self::Pvh,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    Auto,
    Qemu,
    Bhyve,
}

impl From<BackendArg> for vmlane::BackendChoice {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Auto => Self::Auto,
            BackendArg::Qemu => Self::Qemu,
            BackendArg::Bhyve => Self::Bhyve,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OsArg {
    Auto,
    Linux,
    #[value(name = "freebsd")]
    FreeBsd,
}

impl From<OsArg> for vmlane::OsChoice {
    fn from(arg: OsArg) -> Self {
        match arg {
            OsArg::Auto => Self::Auto,
            OsArg::Linux => Self::Linux,
            OsArg::FreeBsd => Self::FreeBsd,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl From<AccelArg> for Accel {
    fn from(arg: AccelArg) -> Accel {
        match arg {
            AccelArg::Auto => Accel::Auto,
            AccelArg::Kvm => Accel::Kvm,
            AccelArg::Tcg => Accel::Tcg,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MachineArg {
    Auto,
    Q35,
    Microvm,
}

impl From<MachineArg> for vmlane::MachineChoice {
    fn from(arg: MachineArg) -> Self {
        match arg {
            MachineArg::Auto => Self::Auto,
            MachineArg::Q35 => Self::Q35,
            MachineArg::Microvm => Self::Microvm,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShareArg {
    Auto,
    #[value(name = "9p")]
    NineP,
    Virtiofs,
}

impl From<ShareArg> for ShareKind {
    fn from(arg: ShareArg) -> ShareKind {
        match arg {
            ShareArg::Auto => ShareKind::Auto,
            ShareArg::NineP => ShareKind::NineP,
            ShareArg::Virtiofs => ShareKind::VirtioFs,
        }
    }
}

/// `--disk` values: a name that is an existing file is always an image, so the check runs
/// against the current directory, the run's.
pub(crate) fn disk_parser() -> impl clap::builder::TypedValueParser<Value = DiskSpec> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new()
        .try_map(|value| DiskSpec::parse(&value, |path| path.exists()))
}

pub(crate) fn parse_env(value: &str) -> Result<(OsString, OsString), String> {
    match value.split_once('=') {
        Some((key, val)) if !key.is_empty() => Ok((key.into(), val.into())),
        _ => Err(format!("expected KEY=VALUE, got `{value}`")),
    }
}

pub(crate) fn parse_memory(value: &str) -> Result<u32, String> {
    let upper = value.trim().to_ascii_uppercase();
    let (number, factor) = match upper.strip_suffix('G') {
        Some(n) => (n, 1024),
        None => (upper.strip_suffix('M').unwrap_or(&upper), 1),
    };
    let mib = number
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("expected a size like 512M or 2G, got `{value}`"))?;
    if mib < 128 {
        return Err(format!(
            "{mib} MiB is too little memory to boot; use at least 128M"
        ));
    }
    Ok(mib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_with_and_without_suffix() {
        assert_eq!(parse_memory("512"), Ok(512));
        assert_eq!(parse_memory("512M"), Ok(512));
        assert_eq!(parse_memory("2g"), Ok(2048));
        assert!(parse_memory("64M").unwrap_err().contains("at least"));
        assert!(parse_memory("lots").is_err());
    }

    #[test]
    fn env_needs_a_key() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }

    #[test]
    fn freebsd_builds_take_a_kernconf_and_refuse_linux_options() {
        let cli = Cli::try_parse_from(["vmlane", "kernel", "build", "--freebsd", "/src"]).unwrap();
        let Command::Kernel(KernelCommand::Build(args)) = cli.command else {
            panic!("not a kernel build")
        };
        assert_eq!(args.conf, "FIRECRACKER");
        for linux_only in [
            &["-e", "KASAN"][..],
            &["--clang"],
            &["--config", "f"],
            &["/linux"],
        ] {
            let mut argv = vec!["vmlane", "kernel", "build", "--freebsd", "/src"];
            argv.extend_from_slice(linux_only);
            assert!(Cli::try_parse_from(&argv).is_err(), "{linux_only:?}");
        }
    }

    #[test]
    fn gdb_takes_an_optional_port_and_forwards_parse() {
        let run = |extra: &[&str]| {
            let mut argv = vec!["vmlane", "run"];
            argv.extend_from_slice(extra);
            argv.extend_from_slice(&["--", "true"]);
            match Cli::try_parse_from(&argv).map(|cli| cli.command) {
                Ok(Command::Run(args)) => Ok(args),
                Ok(_) => panic!("not a run"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(run(&[]).unwrap().vm.gdb, None);
        assert_eq!(run(&["--gdb"]).unwrap().vm.gdb, Some(1234));
        assert_eq!(run(&["--gdb", "4321"]).unwrap().vm.gdb, Some(4321));
        assert!(run(&["--gdb", "0"]).is_err());
        let args = run(&["--net", "user", "--forward", "8080:80", "--disk", "2G"]).unwrap();
        assert_eq!(args.vm.net, Some(NetArg::User));
        assert_eq!(
            args.vm.forwards,
            [PortForward {
                host: 8080,
                guest: 80
            }]
        );
        assert_eq!(args.vm.disks, [DiskSpec::Scratch { bytes: 2 << 30 }]);
        let error = run(&["--forward", "8080"]).unwrap_err();
        assert!(error.contains("HOSTPORT:GUESTPORT"), "{error}");
        let error = run(&["--disk", "1G,ro"]).unwrap_err();
        assert!(error.contains("cannot be read-only"), "{error}");
    }

    #[test]
    fn command_after_double_dash_is_kept_verbatim() {
        let cli = Cli::try_parse_from(["vmlane", "run", "--", "printf", "%s\n", "a b", "-v", "$X"])
            .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(args.command, ["printf", "%s\n", "a b", "-v", "$X"]);
        assert!(!args.vm.verbose);
    }
}
