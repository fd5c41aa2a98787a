//! The QEMU command line, as a pure function of the machine so it can be tested without QEMU.

use crate::accel::AccelChoice;
use crate::machine::MachineKind;
use std::ffi::OsString;
use std::path::PathBuf;
use vmlane_backend::{GuestOs, Machine, Share, ShareTransport};
use vmlane_proto::PORT_NAME;
use vmlane_spec::{Arch, Network, NumaNode};

/// Kernel arguments every run gets, each with the reason it is there.
pub const KERNEL_ARGS: &[(&str, &str)] = &[
    (
        "panic=-1",
        "reboot at once on panic; QEMU's -no-reboot turns that into an exit",
    ),
    ("rdinit=/init", "vmlane's init in the initramfs"),
    ("nokaslr", "stable addresses for logs and debuggers"),
    (
        "mitigations=off",
        "speculative-execution mitigations cost boot time in a throwaway VM",
    ),
    ("audit=0", "no audit subsystem"),
    ("apparmor=0", "no LSM setup for a throwaway VM"),
    ("selinux=0", "no LSM setup for a throwaway VM"),
    ("cryptomgr.notests", "skip crypto self-tests at boot"),
    ("random.trust_cpu=on", "do not wait for entropy"),
    (
        "rcupdate.rcu_expedited=1",
        "faster RCU grace periods during boot",
    ),
];

/// Kernel arguments on x86 machines: their console, reboot and legacy devices.
pub const X86_KERNEL_ARGS: &[(&str, &str)] = &[
    (
        "console=ttyS0",
        "kernel messages go to the serial port vmlane logs",
    ),
    (
        "reboot=t",
        "reboot by triple fault: immediate on every machine type",
    ),
    ("8250.nr_uarts=1", "probe one serial port, not four"),
    ("i8042.noaux", "no PS/2 mouse to probe"),
    ("i8042.nokbd", "no PS/2 keyboard to probe"),
    ("i8042.nopnp", "skip the PnP probe for the i8042"),
    ("edd=off", "no BIOS disks to query"),
    (
        "no_timer_check",
        "skip the IO-APIC timer check, slow under emulation",
    ),
    (
        "tsc=reliable",
        "do not watchdog the TSC, which jitters under emulation",
    ),
];

/// Kernel arguments on arm64's `virt`.
pub const ARM_VIRT_KERNEL_ARGS: &[(&str, &str)] = &[(
    "console=ttyAMA0",
    "kernel messages go to the PL011 serial port vmlane logs",
)];

/// Kernel arguments on riscv64's `virt`.
pub const RISCV_VIRT_KERNEL_ARGS: &[(&str, &str)] = &[(
    "console=ttyS0",
    "kernel messages go to the 16550 serial port vmlane logs",
)];

/// Kernel arguments on ppc64's `pseries`.
pub const PSERIES_KERNEL_ARGS: &[(&str, &str)] = &[(
    "console=hvc0",
    "kernel messages go to the hypervisor's virtual terminal QEMU connects vmlane's log to",
)];

/// Kernel arguments on s390x's `s390-ccw-virtio`.
pub const S390_CCW_KERNEL_ARGS: &[(&str, &str)] = &[(
    "console=ttysclp0",
    "kernel messages go to the SCLP console QEMU connects vmlane's log to",
)];

/// Kernel arguments for x86 under TCG only: work that is cheap on hardware and slow under
/// emulation.
pub const TCG_KERNEL_ARGS: &[(&str, &str)] = &[
    (
        "noapictimer",
        "TCG has no TSC-deadline timer, so the kernel would spend ~200 ms calibrating the APIC timer; the PIT serves instead",
    ),
    (
        "noreplace-smp",
        "a one-CPU guest would rewrite every lock prefix, one text poke each",
    ),
];

/// Kernel arguments on microvm only.
pub const MICROVM_KERNEL_ARGS: &[(&str, &str)] = &[(
    "pci=off",
    "microvm has no PCI bus; probing for one costs boot time",
)];

/// The kernel command line: vmlane's arguments for this machine and accelerator, then the
/// user's, which win where they clash.
///
/// Under TCG, `host_tsc_khz` (from [`host_tsc_khz`](crate::host_tsc_khz)) becomes
/// `tsc_early_khz=`, so the guest never has to calibrate the TSC against the emulated PIT.
pub fn kernel_cmdline(
    kind: MachineKind,
    accel: AccelChoice,
    host_tsc_khz: Option<u64>,
    extra: &[String],
) -> String {
    let x86 = kind.arch() == Arch::X86_64;
    let machine = match kind {
        MachineKind::Q35 => X86_KERNEL_ARGS,
        MachineKind::Microvm => &[X86_KERNEL_ARGS, MICROVM_KERNEL_ARGS].concat(),
        MachineKind::ArmVirt => ARM_VIRT_KERNEL_ARGS,
        MachineKind::S390Ccw => S390_CCW_KERNEL_ARGS,
        MachineKind::RiscvVirt => RISCV_VIRT_KERNEL_ARGS,
        MachineKind::Pseries { .. } => PSERIES_KERNEL_ARGS,
    };
    let tcg = if accel == AccelChoice::Tcg && x86 {
        TCG_KERNEL_ARGS
    } else {
        &[]
    };
    let mut words: Vec<String> = [machine, KERNEL_ARGS, tcg]
        .into_iter()
        .flatten()
        .map(|(arg, _)| arg.to_string())
        .collect();
    if let (AccelChoice::Tcg, Some(khz), true) = (accel, host_tsc_khz, x86) {
        words.push(format!("tsc_early_khz={khz}"));
    }
    words.extend(extra.iter().cloned());
    words.join(" ")
}

