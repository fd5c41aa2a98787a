//! The config vmlane builds kernels with: tinyconfig plus what a throwaway test VM needs, all
//! built in, so the kernel boots with no modules and no initramfs drivers. Most of it is the
//! same on every architecture; the console, interrupt and firmware pieces are each machine's.

use vmlane_spec::Arch;

/// One config option and the value vmlane wants for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The symbol without `CONFIG_`.
    pub name: String,
    /// `y`, `m`, `n`, or a value.
    pub value: String,
}

impl Setting {
    /// `NAME=value`.
    pub fn new(name: &str, value: &str) -> Setting {
        Setting {
            name: name.trim_start_matches("CONFIG_").to_string(),
            value: value.to_string(),
        }
    }

    /// The `.config` line for it.
    pub fn line(&self) -> String {
        if self.value == "n" {
            format!("# CONFIG_{} is not set", self.name)
        } else {
            format!("CONFIG_{}={}", self.name, self.value)
        }
    }
}

/// Which architectures a group of options is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every architecture.
    All,
    /// One architecture's machine.
    Only(Arch),
    /// The machines of several architectures.
    Among(&'static [Arch]),
}

impl Scope {
    fn covers(self, arch: Arch) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(only) => only == arch,
            Scope::Among(archs) => archs.contains(&arch),
        }
    }
}

use Scope::{All, Among, Only};
const X86: Scope = Only(Arch::X86_64);
const ARM64: Scope = Only(Arch::Aarch64);
const S390X: Scope = Only(Arch::S390x);
const RISCV64: Scope = Only(Arch::Riscv64);
const POWER: Scope = Among(&[Arch::Ppc64le, Arch::Ppc64]);
/// The machines whose restored guests QEMU may leave with their timer unarmed.
const TIMER_LOST: Scope = Among(&[Arch::Riscv64, Arch::Ppc64le, Arch::Ppc64]);
/// The machines with virtio-mmio transports (s390x has channel I/O, and no MMIO at all).
const MMIO: Scope = Among(&[Arch::X86_64, Arch::Aarch64, Arch::Riscv64]);

