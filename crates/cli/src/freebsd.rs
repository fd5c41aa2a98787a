//! A FreeBSD run: the kernel is booted at its PVH entry on microvm, its root is a UFS image
//! vmlane stages per run (its own init and the probe, or a full image with a run disk), and
//! the result comes back as marker lines on the serial console.

use crate::launch::{
    disk_images, notice_once, BackendChoice, BootChoice, Launch, LaunchError, MachineChoice,
    Streams,
};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use vmlane_backend::{
    run_session, Backend, Disk, GuestChannel, GuestOs, Machine, RunDir, Session, Share,
    ShareTransport, StopSignals, Timings,
};
use vmlane_bhyve::BhyveBackend;
use vmlane_guest_freebsd::{RunFile, INIT_PATH, SHARE_MOUNT_POINT};
use vmlane_kernel::{freebsd_traits, FreeBsdTraits, Kernel};
use vmlane_qemu::{freebsd_cmdline, resolve_accel, AccelChoice, HostKvm, MachineKind, QemuBackend};
use vmlane_spec::Outcome;

const SHARE_TAG: &str = "vmlane-root";
/// Where the probe goes in the minimal guest.
const PROBE_DIR: &str = "/vmlane/bin";
const DEFAULT_PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";
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
    let traits = freebsd_traits(&kernel.image).map_err(|source| LaunchError::Disk {
        path: kernel.image.clone(),
        source,
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
            let image = run_dir.join("root.img");
            stage_minimal(launch, &token, share.is_some(), &image)?;
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
                path: image,
                keep_writes: launch.keep_image,
            });
            disks.push(Disk::throwaway(run_disk));
            None
        }
    };
    disks.extend(disk_images(spec)?.into_iter().map(Disk::throwaway));
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

/// How QEMU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BootRoute {
    /// At the kernel's PVH note, directly.
    Pvh,
    /// Through vmlane's boot stub, the way FreeBSD's loader enters it.
    Native,
}

/// The loader route works everywhere; PVH is faster but needs a paravirtual clock, which
/// only hardware KVM gives a FreeBSD guest.
fn choose_route(
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
fn choose_machine(choice: MachineChoice, traits: &FreeBsdTraits) -> MachineKind {
    match choice {
        MachineChoice::Q35 => MachineKind::Q35,
        MachineChoice::Microvm => MachineKind::Microvm,
        MachineChoice::Auto if traits.boots_without_acpi() => MachineKind::Microvm,
        MachineChoice::Auto => MachineKind::Q35,
    }
}

/// The boot stub, written once per content into vmlane's cache, after checking that the
/// kernel is one it can enter and that it fits in the VM's memory.
fn native_boot(launch: &Launch, kernel: &Kernel) -> Result<PathBuf, LaunchError> {
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

/// The minimal guest's root: vmlane's init, the probe, and what to run.
fn stage_minimal(
    launch: &Launch,
    token: &str,
    shared: bool,
    image: &Path,
) -> Result<(), LaunchError> {
    let spec = &launch.spec;
    let init = vmlane_guest_freebsd::init_binary().map_err(|why| {
        LaunchError::FreeBsdGuest(format!("vmlane's FreeBSD init is not built: {why}"))
    })?;
    let program = spec.cwd.join(&spec.argv[0]);
    check_probe(&program)?;
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "probe".into());
    let guest_program = format!("{PROBE_DIR}/{name}");
    let mut argv = vec![guest_program.as_bytes().to_vec()];
    argv.extend(spec.argv[1..].iter().map(|a| a.as_bytes().to_vec()));
    let run_file = RunFile {
        token: token.to_string(),
        cwd: guest_cwd(&spec.cwd, shared),
        share_tag: shared.then(|| SHARE_TAG.to_string()),
        argv,
        env: guest_env(launch),
    };
    let encoded = run_file
        .encode()
        .map_err(|e| LaunchError::FreeBsdGuest(format!("cannot pass the command: {e}")))?;
    let files = [vmlane_image::ExtraFile {
        path: &guest_program,
        content: vmlane_image::Content::File(&program),
        mode: 0o555,
    }];
    vmlane_image::minimal_image(init, &encoded, &files, image)
        .map_err(|e| LaunchError::FreeBsdGuest(e.to_string()))
}

/// The run disk of a full image: the command as a script its rc.d hook runs.
fn stage_run_disk(launch: &Launch, token: &str, path: &Path) -> Result<(), LaunchError> {
    let spec = &launch.spec;
    let argv: Vec<Vec<u8>> = spec.argv.iter().map(|a| a.as_bytes().to_vec()).collect();
    let cwd = guest_cwd(&spec.cwd, false);
    let script = vmlane_image::run_script(token, &cwd, &argv, &guest_env(launch))
        .map_err(|e| LaunchError::FreeBsdGuest(e.to_string()))?;
    std::fs::write(path, vmlane_image::run_disk(&script)).map_err(LaunchError::RunDir)
}

/// The working directory in the guest: the user's, under the share, when the host's files
/// are there; the root otherwise.
fn guest_cwd(cwd: &Path, shared: bool) -> Vec<u8> {
    if !shared {
        return b"/".to_vec();
    }
    let mut path = SHARE_MOUNT_POINT.as_bytes().to_vec();
    path.extend_from_slice(cwd.as_os_str().as_bytes());
    path
}

fn guest_env(launch: &Launch) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = vec![
        format!("PATH={DEFAULT_PATH}").into_bytes(),
        b"HOME=/".to_vec(),
        b"TERM=vt100".to_vec(),
    ];
    for (key, value) in &launch.spec.env {
        let prefix = [key.as_bytes(), b"="].concat();
        env.retain(|e| !e.starts_with(&prefix));
        env.push([prefix.as_slice(), value.as_bytes()].concat());
    }
    env
}