/// Modules for the devices every run has besides their transport: the virtio-serial port and
/// the overlay root.
pub const GUEST_MODULES_BASE: &[&str] = &["virtio_console", "overlay"];
/// Modules for a 9p share.
pub const GUEST_MODULES_9P: &[&str] = &["9pnet_virtio", "9p"];
/// Modules for a virtio-fs share.
pub const GUEST_MODULES_VIRTIOFS: &[&str] = &["virtiofs"];

/// Modules for a user-mode network's NIC (`virtio_net` brings `net_failover` and `failover`).
pub const GUEST_MODULES_NET: &[&str] = &["virtio_net"];

/// The guest's address on QEMU's user-mode network, which QEMU forwards host ports to.
pub const GUEST_ADDRESS: &str = "10.0.2.15";
/// The gateway of QEMU's user-mode network: the host's loopback, as the guest sees it.
pub const HOST_ADDRESS: &str = "10.0.2.2";

/// A virtio NIC on QEMU's user-mode network (no privileges, no host interface): the guest
/// opens connections out; only forwarded ports, bound to the host's loopback, come in.
pub fn network_args(network: &Network, kind: MachineKind) -> Vec<OsString> {
    let Network::User { forwards } = network else {
        return Vec::new();
    };
    let mut netdev = String::from("user,id=net0");
    for forward in forwards {
        netdev.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{}-{GUEST_ADDRESS}:{}",
            forward.host, forward.guest
        ));
    }
    // The PCI NIC's boot ROM is for network boots; vmlane boots with -kernel.
    let rom = if kind.transport() == "pci" {
        ",romfile="
    } else {
        ""
    };
    let device = format!("virtio-net-{},netdev=net0{rom}", kind.transport());
    ["-netdev", &netdev, "-device", &device]
        .map(OsString::from)
        .to_vec()
}

/// QEMU's gdb stub on the host's loopback, with the CPUs halted until a debugger continues
/// them, so even the kernel's first instructions can be debugged.
pub fn gdb_args(port: Option<u16>) -> Vec<OsString> {
    match port {
        Some(port) => ["-S", "-gdb", &format!("tcp:127.0.0.1:{port}")]
            .map(OsString::from)
            .to_vec(),
        None => Vec::new(),
    }
}

/// The whole QEMU argument list (without the program name).
pub fn qemu_args(machine: &Machine, kind: MachineKind, accel: AccelChoice) -> Vec<OsString> {
    qemu_args_numa(machine, kind, accel, &[], None)
}

/// The file guest RAM is mapped from, when it is not QEMU's anonymous memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamBacking {
    /// The file (memory vmlane holds shows as `/proc/self/fd/N`).
    pub path: PathBuf,
    /// Whether the guest's writes land in the file, or in private copies of its pages.
    pub shared: bool,
}

