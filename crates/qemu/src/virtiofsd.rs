//! The virtiofsd helper that serves a virtio-fs share, started so that the host enforces
//! read-only access (the guest's own mount flags are the guest's to change), or for a writable
//! directory, access to that directory alone.

use crate::argv::ShareDevice;
use rustix::io::FdFlags;
use rustix::mount::{MountPropagationFlags, MoveMountFlags, OpenTreeFlags};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use vmlane_backend::BackendError;

/// Where virtiofsd is installed: Rust's virtiofsd in PATH or /usr/libexec, QEMU's C one in
/// /usr/lib/qemu (Debian 12).
const CANDIDATES: &[&str] = &["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"];

/// The first virtiofsd found.
pub fn find_virtiofsd() -> Option<PathBuf> {
    crate::find_program("virtiofsd").or_else(|| {
        CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| crate::is_executable(p))
    })
}

/// The two command-line dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// The Rust virtiofsd: `--shared-dir`, `--readonly`.
    Rust,
    /// QEMU's C virtiofsd: `-o source=`, no read-only option.
    C,
}

fn flavour(program: &Path) -> Flavour {
    let help = Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .output();
    match help {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout).contains("--shared-dir")
                || String::from_utf8_lossy(&out.stderr).contains("--shared-dir") =>
        {
            Flavour::Rust
        }
        _ => Flavour::C,
    }
}

/// A running virtiofsd.
pub struct Virtiofsd {
    /// The process.
    pub child: Child,
    /// Readable once it has exited.
    pub pidfd: OwnedFd,
    /// Where its messages go, for error reports.
    pub log: PathBuf,
    /// The host directory it serves.
    pub share: PathBuf,
}

/// Starts virtiofsd for `device`'s share on a socket vmlane listens on already, so QEMU can
/// connect at once.
pub fn spawn(program: &Path, device: &ShareDevice<'_>) -> Result<Virtiofsd, BackendError> {
    let share = device.share;
    let socket_path = &device.socket;
    // One left by an earlier start of the VM in this run directory.
    let _ = std::fs::remove_file(socket_path);
    let listener = UnixListener::bind(socket_path).map_err(|source| BackendError::Io {
        action: format!("listen on {}", socket_path.display()),
        source,
    })?;
    let socket: OwnedFd = listener.into();
    let fd = socket.as_raw_fd();
    let flavour = flavour(program);
    let log = device.log.clone();
    let log_file = std::fs::File::create(&log).map_err(|source| BackendError::Io {
        action: format!("create {}", log.display()),
        source,
    })?;
    let mut command = Command::new(program);
    let root_user = is_root();
    match flavour {
        Flavour::Rust => {
            command
                .arg(format!("--fd={fd}"))
                .arg("--shared-dir")
                .arg(&share.host_dir)
                .args(if share.writable {
                    &[][..]
                } else {
                    &["--readonly"]
                })
                .args(["--cache", "auto"])
                .args(["--sandbox", if root_user { "namespace" } else { "none" }]);
        }
        Flavour::C => {
            let mut source = std::ffi::OsString::from("source=");
            source.push(&share.host_dir);
            command
                .arg(format!("--fd={fd}"))
                .arg("-o")
                .arg(source)
                .args(["-o", "cache=auto", "-o", "sandbox=chroot"]);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let must_isolate = flavour == Flavour::C;
    // Made before the fork: the child only makes system calls. The directory as the kernel
    // names it, so the mount moved back onto it lands where virtiofsd looks.
    let writable = match share.writable {
        true => Some(writable_path(&share.host_dir)?),
        false => None,
    };
    // SAFETY: the closure runs in the forked child before exec and only makes system calls.
    unsafe {
        command.pre_exec(move || {
            clear_cloexec(socket.as_fd())?;
            crate::process::die_with_parent()?;
            match read_only_mount_namespace(writable.as_deref()) {
                Err(e) if must_isolate => Err(e),
                _ => Ok(()),
            }
        });
    }
    let spawned = command.spawn();
    // The closure holds vmlane's copy of the socket: virtiofsd has its own now.
    drop(command);
    let child = spawned.map_err(|source| BackendError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let pidfd = crate::process::pidfd_open(&child).map_err(|source| BackendError::Io {
        action: "watch the virtiofsd process".into(),
        source,
    })?;
    Ok(Virtiofsd {
        child,
        pidfd,
        log,
        share: share.host_dir.clone(),
    })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn clear_cloexec(fd: impl AsFd) -> std::io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, FdFlags::empty())?)
}

/// `dir` resolved, as a C string for the child.
fn writable_path(dir: &Path) -> Result<CString, BackendError> {
    let io = |source| BackendError::Io {
        action: format!("resolve the writable directory {}", dir.display()),
        source,
    };
    let real = std::fs::canonicalize(dir).map_err(io)?;
    CString::new(real.as_os_str().as_bytes())
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))
}

/// Gives the helper its own view of every mount, all read-only except `writable` (a
/// directory as it was, writable where it was), so nothing the guest asks for can write to
/// the host elsewhere. Other processes' mounts are unaffected.
fn read_only_mount_namespace(writable: Option<&CStr>) -> std::io::Result<()> {
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let root = c"/";
    // rustix's unshare is `unsafe` too (for CLONE_FILES), so it would gain nothing here.
    // SAFETY: unshare with integer flags only; a new mount namespace touches no memory.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // A `&CStr` path: nothing is allocated in the forked child.
    rustix::mount::mount_change(
        root,
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )?;
    // A detached copy of the writable directory's mounts, taken before everything turns
    // read-only and put back over the directory afterwards.
    let kept = match writable {
        Some(dir) => Some((
            dir,
            rustix::mount::open_tree(
                rustix::fs::CWD,
                dir,
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_RECURSIVE,
            )?,
        )),
        None => None,
    };
    // rustix has no mount_setattr.
    // SAFETY: a valid, NUL-terminated path and a correctly sized struct that outlive the call.
    let set = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            root.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if set == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if let Some((dir, tree)) = kept {
        rustix::mount::move_mount(
            tree.as_fd(),
            c"",
            rustix::fs::CWD,
            dir,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?;
    }
    Ok(())
}
