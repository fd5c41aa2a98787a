//! Runs the command with exactly the argv it was given and relays its output to the host as it
//! is produced, reaping every other child along the way (init adopts orphans).

use crate::console::{Failure, StepContext};
use crate::port::Port;
use crate::sys::{self, check};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use vmlane_proto::{GuestMessage, RunRequest};
use vmlane_spec::GuestStatus;

const CHUNK: usize = 64 * 1024;

/// Starts the command, streams its stdout and stderr to the host and returns how it ended.
pub fn run(request: &RunRequest, port: &mut Port) -> Result<GuestStatus, Failure> {
    let argv = c_strings(&request.argv).step(|| "prepare the command's arguments".into())?;
    let env = c_strings(&request.env).step(|| "prepare the environment".into())?;
    if argv.is_empty() {
        return Err(Failure::new("start the command", "no command was given"));
    }
    let candidates = program_candidates(&argv[0], &request.env);
    let sigchld = block_sigchld().step(|| "watch for the command's exit".into())?;
    let (out_read, out_write) = pipe().step(|| "create the stdout pipe".into())?;
    let (err_read, err_write) = pipe().step(|| "create the stderr pipe".into())?;
    let (exec_read, exec_write) = pipe().step(|| "create the exec status pipe".into())?;

    // SAFETY: init is single-threaded, so the child may run arbitrary code before exec.
    let pid = check(unsafe { libc::fork() }).step(|| "fork the command".into())?;
    if pid == 0 {
        exec_child(
            &candidates,
            &argv,
            &env,
            &out_write,
            &err_write,
            &exec_write,
        );
    }
    drop((out_write, err_write, exec_write));
    if let Some(errno) = read_exec_error(exec_read) {
        reap(pid);
        let program = String::from_utf8_lossy(&request.argv[0]);
        let error = io::Error::from_raw_os_error(errno);
        port.send(&GuestMessage::Stderr(
            format!("vmlane: {program}: {error}\n").into_bytes(),
        ))?;
        return Ok(if errno == libc::ENOENT {
            GuestStatus::NotFound
        } else {
            GuestStatus::NotExecutable
        });
    }
    port.mark("command started")?;
    relay(pid, sigchld, [out_read, err_read], port)
}

fn c_strings(items: &[Vec<u8>]) -> io::Result<Vec<CString>> {
    items.iter().map(|item| sys::cstring_bytes(item)).collect()
}

/// Where to look for the program: itself if it names a path, else each `PATH` entry.
fn program_candidates(program: &CString, env: &[Vec<u8>]) -> Vec<CString> {
    let name = program.as_bytes();
    if name.contains(&b'/') {
        return vec![program.clone()];
    }
    let path = env
        .iter()
        .find_map(|entry| entry.strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
    path.split(|&b| b == b':')
        .map(|dir| if dir.is_empty() { &b"."[..] } else { dir })
        .filter_map(|dir| CString::new([dir, b"/", name].concat()).ok())
        .collect()
}

/// In the forked child: wire up stdio and exec; on failure report errno through the pipe.
fn exec_child(
    candidates: &[CString],
    argv: &[CString],
    env: &[CString],
    stdout: &OwnedFd,
    stderr: &OwnedFd,
    exec_status: &OwnedFd,
) -> ! {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let devnull = sys::cstring("/dev/null").expect("no NUL");
    // SAFETY: only fd juggling, signal reset and exec on valid pointers built above.
    unsafe {
        libc::setsid();
        let mut unblock: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut unblock);
        libc::sigprocmask(libc::SIG_SETMASK, &unblock, std::ptr::null_mut());
        let null = libc::open(devnull.as_ptr(), libc::O_RDONLY);
        libc::dup2(null, 0);
        libc::dup2(stdout.as_raw_fd(), 1);
        libc::dup2(stderr.as_raw_fd(), 2);
        let mut errno = libc::ENOENT;
        for candidate in candidates {
            libc::execve(candidate.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            let e = *libc::__errno_location();
            // A later PATH entry may still hold the program; EACCES is kept as the better answer.
            if e != libc::ENOENT && e != libc::ENOTDIR {
                errno = e;
            }
        }
        let bytes = errno.to_ne_bytes();
        libc::write(exec_status.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127);
    }
}

/// The errno of a failed exec, or `None` once exec succeeded and closed the pipe.
fn read_exec_error(pipe: OwnedFd) -> Option<i32> {
    let mut file = File::from(pipe);
    let mut bytes = [0u8; 4];
    match file.read_exact(&mut bytes) {
        Ok(()) => Some(i32::from_ne_bytes(bytes)),
        Err(_) => None,
    }
}

/// Streams both pipes to the host until the command exits, then drains what is left.
fn relay(
    pid: libc::pid_t,
    sigchld: OwnedFd,
    pipes: [OwnedFd; 2],
    port: &mut Port,
) -> Result<GuestStatus, Failure> {
    let mut open = [true, true];
    let mut status = None;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut fds = [
            poll_fd(&pipes[0], open[0]),
            poll_fd(&pipes[1], open[1]),
            poll_fd(&sigchld, true),
        ];
        // SAFETY: `fds` is a valid array of pollfd for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Failure::new("wait for the command's output", error));
        }
        for i in 0..2 {
            if open[i] && fds[i].revents != 0 {
                open[i] = forward(&pipes[i], i, &mut buf, port)?;
            }
        }
        if fds[2].revents != 0 {
            drain_signalfd(&sigchld);
            if let Some(found) = reap_all(pid) {
                status = Some(found);
            }
        }
        if let Some(status) = status {
            // Output written before exit is already in the pipes; background children that keep
            // the pipes open must not hold the run hostage.
            for i in 0..2 {
                while open[i] && forward_available(&pipes[i], i, &mut buf, port)? {}
            }
            return Ok(status);
        }
    }
}

