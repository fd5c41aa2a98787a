//! One VM run from start to end: find the kernel, choose machine and share, assemble the
//! payload, boot, and run the session. `vmlane run`, `vmlane test` and [`crate::Run`] all
//! go through [`launch_vm`].

use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use vmlane_backend::{
    run_session, BackendError, ConsoleLog, Disk, GuestChannel, GuestOs, Machine, RunDir, Session,
    SessionError, Share, ShareTransport, StopSignals, Timings,
};
use vmlane_kernel::{
    find_kernel, symbols_file, ImageFormat, Kernel, KernelError, Search, Tristate,
};
use vmlane_payload::modules::{ModuleIndex, ModuleStatus};
use vmlane_payload::PayloadError;
use vmlane_proto::{RunRequest, ShareMount};
use vmlane_qemu::{
    host_tsc_khz, kernel_cmdline, resolve_accel, AccelChoice, HostKvm, MachineKind, QemuBackend,
    GUEST_ADDRESS, HOST_ADDRESS,
};
use vmlane_spec::{DiskSpec, Network, Outcome, RunSpec, ShareKind};

const SHARE_TAG: &str = "vmlane-root";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which QEMU machine to boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MachineChoice {
    /// microvm for kernels with virtio-mmio command-line devices built in, q35 otherwise.
    #[default]
    Auto,
    /// q35 with virtio-pci.
    Q35,
    /// microvm without ACPI.
    Microvm,
}

/// Which VMM runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// bhyve for FreeBSD guests on FreeBSD hosts, QEMU everywhere else.
    #[default]
    Auto,
    /// QEMU.
    Qemu,
    /// bhyve (FreeBSD hosts, FreeBSD guests).
    Bhyve,
}

/// How a FreeBSD kernel is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootChoice {
    /// Through vmlane's boot stub under TCG or for kernels without a PVH note; at the PVH
    /// entry under hardware KVM.
    #[default]
    Auto,
    /// Through vmlane's boot stub, the way FreeBSD's loader enters a kernel.
    Native,
    /// At the kernel's PVH entry.
    Pvh,
}

