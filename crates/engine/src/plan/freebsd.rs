//! The rules for FreeBSD guests: machine and entry route from the kernel's own symbols (so
//! users never patch or describe their kernels), the kernel environment, and the root disk.

use super::error::PlanError;
use super::vm::{qemu, BackendPlan, Decided, VmPlan, SHARE_TAG};
use crate::host::Host;
use crate::kernel::FreeBsdKernel;
use crate::request::{BackendChoice, BootChoice, MachineChoice, Request};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use vmlane_backend::{Share, ShareTransport};
use vmlane_guest_freebsd::{RunFile, CHANNEL_DEVICE, INIT_PATH, SHARE_MOUNT_POINT};
use vmlane_kernel::{FreeBsdTraits, Kernel};
use vmlane_proto::{RunRequest, ShareMount};
use vmlane_qemu::{freebsd_cmdline, AccelChoice, MachineKind};
use vmlane_spec::Network;

/// Boot flag and environment that put a GENERIC-style kernel's console on the serial port.
const SERIAL_CONSOLE: &[&str] = &["-h", "hw.uart.console=io:0x3f8,br:115200"];
/// The command's `PATH`, unless the request sets one.
const DEFAULT_PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";
/// Where the probe goes in the minimal guest.
const PROBE_DIR: &str = "/vmlane/bin";
/// The token in a minimal image's run file: the init takes the run's own from the kernel
/// environment, so one image serves every run of the same probe and arguments.
pub(crate) const IMAGE_TOKEN: &str = "from-kenv";
/// Memory a FreeBSD kernel needs past its own image to get to its init.
const MIN_FREE_MIB: u64 = 64;

/// How QEMU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootRoute {
    /// At the kernel's PVH note, directly.
    Pvh,
    /// Through vmlane's boot stub, the way FreeBSD's loader enters it.
    Native,
}

/// A FreeBSD guest: its root disk runs the command and reports how it ended, on its channel
/// or with console markers carrying this run's token.
#[derive(Debug)]
pub struct FreeBsdGuest {
    /// How QEMU enters the kernel, and why; none under bhyve, whose loader enters it.
    pub route: Option<(BootRoute, &'static str)>,
    /// What the guest boots from and runs.
    pub root: FreeBsdRoot,
    /// The token of this run's console markers.
    pub token: String,
    /// The command's stdout, stderr and status come as frames on the VM's second serial port,
    /// apart from the kernel's console: on QEMU, from vmlane's own init or, in an image, from
    /// vmlane-relay, which the rc.d hook runs the command through. Otherwise (bhyve, which
    /// has no second port here) they come on the console between markers.
    pub channel: bool,
    /// Whether a panic stops at `db>` for the user.
    pub debugger: bool,
    /// With a channel: what runs, sent there once the guest is ready (the run file then names
    /// no command, so a minimal image serves every run of its probe).
    pub request: Option<RunRequest>,
}

/// What a FreeBSD guest boots from.
#[derive(Debug)]
pub enum FreeBsdRoot {
    /// vmlane's minimal guest: its init runs the program, copied in, and resets.
    Minimal {
        /// The program on the host.
        program: PathBuf,
        /// Where it is in the guest.
        guest_path: String,
        /// What the init reads at boot: the whole run, or only the channel to ask on.
        run: RunFile,
    },
    /// The user's image, whose rc.d hook runs `run` from a run disk, or vmlane-relay when `run`
    /// names a channel.
    Image {
        /// The image file.
        image: PathBuf,
        /// Whether the guest's writes land in it.
        keep_writes: bool,
        /// What the hook runs; `None` boots the image with no run disk, to multi-user.
        run: Option<RunFile>,
    },
}

impl FreeBsdGuest {
    /// Whether a saved guest can stand in for this one's boot: the minimal guest asks for its
    /// run once ready, and its root never changes (named by content, mounted read-only).
    pub(super) fn saveable(&self) -> bool {
        self.request.is_some() && matches!(self.root, FreeBsdRoot::Minimal { .. })
    }

