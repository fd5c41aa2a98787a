//! Step 1, the request: what to boot and what to run in it, as plain data. Nothing here
//! touches the machine except [`Request::with_profiles`], which reads the profiles named.

mod profiles;

pub use profiles::RequestError;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use vmlane_spec::{Accel, Arch, DiskSpec, Input, Network, NumaNode, RwDir, ShareKind};

/// Virtual CPUs when neither the request nor a profile says.
pub const DEFAULT_CPUS: u32 = 1;
/// Guest memory in MiB when neither the request nor a profile says.
pub const DEFAULT_MEMORY_MIB: u32 = 512;

/// One command in one throwaway VM: every option of `vmlane run`, `vmlane shell`, a suite's
/// test and [`crate::Run`], in one place.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The command and its arguments, byte for byte; empty for the login shell.
    pub argv: Vec<OsString>,
    /// Extra `KEY=VALUE` entries over the guest's defaults; later entries win.
    pub env: Vec<(OsString, OsString)>,
    /// The directory the command starts in, and what relative paths are taken from.
    pub cwd: PathBuf,
    /// What the command reads on stdin.
    pub input: Input,
    /// Wall-clock limit for the whole VM; `None` waits for ever.
    pub timeout: Option<Duration>,
    /// `-k`: an image, a build tree, or a cached kernel's name or release (prefix).
    pub kernel: Option<PathBuf>,
    /// `--modules`: the kernel's modules directory, overriding the one found with it.
    pub modules_dir: Option<PathBuf>,
    /// The guest OS the kernel must be.
    pub os: OsChoice,
    /// `--arch`: the guest's CPU architecture, which the kernel must be built for; `None`
    /// follows the kernel (and the default kernel is one of the host's).
    pub arch: Option<Arch>,
    /// The VMM.
    pub backend: BackendChoice,
    /// The accelerator asked for.
    pub accel: Accel,
    /// The QEMU machine type.
    pub machine: MachineChoice,
    /// Virtual CPUs; see [`Request::cpus`].
    pub cpus: Option<u32>,
    /// Guest memory in MiB; see [`Request::memory_mib`].
    pub memory_mib: Option<u32>,
    /// NUMA nodes (empty: one); their CPUs and memory add up to the VM's.
    pub numa: Vec<NumaNode>,
    /// Extra kernel command-line words (kernel environment words for FreeBSD), after vmlane's.
    pub append: Vec<String>,
    /// Disks, attached as `/dev/vda`, `/dev/vdb`, ... in this order.
    pub disks: Vec<DiskSpec>,
    /// Host directories the guest may write to (`--rwdir`), mounted in this order over the
    /// read-only root (Linux guests).
    pub rwdirs: Vec<RwDir>,
    /// The guest's network.
    pub network: Network,
    /// Start halted with a gdb stub on this port of 127.0.0.1.
    pub gdb: Option<u16>,
    /// Shell commands run on the host before the VM starts, with `VMLANE_SCRATCH` set.
    pub host_setup: Vec<String>,
    /// Profiles to apply, by name or path; [`Request::with_profiles`] resolves them.
    pub profiles: Vec<String>,
    /// Boot, even where a saved guest of this configuration could be restored (`--cold`),
    /// and save none.
    pub cold: bool,
    /// Save the ready guest on the first run of a configuration rather than the second: for
    /// callers that know more runs of it follow (a suite).
    pub save_on_first_use: bool,
    /// What only Linux guests have.
    pub linux: LinuxOptions,
    /// What only FreeBSD guests have.
    pub freebsd: FreeBsdOptions,
}

/// Options only Linux guests take (vmlane's Linux init carries them out).
#[derive(Debug, Clone, Default)]
pub struct LinuxOptions {
    /// How the host's files reach the guest.
    pub share: ShareKind,
    /// Kernel modules to load besides those the devices need.
    pub modules: Vec<String>,
    /// Shell commands run in the guest before the command; a failure ends the run with 125.
    pub guest_setup: Vec<String>,
    /// `--root`: the guest's root filesystem in place of the host's (a root of the guest's
    /// architecture), read-only under the overlay; the working directory is still the host's.
    pub root: Option<PathBuf>,
}

/// Options only FreeBSD guests take.
#[derive(Debug, Clone, Default)]
pub struct FreeBsdOptions {
    /// Run the command (a path inside the image) in this FreeBSD image instead of vmlane's
    /// minimal guest.
    pub image: Option<PathBuf>,
    /// Let the guest's writes land in `image`.
    pub keep_image: bool,
    /// How the kernel is entered.
    pub boot: BootChoice,
    /// Stop a panic at `db>` and hand the console to the user.
    pub debugger: bool,
    /// Boot `image` as it would boot anywhere (no run disk, so `rc` goes on to multi-user),
    /// run no command, and go on until the run is stopped: `vmlane image check`.
    pub boot_only: bool,
}

impl Request {
    /// The architecture whose newest cached kernel is the default: the one asked for, else
    /// the host's.
    pub fn arch(&self) -> Arch {
        self.arch.unwrap_or_else(Arch::host)
    }

    /// `argv` in `cwd`, with vmlane's defaults for everything else.
    pub fn new(argv: Vec<OsString>, cwd: PathBuf) -> Request {
        Request {
            argv,
            cwd,
            ..Request::default()
        }
    }

    /// Virtual CPUs: the request's, else [`DEFAULT_CPUS`].
    pub fn cpus(&self) -> u32 {
        self.cpus.unwrap_or(DEFAULT_CPUS)
    }

    /// Guest memory in MiB: the request's, else [`DEFAULT_MEMORY_MIB`].
    pub fn memory_mib(&self) -> u32 {
        self.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB)
    }
}

/// Which QEMU machine to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineChoice {
    /// Whatever the kernel boots on fastest (see the plan).
    #[default]
    Auto,
    /// q35 with virtio-pci.
    Q35,
    /// microvm without ACPI.
    Microvm,
}

/// Which VMM runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// bhyve for FreeBSD guests on FreeBSD hosts, QEMU everywhere else.
    #[default]
    Auto,
    /// QEMU.
    Qemu,
    /// bhyve (FreeBSD hosts, FreeBSD guests).
    Bhyve,
}

/// How a FreeBSD kernel is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootChoice {
    /// Through vmlane's boot stub under TCG or for kernels without a PVH note; at the PVH
    /// entry under hardware KVM.
    #[default]
    Auto,
    /// Through vmlane's boot stub, the way FreeBSD's loader enters a kernel.
    Native,
    /// At the kernel's PVH entry.
    Pvh,
}

/// Which operating system the guest kernel must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OsChoice {
    /// Whatever the kernel image says.
    #[default]
    Auto,
    /// Linux only: a FreeBSD kernel is refused.
    Linux,
    /// FreeBSD only: a Linux kernel is refused.
    FreeBsd,
}
