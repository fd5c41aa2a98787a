//! Why staging failed, with the file or port at fault and the fix.

use super::probe::ProbeError;
use std::path::PathBuf;
use vmlane_guest_freebsd::RunFileError;
use vmlane_image::ImageError;
use vmlane_payload::PayloadError;

/// A file, disk or port a run needs that could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The run's private directory could not be made.
    #[error("cannot create the run directory")]
    RunDir(#[source] std::io::Error),
    /// A disk image that does not exist.
    #[error("cannot use the disk image {0}: it does not exist; give an existing raw or qcow2 image, or a size such as 1G for an empty scratch disk")]
    DiskMissing(PathBuf),
    /// A disk image that cannot be opened, or a scratch disk that cannot be made.
    #[error("cannot use the disk image {path}")]
    Disk {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A disk image that is a directory.
    #[error("cannot use the disk image {0}: it is a directory")]
    DiskIsDirectory(PathBuf),
    /// A writable directory that does not exist.
    #[error(
        "cannot share {0} writable (--rwdir): it does not exist; create it first (mkdir -p {0})"
    )]
    RwDirMissing(PathBuf),
    /// `--root` is not a directory.
    #[error("--root {0} is not a directory: give the directory of a root filesystem of the guest's architecture")]
    RootNotDirectory(PathBuf),
    /// `--root` cannot be read.
    #[error("cannot use --root {path}: give the directory of a root filesystem of the guest's architecture")]
    Root {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A writable directory that is something else.
    #[error("cannot share {0} writable (--rwdir): it is not a directory; give a directory (a disk image goes to --disk)")]
    RwDirNotDirectory(PathBuf),
    /// A writable directory that cannot be looked at.
    #[error("cannot share {path} writable (--rwdir)")]
    RwDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A host port the VM is to listen on is taken.
    #[error(
        "cannot listen on 127.0.0.1:{port} for {what}: the port is in use; choose another port"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// The flag that asked for it.
        what: String,
    },
    /// A host port the VM is to listen on cannot be bound.
    #[error("cannot listen on 127.0.0.1:{port} for {what}; choose another port")]
    Port {
        /// The port.
        port: u16,
        /// The flag that asked for it.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The initramfs could not be put together.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A part of vmlane that is built from C at build time is missing.
    #[error("{part} is not built: {why}")]
    NotBuilt {
        /// The part.
        part: &'static str,
        /// Why the build left it out.
        why: &'static str,
    },
    /// The program of a FreeBSD run cannot run in the minimal guest.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The command cannot be written for the FreeBSD guest.
    #[error("cannot pass the command to the FreeBSD guest")]
    RunFile(#[source] RunFileError),
    /// A FreeBSD image or run disk could not be made.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A file in vmlane's cache or the run directory could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host setup's scratch directory could not be made.
    #[error("cannot create a scratch directory in {base}")]
    ScratchDir {
        /// Where it was to go.
        base: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `/bin/sh` could not run a host setup command.
    #[error("cannot run /bin/sh for the host setup")]
    Shell(#[source] std::io::Error),
    /// A host setup command failed.
    #[error("the host setup command `{command}` failed ({status}); the VM was not started")]
    HostSetup {
        /// The command.
        command: String,
        /// How it exited.
        status: std::process::ExitStatus,
    },
}
