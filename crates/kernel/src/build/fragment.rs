//! The config vmlane builds kernels with: tinyconfig plus what a throwaway test VM needs, all
//! built in, so the kernel boots with no modules and no initramfs drivers.

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

/// Options vmlane turns on, grouped by what needs them.
#[rustfmt::skip]
const FRAGMENT: &[(&str, &[&str])] = &[
    ("a 64-bit SMP guest with a serial console", &[
        "64BIT", "SMP", "PRINTK", "PRINTK_TIME", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE",
        "KALLSYMS", "BUG", "MAGIC_SYSRQ", "X86_MPPARSE", "X86_X2APIC",
    ]),
    ("the slab allocator distributions ship (tinyconfig picks SLOB)", &["SLUB"]),
    ("the PVH entry and paravirtual clocks under KVM", &[
        "HYPERVISOR_GUEST", "PARAVIRT", "KVM_GUEST", "PVH",
    ]),
    ("virtio devices on mmio (from the command line) and on pci", &[
        "PCI", "VIRTIO_MENU", "VIRTIO", "VIRTIO_PCI", "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES",
        "VIRTIO_CONSOLE", "BLOCK", "BLK_DEV", "VIRTIO_BLK", "HW_RANDOM", "HW_RANDOM_VIRTIO",
    ]),
    ("vmlane's init and the programs it runs", &[
        "BLK_DEV_INITRD", "BINFMT_ELF", "BINFMT_SCRIPT", "MULTIUSER", "FUTEX", "EPOLL", "SIGNALFD",
        "TIMERFD", "EVENTFD", "SHMEM", "AIO", "IO_URING", "FILE_LOCKING", "POSIX_TIMERS",
        "SYSVIPC", "PROC_SYSCTL", "INOTIFY_USER", "UNIX98_PTYS", "FHANDLE",
    ]),
    ("the host root share under a tmpfs overlay", &[
        "NET", "INET", "UNIX", "NET_9P", "NET_9P_VIRTIO", "NETWORK_FILESYSTEMS", "9P_FS",
        "FUSE_FS", "VIRTIO_FS", "OVERLAY_FS", "TMPFS", "TMPFS_XATTR", "PROC_FS", "SYSFS",
        "DEVTMPFS", "EXT4_FS",
    ]),
    ("a NIC for `--net user`", &["NETDEVICES", "NET_CORE", "VIRTIO_NET"]),
    // The function tracer patches every traced call site at boot, a quarter second under
    // emulation; `-e FUNCTION_TRACER` brings it back.
    ("debugging filesystems", &["DEBUG_FS", "FTRACE", "ENABLE_DEFAULT_TRACERS", "BPF_SYSCALL"]),
];

/// Options vmlane turns off: a test VM does not need them and they cost boot time (virtual
/// terminals, 256 legacy BSD ptys and the VGA arbiter each take tens of milliseconds under
/// emulation).
const OFF: &[&str] = &["IPV6", "SLOB", "VT", "LEGACY_PTYS", "VGA_ARB"];

/// The fragment as settings.
pub fn vmlane_fragment() -> Vec<Setting> {
    let on = FRAGMENT
        .iter()
        .flat_map(|(_, names)| names.iter().map(|n| Setting::new(n, "y")));
    on.chain(OFF.iter().map(|n| Setting::new(n, "n"))).collect()
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
/// satisfy (9P_FS without INET, say) without failing, so vmlane checks.
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
        .filter(|w| value_of(&w.name) != w.value)
        .map(|w| format!("CONFIG_{}={} (got {})", w.name, w.value, value_of(&w.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_builds_in_what_a_module_free_guest_needs() {
        let names: Vec<String> = vmlane_fragment().into_iter().map(|s| s.name).collect();
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
            assert!(names.iter().any(|n| n == needed), "{needed}");
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
}