/// Options vmlane turns on, grouped by what needs them. An x86 build's settings, in this
/// order, are part of the cache key of every x86 kernel built so far: the x86 groups keep
/// their order, and groups of other architectures only come last.
#[rustfmt::skip]
const FRAGMENT: &[(&str, Scope, &[&str])] = &[
    ("a 64-bit SMP guest with kernel messages on a tty", All, &[
        "64BIT", "SMP", "PRINTK", "PRINTK_TIME", "TTY",
    ]),
    ("the PC serial port as the console", X86, &["SERIAL_8250", "SERIAL_8250_CONSOLE"]),
    ("symbols in oopses, BUG() and sysrq", All, &["KALLSYMS", "BUG", "MAGIC_SYSRQ"]),
    ("the x86 SMP tables and x2APIC", X86, &["X86_MPPARSE", "X86_X2APIC"]),
    ("the slab allocator distributions ship (tinyconfig picks SLOB)", All, &["SLUB"]),
    ("the PVH entry and paravirtual clocks under KVM", X86, &[
        "HYPERVISOR_GUEST", "PARAVIRT", "KVM_GUEST", "PVH",
    ]),
    ("q35's pci bus", X86, &["PCI"]),
    ("virtio", All, &["VIRTIO_MENU", "VIRTIO"]),
    ("virtio on q35's pci", X86, &["VIRTIO_PCI"]),
    ("virtio on mmio (microvm's, and arm64's and riscv64's virt's, transport)", MMIO, &[
        "VIRTIO_MMIO",
    ]),
    ("microvm's virtio-mmio devices, which only the command line describes", X86, &[
        "VIRTIO_MMIO_CMDLINE_DEVICES",
    ]),
    ("the virtio devices vmlane attaches", All, &[
        "VIRTIO_CONSOLE", "BLOCK", "BLK_DEV", "VIRTIO_BLK", "HW_RANDOM", "HW_RANDOM_VIRTIO",
    ]),
    ("vmlane's init and the programs it runs", All, &[
        "BLK_DEV_INITRD", "BINFMT_ELF", "BINFMT_SCRIPT", "MULTIUSER", "FUTEX", "EPOLL", "SIGNALFD",
        "TIMERFD", "EVENTFD", "SHMEM", "AIO", "IO_URING", "FILE_LOCKING", "POSIX_TIMERS",
        "SYSVIPC", "PROC_SYSCTL", "INOTIFY_USER", "UNIX98_PTYS", "FHANDLE",
    ]),
    ("the host root share under a tmpfs overlay", All, &[
        "NET", "INET", "UNIX", "NET_9P", "NET_9P_VIRTIO", "NETWORK_FILESYSTEMS", "9P_FS",
        "FUSE_FS", "VIRTIO_FS", "OVERLAY_FS", "TMPFS", "TMPFS_XATTR", "PROC_FS", "SYSFS",
        "DEVTMPFS", "EXT4_FS",
    ]),
    ("a NIC for `--net user`", All, &["NETDEVICES", "NET_CORE", "VIRTIO_NET"]),
    // The function tracer patches every traced call site at boot, a quarter second under
    // emulation; `-e FUNCTION_TRACER` brings it back.
    ("debugging filesystems", All, &["DEBUG_FS", "FTRACE", "ENABLE_DEFAULT_TRACERS", "BPF_SYSCALL"]),
    // arm64 selects these itself; listing them makes the check after configuring say so if
    // a tree ever stops.
    ("QEMU virt as its device tree describes it: GICv3, the architected timer, PSCI to start \
      CPUs and power off", ARM64, &["OF", "ARM_GIC_V3", "ARM_ARCH_TIMER", "ARM_PSCI_FW"]),
    ("virt's PL011 serial port as the console (ttyAMA0)", ARM64, &[
        "SERIAL_AMBA_PL011", "SERIAL_AMBA_PL011_CONSOLE",
    ]),
    ("virtio over s390's channel I/O (s390-ccw-virtio's transport)", S390X, &["S390_GUEST"]),
    ("the SCLP VT220 console QEMU connects the serial chardev to (ttysclp0)", S390X, &[
        "SCLP_TTY", "SCLP_VT220_TTY", "SCLP_VT220_CONSOLE",
    ]),
    // tinyconfig turns off even the MMU and the FPU on RISC-V; Debian's userland needs both.
    ("QEMU virt as its device tree describes it: paged memory, the PLIC, syscon to power off, \
      and the FPU and compressed instructions of RV64GC", RISCV64, &[
        "MMU", "SOC_VIRT", "FPU", "RISCV_ISA_C",
    ]),
    ("virt's 16550 as the console (ttyS0), found from the device tree", RISCV64, &[
        "SERIAL_8250", "SERIAL_8250_CONSOLE", "SERIAL_OF_PLATFORM",
    ]),
    // tinyconfig leaves powerpc 32-bit and drops the Open Firmware entry QEMU's firmware
    // starts the kernel by; Debian's ppc64el programs assume POWER8's vector units.
    ("a 64-bit server CPU on pseries, started through Open Firmware, with AltiVec and VSX", POWER, &[
        "PPC64", "PPC_BOOK3S_64", "PPC_PSERIES", "PPC_OF_BOOT_TRAMPOLINE", "ALTIVEC", "VSX",
    ]),
    ("ppc64el's byte order", Only(Arch::Ppc64le), &["CPU_LITTLE_ENDIAN"]),
    ("ppc64's byte order", Only(Arch::Ppc64), &["CPU_BIG_ENDIAN"]),
    ("pseries' virtual terminal as the console (hvc0), virtio over its PCI host bridge", POWER, &[
        "HVC_CONSOLE", "PCI", "VIRTIO_PCI",
    ]),
    // CONFIG_KUNIT adds a field to task_struct, which nearly every object sees: built in from
    // the start, a kernel with KUnit tests (`-e KUNIT_EXAMPLE_TEST`) recompiles only the tests.
    ("KUnit's core, which runs no tests until some are built in", All, &["KUNIT"]),
    // QEMU leaves a restored riscv64 guest's timer unarmed (and a pseries guest's, before
    // QEMU 10.0), and the init's re-arm programs it only in a kernel with high-resolution
    // timers: with a periodic tick alone the guest hangs.
    ("high-resolution timers, so a restored guest's timer can be re-armed", TIMER_LOST, &[
        "HIGH_RES_TIMERS",
    ]),
];

/// Options vmlane turns off: a test VM does not need them and they cost boot time (virtual
/// terminals, 256 legacy BSD ptys and the VGA arbiter each take tens of milliseconds under
/// emulation).
#[rustfmt::skip]
const OFF: &[(Scope, &[&str])] = &[
    (All, &["IPV6", "SLOB", "VT", "LEGACY_PTYS"]),
    (X86, &["VGA_ARB"]),
];

