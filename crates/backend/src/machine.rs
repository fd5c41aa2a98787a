use std::io;
use std::path::{Path, PathBuf};

/// How the host root reaches the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareTransport {
    /// virtio-9p, served by the VMM itself.
    NineP,
    /// virtio-fs, served by a virtiofsd helper.
    VirtioFs,
}

/// A host directory shared with the guest: read-only (the host root), or writable (`--rwdir`).
#[derive(Debug, Clone)]
pub struct Share {
    /// The host directory.
    pub host_dir: PathBuf,
    /// The tag the guest mounts it by.
    pub tag: String,
    /// The transport.
    pub transport: ShareTransport,
    /// The guest's writes reach `host_dir`; otherwise the host enforces read-only access.
    pub writable: bool,
    /// The device is plugged in once the VM runs ([`RunningVm::plug_share`]), so a guest saved
    /// before that never had it: how a virtio-fs share, whose device cannot be saved, reaches
    /// a saved guest.
    pub plugged_later: bool,
}

/// Which kind of guest a machine boots: it decides the devices and how results come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuestOs {
    /// A Linux kernel with vmlane's initramfs; results come over the vmlane port.
    #[default]
    Linux,
    /// A FreeBSD kernel with a root disk; results come as frames on a second serial port (the
    /// machine's port), or as marked lines on the serial console when it has none.
    FreeBsd,
}

/// A disk image for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image file.
    pub path: PathBuf,
    /// Whether the guest's writes land in the file (`--keep-image`); otherwise they go to a
    /// throwaway overlay and the file never changes.
    pub keep_writes: bool,
    /// The guest sees a read-only device and the file is only ever read.
    pub read_only: bool,
}

impl Disk {
    /// An image the guest cannot change.
    pub fn throwaway(path: impl Into<PathBuf>) -> Disk {
        Disk {
            path: path.into(),
            keep_writes: false,
            read_only: false,
        }
    }
}

/// Everything a backend needs to start one VM; backends add no policy of their own on top.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The guest's operating system.
    pub os: GuestOs,
    /// The kernel image to boot.
    pub kernel: PathBuf,
    /// The initramfs (Linux guests).
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub cmdline: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Unix socket the backend connects the guest's serial console to.
    pub console_socket: PathBuf,
    /// Unix socket the backend connects the guest init's port to: the `vmlane.0` virtio-serial
    /// port of a Linux guest, the second serial port (COM2) of a FreeBSD guest. FreeBSD guests
    /// without one report on the console.
    pub port_socket: Option<PathBuf>,
    /// The host root share, if any.
    pub share: Option<Share>,
    /// Writable host directories, over the root share's transport.
    pub rwdirs: Vec<Share>,
    /// Disk images attached in order as virtio block devices (`/dev/vda`, `/dev/vdb`, ...).
    pub disks: Vec<Disk>,
    /// A private directory for the backend's own sockets and logs; removed after the run.
    pub run_dir: PathBuf,
    /// Start from this saved VM (RAM and device state of a guest ready for its request)
    /// instead of booting; the rest of the machine must be the one that was saved.
    pub restore_from: Option<PathBuf>,
    /// Where the backend offers control of the VM (QEMU: QMP), so the session can save it.
    pub control_socket: Option<PathBuf>,
    /// Where guest RAM lives, when not in the VMM's anonymous memory: memory vmlane can copy
    /// for a guest to be saved, or a saved guest's RAM for one restored from it.
    pub guest_ram: Option<GuestRam>,
}

impl Machine {
    /// Every share: the host root's first, then the writable directories.
    pub fn shares(&self) -> impl Iterator<Item = &Share> {
        self.share.iter().chain(&self.rwdirs)
    }
}

/// Guest RAM the backend provides instead of the VMM's own anonymous memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRam {
    /// Memory the backend holds and shares with the VMM (a memfd): a guest to be saved, whose
    /// RAM is copied out while it is stopped, without streaming it through the VMM.
    Saveable,
    /// A saved guest's RAM file, which the guest's writes never reach: mapped privately, or
    /// copied first where a helper of the VMM maps guest RAM too (virtiofsd).
    SavedIn(PathBuf),
}

/// A failure to start or control a VM.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A program the backend needs is not installed.
    #[error("{program} is not installed: {hint}")]
    MissingProgram {
        /// The program.
        program: String,
        /// How to get it.
        hint: String,
    },
    /// Starting a process failed.
    #[error("failed to start {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A helper process failed before the VM could start.
    #[error("{program} failed: {message}")]
    Helper {
        /// The program.
        program: String,
        /// What it said.
        message: String,
    },
    /// The backend cannot do this.
    #[error("the {backend} backend cannot {what}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// What it was asked.
        what: &'static str,
    },
    /// The VMM refused a control command.
    #[error("{program} refused to {action}: {message}")]
    Refused {
        /// The program.
        program: String,
        /// What it was asked to do.
        action: String,
        /// What it said.
        message: String,
    },
    /// Anything else with an I/O cause.
    #[error("failed to {action}")]
    Io {
        /// What was being done.
        action: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// A VM backend: starts a [`Machine`] and hands back a handle to it.
pub trait Backend {
    /// A short name for messages, e.g. `qemu`.
    fn name(&self) -> &str;
    /// Starts the VM. The sockets in `machine` are already listening when this is called.
    fn start(&self, machine: &Machine) -> Result<Box<dyn RunningVm>, BackendError>;
    /// What a saved guest of `machine` depends on, as named parts: a guest saved with other
    /// parts cannot be restored into it. `None`: this backend cannot save guests.
    fn snapshot_key(&self, _machine: &Machine) -> Option<Vec<(String, String)>> {
        None
    }
}

/// A started VM. Dropping it must end the VM and every helper it started.
pub trait RunningVm {
    /// A file descriptor that becomes readable when the VM has exited (a pidfd), so the
    /// session can wait on it together with the sockets.
    fn exit_fd(&self) -> std::os::fd::RawFd;
    /// Whether the VM has exited, and if so what the VMM said about why (its stderr).
    fn try_wait(&mut self) -> io::Result<Option<String>>;
    /// Ends the VM now, and waits for it and its helpers to be gone.
    fn kill(&mut self);
    /// Descriptors that become readable when a helper the guest depends on has exited (a
    /// virtiofsd serving a share): the guest would otherwise wait on it for ever.
    fn helper_fds(&self) -> Vec<std::os::fd::RawFd> {
        Vec::new()
    }
    /// Which helper has exited, and its last words; `None` while all run.
    fn helper_exited(&mut self) -> Option<String> {
        None
    }
    /// Plugs in the devices of a machine's shares that are `plugged_later`, once the VM runs;
    /// nothing for other machines.
    fn plug_share(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    /// Writes the whole VM to `state` (device state, and RAM unless it is in a memory file,
    /// which is copied to `ram`) and lets it run on; the machine's `control_socket` must have
    /// been set.
    fn save(&mut self, _state: &Path, _ram: &Path) -> Result<(), BackendError> {
        Err(BackendError::Unsupported {
            backend: "this",
            what: "save a running VM",
        })
    }
    /// Loads the state of a VM started with `restore_from`, runs it, and plugs in its shares.
    fn resume(&mut self) -> Result<(), BackendError> {
        Err(BackendError::Unsupported {
            backend: "this",
            what: "restore a saved VM",
        })
    }
}
