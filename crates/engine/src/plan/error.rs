//! Why a request cannot be planned: each a rule the request, the kernel or the host broke,
//! with the fix in the message.

use crate::host::Missing;
use std::fmt;
use std::path::PathBuf;
use vmlane_freebsd_boot::BootError;
use vmlane_spec::Arch;

/// A request that cannot run on this kernel and host.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The kernel is not of the OS that was asked for.
    #[error("{kernel} is a {found} kernel, but {wanted} was asked for (--os); give a {wanted} kernel with -k, or drop --os")]
    WrongOs {
        /// The kernel image.
        kernel: PathBuf,
        /// What it is.
        found: &'static str,
        /// What was asked for.
        wanted: &'static str,
    },
    /// The kernel is built for another architecture than `--arch` names.
    #[error("{kernel} is a kernel for {found}, but --arch {wanted} was asked for: give a kernel for {wanted} with -k (scripts/setup --arch {wanted} fetches or builds one), or drop --arch")]
    WrongArch {
        /// The kernel image.
        kernel: PathBuf,
        /// Its architecture.
        found: Arch,
        /// The one asked for.
        wanted: Arch,
    },
    /// A machine type of one architecture asked for a guest of another.
    #[error(
        "--machine {machine} is an x86 machine; {arch} guests run on QEMU's {own} (drop --machine)"
    )]
    MachineOfOtherArch {
        /// The machine asked for.
        machine: &'static str,
        /// The machine guests of that architecture run on.
        own: &'static str,
        /// The guest's architecture.
        arch: Arch,
    },
    /// bhyve was asked for a Linux guest.
    #[error(
        "the bhyve backend runs FreeBSD guests; Linux guests run on QEMU (drop --backend bhyve)"
    )]
    BhyveNeedsFreeBsd,
    /// `--image` was given for a Linux guest.
    #[error("--image runs a command inside a FreeBSD image; Linux guests use the host's files (and --disk for extra disks)")]
    ImageNeedsFreeBsd,
    /// An option only Linux guests have was given for a FreeBSD kernel.
    #[error("{0} is for Linux guests; FreeBSD guests do not have it yet")]
    LinuxOnly(&'static str),
    /// `--net` for a FreeBSD guest on bhyve.
    #[error("--net for FreeBSD guests runs on QEMU: vmlane gives bhyve guests no network device yet (use --backend qemu)")]
    NetOnBhyve,
    /// `--net` for a FreeBSD kernel without the virtio network driver.
    #[error("the kernel {kernel} has no virtio network driver (device vtnet), so the guest cannot have a network; add `device vtnet` (with `device virtio`) to its config, as FIRECRACKER and GENERIC have")]
    NoVtnet {
        /// The kernel image.
        kernel: PathBuf,
    },
    /// `--rwdir` for a FreeBSD kernel.
    #[error("--rwdir is for Linux guests: vmlane's FreeBSD guest mounts the host's files read-only (p9fs, when the kernel has it) and has no writable share yet; copy results out through the command's output instead")]
    RwDirNeedsLinux,
    /// A `--rwdir` that cannot be mounted where it asks.
    #[error("{0}")]
    RwDir(String),
    /// A profile key only Linux guests have was given for a FreeBSD kernel.
    #[error("the profile key `{0}` is not supported for FreeBSD guests")]
    NotForFreeBsd(&'static str),
    /// A FreeBSD run without `--image` has no program to run.
    #[error(
        "a FreeBSD run without --image needs a command: a host path to a static FreeBSD executable"
    )]
    NoProgram,
    /// A FreeBSD shell without a userland to run it from.
    #[error("a FreeBSD shell needs a userland: give --image IMG, an image from `vmlane image build --from DIR|base.txz`")]
    ShellNeedsImage,
    /// A boot check of nothing: only an image boots on to multi-user.
    #[error("a boot check boots a FreeBSD image: give the image built by `vmlane image build`")]
    BootNeedsImage,
    /// The host's input for a FreeBSD guest that has no channel to carry it.
    #[error("the host's input reaches a FreeBSD guest over its second serial port, which bhyve runs do not have: use --backend qemu")]
    InputOnBhyve,
    /// NUMA nodes on a machine without ACPI.
    #[error("NUMA nodes need --machine q35: QEMU's microvm has no ACPI tables to describe them")]
    NumaNeedsQ35,
    /// NUMA nodes for a guest whose machine vmlane does not split yet.
    #[error("NUMA nodes are for x86-64 guests so far; drop --numa for {0} guests")]
    NumaNotOnArch(Arch),
    /// The VMM is not installed.
    #[error(transparent)]
    Missing(#[from] Missing),
    /// The host's files cannot reach the guest.
    #[error(transparent)]
    Share(#[from] ShareError),
    /// `--net` for a kernel without a virtio-net driver.
    #[error("the kernel {kernel} has no virtio-net driver (CONFIG_VIRTIO_NET), so the guest cannot have a network; `vmlane kernel build -e NETDEVICES -e NET_CORE -e VIRTIO_NET` builds one that has")]
    NoNic {
        /// The kernel image.
        kernel: PathBuf,
    },
    /// `--net` on a host without `ip`, which the guest sets its network up with.
    #[error("the guest sets up its network with the host's `ip`, and none is installed (apt-get install iproute2)")]
    NoIp,
    /// A module asked for by name that the kernel does not have.
    #[error("the kernel {kernel} ({}) has no module `{name}` {}", .release.as_deref().unwrap_or("unknown release"), ModulePlace(.modules_dir))]
    NoModule {
        /// The module.
        name: String,
        /// The kernel image.
        kernel: PathBuf,
        /// Its release.
        release: Option<String>,
        /// Where its modules are, if anywhere.
        modules_dir: Option<PathBuf>,
    },
    /// `--boot pvh` for a kernel without a PVH note.
    #[error("--boot pvh: the kernel has no PVH entry note (build it with `options XENHVM`, or use --boot native)")]
    NoPvhNote,
    /// vmlane's boot stub cannot enter this FreeBSD kernel.
    #[error(transparent)]
    NativeEntry(BootError),
    /// The FreeBSD kernel does not fit in the VM's memory.
    #[error("{kernel} needs at least {needed_mib} MiB of guest memory; the VM has {memory_mib} MiB (raise it with -m)")]
    TooLittleMemory {
        /// The kernel image.
        kernel: PathBuf,
        /// What it needs.
        needed_mib: u64,
        /// What the VM has.
        memory_mib: u32,
    },
}

struct ModulePlace<'a>(&'a Option<PathBuf>);

