//! The rules for Linux guests: machine, share, modules, kernel command line, and what
//! vmlane's init is asked to run.

use super::error::{PlanError, ShareError, VirtioFsProblem};
use super::vm::{qemu_for, BackendPlan, Decided, VmPlan, RWDIR_TAG_PREFIX, SHARE_TAG};
use crate::host::Host;
use crate::kernel::LinuxKernel;
use crate::request::{MachineChoice, Request};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use vmlane_backend::{Share, ShareTransport};
use vmlane_kernel::Kernel;
use vmlane_payload::modules::{ModuleIndex, ModuleStatus};
use vmlane_profile::quote;
use vmlane_proto::{DirMount, RunRequest, ShareMount};
use vmlane_qemu::{
    kernel_cmdline, AccelChoice, MachineKind, GUEST_ADDRESS, GUEST_MODULES_9P, GUEST_MODULES_BASE,
    GUEST_MODULES_NET, GUEST_MODULES_VIRTIOFS, HOST_ADDRESS,
};
use vmlane_spec::{Arch, Network, ShareKind};

/// The command's `PATH`, unless the request sets one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A Linux guest: vmlane's init in an initramfs with the modules its devices need.
#[derive(Debug)]
pub struct LinuxGuest {
    /// How the host root is shared.
    pub share: ShareTransport,
    /// Modules to load, by name; staging adds what they depend on.
    pub modules: Vec<String>,
    /// The kernel's modules, where staging finds their files and dependencies.
    pub index: Option<ModuleIndex>,
    /// What the init runs, sent over the vmlane port.
    pub run: RunRequest,
    /// The vmlinux a debugger attaches with, when `--gdb` was asked for and one was found.
    pub symbols: Option<PathBuf>,
    /// Whether a restored guest's timer fires: QEMU re-arms it, or the init can make the
    /// kernel program it again (see [`timers_survive_restore`]).
    pub timers_survive_restore: bool,
}

impl LinuxGuest {
    pub(super) fn describe(&self, vm: &VmPlan) -> Vec<String> {
        let mut lines = vec![
            format!("accelerator {:?}, machine {:?}", vm.accel, vm.machine),
            format!("host root shared over {:?}", self.share),
        ];
        for (share, mount) in vm.rwdirs.iter().zip(&self.run.rwdirs) {
            lines.push(format!(
                "{} shared writable over {:?}, on {} in the guest",
                share.host_dir.display(),
                share.transport,
                String::from_utf8_lossy(&mount.target)
            ));
        }
        lines.push(format!("modules wanted: {}", self.modules.join(" ")));
        lines
    }
}

pub(super) fn plan(
    request: &Request,
    kernel: &Kernel,
    traits: LinuxKernel,
    host: &Host,
    accel: AccelChoice,
) -> Result<Decided<LinuxGuest>, PlanError> {
    let arch = kernel.format.arch();
    let machine = match arch {
        Arch::X86_64 => choose_machine(request.machine, !request.numa.is_empty(), &traits)?,
        Arch::Aarch64 => only_machine(MachineKind::ArmVirt, request)?,
        Arch::S390x => only_machine(MachineKind::S390Ccw, request)?,
        Arch::Riscv64 => only_machine(MachineKind::RiscvVirt, request)?,
        Arch::Ppc64le => only_machine(MachineKind::Pseries { big_endian: false }, request)?,
        Arch::Ppc64 => only_machine(MachineKind::Pseries { big_endian: true }, request)?,
    };
    let backend = qemu_for(host, arch)?;
    let timers_survive_restore = timers_survive_restore(&backend, machine, &traits);
    let virtiofsd = host.virtiofsd.is_some();
    let share = choose_share(
        request.linux.share,
        &traits,
        kernel,
        virtiofsd,
        machine,
        accel,
        !request.cold && timers_survive_restore,
    )?;
    let ip = check_network(&request.network, &traits, kernel, host)?;
    check_modules(&request.linux.modules, &traits, kernel)?;
    let root = request.linux.root.as_ref().map(|dir| request.cwd.join(dir));
    let rwdirs = rwdirs(request)?;
    // Under another root the command's directory comes from the host, read-only.
    let cwd_from_host = root.is_some()
        && request.cwd != Path::new("/")
        && !rwdirs.iter().any(|(_, guest)| *guest == request.cwd);
    let rwdirs: Vec<(PathBuf, PathBuf, bool)> = cwd_from_host
        .then(|| (request.cwd.clone(), request.cwd.clone(), false))
        .into_iter()
        .chain(rwdirs.into_iter().map(|(host, guest)| (host, guest, true)))
        .collect();
    // virtio-fs cannot be saved; on q35 its devices can be plugged in afterwards.
    let plugged_later =
        share == ShareTransport::VirtioFs && machine == MachineKind::Q35 && !request.cold;
    let disks = !request.disks.is_empty();
    let modules = guest_modules(
        machine,
        share,
        disks,
        &request.network,
        &request.linux.modules,
    );
    let tsc_khz = host.tsc_khz.filter(|_| accel == AccelChoice::Tcg);
    Ok(Decided {
        backend,
        machine,
        cmdline: kernel_cmdline(machine, accel, tsc_khz, &request.append),
        share: Some(Share {
            host_dir: root.unwrap_or_else(|| PathBuf::from("/")),
            tag: SHARE_TAG.into(),
            transport: share,
            writable: false,
            plugged_later,
        }),
        rwdirs: rwdirs
            .iter()
            .enumerate()
            .map(|(n, (host_dir, _, writable))| Share {
                host_dir: host_dir.clone(),
                tag: format!("{RWDIR_TAG_PREFIX}{n}"),
                transport: share,
                writable: *writable,
                plugged_later,
            })
            .collect(),
        guest: LinuxGuest {
            share,
            modules,
            run: run_request(request, share, &rwdirs, ip, host.term.as_ref()),
            symbols: request.gdb.and(traits.symbols),
            index: traits.modules,
            timers_survive_restore,
        },
    })
}

