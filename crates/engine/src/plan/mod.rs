//! Step 4, the plan: every decision about the VM, made from the request, the kernel and the
//! host alone. Pure: nothing here reads a file or starts a process, so every rule is
//! unit-tested with made-up kernels and hosts. One module per guest OS.

mod error;
mod freebsd;
mod linux;
mod vm;

pub use error::{PlanError, ShareError, VirtioFsProblem};
pub use freebsd::{BootRoute, FreeBsdGuest, FreeBsdRoot};
pub use linux::LinuxGuest;
pub use vm::{BackendPlan, ColdReason, PortUse, VmPlan};

use crate::host::Host;
use crate::kernel::{GuestKernel, KernelTraits};
use crate::request::{BackendChoice, OsChoice, Request};
use vmlane_backend::GuestOs;
use vmlane_kernel::Kernel;
use vmlane_qemu::{resolve_accel, MachineKind};
use vmlane_spec::{DiskSpec, Network};

/// Everything decided about one run.
#[derive(Debug)]
pub struct Plan {
    /// The kernel to boot.
    pub kernel: Kernel,
    /// The VM, the same in kind for every guest OS.
    pub vm: VmPlan,
    /// What is particular to the guest OS.
    pub guest: GuestPlan,
}

/// What is particular to the guest OS; a new OS is a new variant.
#[derive(Debug)]
pub enum GuestPlan {
    /// vmlane's Linux init in an initramfs, talking over the vmlane port.
    Linux(LinuxGuest),
    /// A FreeBSD root disk, reporting on its channel (COM2) or with marker lines on the
    /// console.
    FreeBsd(FreeBsdGuest),
}

impl Plan {
    /// The guest's OS.
    pub fn os(&self) -> GuestOs {
        match self.guest {
            GuestPlan::Linux(_) => GuestOs::Linux,
            GuestPlan::FreeBsd(_) => GuestOs::FreeBsd,
        }
    }

    /// What was decided and why, a line each, for `-v`.
    pub fn describe(&self) -> Vec<String> {
        match &self.guest {
            GuestPlan::Linux(guest) => guest.describe(&self.vm),
            GuestPlan::FreeBsd(guest) => guest.describe(&self.vm),
        }
    }
}

/// Plans `request` on `kernel` and `host`. `token` names this run on the console of guests
/// that report there.
pub fn plan(
    request: &Request,
    kernel: GuestKernel,
    host: &Host,
    token: &str,
) -> Result<Plan, PlanError> {
    check_arch(request, &kernel.kernel)?;
    check_os(request, &kernel)?;
    let (accel, accel_notice) = resolve_accel(request.accel, &host.kvm);
    let decided = match kernel.traits {
        KernelTraits::Linux(traits) => {
            linux::plan(request, &kernel.kernel, traits, host, accel)?.map(GuestPlan::Linux)
        }
        KernelTraits::FreeBsd(traits) => {
            freebsd::plan(request, &kernel.kernel, traits, host, accel, token)?
                .map(GuestPlan::FreeBsd)
        }
    };
    let vm = VmPlan {
        backend: decided.backend,
        accel,
        accel_notice,
        machine: decided.machine,
        cpus: request.cpus(),
        memory_mib: request.memory_mib(),
        numa: request.numa.clone(),
        cmdline: decided.cmdline,
        share: decided.share,
        rwdirs: decided.rwdirs,
        disks: absolute_disks(request),
        ports: ports(request),
        network: request.network.clone(),
        gdb: request.gdb,
        timeout: request.timeout,
        host_setup: request.host_setup.clone(),
        cwd: request.cwd.clone(),
        warm: Ok(()),
        save_on_first_use: request.save_on_first_use,
    };
    let mut plan = Plan {
        kernel: kernel.kernel,
        vm,
        guest: decided.guest,
    };
    plan.vm.warm = warmth(request, &plan);
    Ok(plan)
}

/// Whether a saved guest may stand in for this run's boot: only where everything that
/// differs between runs reaches the guest after its init is ready.
fn warmth(request: &Request, plan: &Plan) -> Result<(), ColdReason> {
    let virtiofs = plan.vm.share.as_ref().is_some_and(|share| {
        share.transport == vmlane_backend::ShareTransport::VirtioFs && !share.plugged_later
    });
    let image = |disk: &DiskSpec| matches!(disk, DiskSpec::Image { .. });
    let lost_timer = match plan.vm.machine {
        MachineKind::Pseries { .. } => ColdReason::PseriesPeriodicTick,
        _ => ColdReason::RiscvPeriodicTick,
    };
    let rules = [
        (request.cold, ColdReason::Asked),
        (
            matches!(&plan.guest, GuestPlan::FreeBsd(guest) if !guest.saveable()),
            ColdReason::FreeBsdImage,
        ),
        (
            matches!(plan.vm.backend, BackendPlan::Bhyve(_)),
            ColdReason::Bhyve,
        ),
        (request.gdb.is_some(), ColdReason::Debugger),
        (request.network != Network::None, ColdReason::Network),
        (request.disks.iter().any(image), ColdReason::DiskImage),
        (
            matches!(&plan.guest, GuestPlan::Linux(guest) if !guest.timers_survive_restore),
            lost_timer,
        ),
        (virtiofs, ColdReason::VirtioFs),
    ];
    match rules.into_iter().find(|(applies, _)| *applies) {
        Some((_, reason)) => Err(reason),
        None => Ok(()),
    }
}