impl fmt::Display for ModulePlace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(dir) => write!(f, "in {}", dir.display()),
            None => f.write_str("(it has no modules directory; give one with --modules)"),
        }
    }
}

/// Why the host's files cannot be shared with the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// `--share 9p` for a kernel without 9p.
    #[error("the kernel {kernel} has no 9p support; try --share virtiofs")]
    NoNineP {
        /// The kernel image.
        kernel: PathBuf,
    },
    /// `--share virtiofs` for a kernel without virtio-fs.
    #[error("the kernel {kernel} has no virtio-fs support; try --share 9p")]
    NoVirtioFs {
        /// The kernel image.
        kernel: PathBuf,
    },
    /// `--share virtiofs` where it cannot work.
    #[error("cannot share over virtio-fs: {0}")]
    VirtioFsUnusable(VirtioFsProblem),
    /// The kernel has no 9p, and virtio-fs cannot work here.
    #[error("the kernel {kernel} has no 9p, and virtio-fs cannot be used: {problem}")]
    NoNinePAndVirtioFsUnusable {
        /// The kernel image.
        kernel: PathBuf,
        /// Why virtio-fs cannot be used.
        problem: VirtioFsProblem,
    },
    /// The kernel has neither.
    #[error("the kernel {kernel} can mount neither 9p nor virtio-fs, so the host's files cannot be shared")]
    Neither {
        /// The kernel image.
        kernel: PathBuf,
    },
}

/// Why virtio-fs cannot be used on this host and machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VirtioFsProblem {
    /// No virtiofsd.
    #[error("no virtiofsd is installed (Debian 12: qemu-system-x86 ships /usr/lib/qemu/virtiofsd; or `cargo install virtiofsd`)")]
    NoVirtiofsd,
    /// Measured: the guest's first request on a vhost-user-fs-device never completes.
    #[error("vhost-user devices on QEMU's microvm do not work under TCG (use --machine q35)")]
    MicrovmUnderTcg,
    /// FUSE messages travel in the guest's byte order, and virtiofsd reads them in the host's.
    #[error("virtiofsd speaks FUSE in the host's byte order, and this {0} guest is big-endian (use --share 9p)")]
    OtherByteOrder(Arch),
    /// Measured under QEMU 7.2: every exec from the share fails with EINVAL.
    #[error("a pseries guest cannot run programs from a virtio-fs share (every exec fails with EINVAL; use --share 9p)")]
    PseriesExec,
}