/// Where QEMU does not re-arm a restored guest's timer, the init's sleep on each CPU programs
/// it again; with a periodic tick and no high-resolution timers (as tinyconfig leaves them)
/// that sleep waits for the lost tick, and the restore stalls.
fn timers_survive_restore(
    backend: &BackendPlan,
    machine: MachineKind,
    traits: &LinuxKernel,
) -> bool {
    backend.restores_timers_of(machine) || traits.built_in("HIGH_RES_TIMERS")
}

/// microvm boots fastest but only kernels that take virtio-mmio devices from the command line
/// can see its devices; everything else gets q35 and virtio-pci. NUMA needs q35's ACPI.
fn choose_machine(
    requested: MachineChoice,
    numa: bool,
    traits: &LinuxKernel,
) -> Result<MachineKind, PlanError> {
    Ok(match (requested, numa) {
        (MachineChoice::Microvm, true) => return Err(PlanError::NumaNeedsQ35),
        (_, true) | (MachineChoice::Q35, false) => MachineKind::Q35,
        (MachineChoice::Microvm, false) => MachineKind::Microvm,
        (MachineChoice::Auto, false) => {
            if traits.built_in("VIRTIO_MMIO") && traits.built_in("VIRTIO_MMIO_CMDLINE_DEVICES") {
                MachineKind::Microvm
            } else {
                MachineKind::Q35
            }
        }
    })
}

/// Guests of other architectures have one machine each: arm64 runs on `virt`, whose
/// virtio-mmio devices every arm64 kernel finds in the device tree, s390x on
/// `s390-ccw-virtio`, whose channel I/O every s390x kernel has built in. NUMA is not set up
/// there yet.
fn only_machine(kind: MachineKind, request: &Request) -> Result<MachineKind, PlanError> {
    let arch = kind.arch();
    let x86_machine = match request.machine {
        MachineChoice::Auto => None,
        MachineChoice::Microvm => Some("microvm"),
        MachineChoice::Q35 => Some("q35"),
    };
    if let Some(machine) = x86_machine {
        let own = kind.qemu_machine().split(',').next().unwrap_or_default();
        return Err(PlanError::MachineOfOtherArch { machine, own, arch });
    }
    if !request.numa.is_empty() {
        return Err(PlanError::NumaNotOnArch(arch));
    }
    Ok(kind)
}

/// The share transport the kernel can mount: 9p needs no helper process, virtio-fs needs a
/// virtiofsd on the host (and, measured, does not work on microvm under TCG). Where saved
/// guests may stand in for the boot (`saving`), `auto` takes 9p first: a guest sharing over
/// 9p is saved as it is, one over virtio-fs is not.
#[allow(clippy::too_many_arguments)]
fn choose_share(
    requested: ShareKind,
    traits: &LinuxKernel,
    kernel: &Kernel,
    virtiofsd: bool,
    machine: MachineKind,
    accel: AccelChoice,
    saving: bool,
) -> Result<ShareTransport, ShareError> {
    let nine_p = traits.has("9p") && traits.has("9pnet_virtio");
    let virtiofs = traits.has("virtiofs");
    let problem = if !virtiofsd {
        Some(VirtioFsProblem::NoVirtiofsd)
    } else if machine.arch().big_endian() {
        Some(VirtioFsProblem::OtherByteOrder(machine.arch()))
    } else if matches!(machine, MachineKind::Pseries { .. }) {
        Some(VirtioFsProblem::PseriesExec)
    } else if machine == MachineKind::Microvm && accel == AccelChoice::Tcg {
        Some(VirtioFsProblem::MicrovmUnderTcg)
    } else {
        None
    };
    let kernel = kernel.image.clone();
    match requested {
        ShareKind::NineP if nine_p => Ok(ShareTransport::NineP),
        ShareKind::NineP => Err(ShareError::NoNineP { kernel }),
        ShareKind::VirtioFs if !virtiofs => Err(ShareError::NoVirtioFs { kernel }),
        ShareKind::VirtioFs => match problem {
            None => Ok(ShareTransport::VirtioFs),
            Some(problem) => Err(ShareError::VirtioFsUnusable(problem)),
        },
        ShareKind::Auto if nine_p && saving => Ok(ShareTransport::NineP),
        ShareKind::Auto if virtiofs && problem.is_none() => Ok(ShareTransport::VirtioFs),
        ShareKind::Auto if nine_p => Ok(ShareTransport::NineP),
        ShareKind::Auto => match (virtiofs, problem) {
            (true, Some(problem)) => {
                Err(ShareError::NoNinePAndVirtioFsUnusable { kernel, problem })
            }
            _ => Err(ShareError::Neither { kernel }),
        },
    }
}

/// The writable directories as (host, guest) absolute paths, each on a guest path of its own.
fn rwdirs(request: &Request) -> Result<Vec<(PathBuf, PathBuf)>, PlanError> {
    let mut dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
    for dir in &request.rwdirs {
        let (host, guest) = dir.resolve(&request.cwd).map_err(PlanError::RwDir)?;
        if dirs.iter().any(|(_, taken)| *taken == guest) {
            return Err(PlanError::RwDir(format!(
                "two --rwdir directories would be mounted on {} in the guest; give one another guest path (HOST=GUEST)",
                guest.display()
            )));
        }
        dirs.push((host, guest));
    }
    Ok(dirs)
}