    pub(super) fn describe(&self, vm: &VmPlan) -> Vec<String> {
        let mut lines = vec![match self.route {
            Some((route, why)) => format!(
                "accelerator {:?}, machine {:?}; {route:?} entry: {why}",
                vm.accel, vm.machine
            ),
            None => "FreeBSD kernel on bhyve".into(),
        }];
        lines.push(if self.channel {
            "output and status on COM2 (/dev/cuau1), kernel messages on the console".into()
        } else {
            "output and status on the console, between marker lines".into()
        });
        lines.push(match vm.share {
            Some(_) => "host root shared over 9p (p9fs)".into(),
            None => "the kernel has no p9fs: the host's files are not shared".into(),
        });
        lines.push(format!("kernel environment: {}", vm.cmdline));
        lines
    }
}

/// `--net user` is QEMU's: a virtio-net device on the machine's own transport, which
/// FIRECRACKER-style kernels (vtnet over virtio-mmio) and GENERIC (over PCI) both drive. A
/// kernel whose symbol table lacks vtnet would boot to a network it cannot see; one without
/// a symbol table cannot be told, and is let through.
fn check_network(
    request: &Request,
    backend: &BackendPlan,
    kernel: &Kernel,
    traits: &FreeBsdTraits,
) -> Result<(), PlanError> {
    match (&request.network, backend) {
        (Network::None, _) => Ok(()),
        (_, BackendPlan::Bhyve(_)) => Err(PlanError::NetOnBhyve),
        (_, BackendPlan::Qemu { .. }) if traits.symbols && !traits.vtnet => {
            Err(PlanError::NoVtnet {
                kernel: kernel.image.clone(),
            })
        }
        (_, BackendPlan::Qemu { .. }) => Ok(()),
    }
}

pub(super) fn plan(
    request: &Request,
    kernel: &Kernel,
    traits: FreeBsdKernel,
    host: &Host,
    accel: AccelChoice,
    token: &str,
) -> Result<Decided<FreeBsdGuest>, PlanError> {
    let machine = choose_machine(request.machine, &traits.traits);
    let backend = match request.backend {
        BackendChoice::Bhyve => BackendPlan::Bhyve(host.bhyve.clone()?),
        BackendChoice::Auto if host.freebsd_host => BackendPlan::Bhyve(host.bhyve.clone()?),
        BackendChoice::Auto | BackendChoice::Qemu => qemu(host)?,
    };
    check_network(request, &backend, kernel, &traits.traits)?;
    let route = match backend {
        BackendPlan::Qemu { .. } => {
            Some(choose_route(request.freebsd.boot, accel, &traits.traits)?)
        }
        BackendPlan::Bhyve(_) => None,
    };
    if matches!(route, Some((BootRoute::Native, _))) {
        check_native_entry(traits.native_entry, kernel, request.memory_mib())?;
    }
    let share = traits.traits.p9fs.then(|| Share {
        host_dir: PathBuf::from("/"),
        tag: SHARE_TAG.into(),
        transport: ShareTransport::NineP,
        writable: false,
        plugged_later: false,
    });
    let boot_only = request.freebsd.boot_only;
    if boot_only && request.freebsd.image.is_none() {
        return Err(PlanError::BootNeedsImage);
    }
    // A boot that runs nothing has no results to carry.
    let channel = matches!(backend, BackendPlan::Qemu { .. }) && !boot_only;
    let stable = stable_token(request, kernel);
    // A minimal guest that gets its run on the channel can be saved once it is ready, so its
    // kernel environment must be the same from run to run.
    let token = if channel && request.freebsd.image.is_none() {
        stable.as_str()
    } else {
        token
    };
    if !channel && !boot_only && request.input != vmlane_spec::Input::Null {
        return Err(PlanError::InputOnBhyve);
    }
    // vmlane-relay mounts the share in an image; without a channel nothing would.
    let shared = share.is_some() && (channel || request.freebsd.image.is_none());
    let (root, run) = root(request, token, shared)?;
    let (root, request_sent) = split_run(root, run, channel, request.input);
    let mut append: Vec<String> = Vec::new();
    if machine == MachineKind::Q35 {
        // GENERIC-style kernels pick the video console unless told otherwise.
        append.extend(SERIAL_CONSOLE.iter().map(|w| w.to_string()));
    }
    append.extend(request.append.iter().cloned());
    let init_path = matches!(root, FreeBsdRoot::Minimal { .. }).then_some(INIT_PATH);
    let debugger = request.freebsd.debugger;
    Ok(Decided {
        backend,
        machine,
        cmdline: freebsd_cmdline(accel, token, init_path, debugger, channel, &append),
        share,
        rwdirs: Vec::new(),
        guest: FreeBsdGuest {
            route,
            root,
            token: token.into(),
            debugger,
            channel,
            request: request_sent,
        },
    })
}

/// The loader route works everywhere; PVH is faster but needs a paravirtual clock, which
/// only hardware KVM gives a FreeBSD guest.
/// A token for runs whose kernel environment must not change between them: their output is
/// on the channel, so the console's markers only need to stand out from the kernel's lines.
fn stable_token(request: &Request, kernel: &Kernel) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(kernel.image.as_os_str().as_bytes());
    hash.update([0]);
    hash.update(request.argv.first().map_or(&[][..], |a| a.as_bytes()));
    let hex: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("m{hex}")
}

