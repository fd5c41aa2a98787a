//! The few system calls std does not wrap, limited to what both Linux and FreeBSD have: no
//! pidfd, so a VM's exit is watched through a pipe instead.

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::SeekFrom;
use rustix::io::{Errno, FdFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, Signal};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// A pipe whose ends are closed on exec, so no other child inherits them by accident.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?)
}

/// Lets `fd` survive the exec in a forked child; only async-signal-safe calls, for `pre_exec`.
pub fn keep_across_exec(fd: impl AsFd) -> io::Result<()> {
    Ok(rustix::io::fcntl_setfd(fd, FdFlags::empty())?)
}

/// Asks the kernel to SIGKILL the calling child when vmlane dies, even by SIGKILL; for
/// `pre_exec`. The VM instance itself still needs `bhyvectl --destroy` afterwards.
pub fn die_with_parent() -> io::Result<()> {
    // prctl(PR_SET_PDEATHSIG) on Linux, procctl(P_PID, 0, PROC_PDEATHSIG_CTL) on FreeBSD.
    #[cfg(any(target_os = "linux", target_os = "freebsd"))]
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    Ok(())
}

/// Sends `signal` to the process group led by `child`. Callers signal only before reaping the
/// leader, so the group id cannot have been reused.
pub fn signal_group(child: &Child, signal: Signal) {
    // A stale group is reported as ESRCH, ignored.
    let _ = rustix::process::kill_process_group(Pid::from_child(child), signal);
}

/// Waits until one of `fds` is ready; `None` waits forever. An interrupted wait returns 0.
pub fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    // Whole milliseconds, as poll(2) takes them.
    let timeout = timeout.map(|t| {
        let ms = t.as_millis().min(i32::MAX as u128) as u64;
        Timespec {
            tv_sec: (ms / 1000) as _,
            tv_nsec: ((ms % 1000) * 1_000_000) as _,
        }
    });
    match rustix::event::poll(fds, timeout.as_ref()) {
        Ok(n) => Ok(n),
        Err(Errno::INTR) => Ok(0),
        Err(errno) => Err(errno.into()),
    }
}

/// Whether `fd` has bytes or its end waiting, within `timeout` (`None`: forever).
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut pfd = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if poll(&mut pfd, left)? > 0 && !pfd[0].revents().is_empty() {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// Writes to a socket without raising SIGPIPE when the reader is gone.
pub fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Waits for `child` at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills a child's process group, first asking with SIGTERM for `grace`, and reaps the child.
pub fn stop_group(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    signal_group(child, Signal::TERM);
    if let Some(status) = wait_timeout(child, grace)? {
        return Ok(status);
    }
    signal_group(child, Signal::KILL);
    child.wait()
}

/// The next offset at or after `from` where data starts (`SEEK_DATA`), `None` past the last
/// data; an error of kind `Unsupported` when the file system cannot tell.
pub fn seek_data(fd: BorrowedFd<'_>, from: u64) -> io::Result<Option<u64>> {
    seek(fd, SeekFrom::Data(from))
}

/// The next offset at or after `from` where a hole starts (`SEEK_HOLE`); the end of the file
/// counts as one.
pub fn seek_hole(fd: BorrowedFd<'_>, from: u64) -> io::Result<Option<u64>> {
    seek(fd, SeekFrom::Hole(from))
}

fn seek(fd: BorrowedFd<'_>, to: SeekFrom) -> io::Result<Option<u64>> {
    match rustix::fs::seek(fd, to) {
        Ok(at) => Ok(Some(at)),
        Err(Errno::NXIO) => Ok(None),
        Err(Errno::INVAL) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            io::Error::from(Errno::INVAL),
        )),
        Err(errno) => Err(errno.into()),
    }
}

/// Copies up to `len` bytes from `input` at `*in_off` to `output` at `*out_off` inside the
/// kernel (copy_file_range(2), which can share blocks on ZFS and btrfs), advancing both.
pub fn copy_range(
    input: BorrowedFd<'_>,
    in_off: &mut u64,
    output: BorrowedFd<'_>,
    out_off: &mut u64,
    len: u64,
) -> io::Result<u64> {
    let mut from = *in_off as i64;
    let mut to = *out_off as i64;
    let len = len.min(1 << 30) as usize;
    // SAFETY: the offsets are valid, exclusively borrowed i64s for the duration of the call.
    let n = unsafe {
        libc::copy_file_range(
            input.as_raw_fd(),
            (&mut from as *mut i64).cast(),
            output.as_raw_fd(),
            (&mut to as *mut i64).cast(),
            len,
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *in_off = from as u64;
    *out_off = to as u64;
    Ok(n as u64)
}
