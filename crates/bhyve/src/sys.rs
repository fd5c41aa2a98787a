//! The few system calls std does not wrap, limited to what both Linux and FreeBSD have: no
//! pidfd, so a VM's exit is watched through a pipe instead.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// A pipe whose ends are closed on exec, so no other child inherits them by accident.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Lets `fd` survive the exec in a forked child; only async-signal-safe calls, for `pre_exec`.
pub fn keep_across_exec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an integer descriptor with an integer argument.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to SIGKILL the calling child when vmlane dies, even by SIGKILL; for
/// `pre_exec`. The VM instance itself still needs `bhyvectl --destroy` afterwards.
pub fn die_with_parent() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(target_os = "freebsd")]
    {
        let mut signal: libc::c_int = libc::SIGKILL;
        // SAFETY: PROC_PDEATHSIG_CTL reads one int through the pointer, which lives across the
        // call; getpid has no preconditions.
        let rc = unsafe {
            libc::procctl(
                libc::P_PID,
                libc::getpid() as libc::id_t,
                libc::PROC_PDEATHSIG_CTL,
                (&mut signal as *mut libc::c_int).cast(),
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends `signal` to the process group led by `leader`. Callers signal only before reaping the
/// leader, so the group id cannot have been reused.
pub fn signal_group(leader: u32, signal: libc::c_int) {
    // SAFETY: kill with integer arguments only; a stale group is reported as ESRCH, ignored.
    unsafe { libc::kill(-(leader as libc::pid_t), signal) };
}

/// Waits until one of `fds` is ready; `None` waits forever. An interrupted wait returns 0.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let timeout_ms = match timeout {
        Some(t) => t.as_millis().min(i32::MAX as u128) as libc::c_int,
        None => -1,
    };
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd for the whole call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(error);
    }
    Ok(n as usize)
}

/// Whether `fd` has bytes or its end waiting, within `timeout` (`None`: forever).
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let mut pfd = [pollfd(fd.as_raw_fd(), libc::POLLIN)];
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if poll(&mut pfd, left)? > 0 && pfd[0].revents != 0 {
            return Ok(true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// A pollfd asking for `events`.
pub fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
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
    signal_group(child.id(), libc::SIGTERM);
    if let Some(status) = wait_timeout(child, grace)? {
        return Ok(status);
    }
    signal_group(child.id(), libc::SIGKILL);
    child.wait()
}

/// The next offset at or after `from` where data starts (`SEEK_DATA`), `None` past the last
/// data; an error of kind `Unsupported` when the file system cannot tell.
pub fn seek_data(fd: BorrowedFd<'_>, from: u64) -> io::Result<Option<u64>> {
    seek(fd, from, libc::SEEK_DATA)
}

/// The next offset at or after `from` where a hole starts (`SEEK_HOLE`); the end of the file
/// counts as one.
pub fn seek_hole(fd: BorrowedFd<'_>, from: u64) -> io::Result<Option<u64>> {
    seek(fd, from, libc::SEEK_HOLE)
}

fn seek(fd: BorrowedFd<'_>, from: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: lseek with integer arguments only.
    let at = unsafe { libc::lseek(fd.as_raw_fd(), from as libc::off_t, whence) };
    if at < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            Some(libc::EINVAL) => Err(io::Error::new(io::ErrorKind::Unsupported, error)),
            _ => Err(error),
        };
    }
    Ok(Some(at as u64))
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