fn poll_fd(fd: &OwnedFd, wanted: bool) -> libc::pollfd {
    libc::pollfd {
        fd: if wanted { fd.as_raw_fd() } else { -1 },
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Reads one chunk and sends it; returns whether the pipe is still open.
fn forward(
    pipe: &OwnedFd,
    stream: usize,
    buf: &mut [u8],
    port: &mut Port,
) -> Result<bool, Failure> {
    // SAFETY: reads into a valid, writable buffer of the given length.
    let n = unsafe { libc::read(pipe.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    match n {
        n if n > 0 => {
            send_output(stream, &buf[..n as usize], port)?;
            Ok(true)
        }
        0 => Ok(false),
        _ => {
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => Ok(true),
                _ => Err(Failure::new("read the command's output", error)),
            }
        }
    }
}

/// Like [`forward`] but never blocks: returns whether a chunk was sent.
fn forward_available(
    pipe: &OwnedFd,
    stream: usize,
    buf: &mut [u8],
    port: &mut Port,
) -> Result<bool, Failure> {
    let mut fd = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut fd, 1, 0) } <= 0 || fd.revents & libc::POLLIN == 0 {
        return Ok(false);
    }
    forward(pipe, stream, buf, port)
}

fn send_output(stream: usize, data: &[u8], port: &mut Port) -> Result<(), Failure> {
    let message = if stream == 0 {
        GuestMessage::Stdout(data.to_vec())
    } else {
        GuestMessage::Stderr(data.to_vec())
    };
    port.send(&message)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Blocks SIGCHLD and returns a signalfd that becomes readable when a child changes state.
fn block_sigchld() -> io::Result<OwnedFd> {
    // SAFETY: a zeroed sigset is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = check(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn drain_signalfd(fd: &OwnedFd) {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    // SAFETY: reads into a valid buffer; the fd is non-blocking.
    while unsafe { libc::read(fd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) } > 0 {}
}

/// Reaps every exited child; returns the command's status if it was among them.
fn reap_all(command: libc::pid_t) -> Option<GuestStatus> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == command {
            found = Some(if libc::WIFSIGNALED(status) {
                GuestStatus::Signaled(libc::WTERMSIG(status))
            } else {
                GuestStatus::Exited(libc::WEXITSTATUS(status))
            });
        }
    }
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_with_a_slash_is_used_as_is() {
        let program = CString::new("./run-me").unwrap();
        assert_eq!(program_candidates(&program, &[]), vec![program]);
    }

    #[test]
    fn a_bare_name_is_looked_up_in_path_in_order() {
        let program = CString::new("uname").unwrap();
        let env = vec![b"HOME=/root".to_vec(), b"PATH=/a:/b:".to_vec()];
        let got: Vec<_> = program_candidates(&program, &env)
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(got, ["/a/uname", "/b/uname", "./uname"]);
    }
}
