//! The QEMU machine types vmlane boots, and what each means for devices and guest drivers.

use crate::QemuRelease;
use vmlane_spec::Arch;

/// A QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineKind {
    /// q35 with its optional legacy devices off, devices on virtio-pci: what stock distro
    /// kernels need (their virtio-mmio cannot take devices from the command line).
    Q35,
    /// microvm without ACPI or PCI, devices on virtio-mmio announced on the kernel command
    /// line: the fastest boot, for kernels with `VIRTIO_MMIO_CMDLINE_DEVICES`.
    Microvm,
    /// arm64's `virt` with a GICv3, devices on its virtio-mmio transports (found from the
    /// device tree, so any arm64 kernel with virtio-mmio sees them), powered off by PSCI.
    ArmVirt,
    /// s390x's `s390-ccw-virtio`: devices on virtio-ccw (channel I/O, which every s390x guest
    /// kernel has built in), the SCLP console, powered off through SCLP.
    S390Ccw,
    /// riscv64's `virt` behind the OpenSBI QEMU ships: devices on its virtio-mmio transports
    /// (found from the device tree), a 16550 console, powered off through SBI.
    RiscvVirt,
    /// ppc64's `pseries` (a PAPR logical partition) behind QEMU's Virtual Open Firmware, which
    /// loads the ELF vmlinux at once where SLOF takes a second: devices on virtio-pci behind
    /// its PCI host bridge, the hypervisor's virtual terminal as console (hvc0), powered off
    /// through RTAS. One machine for both byte orders; the CPU switches at boot.
    Pseries {
        /// For a big-endian (ppc64) guest, else a little-endian (ppc64el) one.
        big_endian: bool,
    },
}

impl MachineKind {
    /// The `-machine` value before the accelerator.
    pub fn qemu_machine(self) -> &'static str {
        match self {
            MachineKind::Q35 => "q35,smbus=off,sata=off,vmport=off,usb=off",
            // The PIT, PIC and RTC let the kernel calibrate its clocks under TCG.
            MachineKind::Microvm => "microvm,acpi=off,pit=on,pic=on,rtc=on,isa-serial=on",
            MachineKind::ArmVirt => "virt,gic-version=3",
            MachineKind::S390Ccw => "s390-ccw-virtio",
            MachineKind::RiscvVirt => "virt",
            MachineKind::Pseries { .. } => "pseries,x-vof=on",
        }
    }

    /// The suffix of virtio device names on this machine's transport.
    pub fn transport(self) -> &'static str {
        match self {
            MachineKind::Q35 | MachineKind::Pseries { .. } => "pci",
            MachineKind::Microvm | MachineKind::ArmVirt | MachineKind::RiscvVirt => "device",
            MachineKind::S390Ccw => "ccw",
        }
    }

    /// The guest driver for that transport, when a kernel may have it as a module: s390x
    /// kernels build virtio-ccw in whenever they can run as a guest (`S390_GUEST`).
    pub fn transport_module(self) -> Option<&'static str> {
        match self {
            MachineKind::Q35 | MachineKind::Pseries { .. } => Some("virtio_pci"),
            MachineKind::Microvm | MachineKind::ArmVirt | MachineKind::RiscvVirt => {
                Some("virtio_mmio")
            }
            MachineKind::S390Ccw => None,
        }
    }

    /// The CPU architecture of the machine's guests.
    pub fn arch(self) -> Arch {
        match self {
            MachineKind::Q35 | MachineKind::Microvm => Arch::X86_64,
            MachineKind::ArmVirt => Arch::Aarch64,
            MachineKind::S390Ccw => Arch::S390x,
            MachineKind::RiscvVirt => Arch::Riscv64,
            MachineKind::Pseries { big_endian: false } => Arch::Ppc64le,
            MachineKind::Pseries { big_endian: true } => Arch::Ppc64,
        }
    }

    /// The CPU model under TCG: every feature QEMU emulates, where the machine has `max`
    /// (QEMU 7.2 has none for RISC-V, whose `rv64` is the full RV64GC, or for POWER, whose
    /// newest is POWER10; pseries would pick POWER9). RISC-V's without Sstc: QEMU (7.2 and
    /// 10.0 alike) leaves its stimecmp out of a saved guest, which then never wakes from a
    /// sleep; without it the kernel sets its timer through SBI, on the ACLINT QEMU does save.
    pub fn tcg_cpu(self) -> &'static str {
        match self {
            MachineKind::RiscvVirt => "rv64,sstc=off",
            MachineKind::Pseries { .. } => "power10",
            _ => "max",
        }
    }

    /// Whether `qemu` (its release, if it told) re-arms the timer of a guest of this machine
    /// it restores. No QEMU re-arms RISC-V's ACLINT (7.2 and 10.0 measured). 7.2 (Debian 12's)
    /// leaves pseries' decrementer unarmed; 10.0 (Debian 13's, bookworm-backports') re-arms it.
    pub fn restores_timers(self, qemu: Option<QemuRelease>) -> bool {
        let rearming = QemuRelease {
            major: 10,
            minor: 0,
        };
        match self {
            MachineKind::RiscvVirt => false,
            MachineKind::Pseries { .. } => qemu.is_some_and(|release| release >= rearming),
            _ => true,
        }
    }

    /// Whether its virtio-mmio transports must be told to speak virtio 1.0: they default to
    /// legacy virtio, which vhost-user devices (virtio-fs) refuse.
    pub fn modern_mmio(self) -> bool {
        matches!(self, MachineKind::ArmVirt | MachineKind::RiscvVirt)
    }
}