/// The kernel is of the guest's architecture when `--arch` names one; without it, the
/// kernel's own decides (the default kernel is already one of the host's).
fn check_arch(request: &Request, kernel: &Kernel) -> Result<(), PlanError> {
    let found = kernel.format.arch();
    let Some(wanted) = request.arch.filter(|&wanted| wanted != found) else {
        return Ok(());
    };
    Err(PlanError::WrongArch {
        kernel: kernel.image.clone(),
        found,
        wanted,
    })
}

/// The guest OS is the kernel's, which must be the one asked for, and the options given
/// must be ones that OS has, before anything tries to boot one OS's kernel as the other's.
fn check_os(request: &Request, kernel: &GuestKernel) -> Result<(), PlanError> {
    let found = match kernel.traits {
        KernelTraits::Linux(_) => OsChoice::Linux,
        KernelTraits::FreeBsd(_) => OsChoice::FreeBsd,
    };
    let name = |os| match os {
        OsChoice::FreeBsd => "FreeBSD",
        _ => "Linux",
    };
    if request.os != OsChoice::Auto && request.os != found {
        return Err(PlanError::WrongOs {
            kernel: kernel.kernel.image.clone(),
            found: name(found),
            wanted: name(request.os),
        });
    }
    match found {
        OsChoice::FreeBsd => check_freebsd_options(request),
        _ if request.freebsd.image.is_some() => Err(PlanError::ImageNeedsFreeBsd),
        _ if request.backend == BackendChoice::Bhyve => Err(PlanError::BhyveNeedsFreeBsd),
        _ => Ok(()),
    }
}

/// A FreeBSD guest has none of what vmlane's Linux init does. `--net` it has on QEMU,
/// which the FreeBSD plan checks once it knows the backend.
fn check_freebsd_options(request: &Request) -> Result<(), PlanError> {
    if request.gdb.is_some() {
        return Err(PlanError::LinuxOnly("--gdb"));
    }
    if request.linux.share != vmlane_spec::ShareKind::Auto {
        return Err(PlanError::LinuxOnly("--share"));
    }
    if request.linux.root.is_some() {
        return Err(PlanError::LinuxOnly("--root"));
    }
    if !request.rwdirs.is_empty() {
        return Err(PlanError::RwDirNeedsLinux);
    }
    for (key, used) in [
        ("modules", !request.linux.modules.is_empty()),
        ("host_setup", !request.host_setup.is_empty()),
        (
            "guest_setup` or `files",
            !request.linux.guest_setup.is_empty(),
        ),
        ("numa", !request.numa.is_empty()),
    ] {
        if used {
            return Err(PlanError::NotForFreeBsd(key));
        }
    }
    Ok(())
}

/// Disk images named relative to the request's directory, made absolute.
fn absolute_disks(request: &Request) -> Vec<DiskSpec> {
    request
        .disks
        .iter()
        .map(|disk| match disk {
            DiskSpec::Image { path, read_only } => DiskSpec::Image {
                path: request.cwd.join(path),
                read_only: *read_only,
            },
            scratch => scratch.clone(),
        })
        .collect()
}

