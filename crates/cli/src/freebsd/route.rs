//! How a FreeBSD kernel is entered and on which machine: decided from the accelerator and
//! the kernel's own symbols, so users never have to patch or describe their kernels.

use crate::launch::{BootChoice, Launch, LaunchError, MachineChoice};
use std::path::{Path, PathBuf};
use vmlane_kernel::{FreeBsdTraits, Kernel};
use vmlane_qemu::{AccelChoice, MachineKind};

/// How QEMU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BootRoute {
    /// At the kernel's PVH note, directly.
    Pvh,
    /// Through vmlane's boot stub, the way FreeBSD's loader enters it.
    Native,
}

/// The loader route works everywhere; PVH is faster but needs a paravirtual clock, which
/// only hardware KVM gives a FreeBSD guest.
pub(super) fn choose_route(
    choice: BootChoice,
    accel: AccelChoice,
    traits: &FreeBsdTraits,
) -> Result<(BootRoute, &'static str), LaunchError> {
    let kvm = accel != AccelChoice::Tcg;
    Ok(match choice {
        BootChoice::Native => (BootRoute::Native, "asked for with --boot native"),
        BootChoice::Pvh if !traits.pvh => {
            return Err(LaunchError::FreeBsdGuest(
                "--boot pvh: the kernel has no PVH entry note (build it with `options XENHVM`, or use --boot native)".into(),
            ))
        }
        BootChoice::Pvh => (BootRoute::Pvh, "asked for with --boot pvh"),
        BootChoice::Auto if !traits.pvh => (BootRoute::Native, "the kernel has no PVH entry"),
        BootChoice::Auto if !kvm => (
            BootRoute::Native,
            "under TCG a FreeBSD kernel entered at PVH has no paravirtual clock",
        ),
        BootChoice::Auto => (BootRoute::Pvh, "KVM gives the kernel its clock at the PVH entry"),
    })
}

/// microvm for kernels that find their devices without ACPI, q35 for the rest.
pub(super) fn choose_machine(choice: MachineChoice, traits: &FreeBsdTraits) -> MachineKind {
    match choice {
        MachineChoice::Q35 => MachineKind::Q35,
        MachineChoice::Microvm => MachineKind::Microvm,
        MachineChoice::Auto if traits.boots_without_acpi() => MachineKind::Microvm,
        MachineChoice::Auto => MachineKind::Q35,
    }
}

/// The boot stub, written once per content into vmlane's cache, after checking that the
/// kernel is one it can enter and that it fits in the VM's memory.
pub(super) fn native_boot(launch: &Launch, kernel: &Kernel) -> Result<PathBuf, LaunchError> {
    let refuse = |why: String| LaunchError::FreeBsdGuest(why);
    vmlane_freebsd_boot::check_kernel(&kernel.image).map_err(|e| refuse(e.to_string()))?;
    let needed = vmlane_freebsd_boot::memory_needed(&kernel.image, &[])
        .map_err(|e| refuse(e.to_string()))?;
    // The kernel needs room of its own beyond what the stub lays out.
    let needed_mib = needed.div_ceil(1 << 20) + MIN_FREE_MIB;
    if u64::from(launch.spec.memory_mib) < needed_mib {
        return Err(refuse(format!(
            "{} needs at least {needed_mib} MiB of guest memory; the VM has {} MiB (raise it with -m)",
            kernel.image.display(),
            launch.spec.memory_mib
        )));
    }
    let stub = vmlane_freebsd_boot::stub_binary()
        .map_err(|why| refuse(format!("vmlane's FreeBSD boot stub is not built: {why}")))?;
    cached_file(
        &vmlane_kernel::cache_dir().join("boot"),
        "vmlane-freebsd-boot",
        stub,
    )
    .map_err(LaunchError::RunDir)
}

/// Memory a FreeBSD kernel needs past its own image to get to its init.
const MIN_FREE_MIB: u64 = 64;

/// `bytes` as a file named by their hash under `dir`, written (atomically) only once.
fn cached_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(bytes);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{name}-{hex}"));
    if std::fs::read(&path).is_ok_and(|existing| existing == bytes) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRECRACKER: FreeBsdTraits = FreeBsdTraits {
        virtio_mmio_cmdline: true,
        mptable: true,
        pvh: true,
        p9fs: false,
        symbols: true,
    };
    const GENERIC: FreeBsdTraits = FreeBsdTraits {
        virtio_mmio_cmdline: false,
        mptable: true,
        pvh: true,
        p9fs: false,
        symbols: true,
    };

    #[test]
    fn the_stub_under_tcg_and_pvh_only_under_kvm() {
        let route = |choice, accel, traits| choose_route(choice, accel, traits).unwrap().0;
        assert_eq!(
            route(BootChoice::Auto, AccelChoice::Tcg, &FIRECRACKER),
            BootRoute::Native
        );
        assert_eq!(
            route(BootChoice::Auto, AccelChoice::Kvm, &FIRECRACKER),
            BootRoute::Pvh
        );
        let no_note = FreeBsdTraits {
            pvh: false,
            ..FIRECRACKER
        };
        assert_eq!(
            route(BootChoice::Auto, AccelChoice::Kvm, &no_note),
            BootRoute::Native
        );
        assert_eq!(
            route(BootChoice::Pvh, AccelChoice::Tcg, &FIRECRACKER),
            BootRoute::Pvh
        );
        assert_eq!(
            route(BootChoice::Native, AccelChoice::Kvm, &FIRECRACKER),
            BootRoute::Native
        );
        assert!(choose_route(BootChoice::Pvh, AccelChoice::Kvm, &no_note).is_err());
    }

    #[test]
    fn the_machine_follows_the_kernel_unless_asked() {
        assert_eq!(
            choose_machine(MachineChoice::Auto, &FIRECRACKER),
            MachineKind::Microvm
        );
        assert_eq!(
            choose_machine(MachineChoice::Auto, &GENERIC),
            MachineKind::Q35
        );
        assert_eq!(
            choose_machine(MachineChoice::Q35, &FIRECRACKER),
            MachineKind::Q35
        );
        assert_eq!(
            choose_machine(MachineChoice::Microvm, &GENERIC),
            MachineKind::Microvm
        );
    }

    #[test]
    fn cached_files_are_written_once_and_named_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = cached_file(dir.path(), "stub", b"one").unwrap();
        let again = cached_file(dir.path(), "stub", b"one").unwrap();
        let b = cached_file(dir.path(), "stub", b"two").unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), b"one");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