/// [`qemu_args`] for a guest split into NUMA nodes (none: one node), its RAM in `ram` if given.
pub fn qemu_args_numa(
    machine: &Machine,
    kind: MachineKind,
    accel: AccelChoice,
    numa: &[NumaNode],
    ram: Option<&RamBacking>,
) -> Vec<OsString> {
    let mut args = Args::default();
    args.push([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    add_machine(&mut args, machine, kind, accel, numa, ram);
    if kind.modern_mmio() {
        // Every kernel vmlane boots there speaks virtio 1.0 over MMIO.
        args.pair("-global", "virtio-mmio.force-legacy=false");
    }
    args.pair("-kernel", machine.kernel.as_os_str());
    if let Some(initrd) = &machine.initrd {
        args.pair("-initrd", initrd.as_os_str());
    }
    args.pair("-append", machine.cmdline.as_str());
    add_console(&mut args, machine);
    add_port(&mut args, machine, kind);
    add_shares(&mut args, machine, kind);
    add_disks(&mut args, machine, kind);
    args.0
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push<const N: usize>(&mut self, items: [&str; N]) {
        self.0.extend(items.iter().map(OsString::from));
    }

    fn pair(&mut self, flag: &str, value: impl Into<OsString>) {
        self.0.push(flag.into());
        self.0.push(value.into());
    }
}

fn add_machine(
    args: &mut Args,
    machine: &Machine,
    kind: MachineKind,
    accel: AccelChoice,
    numa: &[NumaNode],
    ram: Option<&RamBacking>,
) {
    let (accel_name, cpu) = match accel {
        AccelChoice::Kvm => ("kvm", "host"),
        // kvm_pvm rejects the arch-capabilities MSR that `-cpu host` sets up.
        AccelChoice::KvmPvm => ("kvm", "host,-arch-capabilities"),
        AccelChoice::Tcg => ("tcg", kind.tcg_cpu()),
    };
    let memory_backend = machine
        .shares()
        .any(|s| s.transport == ShareTransport::VirtioFs);
    let mut machine_opts = format!("{},accel={accel_name}", kind.qemu_machine());
    if !numa.is_empty() {
        args.pair("-machine", machine_opts);
        args.pair("-cpu", cpu);
        // A socket per CPU: CPUs of one socket share a cache, and a cache shared across
        // nodes is a topology the guest kernel warns about.
        let n = machine.cpus;
        args.pair("-smp", format!("{n},sockets={n},cores=1,threads=1"));
        args.pair("-m", format!("{}M", machine.memory_mib));
        add_numa(args, numa, memory_backend);
        return;
    }
    // vhost-user devices (virtiofsd) map guest memory, so theirs must be shared.
    let memory_file = ram.filter(|file| file.shared || !memory_backend);
    if memory_backend || memory_file.is_some() {
        machine_opts.push_str(",memory-backend=mem");
    }
    args.pair("-machine", machine_opts);
    args.pair("-cpu", cpu);
    args.pair("-smp", machine.cpus.to_string());
    args.pair("-m", format!("{}M", machine.memory_mib));
    if let Some(file) = memory_file {
        // Memory vmlane holds (a guest to be saved, or a restored one whose RAM virtiofsd maps
        // too), or a saved guest's RAM file mapped privately.
        let mut object = OsString::from(format!(
            "memory-backend-file,id=mem,size={}M,share={},mem-path=",
            machine.memory_mib,
            if file.shared { "on" } else { "off" }
        ));
        object.push(escape_option(file.path.as_os_str()));
        args.pair("-object", object);
    }
    if memory_backend && memory_file.is_none() {
        args.pair(
            "-object",
            format!(
                "memory-backend-memfd,id=mem,size={}M,share=on",
                machine.memory_mib
            ),
        );
    }
}

/// One memory backend per node, and the node owning its consecutive CPUs. vhost-user devices
/// need every node's memory shared with virtiofsd, so it is memfd then.
fn add_numa(args: &mut Args, numa: &[NumaNode], shared: bool) {
    let mut first_cpu = 0;
    for (id, node) in numa.iter().enumerate() {
        let size = node.memory_mib;
        args.pair(
            "-object",
            if shared {
                format!("memory-backend-memfd,id=ram{id},size={size}M,share=on")
            } else {
                format!("memory-backend-ram,id=ram{id},size={size}M")
            },
        );
        let last_cpu = first_cpu + node.cpus.max(1) - 1;
        let cpus = if last_cpu == first_cpu {
            first_cpu.to_string()
        } else {
            format!("{first_cpu}-{last_cpu}")
        };
        args.pair(
            "-numa",
            format!("node,nodeid={id},cpus={cpus},memdev=ram{id}"),
        );
        first_cpu = last_cpu + 1;
    }
}

fn add_console(args: &mut Args, machine: &Machine) {
    args.pair(
        "-chardev",
        chardev_socket("console", &machine.console_socket),
    );
    args.pair("-serial", "chardev:console");
}

/// The port to the guest init: a virtio-serial port named for vmlane's Linux init, or for a
/// FreeBSD guest a second 16550 (COM2: I/O port 0x2f8, IRQ 3), which its init finds as
/// `/dev/cuau1` with no driver beyond uart(4).
fn add_port(args: &mut Args, machine: &Machine, kind: MachineKind) {
    let Some(port_socket) = &machine.port_socket else {
        return;
    };
    if machine.os == GuestOs::FreeBsd {
        args.pair("-chardev", chardev_socket("port", port_socket));
        args.pair("-device", "isa-serial,chardev=port,index=1");
        return;
    }
    args.pair(
        "-device",
        format!("virtio-serial-{},id=vmlane-serial", kind.transport()),
    );
    args.pair("-chardev", chardev_socket("port", port_socket));
    args.pair(
        "-device",
        format!("virtserialport,bus=vmlane-serial.0,chardev=port,name={PORT_NAME}"),
    );
}

/// QEMU's names for one share's parts: the host root's are fixed, the `n`th writable
/// directory's numbered, so every share has a device, socket, log and slot of its own.
#[derive(Debug, Clone)]
pub struct ShareDevice<'a> {
    /// The share.
    pub share: &'a Share,
    /// The id of its `-fsdev` (9p) or `-chardev` (virtio-fs).
    pub id: String,
    /// The virtiofsd socket, in the run directory.
    pub socket: PathBuf,
    /// virtiofsd's messages, in the run directory.
    pub log: PathBuf,
    /// The PCIe root port a device plugged in later goes into.
    pub port: String,
    /// The root port's chassis, unique per port.
    pub chassis: u32,
    /// The id of a device plugged in over QMP.
    pub device: String,
}

/// Every share of `machine` with its QEMU names, the host root's first.
pub fn share_devices(machine: &Machine) -> Vec<ShareDevice<'_>> {
    let root = machine.share.iter().map(|share| ShareDevice {
        share,
        id: "share".into(),
        socket: machine.run_dir.join("virtiofs.sock"),
        log: machine.run_dir.join("virtiofsd.log"),
        port: SHARE_PORT.into(),
        chassis: 1,
        device: "vmlane-share".into(),
    });
    let rwdirs = machine
        .rwdirs
        .iter()
        .enumerate()
        .map(|(n, share)| ShareDevice {
            share,
            id: format!("rwdir{n}"),
            socket: machine.run_dir.join(format!("virtiofs-rwdir{n}.sock")),
            log: machine.run_dir.join(format!("virtiofsd-rwdir{n}.log")),
            port: format!("vmlane-rwdir{n}-port"),
            chassis: 2 + n as u32,
            device: format!("vmlane-rwdir{n}"),
        });
    root.chain(rwdirs).collect()
}