/// Whether the guest can have the network asked for, and the host's `ip` it sets it up with.
fn check_network(
    network: &Network,
    traits: &LinuxKernel,
    kernel: &Kernel,
    host: &Host,
) -> Result<Option<PathBuf>, PlanError> {
    if *network == Network::None {
        return Ok(None);
    }
    if !traits.has("virtio_net") {
        return Err(PlanError::NoNic {
            kernel: kernel.image.clone(),
        });
    }
    host.ip.clone().map(Some).ok_or(PlanError::NoIp)
}

/// Modules asked for by name must exist for this kernel, built in or as a file.
fn check_modules(names: &[String], traits: &LinuxKernel, kernel: &Kernel) -> Result<(), PlanError> {
    let missing = names.iter().find(|name| match &traits.modules {
        Some(index) => index.status(name) == ModuleStatus::Absent,
        None => true,
    });
    match missing {
        Some(name) => Err(PlanError::NoModule {
            name: name.clone(),
            kernel: kernel.image.clone(),
            release: kernel.release.clone(),
            modules_dir: traits
                .modules
                .as_ref()
                .map(|index| index.dir().to_path_buf()),
        }),
        None => Ok(()),
    }
}

/// The modules the guest's devices need, then those asked for.
fn guest_modules(
    machine: MachineKind,
    share: ShareTransport,
    disks: bool,
    network: &Network,
    extra: &[String],
) -> Vec<String> {
    let mut modules: Vec<&str> = machine.transport_module().into_iter().collect();
    modules.extend_from_slice(GUEST_MODULES_BASE);
    if disks {
        modules.push("virtio_blk");
    }
    if *network != Network::None {
        modules.extend_from_slice(GUEST_MODULES_NET);
    }
    modules.extend_from_slice(match share {
        ShareTransport::NineP => GUEST_MODULES_9P,
        ShareTransport::VirtioFs => GUEST_MODULES_VIRTIOFS,
    });
    let mut modules: Vec<String> = modules.into_iter().map(String::from).collect();
    modules.extend(extra.iter().cloned());
    modules
}

/// What vmlane's init runs: the command (wrapped by guest setup and network setup, which
/// then become it), its environment over vmlane's defaults, its directory, the share and the
/// writable directories (`(host, guest)`, tagged in order).
fn run_request(
    request: &Request,
    transport: ShareTransport,
    rwdirs: &[(PathBuf, PathBuf, bool)],
    ip: Option<PathBuf>,
    term: Option<&OsString>,
) -> RunRequest {
    let term = term.cloned().unwrap_or_else(|| "linux".into());
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), "/root".into()),
        ("TERM".into(), term),
    ];
    for (key, value) in &request.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    let (fstype, options) = match transport {
        ShareTransport::NineP => (
            "9p",
            "trans=virtio,version=9p2000.L,msize=512000,cache=loose",
        ),
        ShareTransport::VirtioFs => ("virtiofs", ""),
    };
    // Writes go through at once (cache=mmap caches only what is mapped), so they are on the
    // host when the command ends and the VM with it; loose caching would keep them in the guest.
    let rw_options = match transport {
        ShareTransport::NineP => "trans=virtio,version=9p2000.L,msize=512000,cache=mmap",
        ShareTransport::VirtioFs => "",
    };
    let argv = with_guest_setup(&request.linux.guest_setup, &request.argv);
    let argv = match ip {
        Some(ip) => with_network(&ip, &argv),
        None => argv,
    };
    RunRequest {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: env
            .iter()
            .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .collect(),
        cwd: request.cwd.as_os_str().as_bytes().to_vec(),
        share: Some(ShareMount {
            fstype: fstype.into(),
            tag: SHARE_TAG.into(),
            options: options.into(),
        }),
        rwdirs: rwdirs
            .iter()
            .enumerate()
            .map(|(n, (_, guest, _))| DirMount {
                share: ShareMount {
                    fstype: fstype.into(),
                    tag: format!("{RWDIR_TAG_PREFIX}{n}"),
                    options: rw_options.into(),
                },
                target: guest.as_os_str().as_bytes().to_vec(),
            })
            .collect(),
        input: request.input.into(),
    }
}

/// What ends a wrapper script: the command, or for a shell (no command) the login shell.
fn then_command(argv: &[OsString]) -> &'static str {
    if argv.is_empty() {
        "exec \"${SHELL:-/bin/sh}\" -l"
    } else {
        "exec \"$@\""
    }
}

/// `script` run by one `/bin/sh` that becomes the command: pid, argv and status stay its own.
fn wrapped(script: String, argv: &[OsString]) -> Vec<OsString> {
    let mut wrapped: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    wrapped.push("vmlane".into());
    wrapped.extend(argv.iter().cloned());
    wrapped
}

/// The guest setup commands, then the command. A failing setup command ends the run with
/// 125, as vmlane's own failures do.
fn with_guest_setup(setup: &[String], argv: &[OsString]) -> Vec<OsString> {
    if setup.is_empty() {
        return argv.to_vec();
    }
    let mut script = String::new();
    for command in setup {
        let shown = quote(Path::new(&format!("vmlane: guest setup failed: {command}")));
        script.push_str(&format!(
            "{{ {command}\n}} || {{ echo {shown} \"(exit $?)\" >&2; exit 125; }}\n"
        ));
    }
    script.push_str(then_command(argv));
    wrapped(script, argv)
}