/// The fragment for a kernel of `arch`, as settings.
pub fn vmlane_fragment(arch: Arch) -> Vec<Setting> {
    let on = FRAGMENT
        .iter()
        .filter(|(_, scope, _)| scope.covers(arch))
        .flat_map(|(_, _, names)| names.iter().map(|n| Setting::new(n, "y")));
    let off = OFF
        .iter()
        .filter(|(scope, _)| scope.covers(arch))
        .flat_map(|(_, names)| names.iter().map(|n| Setting::new(n, "n")));
    on.chain(off).collect()
}

/// Parses `.config` text into settings; comment lines `# CONFIG_X is not set` count as `n`.
pub fn parse_config(text: &str) -> Vec<Setting> {
    text.lines()
        .filter_map(|line| {
            if let Some(rest) = line.strip_prefix("# CONFIG_") {
                return rest
                    .strip_suffix(" is not set")
                    .map(|name| Setting::new(name, "n"));
            }
            let (name, value) = line.strip_prefix("CONFIG_")?.split_once('=')?;
            Some(Setting::new(name, value))
        })
        .collect()
}

/// Settings asked for that the final config does not have: kconfig drops what it cannot
/// satisfy (9P_FS without INET, say) without failing, so vmlane checks. Of an option set twice
/// only the later setting counts, as in the `.config` they are appended to (`-d PRINTK`
/// overrides the fragment's `PRINTK=y`).
pub fn unmet(wanted: &[Setting], effective: &str) -> Vec<String> {
    let effective = parse_config(effective);
    let value_of = |name: &str| {
        effective
            .iter()
            .rev()
            .find(|s| s.name == name)
            .map(|s| s.value.as_str())
            .unwrap_or("n")
    };
    wanted
        .iter()
        .enumerate()
        .filter(|(i, w)| !wanted[i + 1..].iter().any(|later| later.name == w.name))
        .map(|(_, w)| w)
        .filter(|w| value_of(&w.name) != w.value)
        .map(|w| format!("CONFIG_{}={} (got {})", w.name, w.value, value_of(&w.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(arch: Arch) -> Vec<String> {
        vmlane_fragment(arch).into_iter().map(|s| s.name).collect()
    }

    fn has(arch: Arch, name: &str) -> bool {
        names(arch).iter().any(|n| n == name)
    }

    #[test]
    fn fragment_builds_in_what_a_module_free_guest_needs() {
        for needed in [
            "PVH",
            "VIRTIO_MMIO_CMDLINE_DEVICES",
            "9P_FS",
            "INET",
            "VIRTIO_FS",
            "OVERLAY_FS",
            "DEVTMPFS",
            "SIGNALFD",
        ] {
            assert!(has(Arch::X86_64, needed), "{needed}");
        }
    }

    /// Every x86 kernel cached so far is keyed by these lines in this order: a change here
    /// rebuilds them all under new names.
    #[test]
    fn the_x86_fragment_is_what_cached_x86_builds_were_keyed_by() {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for setting in vmlane_fragment(Arch::X86_64) {
            hash.update(setting.line().as_bytes());
            hash.update(b"\n");
        }
        assert_eq!(
            super::super::source::hex(&hash.finalize()),
            "2eb7fc9c2b247f35cd5c43bac1a206c4c70e2cc062b06fefd16f3308c4f65ff7"
        );
        assert_eq!(vmlane_fragment(Arch::X86_64).len(), 77);
    }

    #[test]
    fn the_arm64_fragment_has_the_shared_part_and_virt_but_nothing_of_x86() {
        for shared in [
            "VIRTIO_CONSOLE",
            "VIRTIO_MMIO",
            "NET_9P_VIRTIO",
            "9P_FS",
            "OVERLAY_FS",
            "DEVTMPFS",
            "TMPFS",
            "BLK_DEV_INITRD",
            "PRINTK",
            "DEBUG_FS",
        ] {
            assert!(has(Arch::Aarch64, shared), "{shared}");
            assert!(has(Arch::X86_64, shared), "{shared}");
        }
        for virt in [
            "SERIAL_AMBA_PL011",
            "SERIAL_AMBA_PL011_CONSOLE",
            "ARM_GIC_V3",
            "ARM_ARCH_TIMER",
            "ARM_PSCI_FW",
            "OF",
        ] {
            assert!(has(Arch::Aarch64, virt), "{virt}");
            assert!(!has(Arch::X86_64, virt), "{virt}");
        }
        let arm = names(Arch::Aarch64);
        for x86_only in [
            "PVH",
            "KVM_GUEST",
            "SERIAL_8250",
            "PCI",
            "VIRTIO_PCI",
            "VIRTIO_MMIO_CMDLINE_DEVICES",
            "VGA_ARB",
        ] {
            assert!(!arm.iter().any(|n| n == x86_only), "{x86_only}");
        }
        assert!(!arm.iter().any(|n| n.starts_with("X86")), "{arm:?}");
        // Nothing asked for twice, so the check after configuring sees every request.
        let mut unique = arm.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), arm.len());
    }

    #[test]
    fn the_s390x_fragment_has_channel_io_and_the_sclp_console_but_no_mmio() {
        for wanted in [
            "S390_GUEST",
            "SCLP_VT220_CONSOLE",
            "VIRTIO_CONSOLE",
            "9P_FS",
        ] {
            assert!(has(Arch::S390x, wanted), "{wanted}");
        }
        // Kconfig would drop it (s390 has no MMIO), and the check after configuring fail.
        assert!(!has(Arch::S390x, "VIRTIO_MMIO"));
        assert!(has(Arch::Aarch64, "VIRTIO_MMIO") && has(Arch::X86_64, "VIRTIO_MMIO"));
        assert!(!has(Arch::X86_64, "S390_GUEST") && !has(Arch::Aarch64, "S390_GUEST"));
    }

    #[test]
    fn the_riscv64_fragment_keeps_the_mmu_and_fpu_and_has_virts_console() {
        for wanted in [
            "MMU",
            "FPU",
            "SOC_VIRT",
            "SERIAL_OF_PLATFORM",
            "VIRTIO_MMIO",
            "9P_FS",
            "HIGH_RES_TIMERS",
        ] {
            assert!(has(Arch::Riscv64, wanted), "{wanted}");
        }
        for other in ["PVH", "ARM_GIC_V3", "S390_GUEST", "VIRTIO_PCI"] {
            assert!(!has(Arch::Riscv64, other), "{other}");
        }
        assert!(!has(Arch::X86_64, "SOC_VIRT") && !has(Arch::Aarch64, "MMU"));
        let riscv = names(Arch::Riscv64);
        let mut unique = riscv.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), riscv.len(), "nothing asked for twice");
    }

    #[test]
    fn the_power_fragments_boot_pseries_with_re_armable_timers() {
        for arch in [Arch::Ppc64, Arch::Ppc64le] {
            for wanted in [
                "PPC_PSERIES",
                "HVC_CONSOLE",
                "VIRTIO_PCI",
                "HIGH_RES_TIMERS",
            ] {
                assert!(has(arch, wanted), "{arch:?} {wanted}");
            }
        }
        assert!(has(Arch::Ppc64, "CPU_BIG_ENDIAN") && !has(Arch::Ppc64, "CPU_LITTLE_ENDIAN"));
        assert!(has(Arch::Ppc64le, "CPU_LITTLE_ENDIAN") && !has(Arch::Ppc64le, "CPU_BIG_ENDIAN"));
        // Where QEMU restores the timer, the re-arm is not run and a periodic tick stays.
        for arch in [Arch::X86_64, Arch::Aarch64, Arch::S390x] {
            assert!(!has(arch, "HIGH_RES_TIMERS"), "{arch:?}");
        }
    }

    #[test]
    fn config_lines_round_trip() {
        let settings = [
            Setting::new("CONFIG_A", "y"),
            Setting::new("B", "n"),
            Setting::new("C", "\"x\""),
        ];
        let text: String = settings.iter().map(|s| s.line() + "\n").collect();
        assert_eq!(text, "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n");
        assert_eq!(parse_config(&text), settings);
    }

    #[test]
    fn unmet_names_what_kconfig_dropped() {
        let wanted = [
            Setting::new("9P_FS", "y"),
            Setting::new("TMPFS", "y"),
            Setting::new("DEBUG_X", "n"),
        ];
        let effective = "CONFIG_TMPFS=y\n# CONFIG_9P_FS is not set\n";
        assert_eq!(unmet(&wanted, effective), ["CONFIG_9P_FS=y (got n)"]);
    }

    #[test]
    fn a_later_setting_of_an_option_overrides_the_fragments() {
        let wanted = [
            Setting::new("PRINTK", "y"),
            Setting::new("VT", "n"),
            Setting::new("PRINTK", "n"),
            Setting::new("VT", "y"),
        ];
        let effective = "# CONFIG_PRINTK is not set\n# CONFIG_VT is not set\n";
        assert_eq!(unmet(&wanted, effective), ["CONFIG_VT=y (got n)"]);
    }
}