fn choose_route(
    choice: BootChoice,
    accel: AccelChoice,
    traits: &FreeBsdTraits,
) -> Result<(BootRoute, &'static str), PlanError> {
    let kvm = accel != AccelChoice::Tcg;
    Ok(match choice {
        BootChoice::Native => (BootRoute::Native, "asked for with --boot native"),
        BootChoice::Pvh if !traits.pvh => return Err(PlanError::NoPvhNote),
        BootChoice::Pvh => (BootRoute::Pvh, "asked for with --boot pvh"),
        BootChoice::Auto if !traits.pvh => (BootRoute::Native, "the kernel has no PVH entry"),
        BootChoice::Auto if !kvm => (
            BootRoute::Native,
            "under TCG a FreeBSD kernel entered at PVH has no paravirtual clock",
        ),
        BootChoice::Auto => (
            BootRoute::Pvh,
            "KVM gives the kernel its clock at the PVH entry",
        ),
    })
}

/// microvm for kernels that find their devices without ACPI, q35 for the rest.
fn choose_machine(choice: MachineChoice, traits: &FreeBsdTraits) -> MachineKind {
    match choice {
        MachineChoice::Q35 => MachineKind::Q35,
        MachineChoice::Microvm => MachineKind::Microvm,
        MachineChoice::Auto if traits.boots_without_acpi() => MachineKind::Microvm,
        MachineChoice::Auto => MachineKind::Q35,
    }
}

/// The boot stub can enter the kernel, and the kernel fits in the VM with room of its own.
fn check_native_entry(
    entry: Result<u64, vmlane_freebsd_boot::BootError>,
    kernel: &Kernel,
    memory_mib: u32,
) -> Result<(), PlanError> {
    let needed_mib = entry.map_err(PlanError::NativeEntry)?.div_ceil(1 << 20) + MIN_FREE_MIB;
    if u64::from(memory_mib) < needed_mib {
        return Err(PlanError::TooLittleMemory {
            kernel: kernel.image.clone(),
            needed_mib,
            memory_mib,
        });
    }
    Ok(())
}