/// The probe must be a static x86-64 FreeBSD executable: the minimal guest has no libraries.
fn check_probe(program: &Path) -> Result<(), LaunchError> {
    let refuse = |why: &str| {
        Err(LaunchError::FreeBsdGuest(format!(
            "{} {why}",
            program.display()
        )))
    };
    let bytes = match std::fs::read(program) {
        Ok(bytes) => bytes,
        Err(e) => {
            return refuse(&format!(
                "cannot be read ({e}): the command of a FreeBSD run without --image is a host path to a static FreeBSD executable"
            ))
        }
    };
    match probe_kind(&bytes) {
        ProbeKind::FreeBsdStatic => Ok(()),
        ProbeKind::FreeBsdDynamic => refuse("is dynamically linked, and vmlane's minimal FreeBSD guest has no libraries: link it with -static, or run it inside a FreeBSD image with --image"),
        ProbeKind::OtherElf => refuse("is not a FreeBSD executable (its ELF header names another OS); build it for x86_64-unknown-freebsd"),
        ProbeKind::NotX86_64 => refuse("is not an x86-64 executable"),
        ProbeKind::NotElf => refuse("is not an ELF executable: the command of a FreeBSD run without --image is a host path to a static FreeBSD executable"),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ProbeKind {
    FreeBsdStatic,
    FreeBsdDynamic,
    OtherElf,
    NotX86_64,
    NotElf,
}

const ELFOSABI_FREEBSD: u8 = 9;
const EM_X86_64: u16 = 62;
const PT_INTERP: u32 = 3;

fn probe_kind(bytes: &[u8]) -> ProbeKind {
    // Offsets come from the file: every read is bounds-checked, none can overflow.
    let field = |at: usize, len: usize| bytes.get(at..at.checked_add(len)?);
    let u16_at = |at: usize| field(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| field(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |at: usize| field(at, 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return ProbeKind::NotElf;
    }
    if bytes[4] != 2 || bytes[5] != 1 || u16_at(18) != Some(EM_X86_64) {
        return ProbeKind::NotX86_64;
    }
    if bytes[7] != ELFOSABI_FREEBSD {
        return ProbeKind::OtherElf;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return ProbeKind::NotElf;
    };
    let interp = (0..usize::from(phnum)).any(|i| {
        usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i.checked_mul(usize::from(phentsize))?))
            .and_then(u32_at)
            == Some(PT_INTERP)
    });
    if interp {
        ProbeKind::FreeBsdDynamic
    } else {
        ProbeKind::FreeBsdStatic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with one program header of type `p_type`.
    fn elf(osabi: u8, machine: u16, p_type: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[7] = osabi;
        bytes[18..20].copy_from_slice(&machine.to_le_bytes());
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes());
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&p_type.to_le_bytes());
        bytes
    }

    #[test]
    fn probes_are_told_apart_by_their_elf_header() {
        assert_eq!(probe_kind(&elf(9, 62, 1)), ProbeKind::FreeBsdStatic);
        assert_eq!(probe_kind(&elf(9, 62, 3)), ProbeKind::FreeBsdDynamic);
        assert_eq!(probe_kind(&elf(0, 62, 1)), ProbeKind::OtherElf);
        assert_eq!(probe_kind(&elf(9, 183, 1)), ProbeKind::NotX86_64);
        assert_eq!(probe_kind(b"#!/bin/sh\necho hi\n"), ProbeKind::NotElf);
        assert_eq!(probe_kind(&[]), ProbeKind::NotElf);
    }

    #[test]
    fn program_headers_outside_the_file_are_not_followed() {
        let mut bytes = elf(9, 62, 3);
        bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(probe_kind(&bytes), ProbeKind::FreeBsdStatic);
    }

    #[test]
    fn the_guest_works_in_the_users_directory_only_when_it_is_shared() {
        assert_eq!(
            guest_cwd(Path::new("/home/u/src"), true),
            b"/host/home/u/src"
        );
        assert_eq!(guest_cwd(Path::new("/home/u/src"), false), b"/");
    }
}