/// Every host port the VM will listen on.
fn ports(request: &Request) -> Vec<PortUse> {
    let mut ports = Vec::new();
    if let Network::User { forwards } = &request.network {
        ports.extend(forwards.iter().map(|forward| PortUse {
            port: forward.host,
            what: format!("--forward {}:{}", forward.host, forward.guest),
        }));
    }
    if let Some(port) = request.gdb {
        ports.push(PortUse {
            port,
            what: "--gdb".into(),
        });
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake;
    use crate::kernel::fake::{freebsd, linux, FIRECRACKER};
    use vmlane_qemu::HostKvm;
    use vmlane_spec::{NumaNode, PortForward};

    fn request() -> Request {
        Request::new(vec!["true".into()], "/work".into())
    }

    fn error(request: &Request, kernel: GuestKernel) -> String {
        plan(request, kernel, &fake::host(HostKvm::Pvm), "t")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_kernel_decides_the_os_and_a_mismatch_is_refused_in_one_line() {
        let host = fake::host(HostKvm::Pvm);
        let linux_kernel = || linux("CONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\n", None);
        let freebsd_kernel = || freebsd(FIRECRACKER, 32 << 20);
        let auto = request();
        assert_eq!(
            plan(&auto, linux_kernel(), &host, "t").unwrap().os(),
            GuestOs::Linux
        );
        let mut probe = request();
        probe.argv = vec!["/work/probe".into()];
        assert_eq!(
            plan(&probe, freebsd_kernel(), &host, "t").unwrap().os(),
            GuestOs::FreeBsd
        );

        let mut linux_only = request();
        linux_only.os = OsChoice::Linux;
        let message = error(&linux_only, freebsd_kernel());
        assert!(
            message.contains("is a FreeBSD kernel, but Linux was asked for"),
            "{message}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
        let mut freebsd_only = request();
        freebsd_only.os = OsChoice::FreeBsd;
        let message = error(&freebsd_only, linux_kernel());
        assert!(
            message.contains("is a Linux kernel, but FreeBSD was asked for"),
            "{message}"
        );
    }

    #[test]
    fn freebsd_options_are_refused_for_linux_and_linux_options_for_freebsd() {
        let linux_kernel = || linux("CONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\n", None);
        let freebsd_kernel = || freebsd(FIRECRACKER, 32 << 20);
        let mut image = request();
        image.freebsd.image = Some("x.img".into());
        assert!(
            error(&image, linux_kernel()).contains("--image runs a command inside a FreeBSD image")
        );
        let mut bhyve = request();
        bhyve.backend = BackendChoice::Bhyve;
        assert!(error(&bhyve, linux_kernel()).contains("the bhyve backend runs FreeBSD guests"));

        let refused = |change: &dyn Fn(&mut Request), wanted: &str| {
            let mut asked = request();
            change(&mut asked);
            let message = error(&asked, freebsd_kernel());
            assert!(message.contains(wanted), "{wanted}: {message}");
        };
        refused(&|r| r.gdb = Some(1234), "--gdb is for Linux guests");
        refused(
            &|r| r.linux.share = vmlane_spec::ShareKind::NineP,
            "--share is for Linux guests",
        );
        refused(
            &|r| r.linux.modules = vec!["zfs".into()],
            "profile key `modules`",
        );
        refused(
            &|r| r.rwdirs = vec![vmlane_spec::RwDir::parse("out".as_ref()).unwrap()],
            "--rwdir is for Linux guests: vmlane's FreeBSD guest mounts the host's files read-only",
        );
        refused(
            &|r| r.host_setup = vec!["true".into()],
            "profile key `host_setup`",
        );
        refused(
            &|r| r.linux.guest_setup = vec!["true".into()],
            "`guest_setup` or `files`",
        );
        refused(
            &|r| {
                r.numa = vec![NumaNode {
                    cpus: 1,
                    memory_mib: 512,
                }]
            },
            "profile key `numa`",
        );
    }

    #[test]
    fn forwarded_and_debugger_ports_are_held_naming_their_flag() {
        let mut asked = request();
        asked.network = Network::User {
            forwards: vec![PortForward {
                host: 8080,
                guest: 80,
            }],
        };
        asked.gdb = Some(1234);
        assert_eq!(
            ports(&asked),
            [
                PortUse {
                    port: 8080,
                    what: "--forward 8080:80".into()
                },
                PortUse {
                    port: 1234,
                    what: "--gdb".into()
                },
            ]
        );
        assert!(ports(&request()).is_empty());
    }

    #[test]
    fn disk_images_are_taken_from_the_requests_directory() {
        let mut asked = request();
        asked.disks = vec![
            DiskSpec::Scratch { bytes: 1 << 30 },
            DiskSpec::Image {
                path: "base.img".into(),
                read_only: true,
            },
            DiskSpec::Image {
                path: "/abs.img".into(),
                read_only: false,
            },
        ];
        assert_eq!(
            absolute_disks(&asked),
            [
                DiskSpec::Scratch { bytes: 1 << 30 },
                DiskSpec::Image {
                    path: "/work/base.img".into(),
                    read_only: true
                },
                DiskSpec::Image {
                    path: "/abs.img".into(),
                    read_only: false
                },
            ]
        );
    }

    #[test]
    fn a_host_without_qemu_is_told_what_to_install() {
        let mut host = fake::host(HostKvm::Pvm);
        host.qemu = Err(crate::host::Missing {
            program: "qemu-system-x86_64".into(),
            hint: vmlane_qemu::QEMU_HINT.into(),
        });
        let message = plan(
            &request(),
            linux("CONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\n", None),
            &host,
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("qemu-system-x86_64 is not installed: install it with `apt-get install qemu-system-x86`"), "{message}");
    }
}
