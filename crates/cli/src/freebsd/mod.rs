//! A FreeBSD run: the kernel is entered through vmlane's boot stub or at its PVH entry, its
//! root is a UFS image vmlane stages per run (its own init and the probe, or a full image with
//! a run disk), and the result comes back as marker lines on the serial console.

mod probe;
mod route;
mod stage;

use crate::launch::{
    attach_disks, check_disks, notice_once, BackendChoice, Launch, LaunchError, Streams,
};
use route::{choose_machine, choose_route, native_boot, BootRoute};
use stage::{stage_minimal, stage_run_disk, SHARE_TAG};
use std::path::{Path, PathBuf};
use vmlane_backend::{
    run_session, Backend, Disk, GuestChannel, GuestOs, Machine, RunDir, Session, Share,
    ShareTransport, StopSignals, Timings,
};
use vmlane_bhyve::BhyveBackend;
use vmlane_guest_freebsd::INIT_PATH;
use vmlane_kernel::{freebsd_traits, Kernel};
use vmlane_qemu::{freebsd_cmdline, resolve_accel, HostKvm, MachineKind, QemuBackend};
use vmlane_spec::Outcome;

/// Boot flag and environment that put a GENERIC-style kernel's console on the serial port.
const SERIAL_CONSOLE: &[&str] = &["-h", "hw.uart.console=io:0x3f8,br:115200"];

/// Boots a FreeBSD kernel and runs the launch's command in it.
pub fn launch_freebsd(
    launch: &Launch,
    kernel: &Kernel,
    streams: Streams<'_>,
    signals: &StopSignals,
    say: &dyn Fn(&str),
) -> Result<(Outcome, Timings), LaunchError> {
    let spec = &launch.spec;
    let (accel, notice) = resolve_accel(spec.accel, &HostKvm::probe(Path::new("/")));
    if let Some(notice) = notice {
        notice_once(&notice);
    }
    let traits = freebsd_traits(&kernel.image).map_err(|e| {
        LaunchError::FreeBsdGuest(format!(
            "cannot read the kernel {}: {e}",
            kernel.image.display()
        ))
    })?;
    let machine_kind = choose_machine(launch.machine, &traits);
    let backend: Box<dyn Backend> = match launch.backend {
        BackendChoice::Bhyve => Box::new(BhyveBackend::detect()?),
        BackendChoice::Auto if cfg!(target_os = "freebsd") => Box::new(BhyveBackend::detect()?),
        BackendChoice::Auto | BackendChoice::Qemu => {
            Box::new(QemuBackend::detect(accel, machine_kind)?)
        }
    };
    let qemu = backend.name() == "qemu";
    let (route, why) = choose_route(launch.boot, accel, &traits)?;
    if qemu {
        say(&format!(
            "accelerator {accel:?}, machine {machine_kind:?} ({}); {route:?} entry: {why}",
            if traits.boots_without_acpi() {
                "the kernel takes virtio-mmio devices from its command line"
            } else {
                "the kernel needs ACPI and PCI"
            }
        ));
    } else {
        say(&format!("FreeBSD kernel on {}", backend.name()));
    }
    let boot = match route {
        BootRoute::Native if qemu => Some(native_boot(launch, kernel)?),
        _ => None,
    };

    let share = traits.p9fs.then(|| Share {
        host_dir: PathBuf::from("/"),
        tag: SHARE_TAG.into(),
        transport: ShareTransport::NineP,
    });
    say(match share {
        Some(_) => "host root shared over 9p (p9fs)",
        None => "the kernel has no p9fs: the host's files are not shared",
    });
    let token = vmlane_proto::new_token();
    let run_dir = RunDir::create().map_err(LaunchError::RunDir)?;
    let mut disks = Vec::new();
    let init_path = match &launch.image {
        None => {
            let image = stage_minimal(launch, share.is_some())?;
            say(&format!("minimal FreeBSD guest {}", image.display()));
            disks.push(Disk::throwaway(image));
            Some(INIT_PATH)
        }
        Some(image) => {
            let image = spec.cwd.join(image);
            std::fs::File::open(&image).map_err(|source| LaunchError::Disk {
                path: image.clone(),
                source,
            })?;
            let run_disk = run_dir.join("run.disk");
            stage_run_disk(launch, &token, &run_disk)?;
            say(&format!("FreeBSD image {}", image.display()));
            disks.push(Disk {
                keep_writes: launch.keep_image,
                ..Disk::throwaway(image)
            });
            disks.push(Disk::throwaway(run_disk));
            None
        }
    };
    disks.extend(attach_disks(check_disks(spec)?, &run_dir)?);
    if let Some(signal) = signals.received() {
        return Ok((Outcome::Interrupted(signal), Timings::default()));
    }

    let mut append = Vec::new();
    if machine_kind == MachineKind::Q35 {
        // GENERIC-style kernels pick the video console unless told otherwise.
        append.extend(SERIAL_CONSOLE.iter().map(|w| w.to_string()));
    }
    append.extend(launch.append.iter().cloned());
    let (kernel_file, initrd) = match boot {
        Some(stub) => (stub, Some(kernel.image.clone())),
        None => (kernel.image.clone(), None),
    };
    let machine = Machine {
        os: GuestOs::FreeBsd,
        kernel: kernel_file,
        initrd,
        cmdline: freebsd_cmdline(accel, &token, init_path, launch.debugger, &append),
        cpus: spec.cpus,
        memory_mib: spec.memory_mib,
        console_socket: run_dir.join("console.sock"),
        port_socket: None,
        share,
        disks,
        run_dir: run_dir.path().to_path_buf(),
    };
    say(&format!("kernel environment: {}", machine.cmdline));
    let session = Session {
        machine,
        channel: GuestChannel::Console {
            token,
            debugger: launch.debugger,
        },
        timeout: spec.timeout,
        stdout: streams.stdout,
        stderr: streams.stderr,
        console: streams.console,
        signals,
    };
    let result = run_session(backend.as_ref(), session);
    drop(run_dir);
    Ok(result?)
}