/// The root: the user's image with the command as given, or vmlane's minimal guest with the
/// command's program (a host path) copied in; either reports on the channel when there is one.
/// The guest's root and the whole run, as the run file would say it without a channel.
fn root(request: &Request, token: &str, shared: bool) -> Result<(FreeBsdRoot, RunFile), PlanError> {
    let raw_argv = || request.argv.iter().map(|a| a.as_bytes().to_vec());
    if let Some(image) = &request.freebsd.image {
        let run = RunFile {
            token: token.into(),
            cwd: guest_cwd(&request.cwd, shared),
            share_tag: shared.then(|| SHARE_TAG.to_string()),
            channel: None,
            argv: raw_argv().collect(),
            env: guest_env(request),
        };
        let root = FreeBsdRoot::Image {
            image: request.cwd.join(image),
            keep_writes: request.freebsd.keep_image,
            // A boot check has no run disk, so rc goes on to multi-user.
            run: (!request.freebsd.boot_only).then(|| run.clone()),
        };
        return Ok((root, run));
    }
    let program = request.cwd.join(request.argv.first().ok_or(
        if request.argv.is_empty() && request.input == vmlane_spec::Input::Terminal {
            PlanError::ShellNeedsImage
        } else {
            PlanError::NoProgram
        },
    )?);
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "probe".into());
    let guest_path = format!("{PROBE_DIR}/{name}");
    let mut argv = vec![guest_path.clone().into_bytes()];
    argv.extend(raw_argv().skip(1));
    let run = RunFile {
        token: IMAGE_TOKEN.into(),
        cwd: guest_cwd(&request.cwd, shared),
        share_tag: shared.then(|| SHARE_TAG.to_string()),
        channel: None,
        argv,
        env: guest_env(request),
    };
    let root = FreeBsdRoot::Minimal {
        program,
        guest_path,
        run: run.clone(),
    };
    Ok((root, run))
}

/// With a channel the command, its directory, environment, share and input go there as a
/// request, and the guest's run file only names the channel; without one (bhyve) the run
/// file says everything and stdin is the console.
fn split_run(
    root: FreeBsdRoot,
    run: RunFile,
    channel: bool,
    input: vmlane_spec::Input,
) -> (FreeBsdRoot, Option<RunRequest>) {
    if !channel {
        return (root, None);
    }
    let channel_only = |token: &str| RunFile {
        token: token.into(),
        cwd: b"/".to_vec(),
        share_tag: None,
        channel: Some(CHANNEL_DEVICE.to_string()),
        argv: Vec::new(),
        env: Vec::new(),
    };
    let root = match root {
        FreeBsdRoot::Minimal {
            program,
            guest_path,
            run,
        } => FreeBsdRoot::Minimal {
            program,
            guest_path,
            run: channel_only(&run.token),
        },
        FreeBsdRoot::Image {
            image,
            keep_writes,
            run,
        } => FreeBsdRoot::Image {
            image,
            keep_writes,
            run: run.map(|run| channel_only(&run.token)),
        },
    };
    let request = RunRequest {
        argv: run.argv,
        env: run.env,
        cwd: run.cwd,
        share: run.share_tag.map(|tag| ShareMount {
            fstype: "p9fs".into(),
            tag,
            options: String::new(),
        }),
        rwdirs: Vec::new(),
        input: input.into(),
    };
    (root, Some(request))
}

fn guest_cwd(cwd: &Path, shared: bool) -> Vec<u8> {
    if !shared {
        return b"/".to_vec();
    }
    let mut path = SHARE_MOUNT_POINT.as_bytes().to_vec();
    path.extend_from_slice(cwd.as_os_str().as_bytes());
    path
}