fn add_shares(args: &mut Args, machine: &Machine, kind: MachineKind) {
    let devices = share_devices(machine);
    let plugged_later = devices
        .iter()
        .any(|d| d.share.transport == ShareTransport::VirtioFs && d.share.plugged_later);
    if plugged_later {
        // Native PCIe hotplug for the slots devices are plugged into later: the guest handles
        // it at once, where ACPI hotplug loses an event sent to a VM still loading its state.
        args.pair(
            "-global",
            "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
        );
    }
    for device in &devices {
        add_share(args, device, kind);
    }
}

fn add_share(args: &mut Args, device: &ShareDevice<'_>, kind: MachineKind) {
    let share = device.share;
    match share.transport {
        ShareTransport::NineP => {
            // The host enforces read-only access to the root: the guest's mount flags are the
            // guest's to change.
            let readonly = if share.writable { "" } else { "readonly=on," };
            let mut fsdev = OsString::from(format!(
                "local,id={},security_model=none,{readonly}multidevs=remap,path=",
                device.id
            ));
            fsdev.push(escape_option(share.host_dir.as_os_str()));
            args.pair("-fsdev", fsdev);
            args.pair(
                "-device",
                format!(
                    "virtio-9p-{},fsdev={},mount_tag={}",
                    kind.transport(),
                    device.id,
                    share.tag
                ),
            );
        }
        ShareTransport::VirtioFs if share.plugged_later => {
            // A free PCIe slot the device is plugged into later.
            args.pair(
                "-device",
                format!(
                    "pcie-root-port,id={},chassis={}",
                    device.port, device.chassis
                ),
            );
        }
        ShareTransport::VirtioFs => {
            args.pair("-chardev", chardev_socket(&device.id, &device.socket));
            args.pair(
                "-device",
                format!(
                    "vhost-user-fs-{},chardev={},tag={}",
                    kind.transport(),
                    device.id,
                    share.tag
                ),
            );
        }
    }
}

/// The PCIe root port the host root share's device goes into when plugged in later.
pub const SHARE_PORT: &str = "vmlane-share-port";

/// `snapshot=on` sends the guest's writes to a temporary overlay that QEMU unlinks as soon as
/// it has opened it, so nothing of it outlives the VM, however the VM ends; only disks whose
/// writes are to be kept go without it, and read-only ones need none. A full host disk is an
/// I/O error for the guest (`werror=report`) rather than a VM paused until the timeout.
fn add_disks(args: &mut Args, machine: &Machine, kind: MachineKind) {
    for (index, disk) in machine.disks.iter().enumerate() {
        let format = if is_qcow2(&disk.path) { "qcow2" } else { "raw" };
        let mut drive = OsString::from("file=");
        drive.push(escape_option(disk.path.as_os_str()));
        drive.push(format!(
            ",if=none,id=disk{index},format={format},werror=report,rerror=report"
        ));
        if disk.read_only {
            drive.push(",readonly=on");
        } else if !disk.keep_writes {
            drive.push(",snapshot=on");
        }
        args.pair("-drive", drive);
        args.pair(
            "-device",
            format!("virtio-blk-{},drive=disk{index}", kind.transport()),
        );
    }
}

fn is_qcow2(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"QFI\xfb"
}

fn chardev_socket(id: &str, path: &std::path::Path) -> OsString {
    let mut value = OsString::from(format!("socket,id={id},path="));
    value.push(escape_option(path.as_os_str()));
    value
}