/// Which operating system the guest kernel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OsChoice {
    /// Whatever the kernel image says.
    #[default]
    Auto,
    /// Linux only: a FreeBSD kernel is refused.
    Linux,
    /// FreeBSD only: a Linux kernel is refused.
    FreeBsd,
}

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No usable kernel.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The kernel is not of the OS that was asked for.
    #[error("{kernel} is a {found} kernel, but {wanted} was asked for (--os); give a {wanted} kernel with -k, or drop --os")]
    WrongOs {
        /// The kernel image.
        kernel: PathBuf,
        /// What it is.
        found: &'static str,
        /// What was asked for.
        wanted: &'static str,
    },
    /// bhyve was asked for a Linux guest.
    #[error(
        "the bhyve backend runs FreeBSD guests; Linux guests run on QEMU (drop --backend bhyve)"
    )]
    BhyveNeedsFreeBsd,
    /// `--image` was given for a Linux guest.
    #[error("--image runs a command inside a FreeBSD image; Linux guests use the host's files (and --disk for extra disks)")]
    ImageNeedsFreeBsd,
    /// A FreeBSD guest could not be staged.
    #[error("{0}")]
    FreeBsdGuest(String),
    /// QEMU or a helper is missing or would not start.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The initramfs could not be assembled.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The host's files cannot reach the guest with this kernel and machine.
    #[error("{0}")]
    Share(String),
    /// A disk image that cannot be opened.
    #[error("cannot use the disk image {path}: {source}")]
    Disk {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A disk image that does not exist.
    #[error("cannot use the disk image {0}: it does not exist; give an existing raw or qcow2 image, or a size such as 1G for an empty scratch disk")]
    DiskMissing(PathBuf),
    /// A disk given in a form that means nothing.
    #[error("bad disk: {0}")]
    DiskSpec(String),
    /// The guest cannot have the network asked for.
    #[error("{0}")]
    Network(String),
    /// A host port vmlane was to listen on is taken (or not allowed).
    #[error("cannot listen on 127.0.0.1:{port} for {what}: {reason}; choose another port")]
    Port {
        /// The port.
        port: u16,
        /// The flag that asked for it.
        what: String,
        /// Why.
        reason: String,
    },
    /// An option only Linux guests have was given for a FreeBSD kernel.
    #[error("{0} is for Linux guests; FreeBSD guests do not have it yet")]
    LinuxOnly(&'static str),
    /// A profile key only Linux guests have was given for a FreeBSD kernel.
    #[error("the profile key `{0}` is not supported for FreeBSD guests")]
    NotForFreeBsd(&'static str),
    /// A kernel module asked for that the kernel does not have.
    #[error("{0}")]
    Module(String),
    /// The NUMA layout cannot be booted.
    #[error("{0}")]
    Numa(String),
    /// A host setup command failed, so the VM was not started.
    #[error("{0}")]
    HostSetup(String),
    /// The private run directory could not be made.
    #[error("failed to create the run directory: {0}")]
    RunDir(#[source] std::io::Error),
    /// The session failed before an outcome.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// What one VM run needs besides its output streams: the run spec and how to find and boot
/// its kernel. `vmlane run` and `vmlane test` both build one.
#[derive(Debug, Clone)]
pub struct Launch {
    /// What to run and with what resources.
    pub spec: RunSpec,
    /// `-k`: image, build tree, or cached name/release.
    pub kernel: Option<PathBuf>,
    /// `--modules`.
    pub modules: Option<PathBuf>,
    /// `--machine`.
    pub machine: MachineChoice,
    /// `--append`.
    pub append: Vec<String>,
    /// `--os`.
    pub os: OsChoice,
    /// `--image`: a FreeBSD image to run the command in, instead of vmlane's minimal guest.
    pub image: Option<PathBuf>,
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--boot` (FreeBSD).
    pub boot: BootChoice,
    /// `--debugger` (FreeBSD): a panic stops at `db>` and the console is handed to the user.
    pub debugger: bool,
    /// `--keep-image` (FreeBSD): the guest's writes to `image` land in it.
    pub keep_image: bool,
}

/// Where a launched run's output goes.
pub struct Streams<'a> {
    /// The command's stdout.
    pub stdout: &'a mut dyn std::io::Write,
    /// The command's stderr.
    pub stderr: &'a mut dyn std::io::Write,
    /// The guest console.
    pub console: &'a mut ConsoleLog,
}

/// Finds the kernel, assembles the payload, boots the VM and runs the session to its end.
/// A signal before the VM starts comes back as [`Outcome::Interrupted`].
pub fn launch_vm(
    launch: &Launch,
    streams: Streams<'_>,
    signals: &StopSignals,
    say: &dyn Fn(&str),
) -> Result<(Outcome, Timings), LaunchError> {
    let spec = &launch.spec;
    let kernel = find_kernel(&Search::new(
        launch.kernel.clone(),
        launch.modules.clone(),
        spec.cwd.clone(),
    ))?;
    say(&format!(
        "kernel {} ({})",
        kernel.image.display(),
        kernel.origin
    ));
    if check_os(launch, &kernel)? == OsChoice::FreeBsd {
        return crate::freebsd::launch_freebsd(launch, &kernel, streams, signals, say);
    }

    let (accel, notice) = resolve_accel(spec.accel, &HostKvm::probe(Path::new("/")));
    if let Some(notice) = notice {
        notice_once(&notice);
    }
    let machine_kind =
        match (spec.numa.is_empty(), launch.machine) {
            (true, choice) => choose_machine(choice, &kernel),
            // microvm has no ACPI, so the guest would never learn its nodes.
            (false, MachineChoice::Microvm) => return Err(LaunchError::Numa(
                "NUMA nodes need --machine q35: QEMU's microvm has no ACPI tables to describe them"
                    .into(),
            )),
            (false, _) => MachineKind::Q35,
        };
    let mut backend = QemuBackend::detect(accel, machine_kind)?;
    backend.network = spec.network.clone();
    backend.gdb = spec.gdb;
    backend.numa = spec.numa.clone();
    say(&format!("accelerator {accel:?}, machine {machine_kind:?}"));

    let modules = kernel
        .modules
        .as_deref()
        .map(ModuleIndex::open)
        .transpose()?;
    let transport = choose_share(spec.share, modules.as_ref(), &backend, &kernel)?;
    say(&format!("host root shared over {transport:?}"));

    let ip = check_network(&spec.network, modules.as_ref(), &kernel)?;
    let disks = check_disks(spec)?;
    // Held until just before QEMU starts, so a taken port fails the run before it boots.
    let ports = reserve_ports(spec)?;
    let mut wanted = backend.guest_modules(Some(transport), !disks.is_empty());
    check_extra_modules(&spec.modules, modules.as_ref(), &kernel)?;
    wanted.extend(spec.modules.iter().map(String::as_str));
    let load = match &modules {
        Some(index) => index.closure(&wanted)?,
        None => Vec::new(),
    };
    let cache = vmlane_kernel::cache_dir();
    let initrd = vmlane_payload::initramfs::build_cached(&cache, vmlane_payload::INIT, &load)?;
    say(&format!(
        "initramfs {} ({} modules)",
        initrd.display(),
        load.len()
    ));
    if let Some(signal) = signals.received() {
        return Ok((Outcome::Interrupted(signal), Timings::default()));
    }
    let scratch = host_setup(&spec.host_setup, &cache, &spec.cwd)?;
    let with_scratch;
    let spec = match &scratch {
        Some(dir) => {
            // The guest sees the host's files, so the scratch directory too.
            let mut copy = spec.clone();
            copy.env.insert(
                0,
                ("VMLANE_SCRATCH".into(), dir.path().as_os_str().to_owned()),
            );
            with_scratch = copy;
            &with_scratch
        }
        None => spec,
    };

    // Measured (once per host boot) only where the guest would otherwise calibrate it.
    let tsc_khz = (accel == AccelChoice::Tcg)
        .then(|| host_tsc_khz(&cache))
        .flatten();
    let run_dir = RunDir::create().map_err(LaunchError::RunDir)?;
    let disks = attach_disks(disks, &run_dir)?;
    let machine = Machine {
        os: GuestOs::Linux,
        kernel: kernel.image.clone(),
        initrd: Some(initrd),
        cmdline: kernel_cmdline(machine_kind, accel, tsc_khz, &launch.append),
        cpus: spec.cpus,
        memory_mib: spec.memory_mib,
        console_socket: run_dir.join("console.sock"),
        port_socket: Some(run_dir.join("port.sock")),
        share: Some(Share {
            host_dir: PathBuf::from("/"),
            tag: SHARE_TAG.into(),
            transport,
        }),
        disks,
        run_dir: run_dir.path().to_path_buf(),
    };
    if let Some(port) = spec.gdb {
        announce_gdb(port, &kernel);
    }
    drop(ports);
    let session = Session {
        machine,
        channel: GuestChannel::Port(run_request(spec, transport, ip.as_deref())),
        timeout: spec.timeout,
        stdout: streams.stdout,
        stderr: streams.stderr,
        console: streams.console,
        signals,
    };
    let result = run_session(&backend, session);
    drop(run_dir);
    drop(scratch);
    Ok(result?)
}

/// Modules asked for by name must exist for this kernel, built in or as a file, before
/// anything boots.
fn check_extra_modules(
    names: &[String],
    index: Option<&ModuleIndex>,
    kernel: &Kernel,
) -> Result<(), LaunchError> {
    for name in names {
        let missing = match index {
            Some(index) => index.status(name) == ModuleStatus::Absent,
            None => true,
        };
        if missing {
            let release = kernel.release.as_deref().unwrap_or("unknown release");
            let place = match index {
                Some(index) => format!("in {}", index.dir().display()),
                None => "(it has no modules directory; give one with --modules)".into(),
            };
            return Err(LaunchError::Module(format!(
                "the kernel {} ({release}) has no module `{name}` {place}",
                kernel.image.display()
            )));
        }
    }
    Ok(())
}

/// Runs the host setup commands in `cwd` with `VMLANE_SCRATCH` set to a fresh directory that
/// lives until the run ends. It is under vmlane's cache, not /tmp, because the guest gets a
/// fresh /tmp but sees the rest of the host's files.
fn host_setup(
    commands: &[String],
    cache: &Path,
    cwd: &Path,
) -> Result<Option<tempfile::TempDir>, LaunchError> {
    if commands.is_empty() {
        return Ok(None);
    }
    let base = cache.join("scratch");
    let scratch = std::fs::create_dir_all(&base)
        .and_then(|()| tempfile::Builder::new().prefix("run-").tempdir_in(&base))
        .map_err(|e| {
            LaunchError::HostSetup(format!(
                "cannot create a scratch directory in {}: {e}",
                base.display()
            ))
        })?;
    for command in commands {
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .current_dir(cwd)
            .env("VMLANE_SCRATCH", scratch.path())
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|e| LaunchError::HostSetup(format!("cannot run /bin/sh: {e}")))?;
        if !status.success() {
            return Err(LaunchError::HostSetup(format!(
                "the host setup command `{command}` failed ({status}); the VM was not started"
            )));
        }
    }
    Ok(Some(scratch))
}

/// The guest setup commands, then the command itself (or, for a shell, the login shell), in
/// one `/bin/sh` that becomes the command: its pid, argv and exit status stay the command's.
/// A failing setup command ends the run with 125, as vmlane's own failures do.
fn with_guest_setup(setup: &[String], argv: &[OsString]) -> Vec<OsString> {
    if setup.is_empty() {
        return argv.to_vec();
    }
    let mut script = String::new();
    for command in setup {
        let shown = shell_quote(Path::new(&format!("vmlane: guest setup failed: {command}")));
        script.push_str(&format!(
            "{{ {command}\n}} || {{ echo {shown} \"(exit $?)\" >&2; exit 125; }}\n"
        ));
    }
    if argv.is_empty() {
        script.push_str("exec \"${SHELL:-/bin/sh}\" -l");
    } else {
        script.push_str("exec \"$@\"");
    }
    let mut wrapped: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    wrapped.push("vmlane".into());
    wrapped.extend(argv.iter().cloned());
    wrapped
}

/// Each stream of a captured run kept in memory at most.
pub const MAX_CAPTURE: usize = 16 << 20;

/// What a run with captured output produced.
#[derive(Debug)]
pub struct Captured {
    /// How it ended.
    pub outcome: Outcome,
    /// The command's stdout (at most [`MAX_CAPTURE`] bytes).
    pub stdout: Vec<u8>,
    /// The command's stderr (at most [`MAX_CAPTURE`] bytes).
    pub stderr: Vec<u8>,
    /// The console log, read back from `console_log`.
    pub console: String,
}

/// Runs `launch` with stdout and stderr kept in memory and the console written to
/// `console_log`: what `vmlane test` and [`crate::Run`] check afterwards.
pub fn launch_captured(launch: &Launch, console_log: &Path) -> Result<Captured, LaunchError> {
    let mut console = ConsoleLog::create(console_log).map_err(LaunchError::RunDir)?;
    let signals = StopSignals::register().map_err(LaunchError::RunDir)?;
    let (mut stdout, mut stderr) = (CappedBuffer::default(), CappedBuffer::default());
    let (outcome, _) = launch_vm(
        launch,
        Streams {
            stdout: &mut stdout,
            stderr: &mut stderr,
            console: &mut console,
        },
        &signals,
        &|_| {},
    )?;
    drop(console);
    let console = std::fs::read(console_log)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    Ok(Captured {
        outcome,
        stdout: stdout.bytes,
        stderr: stderr.bytes,
        console,
    })
}

/// Keeps what fits; a command flooding its output cannot exhaust the host's memory.
#[derive(Default)]
struct CappedBuffer {
    bytes: Vec<u8>,
}

impl std::io::Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_CAPTURE.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The spec's disks with images made absolute from its directory, each image checked to open
/// for reading before QEMU is asked to (QEMU's own message names no fix).
pub(crate) fn check_disks(spec: &RunSpec) -> Result<Vec<DiskSpec>, LaunchError> {
    spec.disks
        .iter()
        .map(|disk| {
            let DiskSpec::Image { path, read_only } = disk else {
                return Ok(disk.clone());
            };
            let path = spec.cwd.join(path);
            let opened = std::fs::File::open(&path).and_then(|file| {
                if file.metadata()?.is_dir() {
                    return Err(std::io::Error::other("it is a directory"));
                }
                Ok(())
            });
            match opened {
                Ok(()) => Ok(DiskSpec::Image {
                    path,
                    read_only: *read_only,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(LaunchError::DiskMissing(path))
                }
                Err(source) => Err(LaunchError::Disk { path, source }),
            }
        })
        .collect()
}

/// The checked disks as the machine attaches them, scratch disks made as sparse files in the
/// run directory, so they go when it does.
pub(crate) fn attach_disks(
    disks: Vec<DiskSpec>,
    run_dir: &RunDir,
) -> Result<Vec<Disk>, LaunchError> {
    let mut attached = Vec::with_capacity(disks.len());
    for (index, disk) in disks.into_iter().enumerate() {
        attached.push(match disk {
            DiskSpec::Image { path, read_only } => Disk {
                read_only,
                ..Disk::throwaway(path)
            },
            DiskSpec::Scratch { bytes } => {
                let path = run_dir.join(&format!("scratch{index}.img"));
                std::fs::File::create(&path)
                    .and_then(|file| file.set_len(bytes))
                    .map_err(|source| LaunchError::Disk {
                        path: path.clone(),
                        source,
                    })?;
                // Nothing else sees the file, so the guest's writes may land in it.
                Disk {
                    keep_writes: true,
                    ..Disk::throwaway(path)
                }
            }
        });
    }
    Ok(attached)
}

/// `ip` where distributions install it.
const IP_PROGRAMS: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// Whether the guest can have the network asked for, and the host's `ip` it will set it up
/// with (the guest runs the host's programs).
fn check_network(
    network: &Network,
    modules: Option<&ModuleIndex>,
    kernel: &Kernel,
) -> Result<Option<PathBuf>, LaunchError> {
    if *network == Network::None {
        return Ok(None);
    }
    let has_nic = match modules {
        Some(index) => index.status("virtio_net") != ModuleStatus::Absent,
        None => config_has(kernel, "virtio_net"),
    };
    if !has_nic {
        return Err(LaunchError::Network(format!(
            "the kernel {} has no virtio-net driver (CONFIG_VIRTIO_NET), so the guest cannot have a network; `vmlane kernel build -e NETDEVICES -e NET_CORE -e VIRTIO_NET` builds one that has",
            kernel.image.display()
        )));
    }
    let ip = IP_PROGRAMS.iter().map(PathBuf::from).find(|p| p.is_file());
    ip.map(Some).ok_or_else(|| {
        LaunchError::Network(
            "the guest sets up its network with the host's `ip`, and none is installed (apt-get install iproute2)".into(),
        )
    })
}

/// Binds every host port the VM will listen on, so a taken one is an error before anything
/// boots rather than a QEMU failure; the caller drops them just before QEMU starts.
fn reserve_ports(spec: &RunSpec) -> Result<Vec<TcpListener>, LaunchError> {
    let mut wanted: Vec<(u16, String)> = Vec::new();
    if let Network::User { forwards } = &spec.network {
        for forward in forwards {
            let what = format!("--forward {}:{}", forward.host, forward.guest);
            wanted.push((forward.host, what));
        }
    }
    if let Some(port) = spec.gdb {
        wanted.push((port, "--gdb".into()));
    }
    let mut held = Vec::with_capacity(wanted.len());
    for (port, what) in wanted {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => held.push(listener),
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::AddrInUse {
                    "the port is in use".to_string()
                } else {
                    e.to_string()
                };
                return Err(LaunchError::Port { port, what, reason });
            }
        }
    }
    Ok(held)
}

/// Tells the user how to attach: the VM stays halted at its first instruction until a
/// debugger continues it.
fn announce_gdb(port: u16, kernel: &Kernel) {
    let target = format!("-ex 'target remote 127.0.0.1:{port}'");
    eprintln!(
        "vmlane: the VM is halted until a debugger attaches to 127.0.0.1:{port} and continues it:"
    );
    match symbols_file(kernel) {
        Some(vmlinux) => {
            eprintln!("vmlane:   gdb {target} {}", shell_quote(&vmlinux));
        }
        None => {
            eprintln!("vmlane:   gdb {target}");
            let release = kernel.release.as_deref().unwrap_or("RELEASE");
            eprintln!("vmlane: no vmlinux with symbols was found for {}; a build tree's vmlinux has them, and Debian's come in linux-image-{release}-dbg", kernel.image.display());
        }
    }
}

/// `path` as one shell word.
fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The accelerator notice is printed once per process, however many VMs it starts.
pub(crate) fn notice_once(notice: &str) {
    static PRINTED: std::sync::Once = std::sync::Once::new();
    PRINTED.call_once(|| eprintln!("vmlane: {notice}"));
}

/// The guest OS: the kernel's own, which must be the one asked for, before anything tries to
/// boot one OS's kernel as the other's.
fn check_os(launch: &Launch, kernel: &Kernel) -> Result<OsChoice, LaunchError> {
    let found = if kernel.format == ImageFormat::FreeBsd {
        OsChoice::FreeBsd
    } else {
        OsChoice::Linux
    };
    let name = |os| match os {
        OsChoice::FreeBsd => "FreeBSD",
        _ => "Linux",
    };
    if launch.os != OsChoice::Auto && launch.os != found {
        return Err(LaunchError::WrongOs {
            kernel: kernel.image.clone(),
            found: name(found),
            wanted: name(launch.os),
        });
    }
    if found == OsChoice::Linux && launch.image.is_some() {
        return Err(LaunchError::ImageNeedsFreeBsd);
    }
    if found == OsChoice::Linux && launch.backend == BackendChoice::Bhyve {
        return Err(LaunchError::BhyveNeedsFreeBsd);
    }
    if found == OsChoice::FreeBsd {
        if launch.spec.network != Network::None {
            return Err(LaunchError::LinuxOnly("--net"));
        }
        if launch.spec.gdb.is_some() {
            return Err(LaunchError::LinuxOnly("--gdb"));
        }
        let spec = &launch.spec;
        for (key, used) in [
            ("modules", !spec.modules.is_empty()),
            ("host_setup", !spec.host_setup.is_empty()),
            ("guest_setup` or `files", !spec.guest_setup.is_empty()),
            ("numa", !spec.numa.is_empty()),
        ] {
            if used {
                return Err(LaunchError::NotForFreeBsd(key));
            }
        }
    }
    Ok(found)
}

/// Picks the share transport the kernel can mount: 9p needs no helper process, virtio-fs
/// needs a virtiofsd on the host.
fn choose_share(
    requested: ShareKind,
    modules: Option<&ModuleIndex>,
    backend: &QemuBackend,
    kernel: &Kernel,
) -> Result<ShareTransport, LaunchError> {
    let has = |names: &[&str]| match modules {
        Some(index) => names
            .iter()
            .all(|name| index.status(name) != ModuleStatus::Absent),
        // No module directory: everything the kernel has is built in; trust its config if known.
        None => names.iter().all(|name| config_has(kernel, name)),
    };
    let nine_p = has(&["9p", "9pnet_virtio"]);
    let virtiofs = has(&["virtiofs"]);
    let virtiofs_problem = if backend.virtiofsd.is_none() {
        Some("no virtiofsd is installed (Debian 12: qemu-system-x86 ships /usr/lib/qemu/virtiofsd; or `cargo install virtiofsd`)")
    } else if backend.machine == MachineKind::Microvm && backend.accel == AccelChoice::Tcg {
        // Measured: the guest's first request on a vhost-user-fs-device never completes.
        Some("vhost-user devices on QEMU's microvm do not work under TCG (use --machine q35)")
    } else {
        None
    };
    let image = kernel.image.display();
    let refuse = |why: String| Err(LaunchError::Share(why));
    match requested {
        ShareKind::NineP if nine_p => Ok(ShareTransport::NineP),
        ShareKind::NineP => refuse(format!("the kernel {image} has no 9p support; try --share virtiofs")),
        ShareKind::VirtioFs if !virtiofs => {
            refuse(format!("the kernel {image} has no virtio-fs support; try --share 9p"))
        }
        ShareKind::VirtioFs => match virtiofs_problem {
            None => Ok(ShareTransport::VirtioFs),
            Some(problem) => refuse(format!("cannot share over virtio-fs: {problem}")),
        },
        ShareKind::Auto if virtiofs && virtiofs_problem.is_none() => Ok(ShareTransport::VirtioFs),
        ShareKind::Auto if nine_p => Ok(ShareTransport::NineP),
        ShareKind::Auto => match (virtiofs, virtiofs_problem) {
            (true, Some(problem)) => refuse(format!("the kernel {image} has no 9p, and virtio-fs cannot be used: {problem}")),
            _ => refuse(format!("the kernel {image} can mount neither 9p nor virtio-fs, so the host's files cannot be shared")),
        },
    }
}

/// microvm boots fastest but only kernels that take virtio-mmio devices from the command line
/// can see its devices; everything else gets q35 and virtio-pci.
fn choose_machine(requested: MachineChoice, kernel: &Kernel) -> MachineKind {
    match requested {
        MachineChoice::Q35 => MachineKind::Q35,
        MachineChoice::Microvm => MachineKind::Microvm,
        MachineChoice::Auto => {
            let built_in = |option| kernel.config_option(option) == Some(Tristate::Yes);
            if built_in("VIRTIO_MMIO") && built_in("VIRTIO_MMIO_CMDLINE_DEVICES") {
                MachineKind::Microvm
            } else {
                MachineKind::Q35
            }
        }
    }
}

fn config_has(kernel: &Kernel, module: &str) -> bool {
    let option = match module {
        "9p" => "9P_FS",
        "9pnet_virtio" => "NET_9P_VIRTIO",
        "virtiofs" => "VIRTIO_FS",
        "virtio_net" => "VIRTIO_NET",
        _ => return true,
    };
    // Without modules only built-in support counts. Without a config file nothing is known;
    // 9p is the usual built-in choice of small kernels.
    kernel
        .config_option(option)
        .map_or(module != "virtiofs", |t| t == Tristate::Yes)
}

/// Brings up the guest's loopback and NIC with the host's `ip`, then becomes the command
/// (same pid, argv and environment). The guest init sets up no network, and in-kernel `ip=`
/// autoconfiguration is built into none of the kernels vmlane boots; where it is, it runs
/// before init loads the NIC's module.
fn with_network(ip: &Path, argv: &[OsString]) -> Vec<OsString> {
    let ip = shell_quote(ip);
    // No command: `vmlane shell`, whose login shell the network is set up for.
    let then = if argv.is_empty() {
        "exec \"${SHELL:-/bin/sh}\" -l"
    } else {
        "exec \"$@\""
    };
    let script = format!(
        "{ip} link set lo up && {ip} link set eth0 up && \
         {ip} address add {GUEST_ADDRESS}/24 dev eth0 && \
         {ip} route add default via {HOST_ADDRESS} || \
         {{ echo 'vmlane: failed to set up the guest network (--net user)' >&2; exit 125; }}; \
         {then}"
    );
    let mut wrapped: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), script.into()];
    wrapped.push("vmlane".into());
    wrapped.extend(argv.iter().cloned());
    wrapped
}

fn run_request(spec: &RunSpec, transport: ShareTransport, ip: Option<&Path>) -> RunRequest {
    let term = std::env::var_os("TERM").unwrap_or_else(|| "linux".into());
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), "/root".into()),
        ("TERM".into(), term),
    ];
    for (key, value) in &spec.env {
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
    let argv = with_guest_setup(&spec.guest_setup, &spec.argv);
    let argv = match ip {
        Some(ip) => with_network(ip, &argv),
        None => argv,
    };
    RunRequest {
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: env
            .iter()
            .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .collect(),
        cwd: spec.cwd.as_os_str().as_bytes().to_vec(),
        share: Some(ShareMount {
            fstype: fstype.into(),
            tag: SHARE_TAG.into(),
            options: options.into(),
        }),
        input: spec.input.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel with no modules directory and this config.
    fn kernel_with_config(dir: &Path, config: &str) -> Kernel {
        let path = dir.join("config");
        std::fs::write(&path, config).unwrap();
        Kernel {
            image: dir.join("vmlinux"),
            format: vmlane_kernel::ImageFormat::Elf { pvh: true },
            release: Some("6.1.192".into()),
            modules: None,
            config: Some(path),
            origin: vmlane_kernel::Origin::Cache,
        }
    }

    fn backend(machine: MachineKind, accel: AccelChoice, virtiofsd: bool) -> QemuBackend {
        QemuBackend {
            qemu: "qemu-system-x86_64".into(),
            accel,
            virtiofsd: virtiofsd.then(|| "/usr/lib/qemu/virtiofsd".into()),
            machine,
            network: Network::None,
            gdb: None,
            numa: Vec::new(),
        }
    }

    const MINIMAL: &str = "CONFIG_VIRTIO_MMIO=y\nCONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\nCONFIG_9P_FS=y\nCONFIG_NET_9P_VIRTIO=y\nCONFIG_VIRTIO_FS=y\n";

    #[test]
    fn kernels_with_command_line_mmio_devices_get_microvm() {
        let dir = tempfile::tempdir().unwrap();
        let minimal = kernel_with_config(dir.path(), MINIMAL);
        assert_eq!(
            choose_machine(MachineChoice::Auto, &minimal),
            MachineKind::Microvm
        );
        assert_eq!(
            choose_machine(MachineChoice::Q35, &minimal),
            MachineKind::Q35
        );
        let distro = kernel_with_config(
            dir.path(),
            "CONFIG_VIRTIO_MMIO=m\n# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set\n",
        );
        assert_eq!(
            choose_machine(MachineChoice::Auto, &distro),
            MachineKind::Q35
        );
    }

    #[test]
    fn microvm_under_tcg_shares_over_9p_and_refuses_virtiofs() {
        let dir = tempfile::tempdir().unwrap();
        let minimal = kernel_with_config(dir.path(), MINIMAL);
        let tcg_microvm = backend(MachineKind::Microvm, AccelChoice::Tcg, true);
        assert_eq!(
            choose_share(ShareKind::Auto, None, &tcg_microvm, &minimal).unwrap(),
            ShareTransport::NineP
        );
        let error = choose_share(ShareKind::VirtioFs, None, &tcg_microvm, &minimal)
            .unwrap_err()
            .to_string();
        assert!(error.contains("microvm"), "{error}");
        let kvm_microvm = backend(MachineKind::Microvm, AccelChoice::Kvm, true);
        assert_eq!(
            choose_share(ShareKind::Auto, None, &kvm_microvm, &minimal).unwrap(),
            ShareTransport::VirtioFs
        );
    }

    #[test]
    fn module_only_support_without_modules_does_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = kernel_with_config(
            dir.path(),
            "CONFIG_9P_FS=m\nCONFIG_NET_9P_VIRTIO=m\nCONFIG_VIRTIO_FS=m\n",
        );
        let error = choose_share(
            ShareKind::Auto,
            None,
            &backend(MachineKind::Q35, AccelChoice::Tcg, true),
            &kernel,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("neither 9p nor virtio-fs"), "{error}");
    }

    #[test]
    fn the_kernel_decides_the_os_and_a_mismatch_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let linux = kernel_with_config(dir.path(), MINIMAL);
        let freebsd = Kernel {
            image: dir.path().join("boot/kernel/kernel"),
            format: vmlane_kernel::ImageFormat::FreeBsd,
            release: Some("15.1-RELEASE-p1".into()),
            modules: None,
            config: None,
            origin: vmlane_kernel::Origin::Cache,
        };
        let launch = |os, image: Option<&str>, backend| Launch {
            spec: RunSpec::new(vec!["true".into()], dir.path().to_path_buf()),
            kernel: None,
            modules: None,
            machine: MachineChoice::Auto,
            append: Vec::new(),
            os,
            image: image.map(PathBuf::from),
            backend,
            boot: BootChoice::Auto,
            debugger: false,
            keep_image: false,
        };
        let auto = launch(OsChoice::Auto, None, BackendChoice::Auto);
        assert_eq!(check_os(&auto, &linux).unwrap(), OsChoice::Linux);
        assert_eq!(check_os(&auto, &freebsd).unwrap(), OsChoice::FreeBsd);
        let error = check_os(
            &launch(OsChoice::Linux, None, BackendChoice::Auto),
            &freebsd,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("is a FreeBSD kernel, but Linux was asked for"),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
        let error = check_os(
            &launch(OsChoice::FreeBsd, None, BackendChoice::Auto),
            &linux,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("is a Linux kernel, but FreeBSD was asked for"),
            "{error}"
        );
        let image = launch(OsChoice::Auto, Some("x.img"), BackendChoice::Auto);
        assert!(check_os(&image, &linux).is_err());
        assert!(check_os(&image, &freebsd).is_ok());
        let bhyve = launch(OsChoice::Auto, None, BackendChoice::Bhyve);
        assert!(check_os(&bhyve, &linux).is_err());
        let mut gdb = launch(OsChoice::Auto, None, BackendChoice::Auto);
        gdb.spec.gdb = Some(1234);
        assert!(check_os(&gdb, &linux).is_ok());
        let error = check_os(&gdb, &freebsd).unwrap_err().to_string();
        assert!(error.contains("--gdb is for Linux guests"), "{error}");
    }

    #[test]
    fn disks_are_checked_then_scratch_disks_made_sparse_in_the_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.img"), [0u8; 512]).unwrap();
        let mut spec = RunSpec::new(vec!["true".into()], dir.path().to_path_buf());
        spec.disks = vec![
            DiskSpec::Scratch { bytes: 1 << 30 },
            DiskSpec::Image {
                path: "base.img".into(),
                read_only: true,
            },
        ];
        let checked = check_disks(&spec).unwrap();
        let run_dir = RunDir::create().unwrap();
        let disks = attach_disks(checked, &run_dir).unwrap();
        assert_eq!(disks.len(), 2);
        let scratch = std::fs::metadata(&disks[0].path).unwrap();
        assert!(disks[0].path.starts_with(run_dir.path()));
        assert_eq!(scratch.len(), 1 << 30);
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&scratch) < 64,
            "not sparse"
        );
        assert!(disks[0].keep_writes && !disks[0].read_only);
        assert_eq!(disks[1].path, dir.path().join("base.img"));
        assert!(disks[1].read_only);

        spec.disks.push(DiskSpec::Image {
            path: "missing.img".into(),
            read_only: false,
        });
        let error = check_disks(&spec).unwrap_err().to_string();
        assert!(error.contains("missing.img: it does not exist"), "{error}");
    }

    #[test]
    fn a_taken_port_is_refused_naming_the_flag() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let mut spec = RunSpec::new(vec!["true".into()], PathBuf::from("/"));
        spec.gdb = Some(port);
        let error = reserve_ports(&spec).unwrap_err().to_string();
        assert!(
            error.contains(&format!("127.0.0.1:{port} for --gdb: the port is in use")),
            "{error}"
        );
        drop(taken);
        assert_eq!(reserve_ports(&spec).unwrap().len(), 1);
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
        assert_eq!(shell_quote(Path::new("/a b/it's")), "'/a b/it'\\''s'");
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

    #[test]
    fn a_failing_host_setup_stops_the_run_and_the_scratch_dir_goes() {
        let cache = tempfile::tempdir().unwrap();
        assert!(host_setup(&[], cache.path(), cache.path())
            .unwrap()
            .is_none());
        let scratch = host_setup(
            &["test -d \"$VMLANE_SCRATCH\" && touch \"$VMLANE_SCRATCH/made\"".into()],
            cache.path(),
            cache.path(),
        )
        .unwrap()
        .unwrap();
        assert!(scratch.path().join("made").is_file());
        let path = scratch.path().to_path_buf();
        drop(scratch);
        assert!(!path.exists());
        let error = host_setup(
            &["true".into(), "exit 3".into()],
            cache.path(),
            cache.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("`exit 3` failed") && error.contains("not started"),
            "{error}"
        );
    }

    #[test]
    fn captured_output_is_capped_but_writes_never_fail() {
        use std::io::Write;
        let mut buffer = CappedBuffer::default();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            assert_eq!(buffer.write(&chunk).unwrap(), chunk.len());
        }
        assert_eq!(buffer.bytes.len(), MAX_CAPTURE);
    }
}
