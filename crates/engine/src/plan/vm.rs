//! The VM part of a plan, the same in kind for every guest OS, and what each OS's rules
//! hand back to be put into it.

use super::error::PlanError;
use crate::host::Host;
use std::path::PathBuf;
use std::time::Duration;
use vmlane_backend::Share;
use vmlane_bhyve::BhyveBackend;
use vmlane_qemu::{AccelChoice, MachineKind, QemuRelease};
use vmlane_spec::{Arch, DiskSpec, Network, NumaNode};

/// The tag the host root is shared under, and mounted by, for every guest OS.
pub(crate) const SHARE_TAG: &str = "vmlane-root";
/// The tag of the `n`th writable directory is this, then `n`.
pub(crate) const RWDIR_TAG_PREFIX: &str = "vmlane-rw";

/// The VM: machine, resources, devices and the backend that runs it.
#[derive(Debug)]
pub struct VmPlan {
    /// The VMM.
    pub backend: BackendPlan,
    /// The accelerator.
    pub accel: AccelChoice,
    /// Why `auto` fell back to a slow accelerator, for the user to hear once.
    pub accel_notice: Option<String>,
    /// The machine type.
    pub machine: MachineKind,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// NUMA nodes (empty: one).
    pub numa: Vec<NumaNode>,
    /// The kernel command line (FreeBSD: its environment).
    pub cmdline: String,
    /// The host root shared with the guest, if it can be.
    pub share: Option<Share>,
    /// Writable host directories (`--rwdir`), as absolute paths, over the root's transport.
    pub rwdirs: Vec<Share>,
    /// The request's disks, images as absolute paths; the guest's own disks come first.
    pub disks: Vec<DiskSpec>,
    /// Host ports to hold from staging until the VM starts, so a taken one fails early.
    pub ports: Vec<PortUse>,
    /// The guest's network.
    pub network: Network,
    /// The gdb stub's port.
    pub gdb: Option<u16>,
    /// Wall-clock limit.
    pub timeout: Option<Duration>,
    /// Host commands to run before the VM starts, in `cwd`.
    pub host_setup: Vec<String>,
    /// The request's directory.
    pub cwd: PathBuf,
    /// Whether a saved guest may stand in for the boot, or why not.
    pub warm: Result<(), ColdReason>,
    /// Save the ready guest on the first run of its configuration.
    pub save_on_first_use: bool,
}

/// Why a run boots although saved guests are used elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ColdReason {
    /// `--cold`.
    #[error("a cold boot was asked for (--cold)")]
    Asked,
    /// `--gdb`: the boot is what is debugged.
    #[error("--gdb debugs the boot itself")]
    Debugger,
    /// `--net`.
    #[error("guests with a network are not saved yet")]
    Network,
    /// A disk image: the guest reads it while it boots, and it may change between runs.
    #[error("a disk image is attached, and the guest reads it while it boots")]
    DiskImage,
    /// virtio-fs on microvm: a vhost-user device cannot be saved, nor plugged in later there.
    #[error("the host's files are shared over virtio-fs on microvm, whose device can neither be saved nor plugged in later (a kernel with 9p can be saved)")]
    VirtioFs,
    /// A FreeBSD guest booting a userland of its own, or one without a channel to get its run.
    #[error("a FreeBSD guest is saved only as vmlane's minimal guest with its run on COM2; this one boots a userland from an image, which rc sets up from the disk each time")]
    FreeBsdImage,
    /// A backend that cannot save guests.
    #[error("the bhyve backend cannot save guests")]
    Bhyve,
    /// riscv64 without high-resolution timers: its lost timer cannot be programmed again.
    #[error("this riscv64 kernel has no high-resolution timers (CONFIG_HIGH_RES_TIMERS), and QEMU does not re-arm a restored guest's timer, which only a kernel with them can be made to program again; build it with -e HIGH_RES_TIMERS to have its guests saved")]
    RiscvPeriodicTick,
    /// pseries without high-resolution timers, on a QEMU that leaves a restored timer unarmed.
    #[error("this pseries kernel has no high-resolution timers (CONFIG_HIGH_RES_TIMERS), and QEMU older than 10.0 does not re-arm a restored guest's timer, which only a kernel with them can be made to program again; build it with -e HIGH_RES_TIMERS, or use QEMU 10.0 or newer (Debian 13's, or Debian 12's bookworm-backports), to have its guests saved")]
    PseriesPeriodicTick,
}

/// The VMM that runs the VM.
#[derive(Debug, Clone)]
pub enum BackendPlan {
    /// QEMU, with the virtiofsd that serves a virtio-fs share.
    Qemu {
        /// The QEMU program.
        program: PathBuf,
        /// Its release, when it told: which machines' guests it saves.
        release: Option<QemuRelease>,
        /// The virtiofsd, if any.
        virtiofsd: Option<PathBuf>,
    },
    /// bhyve on a FreeBSD host.
    Bhyve(BhyveBackend),
}

impl BackendPlan {
    /// Whether this backend re-arms the timer of a guest of `machine` it restores.
    pub fn restores_timers_of(&self, machine: MachineKind) -> bool {
        match self {
            BackendPlan::Qemu { release, .. } => machine.restores_timers(*release),
            BackendPlan::Bhyve(_) => true,
        }
    }
}

/// A host port the VM will listen on, and the option that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortUse {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The flag, for messages: `--gdb`, `--forward 8080:80`.
    pub what: String,
}

/// What the rules of one guest OS decide.
pub(super) struct Decided<Guest> {
    pub(super) backend: BackendPlan,
    pub(super) machine: MachineKind,
    pub(super) cmdline: String,
    pub(super) share: Option<Share>,
    pub(super) rwdirs: Vec<Share>,
    pub(super) guest: Guest,
}

impl<Guest> Decided<Guest> {
    /// The same decisions with the guest part turned into `G`.
    pub(super) fn map<G>(self, into: impl FnOnce(Guest) -> G) -> Decided<G> {
        Decided {
            backend: self.backend,
            machine: self.machine,
            cmdline: self.cmdline,
            share: self.share,
            rwdirs: self.rwdirs,
            guest: into(self.guest),
        }
    }
}

/// QEMU, as the host has it.
pub(super) fn qemu(host: &Host) -> Result<BackendPlan, PlanError> {
    backend_of(host.qemu.clone()?, host)
}

fn backend_of(qemu: crate::host::QemuBinary, host: &Host) -> Result<BackendPlan, PlanError> {
    Ok(BackendPlan::Qemu {
        release: qemu.version.as_deref().and_then(QemuRelease::parse),
        program: qemu.path,
        virtiofsd: host.virtiofsd.clone(),
    })
}

/// The QEMU that emulates guests of `arch`: the host's own for its architecture.
pub(super) fn qemu_for(host: &Host, arch: Arch) -> Result<BackendPlan, PlanError> {
    if arch == Arch::host() {
        return qemu(host);
    }
    let qemu = host
        .foreign_qemu
        .get(&arch)
        .cloned()
        .unwrap_or_else(|| Err(crate::host::missing_qemu(arch)))?;
    backend_of(qemu, host)
}