/// QEMU splits option values on commas; a literal comma is written twice.
fn escape_option(value: &std::ffi::OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        out.push(byte);
        if byte == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use vmlane_backend::{Disk, GuestOs};

    fn machine(share: Option<ShareTransport>) -> Machine {
        Machine {
            kernel: PathBuf::from("/k/vmlinuz"),
            os: GuestOs::Linux,
            initrd: Some(PathBuf::from("/c/initrd.cpio")),
            cmdline: "console=ttyS0".into(),
            cpus: 2,
            memory_mib: 512,
            console_socket: PathBuf::from("/run/x/console.sock"),
            port_socket: Some(PathBuf::from("/run/x,y/port.sock")),
            share: share.map(|transport| Share {
                host_dir: PathBuf::from("/"),
                tag: "vmlane-root".into(),
                transport,
                writable: false,
                plugged_later: false,
            }),
            rwdirs: Vec::new(),
            disks: Vec::new(),
            run_dir: PathBuf::from("/run/x"),
            restore_from: None,
            control_socket: None,
            guest_ram: None,
        }
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn value_after<'a>(args: &'a [OsString], flag: &str) -> Vec<&'a OsString> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| &w[1])
            .collect()
    }

    #[test]
    fn tcg_uses_cpu_max_and_never_reboots() {
        let args = qemu_args(&machine(None), MachineKind::Q35, AccelChoice::Tcg);
        let machine_opts = value_after(&args, "-machine");
        assert_eq!(machine_opts.len(), 1);
        let machine_opts = machine_opts[0].to_string_lossy();
        assert!(machine_opts.starts_with("q35,"), "{machine_opts}");
        assert!(machine_opts.ends_with(",accel=tcg"), "{machine_opts}");
        assert_eq!(value_after(&args, "-cpu"), ["max"]);
        assert!(args.iter().any(|a| a == "-no-reboot"));
        assert!(args.iter().any(|a| a == "-nodefaults"));
        assert_eq!(value_after(&args, "-smp"), ["2"]);
        assert_eq!(value_after(&args, "-m"), ["512M"]);
    }

    #[test]
    fn pvm_kvm_avoids_the_arch_capabilities_msr() {
        let args = qemu_args(&machine(None), MachineKind::Q35, AccelChoice::KvmPvm);
        assert_eq!(value_after(&args, "-cpu"), ["host,-arch-capabilities"]);
        assert!(joined(&args).contains("accel=kvm"));
    }

    #[test]
    fn commas_in_socket_paths_are_escaped() {
        let args = qemu_args(&machine(None), MachineKind::Q35, AccelChoice::Kvm);
        assert!(value_after(&args, "-chardev")
            .iter()
            .any(|v| *v == "socket,id=port,path=/run/x,,y/port.sock"));
    }

    #[test]
    fn port_is_named_for_the_guest_init() {
        let text = joined(&qemu_args(
            &machine(None),
            MachineKind::Q35,
            AccelChoice::Tcg,
        ));
        assert!(text.contains("virtserialport,bus=vmlane-serial.0,chardev=port,name=vmlane.0"));
    }

    #[test]
    fn a_freebsd_guests_port_is_com2_on_both_machines() {
        for kind in [MachineKind::Microvm, MachineKind::Q35] {
            let mut m = machine(None);
            m.os = GuestOs::FreeBsd;
            m.initrd = None;
            let args = qemu_args(&m, kind, AccelChoice::Tcg);
            assert_eq!(
                value_after(&args, "-chardev"),
                [
                    "socket,id=console,path=/run/x/console.sock",
                    "socket,id=port,path=/run/x,,y/port.sock",
                ]
            );
            // COM1 is the console, from -serial; COM2 is a device of its own.
            assert_eq!(value_after(&args, "-serial"), ["chardev:console"]);
            assert_eq!(
                value_after(&args, "-device"),
                ["isa-serial,chardev=port,index=1"]
            );
            assert!(!joined(&args).contains("virtio-serial"));
            m.port_socket = None;
            let args = qemu_args(&m, kind, AccelChoice::Tcg);
            assert!(value_after(&args, "-device").is_empty(), "no port, no COM2");
        }
    }

    #[test]
    fn ninep_share_is_read_only_on_the_host() {
        let args = qemu_args(
            &machine(Some(ShareTransport::NineP)),
            MachineKind::Q35,
            AccelChoice::Tcg,
        );
        let fsdev = value_after(&args, "-fsdev");
        assert_eq!(fsdev.len(), 1);
        assert!(fsdev[0].to_string_lossy().contains("readonly=on"));
        assert!(joined(&args).contains("virtio-9p-pci,fsdev=share,mount_tag=vmlane-root"));
        assert!(!joined(&args).contains("memory-backend"));
    }

    /// `machine` with writable directories `dirs` over the root share's transport.
    fn with_rwdirs(transport: ShareTransport, dirs: &[&str], plugged_later: bool) -> Machine {
        let mut m = machine(Some(transport));
        m.share.as_mut().unwrap().plugged_later = plugged_later;
        m.rwdirs = dirs
            .iter()
            .enumerate()
            .map(|(n, dir)| Share {
                host_dir: PathBuf::from(dir),
                tag: format!("vmlane-rw{n}"),
                transport,
                writable: true,
                plugged_later,
            })
            .collect();
        m
    }

    #[test]
    fn writable_9p_directories_get_devices_of_their_own_without_readonly() {
        let m = with_rwdirs(ShareTransport::NineP, &["/home/u/out", "/data,x"], false);
        let args = qemu_args(&m, MachineKind::Microvm, AccelChoice::Tcg);
        assert_eq!(
            value_after(&args, "-fsdev"),
            [
                "local,id=share,security_model=none,readonly=on,multidevs=remap,path=/",
                "local,id=rwdir0,security_model=none,multidevs=remap,path=/home/u/out",
                "local,id=rwdir1,security_model=none,multidevs=remap,path=/data,,x",
            ]
        );
        assert_eq!(
            value_after(&args, "-device")
                .iter()
                .map(|d| d.to_string_lossy())
                .filter(|d| d.starts_with("virtio-9p"))
                .collect::<Vec<_>>(),
            [
                "virtio-9p-device,fsdev=share,mount_tag=vmlane-root",
                "virtio-9p-device,fsdev=rwdir0,mount_tag=vmlane-rw0",
                "virtio-9p-device,fsdev=rwdir1,mount_tag=vmlane-rw1",
            ]
        );
        assert!(!joined(&args).contains("memory-backend"));
    }

    #[test]
    fn writable_virtiofs_directories_get_a_socket_or_a_free_slot_each() {
        let m = with_rwdirs(ShareTransport::VirtioFs, &["/home/u/out"], false);
        let text = joined(&qemu_args(&m, MachineKind::Q35, AccelChoice::Tcg));
        assert!(
            text.contains("socket,id=share,path=/run/x/virtiofs.sock"),
            "{text}"
        );
        assert!(
            text.contains("socket,id=rwdir0,path=/run/x/virtiofs-rwdir0.sock"),
            "{text}"
        );
        assert!(
            text.contains("vhost-user-fs-pci,chardev=rwdir0,tag=vmlane-rw0"),
            "{text}"
        );
        assert!(text.contains("memory-backend-memfd,id=mem,size=512M,share=on"));

        let later = with_rwdirs(ShareTransport::VirtioFs, &["/a", "/b"], true);
        let args = qemu_args(&later, MachineKind::Q35, AccelChoice::Tcg);
        assert_eq!(
            value_after(&args, "-global"),
            ["ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]
        );
        assert_eq!(
            value_after(&args, "-device")
                .iter()
                .map(|d| d.to_string_lossy())
                .filter(|d| d.starts_with("pcie-root-port"))
                .collect::<Vec<_>>(),
            [
                "pcie-root-port,id=vmlane-share-port,chassis=1",
                "pcie-root-port,id=vmlane-rwdir0-port,chassis=2",
                "pcie-root-port,id=vmlane-rwdir1-port,chassis=3",
            ]
        );
        assert!(!joined(&args).contains("vhost-user-fs"));
    }

    #[test]
    fn each_share_has_its_own_names() {
        let m = with_rwdirs(ShareTransport::VirtioFs, &["/a", "/b"], true);
        let devices = share_devices(&m);
        let names: Vec<(&str, &str, &str)> = devices
            .iter()
            .map(|d| (d.id.as_str(), d.device.as_str(), d.share.tag.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("share", "vmlane-share", "vmlane-root"),
                ("rwdir0", "vmlane-rwdir0", "vmlane-rw0"),
                ("rwdir1", "vmlane-rwdir1", "vmlane-rw1"),
            ]
        );
        assert_eq!(devices[2].log, Path::new("/run/x/virtiofsd-rwdir1.log"));
    }

    #[test]
    fn virtiofs_share_gets_shared_memory() {
        let args = qemu_args(
            &machine(Some(ShareTransport::VirtioFs)),
            MachineKind::Q35,
            AccelChoice::Tcg,
        );
        let text = joined(&args);
        assert!(text.contains("memory-backend-memfd,id=mem,size=512M,share=on"));
        assert!(text.contains(",memory-backend=mem"));
        assert!(text.contains("vhost-user-fs-pci,chardev=share,tag=vmlane-root"));
        assert!(text.contains("socket,id=share,path=/run/x/virtiofs.sock"));
    }

    #[test]
    fn a_virtiofs_guests_ram_file_is_shared_and_replaces_the_memfd() {
        let virtiofs = machine(Some(ShareTransport::VirtioFs));
        let with_ram = |path: &str, shared| {
            let ram = RamBacking {
                path: path.into(),
                shared,
            };
            let args = qemu_args_numa(
                &virtiofs,
                MachineKind::Q35,
                AccelChoice::Tcg,
                &[],
                Some(&ram),
            );
            joined(&args)
        };
        let text = with_ram("/proc/self/fd/7", true);
        assert!(
            text.contains("memory-backend-file,id=mem,size=512M,share=on,mem-path=/proc/self/fd/7"),
            "{text}"
        );
        assert!(!text.contains("memfd"), "{text}");
        // A private mapping would hide the guest's writes from virtiofsd: memfd instead.
        let text = with_ram("/cache/ram", false);
        assert!(
            text.contains("memory-backend-memfd,id=mem,size=512M,share=on"),
            "{text}"
        );
        assert!(!text.contains("mem-path"), "{text}");
    }

    #[test]
    fn microvm_puts_devices_on_mmio_without_acpi() {
        let args = qemu_args(
            &machine(Some(ShareTransport::NineP)),
            MachineKind::Microvm,
            AccelChoice::Tcg,
        );
        let text = joined(&args);
        assert!(text.contains("-machine microvm,acpi=off,"), "{text}");
        assert!(text.contains("virtio-serial-device,id=vmlane-serial"));
        assert!(text.contains("virtio-9p-device,fsdev=share"));
        assert!(!text.contains("-pci"));
    }

    #[test]
    fn disks_are_virtio_block_devices_behind_a_throwaway_snapshot_unless_kept_or_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("a,b.img");
        std::fs::write(&raw, [0u8; 512]).unwrap();
        let qcow = dir.path().join("c.qcow2");
        std::fs::write(&qcow, b"QFI\xfb\0\0\0\x03").unwrap();
        let mut m = machine(None);
        m.disks = vec![
            Disk::throwaway(&raw),
            Disk {
                path: qcow.clone(),
                keep_writes: true,
                read_only: false,
            },
            Disk {
                path: qcow.clone(),
                keep_writes: false,
                read_only: true,
            },
        ];
        let args = qemu_args(&m, MachineKind::Microvm, AccelChoice::Tcg);
        let drives: Vec<String> = value_after(&args, "-drive")
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let escaped = raw.display().to_string().replace(',', ",,");
        let opts = "werror=report,rerror=report";
        assert_eq!(
            drives,
            [
                format!("file={escaped},if=none,id=disk0,format=raw,{opts},snapshot=on"),
                format!(
                    "file={},if=none,id=disk1,format=qcow2,{opts}",
                    qcow.display()
                ),
                format!(
                    "file={},if=none,id=disk2,format=qcow2,{opts},readonly=on",
                    qcow.display()
                ),
            ]
        );
        let text = joined(&args);
        assert!(text.contains("virtio-blk-device,drive=disk0"), "{text}");
        assert!(text.contains("virtio-blk-device,drive=disk1"), "{text}");
    }

    #[test]
    fn user_network_forwards_loopback_ports_to_the_guest() {
        use vmlane_spec::PortForward;
        assert!(network_args(&Network::None, MachineKind::Q35).is_empty());
        let network = Network::User {
            forwards: vec![
                PortForward {
                    host: 8080,
                    guest: 80,
                },
                PortForward {
                    host: 2222,
                    guest: 22,
                },
            ],
        };
        let q35 = network_args(&network, MachineKind::Q35);
        assert_eq!(
            q35,
            [
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22",
                "-device",
                "virtio-net-pci,netdev=net0,romfile=",
            ]
        );
        let microvm = network_args(&Network::User { forwards: vec![] }, MachineKind::Microvm);
        assert_eq!(
            microvm,
            [
                "-netdev",
                "user,id=net0",
                "-device",
                "virtio-net-device,netdev=net0"
            ]
        );
    }

    #[test]
    fn numa_nodes_get_a_memory_backend_and_consecutive_cpus_each() {
        let mut m = machine(None);
        m.cpus = 3;
        m.memory_mib = 1536;
        let nodes = [
            NumaNode {
                cpus: 2,
                memory_mib: 1024,
            },
            NumaNode {
                cpus: 1,
                memory_mib: 512,
            },
        ];
        let args = qemu_args_numa(&m, MachineKind::Q35, AccelChoice::Tcg, &nodes, None);
        assert_eq!(
            value_after(&args, "-object"),
            [
                "memory-backend-ram,id=ram0,size=1024M",
                "memory-backend-ram,id=ram1,size=512M"
            ]
        );
        assert_eq!(
            value_after(&args, "-numa"),
            [
                "node,nodeid=0,cpus=0-1,memdev=ram0",
                "node,nodeid=1,cpus=2,memdev=ram1"
            ]
        );
        assert_eq!(
            value_after(&args, "-smp"),
            ["3,sockets=3,cores=1,threads=1"]
        );
        assert_eq!(value_after(&args, "-m"), ["1536M"]);
        // virtiofsd maps every node's memory, so it is shared and not the machine's own.
        let args = qemu_args_numa(
            &machine(Some(ShareTransport::VirtioFs)),
            MachineKind::Q35,
            AccelChoice::Kvm,
            &nodes,
            None,
        );
        let text = joined(&args);
        assert!(
            text.contains("memory-backend-memfd,id=ram1,size=512M,share=on"),
            "{text}"
        );
        assert!(!text.contains("memory-backend=mem"), "{text}");
        assert!(
            value_after(&qemu_args(&m, MachineKind::Q35, AccelChoice::Tcg), "-numa").is_empty()
        );
    }

    #[test]
    fn gdb_halts_the_guest_with_a_loopback_stub() {
        assert!(gdb_args(None).is_empty());
        assert_eq!(gdb_args(Some(1234)), ["-S", "-gdb", "tcp:127.0.0.1:1234"]);
    }

    #[test]
    fn cmdline_panics_into_an_exit_and_keeps_user_args_last() {
        let cmdline = kernel_cmdline(
            MachineKind::Q35,
            AccelChoice::Kvm,
            Some(2_445_404),
            &["loglevel=8".to_string()],
        );
        assert!(
            !cmdline.contains("tsc_early_khz"),
            "hardware KVM knows the TSC"
        );
        assert!(cmdline.starts_with("console=ttyS0 reboot=t "));
        assert!(cmdline.contains(" panic=-1 "));
        assert!(cmdline.ends_with(" loglevel=8"));
    }

    #[test]
    fn arm_virt_speaks_modern_virtio_over_mmio() {
        let mut m = machine(None);
        m.share = None;
        let args = qemu_args(&m, MachineKind::ArmVirt, AccelChoice::Tcg);
        assert_eq!(
            value_after(&args, "-machine"),
            ["virt,gic-version=3,accel=tcg"]
        );
        assert_eq!(
            value_after(&args, "-global"),
            ["virtio-mmio.force-legacy=false"]
        );
        assert!(joined(&args).contains("virtio-serial-device"));
        let microvm = qemu_args(&m, MachineKind::Microvm, AccelChoice::Tcg);
        assert!(value_after(&microvm, "-global").is_empty());
    }

    #[test]
    fn arm_virt_gets_its_console_and_none_of_the_x86_words() {
        let cmdline = kernel_cmdline(
            MachineKind::ArmVirt,
            AccelChoice::Tcg,
            Some(2_445_404),
            &["loglevel=8".to_string()],
        );
        assert!(cmdline.starts_with("console=ttyAMA0 panic=-1 rdinit=/init "));
        for x86 in [
            "ttyS0",
            "i8042",
            "tsc",
            "noapictimer",
            "reboot=t",
            "pci=off",
        ] {
            assert!(!cmdline.contains(x86), "{x86} in {cmdline}");
        }
        assert!(cmdline.ends_with(" loglevel=8"));
    }

    #[test]
    fn s390_ccw_puts_every_device_on_channel_io_and_its_console_on_sclp() {
        let m = machine(Some(ShareTransport::NineP));
        let args = qemu_args(&m, MachineKind::S390Ccw, AccelChoice::Tcg);
        assert_eq!(
            value_after(&args, "-machine"),
            ["s390-ccw-virtio,accel=tcg"]
        );
        let devices: Vec<String> = value_after(&args, "-device")
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        for ccw in ["virtio-serial-ccw,", "virtio-9p-ccw,"] {
            assert!(devices.iter().any(|d| d.starts_with(ccw)), "{devices:?}");
        }
        assert!(
            !devices.iter().any(|d| d.contains("-device,")),
            "{devices:?}"
        );
        // QEMU connects the first serial chardev to the SCLP console.
        assert_eq!(value_after(&args, "-serial"), ["chardev:console"]);
        let cmdline = kernel_cmdline(MachineKind::S390Ccw, AccelChoice::Tcg, Some(2_445_404), &[]);
        assert!(
            cmdline.starts_with("console=ttysclp0 panic=-1 "),
            "{cmdline}"
        );
        for x86 in ["ttyS0", "tsc", "noapictimer", "reboot=t", "pci=off"] {
            assert!(!cmdline.contains(x86), "{x86} in {cmdline}");
        }
    }

    #[test]
    fn pseries_boots_through_its_virtual_firmware_with_pci_devices_and_hvc0() {
        let m = machine(Some(ShareTransport::NineP));
        for big_endian in [false, true] {
            let kind = MachineKind::Pseries { big_endian };
            let args = qemu_args(&m, kind, AccelChoice::Tcg);
            assert_eq!(
                value_after(&args, "-machine"),
                ["pseries,x-vof=on,accel=tcg"]
            );
            assert_eq!(value_after(&args, "-cpu"), ["power10"]);
            let devices: Vec<String> = value_after(&args, "-device")
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            for pci in ["virtio-serial-pci,", "virtio-9p-pci,"] {
                assert!(devices.iter().any(|d| d.starts_with(pci)), "{devices:?}");
            }
            // QEMU makes the first serial chardev the hypervisor's virtual terminal.
            assert_eq!(value_after(&args, "-serial"), ["chardev:console"]);
            let cmdline = kernel_cmdline(kind, AccelChoice::Tcg, Some(2_445_404), &[]);
            assert!(cmdline.starts_with("console=hvc0 panic=-1 "), "{cmdline}");
            assert!(!cmdline.contains("tsc"), "{cmdline}");
        }
        let release = |line| crate::QemuRelease::parse(line);
        let pseries = MachineKind::Pseries { big_endian: false };
        assert!(!pseries.restores_timers(release("QEMU emulator version 7.2.22")));
        assert!(!pseries.restores_timers(None), "a QEMU that did not say");
        assert!(pseries.restores_timers(release("QEMU emulator version 10.0.2")));
        assert!(pseries.restores_timers(release("QEMU emulator version 10.1.0")));
        assert!(!pseries.restores_timers(release("QEMU emulator version 9.2.0")));
        assert!(!MachineKind::RiscvVirt.restores_timers(release("QEMU emulator version 10.0.2")));
        assert!(MachineKind::ArmVirt.restores_timers(release("QEMU emulator version 7.2.22")));
        assert!(MachineKind::Microvm.restores_timers(None));
    }

    #[test]
    fn emulation_and_microvm_get_their_own_args() {
        let words = |kind, accel| -> Vec<String> {
            kernel_cmdline(kind, accel, Some(2_445_404), &[])
                .split(' ')
                .map(String::from)
                .collect()
        };
        let kvm_q35 = words(MachineKind::Q35, AccelChoice::Kvm);
        assert!(!kvm_q35.iter().any(|w| w == "noapictimer" || w == "pci=off"));
        let tcg_q35 = words(MachineKind::Q35, AccelChoice::Tcg);
        assert!(tcg_q35.iter().any(|w| w == "noapictimer"));
        assert!(tcg_q35.iter().any(|w| w == "tsc_early_khz=2445404"));
        assert!(!tcg_q35.iter().any(|w| w == "pci=off"));
        let kvm_microvm = words(MachineKind::Microvm, AccelChoice::Kvm);
        assert!(kvm_microvm.iter().any(|w| w == "pci=off"));
        assert!(!kvm_microvm.iter().any(|w| w == "noreplace-smp"));
    }
}