fn guest_env(request: &Request) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = vec![
        format!("PATH={DEFAULT_PATH}").into_bytes(),
        b"HOME=/".to_vec(),
        b"TERM=vt100".to_vec(),
    ];
    for (key, value) in &request.env {
        let prefix = [key.as_bytes(), b"="].concat();
        env.retain(|e| !e.starts_with(&prefix));
        env.push([prefix.as_slice(), value.as_bytes()].concat());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake;
    use crate::kernel::fake::{freebsd, FIRECRACKER, GENERIC};
    use crate::plan::GuestPlan;
    use vmlane_qemu::HostKvm;

    fn request(argv: &[&str]) -> Request {
        Request::new(argv.iter().map(Into::into).collect(), "/work".into())
    }

    fn planned(
        request: &Request,
        traits: FreeBsdTraits,
        kvm: HostKvm,
    ) -> Result<super::super::Plan, PlanError> {
        super::super::plan(request, freebsd(traits, 32 << 20), &fake::host(kvm), "tok")
    }

    fn guest(plan: &super::super::Plan) -> &FreeBsdGuest {
        match &plan.guest {
            GuestPlan::FreeBsd(guest) => guest,
            GuestPlan::Linux(_) => unreachable!(),
        }
    }

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
        let error = choose_route(BootChoice::Pvh, AccelChoice::Kvm, &no_note).unwrap_err();
        assert!(error.to_string().contains("options XENHVM"), "{error}");
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
    fn a_probe_runs_in_the_minimal_guest_from_vmlanes_init() {
        let mut asked = request(&["./probe", "exit", "7"]);
        asked.env = vec![("PATH".into(), "/x".into())];
        let plan = planned(&asked, FIRECRACKER, HostKvm::Pvm).unwrap();
        assert_eq!(plan.vm.machine, MachineKind::Microvm);
        let guest = guest(&plan);
        assert_eq!(guest.route.map(|r| r.0), Some(BootRoute::Native));
        let FreeBsdRoot::Minimal {
            program,
            guest_path,
            run,
        } = &guest.root
        else {
            panic!("{:?}", guest.root)
        };
        assert_eq!(program, Path::new("/work/./probe"));
        assert_eq!(guest_path, "/vmlane/bin/probe");
        // The run file only names the channel; the run goes there.
        assert_eq!(run.token, IMAGE_TOKEN);
        assert!(run.argv.is_empty() && run.env.is_empty(), "{run:?}");
        assert_eq!(run.share_tag, None);
        let sent = guest.request.as_ref().unwrap();
        assert_eq!(
            sent.argv,
            [
                b"/vmlane/bin/probe".to_vec(),
                b"exit".to_vec(),
                b"7".to_vec()
            ]
        );
        assert_eq!(sent.cwd, b"/", "nothing is shared without p9fs");
        assert_eq!(sent.share, None);
        assert_eq!(sent.input, vmlane_proto::Input::Null);
        assert_eq!(
            sent.env,
            [
                b"HOME=/".to_vec(),
                b"TERM=vt100".to_vec(),
                b"PATH=/x".to_vec()
            ]
        );
        let cmdline = &plan.vm.cmdline;
        let words = format!("vmlane.token={} init_path=/vmlane/init", guest.token);
        assert!(cmdline.contains(&words), "{cmdline}");
        // The same from run to run, so the ready guest can be saved and restored.
        let again = super::super::plan(
            &asked,
            freebsd(FIRECRACKER, 32 << 20),
            &fake::host(HostKvm::Pvm),
            "other",
        )
        .unwrap();
        assert_eq!(&again.vm.cmdline, cmdline);
        assert!(plan.vm.warm.is_ok(), "{:?}", plan.vm.warm);
        assert!(
            cmdline.contains("machdep.disable_tsc_calibration=0"),
            "{cmdline}"
        );
        assert!(!cmdline.contains("hw.uart.console"), "{cmdline}");
        assert!(guest.channel);
        assert_eq!(run.channel.as_deref(), Some("/dev/cuau1"));
        assert!(
            cmdline.contains("hint.uart.1.at=isa hint.uart.1.port=0x2F8 hint.uart.1.irq=3"),
            "{cmdline}"
        );
    }

    #[test]
    fn generic_kernels_get_q35_with_a_serial_console_and_user_words_last() {
        let mut asked = request(&["/bin/sh", "-c", "exit 5"]);
        asked.freebsd.image = Some("img/freebsd.img".into());
        asked.append = vec!["boot_verbose".into()];
        let plan = planned(&asked, GENERIC, HostKvm::Pvm).unwrap();
        assert_eq!(plan.vm.machine, MachineKind::Q35);
        let cmdline = &plan.vm.cmdline;
        assert!(
            cmdline.ends_with("-h hw.uart.console=io:0x3f8,br:115200 boot_verbose"),
            "{cmdline}"
        );
        assert!(
            !cmdline.contains("init_path"),
            "an image boots its own userland: {cmdline}"
        );
        let FreeBsdRoot::Image {
            image,
            keep_writes,
            run,
        } = &guest(&plan).root
        else {
            panic!()
        };
        let run = run.as_ref().unwrap();
        assert_eq!(image, Path::new("/work/img/freebsd.img"));
        assert!(!keep_writes);
        assert_eq!(run.token, "tok");
        assert!(plan.vm.warm.is_err(), "an image is booted every time");
        assert!(run.argv.is_empty());
        let sent = guest(&plan).request.as_ref().unwrap();
        assert_eq!(sent.argv[0], b"/bin/sh");
        assert_eq!(sent.cwd, b"/", "an image has no share");
        // The image's rc.d hook runs vmlane-relay, which takes the command on COM2.
        assert!(guest(&plan).channel);
        assert_eq!(run.channel.as_deref(), Some("/dev/cuau1"));
        assert!(
            cmdline.contains("hint.uart.1.at=isa hint.uart.1.port=0x2F8 hint.uart.1.irq=3"),
            "{cmdline}"
        );
    }

    #[test]
    fn a_network_is_for_qemu_and_refused_on_bhyve_with_why() {
        let mut asked = request(&["/bin/sh"]);
        asked.freebsd.image = Some("freebsd.img".into());
        asked.network = Network::User {
            forwards: vec![vmlane_spec::PortForward {
                host: 2222,
                guest: 22,
            }],
        };
        for traits in [FIRECRACKER, GENERIC] {
            let plan = planned(&asked, traits, HostKvm::Missing).unwrap();
            assert_eq!(plan.vm.network, asked.network);
            assert_eq!(plan.vm.ports.len(), 1);
        }
        let kernel = freebsd(FIRECRACKER, 32 << 20);
        let error = super::super::plan(&asked, kernel, &fake::bhyve_host(), "tok")
            .unwrap_err()
            .to_string();
        assert!(error.contains("--backend qemu"), "{error}");
        let no_vtnet = FreeBsdTraits {
            vtnet: false,
            ..FIRECRACKER
        };
        let error = planned(&asked, no_vtnet, HostKvm::Missing)
            .unwrap_err()
            .to_string();
        assert!(error.contains("device vtnet"), "{error}");
        let unknown = FreeBsdTraits {
            vtnet: false,
            symbols: false,
            ..FIRECRACKER
        };
        assert!(
            planned(&asked, unknown, HostKvm::Missing).is_ok(),
            "no symbols: cannot tell"
        );
    }

    #[test]
    fn a_boot_check_boots_the_image_with_no_run_and_no_channel() {
        let mut asked = request(&[]);
        asked.freebsd.image = Some("deploy.img".into());
        asked.freebsd.boot_only = true;
        let plan = planned(&asked, FIRECRACKER, HostKvm::Pvm).unwrap();
        let guest = guest(&plan);
        let FreeBsdRoot::Image { image, run, .. } = &guest.root else {
            panic!("{:?}", guest.root)
        };
        assert_eq!(image, Path::new("/work/deploy.img"));
        assert!(run.is_none(), "no run disk: rc goes on to multi-user");
        assert!(!guest.channel && guest.request.is_none());
        assert!(
            !plan.vm.cmdline.contains("hint.uart.1"),
            "{}",
            plan.vm.cmdline
        );
        asked.freebsd.image = None;
        let error = planned(&asked, FIRECRACKER, HostKvm::Pvm).unwrap_err();
        assert!(matches!(error, PlanError::BootNeedsImage), "{error}");
    }

    #[test]
    fn under_bhyve_an_image_reports_on_the_console_without_com2() {
        let mut asked = request(&["/bin/sh", "-c", "exit 5"]);
        asked.freebsd.image = Some("freebsd.img".into());
        let kernel = freebsd(FIRECRACKER, 32 << 20);
        let plan = super::super::plan(&asked, kernel, &fake::bhyve_host(), "tok").unwrap();
        assert!(matches!(plan.vm.backend, BackendPlan::Bhyve(_)));
        let guest = guest(&plan);
        assert!(!guest.channel);
        let FreeBsdRoot::Image { run: Some(run), .. } = &guest.root else {
            panic!("{:?}", guest.root)
        };
        assert_eq!(run.channel, None, "the hook prints markers instead");
        assert_eq!(run.argv[0], b"/bin/sh", "the run disk has the command");
        assert!(guest.request.is_none());
        assert!(
            !plan.vm.cmdline.contains("hint.uart.1"),
            "{}",
            plan.vm.cmdline
        );
        assert!(plan
            .describe()
            .iter()
            .any(|l| l.contains("between marker lines")));
    }

    #[test]
    fn a_p9fs_kernel_shares_the_host_root_and_works_in_the_users_directory() {
        let traits = FreeBsdTraits {
            p9fs: true,
            ..FIRECRACKER
        };
        let plan = planned(&request(&["./probe"]), traits, HostKvm::Pvm).unwrap();
        assert!(plan
            .vm
            .share
            .as_ref()
            .is_some_and(|s| s.transport == ShareTransport::NineP));
        let sent = guest(&plan).request.clone().unwrap();
        assert_eq!(sent.cwd, b"/host/work");
        let p9fs = Some(ShareMount {
            fstype: "p9fs".into(),
            tag: "vmlane-root".into(),
            options: String::new(),
        });
        assert_eq!(sent.share, p9fs);
        // In an image too: vmlane-relay mounts it.
        let mut asked = request(&["/bin/ls"]);
        asked.freebsd.image = Some("freebsd.img".into());
        let plan = planned(&asked, traits, HostKvm::Pvm).unwrap();
        let sent = guest(&plan).request.clone().unwrap();
        assert_eq!(
            (sent.cwd.as_slice(), sent.share),
            (&b"/host/work"[..], p9fs)
        );
    }

    #[test]
    fn a_kernel_too_large_for_the_vm_is_refused_naming_what_it_needs() {
        let mut asked = request(&["./probe"]);
        asked.memory_mib = Some(128);
        let kernel = freebsd(FIRECRACKER, 100 << 20);
        let error = super::super::plan(&asked, kernel, &fake::host(HostKvm::Pvm), "t").unwrap_err();
        assert!(
            error.to_string().contains(
                "needs at least 164 MiB of guest memory; the VM has 128 MiB (raise it with -m)"
            ),
            "{error}"
        );
        // At the PVH entry the stub's layout does not matter.
        asked.freebsd.boot = BootChoice::Pvh;
        let kernel = freebsd(FIRECRACKER, 100 << 20);
        assert!(super::super::plan(&asked, kernel, &fake::host(HostKvm::Pvm), "t").is_ok());
    }

    #[test]
    fn the_debugger_keeps_panics_at_db_and_bhyve_needs_a_freebsd_host() {
        let mut asked = request(&["./probe"]);
        asked.freebsd.debugger = true;
        let plan = planned(&asked, FIRECRACKER, HostKvm::Pvm).unwrap();
        assert!(guest(&plan).debugger);
        assert!(
            !plan.vm.cmdline.contains("debugger_on_panic"),
            "{}",
            plan.vm.cmdline
        );
        asked.backend = BackendChoice::Bhyve;
        let error = planned(&asked, FIRECRACKER, HostKvm::Pvm)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("bhyve is not installed") && error.contains("FreeBSD host"),
            "{error}"
        );
    }

    #[test]
    fn a_freebsd_run_without_an_image_needs_a_program() {
        let error = planned(&request(&[]), FIRECRACKER, HostKvm::Pvm).unwrap_err();
        assert!(error.to_string().contains("needs a command"), "{error}");
    }

    #[test]
    fn a_freebsd_shell_runs_from_an_image_with_the_terminal_on_com2() {
        let mut shell = request(&[]);
        shell.input = vmlane_spec::Input::Terminal;
        let error = planned(&shell, FIRECRACKER, HostKvm::Pvm).unwrap_err();
        assert!(error.to_string().contains("--image IMG"), "{error}");
        shell.freebsd.image = Some("freebsd.img".into());
        let plan = planned(&shell, FIRECRACKER, HostKvm::Pvm).unwrap();
        let sent = guest(&plan).request.clone().unwrap();
        assert!(sent.argv.is_empty(), "the login shell");
        assert!(matches!(sent.input, vmlane_proto::Input::Terminal(_)));
        let kernel = freebsd(FIRECRACKER, 32 << 20);
        let error = super::super::plan(&shell, kernel, &fake::bhyve_host(), "tok").unwrap_err();
        assert!(error.to_string().contains("--backend qemu"), "{error}");
    }
}
