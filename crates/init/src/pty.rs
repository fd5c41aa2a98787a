//! A pseudo-terminal for interactive commands: init keeps the master, the command gets the
//! slave as its controlling terminal, so the guest kernel does line editing, job control and
//! signals (Ctrl-C, Ctrl-Z) exactly as on a real terminal.

use crate::sys::{self, check};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use vmlane_proto::WindowSize;

/// Both ends of a new pseudo-terminal.
pub struct Pty {
    /// Init's end: what the command prints is read here, what the user types is written here.
    pub master: OwnedFd,
    /// The command's end.
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal pair of the given size (0×0 leaves the kernel's default).
pub fn open(size: WindowSize) -> io::Result<Pty> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // The devpts instance mounted on /dev/pts has its own ptmx; /dev/ptmx is the fallback for
    // kernels whose devpts has none.
    let master = open_path("/dev/pts/ptmx", flags).or_else(|_| open_path("/dev/ptmx", flags))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the valid pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let slave = open_slave(&master, flags)?;
    if size != WindowSize::default() {
        set_window_size(&master, size)?;
    }
    sys::set_nonblocking(&master)?;
    Ok(Pty { master, slave })
}

/// The slave end: by TIOCGPTPEER (Linux 4.13+), which needs no path, else by its number.
fn open_slave(master: &OwnedFd, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes the open flags by value and returns a new descriptor.
    let peer = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = if peer >= 0 {
        peer
    } else {
        let mut number: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes one unsigned int through the valid pointer.
        check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) })?;
        return open_path(&format!("/dev/pts/{number}"), flags);
    };
    // SAFETY: the descriptor was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_path(path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = sys::cstring(path)?;
    // SAFETY: `path` is a valid C string; open only reads it.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: open succeeded, so the descriptor is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Resizes the terminal; the kernel sends SIGWINCH to its foreground process group.
pub fn set_window_size(master: &impl AsRawFd, size: WindowSize) -> io::Result<()> {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the valid pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize) }).map(drop)
}
