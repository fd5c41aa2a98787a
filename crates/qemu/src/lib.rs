//! vmlane's QEMU backend. The command line is built by pure functions (tested without QEMU);
//! this crate's other job is keeping QEMU and its virtiofsd helper from outliving a run.
#![deny(missing_docs)]

mod accel;
mod argv;
mod freebsd;
mod machine;
mod process;
mod qmp;
mod ram;
mod snapshot;
mod tsc;
mod version;
mod virtiofsd;

pub use accel::{resolve_accel, AccelChoice, HostKvm};
pub use argv::{
    gdb_args, kernel_cmdline, network_args, qemu_args, qemu_args_numa, share_devices, RamBacking,
    ShareDevice, GUEST_ADDRESS, GUEST_MODULES_9P, GUEST_MODULES_BASE, GUEST_MODULES_NET,
    GUEST_MODULES_VIRTIOFS, HOST_ADDRESS, KERNEL_ARGS,
};
pub use freebsd::{
    freebsd_cmdline, FREEBSD_CHANNEL_ENV, FREEBSD_KERNEL_ENV, FREEBSD_PANIC_ENV,
    FREEBSD_TCG_KERNEL_ENV,
};
pub use machine::MachineKind;
pub use tsc::host_tsc_khz;
pub use version::{qemu_version, QemuRelease};
pub use virtiofsd::find_virtiofsd;

use std::path::PathBuf;
use vmlane_backend::{Backend, BackendError, Machine, RunningVm, ShareTransport};
use vmlane_spec::{Network, NumaNode};

/// Starts VMs with `qemu-system-x86_64`.
#[derive(Debug, Clone)]
pub struct QemuBackend {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The accelerator, already resolved.
    pub accel: AccelChoice,
    /// The virtiofsd to serve virtio-fs shares with, if one is installed.
    pub virtiofsd: Option<PathBuf>,
    /// The machine type.
    pub machine: MachineKind,
    /// The guest's network: only Linux guests on QEMU have one, so it is set here rather
    /// than on every backend's [`Machine`].
    pub network: Network,
    /// The port of a gdb stub to start the guest halted behind (QEMU's own stub).
    pub gdb: Option<u16>,
    /// The guest's NUMA nodes (none: one node); their CPUs and memory are the machine's.
    pub numa: Vec<NumaNode>,
}

/// The QEMU binary vmlane runs.
pub const QEMU_PROGRAM: &str = "qemu-system-x86_64";
/// How to get it.
pub const QEMU_HINT: &str =
    "install it with `apt-get install qemu-system-x86` (or run scripts/setup)";

/// QEMU on `PATH`, if installed.
pub fn find_qemu() -> Option<PathBuf> {
    find_program(QEMU_PROGRAM)
}

/// The QEMU program that emulates guests of `arch`, and how to get it.
pub fn qemu_program(arch: vmlane_spec::Arch) -> (&'static str, &'static str) {
    match arch {
        vmlane_spec::Arch::X86_64 => (QEMU_PROGRAM, QEMU_HINT),
        vmlane_spec::Arch::Aarch64 => (
            "qemu-system-aarch64",
            "install it with `apt-get install qemu-system-arm` (or run scripts/setup --arch arm64)",
        ),
        vmlane_spec::Arch::S390x => (
            "qemu-system-s390x",
            "install it with `apt-get install qemu-system-misc` (or run scripts/setup --arch s390x)",
        ),
        vmlane_spec::Arch::Riscv64 => (
            "qemu-system-riscv64",
            "install it with `apt-get install qemu-system-misc` (or run scripts/setup --arch riscv64)",
        ),
        vmlane_spec::Arch::Ppc64le => (
            "qemu-system-ppc64",
            "install it with `apt-get install qemu-system-ppc` (or run scripts/setup --arch ppc64el)",
        ),
        vmlane_spec::Arch::Ppc64 => (
            "qemu-system-ppc64",
            "install it with `apt-get install qemu-system-ppc` (or run scripts/setup --arch ppc64)",
        ),
    }
}

/// The QEMU for guests of `arch` on `PATH`, if installed.
pub fn find_qemu_for(arch: vmlane_spec::Arch) -> Option<PathBuf> {
    find_program(qemu_program(arch).0)
}

impl Backend for QemuBackend {
    fn name(&self) -> &str {
        "qemu"
    }

    fn start(&self, machine: &Machine) -> Result<Box<dyn RunningVm>, BackendError> {
        // One virtiofsd per virtio-fs share: each enforces its own access.
        let mut virtiofsd = Vec::new();
        for device in share_devices(machine) {
            if device.share.transport != ShareTransport::VirtioFs {
                continue;
            }
            let program = self.virtiofsd.as_ref().ok_or_else(|| BackendError::MissingProgram {
                program: "virtiofsd".into(),
                hint: "install qemu-system-x86 (Debian 12 ships /usr/lib/qemu/virtiofsd) or `cargo install virtiofsd`, or use --share 9p with a kernel that has 9p".into(),
            })?;
            virtiofsd.push(virtiofsd::spawn(program, &device)?);
        }
        let (held, backing) = ram::prepare(machine)?;
        let mut args = self.vm_args(machine, backing.as_ref());
        args.extend(snapshot::control_args(machine));
        let vm = process::QemuVm::spawn(&self.qemu, &args, machine, virtiofsd, held)?;
        Ok(Box::new(vm))
    }

    fn snapshot_key(&self, machine: &Machine) -> Option<Vec<(String, String)>> {
        let keyed = snapshot::without_rwdir_paths(machine);
        Some(snapshot::key(
            &self.qemu,
            &keyed,
            &self.vm_args(&keyed, None),
        ))
    }
}

impl QemuBackend {
    /// Everything that makes the VM what it is, without how it is started or controlled.
    fn vm_args(&self, machine: &Machine, ram: Option<&RamBacking>) -> Vec<std::ffi::OsString> {
        let mut args = qemu_args_numa(machine, self.machine, self.accel, &self.numa, ram);
        args.extend(network_args(&self.network, self.machine));
        args.extend(gdb_args(self.gdb));
        args
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