/// Brings up the guest's loopback and NIC with the host's `ip`, then becomes the command.
/// The guest init sets up no network, and in-kernel `ip=` autoconfiguration is built into
/// none of the kernels vmlane boots; where it is, it runs before init loads the NIC's module.
fn with_network(ip: &Path, argv: &[OsString]) -> Vec<OsString> {
    let ip = quote(ip);
    let script = format!(
        "{ip} link set lo up && {ip} link set eth0 up && \
         {ip} address add {GUEST_ADDRESS}/24 dev eth0 && \
         {ip} route add default via {HOST_ADDRESS} || \
         {{ echo 'vmlane: failed to set up the guest network (--net user)' >&2; exit 125; }}; \
         {}",
        then_command(argv)
    );
    wrapped(script, argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake;
    use crate::kernel::{fake::linux, KernelTraits};
    use vmlane_qemu::HostKvm;

    const MINIMAL: &str = "CONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\nCONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\nCONFIG_VIRTIO_FS=y\nCONFIG_VIRTIO_NET=y\n";
    const DISTRO: &str = "CONFIG_VIRTIO_MMIO=m\n# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set\n";
    /// Debian's generic kernel: everything a module, virtio-fs included.
    const DISTRO_MODULES: &[(&str, bool)] = &[
        ("virtio_pci", false),
        ("virtio_console", false),
        ("overlay", false),
        ("9p", false),
        ("9pnet_virtio", false),
        ("virtiofs", false),
        ("virtio_net", false),
        ("virtio_blk", false),
        ("zfs", false),
    ];

    fn traits(kernel: &crate::kernel::GuestKernel) -> &LinuxKernel {
        match &kernel.traits {
            KernelTraits::Linux(traits) => traits,
            KernelTraits::FreeBsd(_) => unreachable!(),
        }
    }

    fn request() -> Request {
        Request::new(vec!["true".into()], "/work".into())
    }

    fn planned(
        request: &Request,
        kernel: crate::kernel::GuestKernel,
        kvm: HostKvm,
    ) -> super::super::Plan {
        super::super::plan(request, kernel, &fake::host(kvm), "t").unwrap()
    }

    /// Debian's arm64 kernel, as the cache holds it: an Image with everything a module.
    fn arm64_kernel() -> crate::kernel::GuestKernel {
        let mut kernel = linux(DISTRO, Some(DISTRO_MODULES));
        kernel.kernel.format = vmlane_kernel::ImageFormat::Arm64Image;
        kernel
    }

    #[test]
    fn an_arm64_guest_runs_on_virt_with_its_own_qemu_console_and_modules() {
        let mut asked = request();
        asked.arch = Some(Arch::Aarch64);
        let plan = planned(&asked, arm64_kernel(), HostKvm::Pvm);
        assert_eq!(plan.vm.machine, MachineKind::ArmVirt);
        let super::super::BackendPlan::Qemu { program, .. } = &plan.vm.backend else {
            panic!("{:?}", plan.vm.backend);
        };
        assert!(program.ends_with("qemu-system-aarch64"), "{program:?}");
        assert!(plan.vm.cmdline.starts_with("console=ttyAMA0 "));
        assert_eq!(
            plan.vm.warm,
            Ok(()),
            "saved and restored as x86-64 guests are"
        );
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(guest.share, ShareTransport::NineP);
        assert!(guest.modules.iter().any(|m| m == "virtio_mmio"));
    }

    #[test]
    fn a_riscv64_guest_runs_on_virt_with_a_16550_console_and_is_saved_over_9p() {
        let riscv = |config: &str| {
            let mut kernel = linux(config, Some(DISTRO_MODULES));
            kernel.kernel.format = vmlane_kernel::ImageFormat::RiscvImage;
            kernel
        };
        let mut asked = request();
        asked.arch = Some(Arch::Riscv64);
        let hres = format!("{DISTRO}CONFIG_HIGH_RES_TIMERS=y\n");
        let plan = planned(&asked, riscv(&hres), HostKvm::Pvm);
        assert_eq!(plan.vm.machine, MachineKind::RiscvVirt);
        let super::super::BackendPlan::Qemu { program, .. } = &plan.vm.backend else {
            panic!("{:?}", plan.vm.backend);
        };
        assert!(program.ends_with("qemu-system-riscv64"), "{program:?}");
        assert!(plan.vm.cmdline.starts_with("console=ttyS0 "));
        assert_eq!(
            plan.vm.warm,
            Ok(()),
            "its timer is the ACLINT's, which QEMU saves"
        );
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(guest.share, ShareTransport::NineP, "saved as it is");

        // A periodic tick alone: the init could not program the lost timer again.
        let plan = planned(&asked, riscv(DISTRO), HostKvm::Pvm);
        assert_eq!(
            plan.vm.warm,
            Err(super::super::ColdReason::RiscvPeriodicTick)
        );
        assert!(plan
            .vm
            .warm
            .unwrap_err()
            .to_string()
            .contains("-e HIGH_RES_TIMERS"));
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(guest.share, ShareTransport::VirtioFs, "never saved");
    }

    #[test]
    fn a_ppc64el_guest_runs_on_pseries_over_9p_and_pci() {
        let mut kernel = linux(DISTRO, Some(DISTRO_MODULES));
        kernel.kernel.format = vmlane_kernel::ImageFormat::PowerElf { big_endian: false };
        let mut asked = request();
        asked.arch = Some(Arch::Ppc64le);
        let plan = planned(&asked, kernel, HostKvm::Pvm);
        assert_eq!(plan.vm.machine, MachineKind::Pseries { big_endian: false });
        let super::super::BackendPlan::Qemu { program, .. } = &plan.vm.backend else {
            panic!("{:?}", plan.vm.backend);
        };
        assert!(program.ends_with("qemu-system-ppc64"), "{program:?}");
        assert!(plan.vm.cmdline.starts_with("console=hvc0 "));
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(
            guest.share,
            ShareTransport::NineP,
            "no program runs from virtio-fs on pseries"
        );
        assert!(guest.modules.iter().any(|m| m == "virtio_pci"));
    }

    #[test]
    fn pseries_guests_are_saved_where_their_restored_timer_fires() {
        let mut qemu_10 = fake::host(HostKvm::Pvm);
        for arch in [Arch::Ppc64le, Arch::Ppc64] {
            let qemu = qemu_10
                .foreign_qemu
                .get_mut(&arch)
                .unwrap()
                .as_mut()
                .unwrap();
            qemu.version = Some("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)".into());
        }
        let qemu_7 = fake::host(HostKvm::Pvm);
        let cases = [
            (
                Arch::Ppc64le,
                vmlane_kernel::ImageFormat::PowerElf { big_endian: false },
            ),
            (
                Arch::Ppc64,
                vmlane_kernel::ImageFormat::PowerElf { big_endian: true },
            ),
        ];
        let hres = format!("{DISTRO}CONFIG_HIGH_RES_TIMERS=y\n");
        for (arch, format) in cases {
            let kernel = |config: &str| {
                let mut kernel = linux(config, Some(DISTRO_MODULES));
                kernel.kernel.format = format;
                kernel
            };
            let mut asked = request();
            asked.arch = Some(arch);
            let plan_on = |host, config| super::super::plan(&asked, kernel(config), host, "t");
            // QEMU 10.0 re-arms the decrementer; on 7.2 the init has the kernel do it.
            for (host, config) in [(&qemu_10, DISTRO), (&qemu_10, &hres), (&qemu_7, &hres)] {
                let plan = plan_on(host, config).unwrap();
                assert_eq!(plan.vm.warm, Ok(()), "{arch:?} {config}");
                let super::super::GuestPlan::Linux(guest) = &plan.guest else {
                    unreachable!()
                };
                assert_eq!(
                    guest.share,
                    ShareTransport::NineP,
                    "saved as it is: {arch:?}"
                );
            }

            // Debian 12's QEMU and a periodic tick alone: they boot, and the reason says what
            // saves them.
            let cold = plan_on(&qemu_7, DISTRO).unwrap().vm.warm.unwrap_err();
            assert_eq!(cold, super::super::ColdReason::PseriesPeriodicTick);
            let said = cold.to_string();
            for fix in [
                "-e HIGH_RES_TIMERS",
                "QEMU 10.0 or newer",
                "bookworm-backports",
            ] {
                assert!(said.contains(fix), "{said}");
            }
        }
    }

    fn s390x_kernel() -> crate::kernel::GuestKernel {
        let mut kernel = linux(DISTRO, Some(DISTRO_MODULES));
        kernel.kernel.format = vmlane_kernel::ImageFormat::S390Image;
        kernel
    }

    #[test]
    fn an_s390x_guest_runs_on_s390_ccw_virtio_with_its_console_and_no_transport_module() {
        let plan = planned(&request(), s390x_kernel(), HostKvm::Pvm);
        assert_eq!(plan.vm.machine, MachineKind::S390Ccw);
        let super::super::BackendPlan::Qemu { program, .. } = &plan.vm.backend else {
            panic!("{:?}", plan.vm.backend);
        };
        assert!(program.ends_with("qemu-system-s390x"), "{program:?}");
        assert!(plan.vm.cmdline.starts_with("console=ttysclp0 "));
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        // virtio-ccw is built into every s390x kernel that can be a guest.
        assert!(!guest.modules.iter().any(|m| m.starts_with("virtio_ccw")));
        assert!(guest.modules.iter().any(|m| m == "virtio_console"));
        // Cold runs too share over 9p: virtiofsd cannot serve a big-endian guest.
        let mut cold = request();
        cold.cold = true;
        let plan = planned(&cold, s390x_kernel(), HostKvm::Pvm);
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(guest.share, ShareTransport::NineP);
        cold.linux.share = ShareKind::VirtioFs;
        let message = super::super::plan(&cold, s390x_kernel(), &fake::host(HostKvm::Pvm), "t")
            .unwrap_err()
            .to_string();
        assert!(message.contains("big-endian (use --share 9p)"), "{message}");
        let mut q35 = request();
        q35.machine = MachineChoice::Q35;
        let message = super::super::plan(&q35, s390x_kernel(), &fake::host(HostKvm::Pvm), "t")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("s390x guests run on QEMU's s390-ccw-virtio"),
            "{message}"
        );
    }

    #[test]
    fn the_kernel_decides_the_architecture_unless_arch_names_another() {
        let host = fake::host(HostKvm::Pvm);
        let refused = |asked: &Request, kernel| {
            super::super::plan(asked, kernel, &host, "t")
                .unwrap_err()
                .to_string()
        };
        let unasked = planned(&request(), arm64_kernel(), HostKvm::Pvm);
        assert_eq!(unasked.vm.machine, MachineKind::ArmVirt);
        let mut arm = request();
        arm.arch = Some(Arch::Aarch64);
        let message = refused(&arm, linux(DISTRO, Some(DISTRO_MODULES)));
        assert!(
            message.contains(
                "is a kernel for amd64, but --arch arm64 was asked for: give a kernel for arm64 with -k"
            ),
            "{message}"
        );
        let mut x86 = request();
        x86.arch = Some(Arch::X86_64);
        let message = refused(&x86, arm64_kernel());
        assert!(
            message.contains("is a kernel for arm64, but --arch amd64"),
            "{message}"
        );
        arm.machine = MachineChoice::Microvm;
        let message = refused(&arm, arm64_kernel());
        assert!(
            message.contains("--machine microvm is an x86 machine"),
            "{message}"
        );
    }

    #[test]
    fn another_root_is_the_share_and_the_directory_comes_from_the_host_read_only() {
        let mut asked = request();
        asked.linux.root = Some("roots/arm64".into());
        asked.rwdirs = vec!["out".parse().unwrap()];
        let plan = planned(&asked, arm64_kernel(), HostKvm::Pvm);
        let share = plan.vm.share.as_ref().unwrap();
        assert_eq!(share.host_dir, Path::new("/work/roots/arm64"));
        assert!(!share.writable);
        let dirs: Vec<(&Path, bool)> = plan
            .vm
            .rwdirs
            .iter()
            .map(|s| (s.host_dir.as_path(), s.writable))
            .collect();
        assert_eq!(
            dirs,
            [(Path::new("/work"), false), (Path::new("/work/out"), true)]
        );
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        let targets: Vec<&[u8]> = guest.run.rwdirs.iter().map(|d| &d.target[..]).collect();
        assert_eq!(targets, [&b"/work"[..], &b"/work/out"[..]]);

        // A writable directory on the working directory takes its place.
        asked.rwdirs = vec![".".parse().unwrap()];
        let plan = planned(&asked, arm64_kernel(), HostKvm::Pvm);
        assert_eq!(plan.vm.rwdirs.len(), 1);
        assert!(plan.vm.rwdirs[0].writable);
    }

    #[test]
    fn an_arm64_guest_without_its_qemu_is_told_what_to_install() {
        let mut host = fake::host(HostKvm::Pvm);
        host.foreign_qemu
            .insert(Arch::Aarch64, Err(crate::host::missing_qemu(Arch::Aarch64)));
        let mut asked = request();
        asked.arch = Some(Arch::Aarch64);
        let message = super::super::plan(&asked, arm64_kernel(), &host, "t")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("qemu-system-aarch64 is not installed: install it with `apt-get install qemu-system-arm`"),
            "{message}"
        );
    }

    #[test]
    fn kernels_with_command_line_mmio_devices_get_microvm() {
        let minimal = linux(MINIMAL, None);
        let distro = linux(DISTRO, None);
        let choose = |choice, numa, kernel| choose_machine(choice, numa, traits(kernel));
        assert_eq!(
            choose(MachineChoice::Auto, false, &minimal).unwrap(),
            MachineKind::Microvm
        );
        assert_eq!(
            choose(MachineChoice::Q35, false, &minimal).unwrap(),
            MachineKind::Q35
        );
        assert_eq!(
            choose(MachineChoice::Auto, false, &distro).unwrap(),
            MachineKind::Q35
        );
        assert_eq!(
            choose(MachineChoice::Microvm, false, &distro).unwrap(),
            MachineKind::Microvm
        );
    }

    #[test]
    fn numa_nodes_need_q35() {
        let minimal = linux(MINIMAL, None);
        assert_eq!(
            choose_machine(MachineChoice::Auto, true, traits(&minimal)).unwrap(),
            MachineKind::Q35
        );
        let error = choose_machine(MachineChoice::Microvm, true, traits(&minimal)).unwrap_err();
        assert!(error.to_string().contains("--machine q35"), "{error}");
    }

    #[test]
    fn microvm_under_tcg_shares_over_9p_and_refuses_virtiofs() {
        let minimal = linux(MINIMAL, None);
        let (t, k) = (traits(&minimal), &minimal.kernel);
        let microvm = MachineKind::Microvm;
        assert_eq!(
            choose_share(
                ShareKind::Auto,
                t,
                k,
                true,
                microvm,
                AccelChoice::Tcg,
                false
            )
            .unwrap(),
            ShareTransport::NineP
        );
        let error = choose_share(
            ShareKind::VirtioFs,
            t,
            k,
            true,
            microvm,
            AccelChoice::Tcg,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("microvm"), "{error}");
        assert_eq!(
            choose_share(
                ShareKind::Auto,
                t,
                k,
                true,
                microvm,
                AccelChoice::Kvm,
                false
            )
            .unwrap(),
            ShareTransport::VirtioFs
        );
        let error = choose_share(
            ShareKind::VirtioFs,
            t,
            k,
            false,
            microvm,
            AccelChoice::Kvm,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("no virtiofsd is installed"), "{error}");
    }

    #[test]
    fn module_only_support_without_modules_does_not_count() {
        let kernel = linux(
            "CONFIG_9P_FS=m\nCONFIG_NET_9P_VIRTIO=m\nCONFIG_VIRTIO_FS=m\n",
            None,
        );
        let error = choose_share(
            ShareKind::Auto,
            traits(&kernel),
            &kernel.kernel,
            true,
            MachineKind::Q35,
            AccelChoice::Tcg,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("neither 9p nor virtio-fs"), "{error}");
        let error = choose_share(
            ShareKind::NineP,
            traits(&kernel),
            &kernel.kernel,
            true,
            MachineKind::Q35,
            AccelChoice::Tcg,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("has no 9p support; try --share virtiofs"),
            "{error}"
        );
    }

    #[test]
    fn auto_takes_9p_first_where_guests_may_be_saved_and_virtiofs_first_for_cold_runs() {
        let kernel = linux(DISTRO, Some(DISTRO_MODULES));
        let (t, k) = (traits(&kernel), &kernel.kernel);
        let choose = |saving| {
            choose_share(
                ShareKind::Auto,
                t,
                k,
                true,
                MachineKind::Q35,
                AccelChoice::Tcg,
                saving,
            )
            .unwrap()
        };
        assert_eq!(choose(true), ShareTransport::NineP);
        assert_eq!(choose(false), ShareTransport::VirtioFs);
    }

    #[test]
    fn a_distro_kernel_gets_q35_virtiofs_and_exactly_the_modules_its_devices_need() {
        let kernel = linux(DISTRO, Some(DISTRO_MODULES));
        let mut asked = request();
        asked.cold = true;
        asked.disks = vec![vmlane_spec::DiskSpec::Scratch { bytes: 1 << 20 }];
        asked.linux.modules = vec!["zfs".into()];
        let plan = planned(&asked, kernel, HostKvm::Pvm);
        assert_eq!(plan.vm.machine, MachineKind::Q35);
        assert_eq!(plan.vm.accel, AccelChoice::Tcg);
        assert!(plan
            .vm
            .accel_notice
            .as_deref()
            .is_some_and(|n| n.contains("kvm_pvm")));
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(guest.share, ShareTransport::VirtioFs);
        assert_eq!(
            guest.modules,
            [
                "virtio_pci",
                "virtio_console",
                "overlay",
                "virtio_blk",
                "virtiofs",
                "zfs"
            ]
        );
        assert!(
            plan.vm.cmdline.contains("tsc_early_khz=2445404"),
            "{}",
            plan.vm.cmdline
        );
        assert_eq!(guest.run.share.as_ref().unwrap().fstype, "virtiofs");
    }

    fn rwdir(value: &str) -> vmlane_spec::RwDir {
        vmlane_spec::RwDir::parse(value.as_ref()).unwrap()
    }

    #[test]
    fn writable_directories_are_absolute_tagged_in_order_and_mounted_where_asked() {
        let mut asked = request();
        asked.rwdirs = vec![rwdir("out"), rwdir("/data=/mnt/data")];
        let plan = planned(&asked, linux(MINIMAL, None), HostKvm::Pvm);
        let shares: Vec<(&Path, &str, bool, bool)> = plan
            .vm
            .rwdirs
            .iter()
            .map(|s| {
                (
                    s.host_dir.as_path(),
                    s.tag.as_str(),
                    s.writable,
                    s.plugged_later,
                )
            })
            .collect();
        assert_eq!(
            shares,
            [
                (Path::new("/work/out"), "vmlane-rw0", true, false),
                (Path::new("/data"), "vmlane-rw1", true, false),
            ]
        );
        assert!(plan
            .vm
            .rwdirs
            .iter()
            .all(|s| s.transport == ShareTransport::NineP));
        assert!(!plan.vm.share.as_ref().unwrap().writable);
        // The 9p device is saved unmounted, so a guest with writable directories is saved too.
        assert_eq!(plan.vm.warm, Ok(()));
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        let mounts: Vec<(&[u8], &str, &str)> = guest
            .run
            .rwdirs
            .iter()
            .map(|m| {
                (
                    m.target.as_slice(),
                    m.share.tag.as_str(),
                    m.share.fstype.as_str(),
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                (&b"/work/out"[..], "vmlane-rw0", "9p"),
                (&b"/mnt/data"[..], "vmlane-rw1", "9p"),
            ]
        );
        let options = &guest.run.rwdirs[0].share.options;
        assert!(
            options.contains("cache=mmap") && !options.contains("loose"),
            "{options}"
        );
        let described = plan.describe().join("\n");
        assert!(
            described.contains("/data shared writable over NineP, on /mnt/data in the guest"),
            "{described}"
        );
    }

    #[test]
    fn writable_directories_over_virtiofs_are_plugged_in_with_the_root_share() {
        let mut asked = request();
        asked.linux.share = ShareKind::VirtioFs;
        asked.rwdirs = vec![rwdir("out")];
        let plan = planned(&asked, linux(DISTRO, Some(DISTRO_MODULES)), HostKvm::Pvm);
        let rwdir = &plan.vm.rwdirs[0];
        assert_eq!(rwdir.transport, ShareTransport::VirtioFs);
        assert!(rwdir.plugged_later && plan.vm.share.as_ref().unwrap().plugged_later);
        assert_eq!(plan.vm.warm, Ok(()));
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert_eq!(guest.run.rwdirs[0].share.fstype, "virtiofs");
        assert_eq!(guest.run.rwdirs[0].share.options, "");

        asked.cold = true;
        let plan = planned(&asked, linux(DISTRO, Some(DISTRO_MODULES)), HostKvm::Pvm);
        assert!(!plan.vm.rwdirs[0].plugged_later);
    }

    #[test]
    fn writable_directories_on_one_guest_path_or_from_a_relative_directory_are_refused() {
        let host = fake::host(HostKvm::Pvm);
        let mut asked = request();
        asked.rwdirs = vec![rwdir("a=/mnt/x"), rwdir("/b=/mnt/x/")];
        let error = super::super::plan(&asked, linux(MINIMAL, None), &host, "t")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("two --rwdir directories would be mounted on /mnt/x"),
            "{error}"
        );
        asked.rwdirs = vec![rwdir("out")];
        asked.cwd = "relative".into();
        let error = super::super::plan(&asked, linux(MINIMAL, None), &host, "t")
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be an absolute path"), "{error}");
    }

    #[test]
    fn a_module_the_kernel_lacks_is_refused_naming_where_it_looked() {
        let mut asked = request();
        asked.linux.modules = vec!["nosuch".into()];
        let error = super::super::plan(
            &asked,
            linux(DISTRO, Some(DISTRO_MODULES)),
            &fake::host(HostKvm::Pvm),
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("has no module `nosuch` in /lib/modules/6.1.0"),
            "{error}"
        );
        let error =
            super::super::plan(&asked, linux(MINIMAL, None), &fake::host(HostKvm::Pvm), "t")
                .unwrap_err()
                .to_string();
        assert!(error.contains("give one with --modules"), "{error}");
    }

    #[test]
    fn the_network_needs_a_nic_driver_and_the_hosts_ip() {
        let mut asked = request();
        asked.network = Network::User { forwards: vec![] };
        let no_nic = linux("CONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\n", None);
        let error = super::super::plan(&asked, no_nic, &fake::host(HostKvm::Pvm), "t").unwrap_err();
        assert!(error.to_string().contains("CONFIG_VIRTIO_NET"), "{error}");
        let mut host = fake::host(HostKvm::Pvm);
        host.ip = None;
        let error = super::super::plan(&asked, linux(MINIMAL, None), &host, "t").unwrap_err();
        assert!(error.to_string().contains("iproute2"), "{error}");
        let plan = planned(&asked, linux(MINIMAL, None), HostKvm::Pvm);
        let super::super::GuestPlan::Linux(guest) = &plan.guest else {
            unreachable!()
        };
        assert!(guest.modules.contains(&"virtio_net".to_string()));
        assert_eq!(guest.run.argv[..2], [b"/bin/sh".to_vec(), b"-c".to_vec()]);
    }

    #[test]
    fn hardware_kvm_needs_no_tsc_hint_and_the_users_words_come_last() {
        let mut asked = request();
        asked.append = vec!["loglevel=7".into()];
        let plan = planned(&asked, linux(MINIMAL, None), HostKvm::Hardware);
        assert_eq!(plan.vm.accel, AccelChoice::Kvm);
        assert!(plan.vm.accel_notice.is_none());
        assert!(
            !plan.vm.cmdline.contains("tsc_early_khz"),
            "{}",
            plan.vm.cmdline
        );
        assert!(
            plan.vm.cmdline.ends_with(" loglevel=7"),
            "{}",
            plan.vm.cmdline
        );
    }

    #[test]
    fn the_guest_gets_vmlanes_environment_under_the_requests() {
        let mut asked = request();
        asked.env = vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "b".into())];
        let run = run_request(&asked, ShareTransport::NineP, &[], None, None);
        assert_eq!(
            run.env,
            [
                b"HOME=/root".to_vec(),
                b"TERM=linux".to_vec(),
                b"PATH=/opt/bin".to_vec(),
                b"A=b".to_vec()
            ]
        );
        assert_eq!(run.cwd, b"/work");
        assert_eq!(run.argv, [b"true".to_vec()]);
        assert!(run.share.unwrap().options.contains("trans=virtio"));
    }

    #[test]
    fn the_network_is_set_up_before_the_command_takes_over_with_its_argv() {
        let argv: Vec<OsString> = vec!["printf".into(), "%s\n".into(), "a b".into()];
        let wrapped = with_network(Path::new("/usr/sbin/ip"), &argv);
        assert_eq!(wrapped[..2], ["/bin/sh", "-c"]);
        let script = wrapped[2].to_string_lossy();
        assert!(
            script.contains("/usr/sbin/ip address add 10.0.2.15/24 dev eth0"),
            "{script}"
        );
        assert!(
            script.contains("route add default via 10.0.2.2"),
            "{script}"
        );
        assert!(script.ends_with("exec \"$@\""), "{script}");
        assert_eq!(wrapped[3..], ["vmlane", "printf", "%s\n", "a b"]);
    }

    #[test]
    fn guest_setup_runs_before_the_command_or_the_login_shell() {
        let argv: Vec<OsString> = vec!["printf".into(), "%s\n".into(), "a b".into()];
        assert_eq!(with_guest_setup(&[], &argv), argv);
        let setup = ["mount -t debugfs none /sys/kernel/debug".to_string()];
        let wrapped = with_guest_setup(&setup, &argv);
        assert_eq!(wrapped[..2], ["/bin/sh", "-c"]);
        let script = wrapped[2].to_string_lossy();
        assert!(
            script.starts_with("{ mount -t debugfs none /sys/kernel/debug\n} || {"),
            "{script}"
        );
        assert!(script.contains("exit 125; }"), "{script}");
        assert!(script.ends_with("exec \"$@\""), "{script}");
        assert_eq!(wrapped[3..], ["vmlane", "printf", "%s\n", "a b"]);
        let shell = with_guest_setup(&setup, &[]);
        assert!(shell[2]
            .to_string_lossy()
            .ends_with("exec \"${SHELL:-/bin/sh}\" -l"));
        assert_eq!(shell.len(), 4);
    }
}
