//! What staging hands to the boot step, each part under its guard.

use std::net::TcpListener;
use std::path::PathBuf;
use vmlane_backend::{Disk, RunDir};

/// What staging made for one run. Dropping it removes the run directory, the host setup's
/// scratch directory and every scratch disk, and releases the held ports.
#[derive(Debug)]
pub struct Staged {
    /// The run's private directory: sockets, logs, scratch disks.
    pub run_dir: RunDir,
    /// The file the VMM boots (a kernel, or vmlane's boot stub).
    pub kernel: PathBuf,
    /// The initramfs (Linux), or the kernel the boot stub enters (FreeBSD).
    pub initrd: Option<PathBuf>,
    /// Disks in attach order: the guest's own, then the request's.
    pub disks: Vec<Disk>,
    /// `VMLANE_SCRATCH`, when host setup ran.
    pub scratch: Option<RunDir>,
    /// Host ports held until the VM starts.
    pub ports: Vec<TcpListener>,
    /// What was staged, a line each, for `-v`.
    pub notes: Vec<String>,
}

/// What a guest OS's staging made.
pub(super) struct GuestFiles {
    pub(super) kernel: PathBuf,
    pub(super) initrd: Option<PathBuf>,
    pub(super) disks: Vec<Disk>,
}
