//! Runs the command with exactly the argv it was given (or the user's login shell), with its
//! standard input on /dev/null, a pipe or a pseudo-terminal fed by the host, and relays its
//! output to the host as it is produced, reaping every other child along the way (init adopts
//! orphans).

use crate::console::{Failure, StepContext};
use crate::port::Port;
use crate::sys::{self, check};
use crate::{pty, shell};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use vmlane_proto::{GuestMessage, HostMessage, Input, RunRequest};
use vmlane_spec::GuestStatus;

const CHUNK: usize = 64 * 1024;
/// Host input the command has not read yet. Beyond this the port is left unread, so a command
/// that ignores its input holds the host back instead of filling the guest's memory.
const MAX_PENDING_INPUT: usize = 256 * 1024;
/// Reads of each stream once the command has exited: what it wrote before is at most a pipe's
/// worth, and a background child that keeps writing must not hold the result back.
const MAX_DRAIN_READS: usize = 256;

/// Starts the command, relays its input and output and returns how it ended.
pub fn run(request: &RunRequest, port: &mut Port) -> Result<GuestStatus, Failure> {
    let mut env = request.env.clone();
    let (argv, candidates) = if request.argv.is_empty() {
        let path = shell::choose(&mut env);
        let argv = vec![shell::login_name(&path)];
        let path = sys::cstring_bytes(&path).step(|| "prepare the shell's path".into())?;
        (argv, vec![path])
    } else {
        let argv = request.argv.clone();
        let program = c_strings(&argv[..1]).step(|| "prepare the command's arguments".into())?;
        let candidates = program_candidates(&program[0], &env);
        (argv, candidates)
    };
    let c_argv = c_strings(&argv).step(|| "prepare the command's arguments".into())?;
    let c_env = c_strings(&env).step(|| "prepare the environment".into())?;
    let sigchld = block_sigchld().step(|| "watch for the command's exit".into())?;
    let (child_stdio, endpoints) =
        wire(request.input).step(|| "set up the command's standard streams".into())?;
    let (exec_read, exec_write) = pipe().step(|| "create the exec status pipe".into())?;
    if request.argv.is_empty() && matches!(request.input, Input::Terminal(_)) {
        port.send(&GuestMessage::Stderr(
            shell::banner(request.share.as_ref(), &request.rwdirs).into_bytes(),
        ))?;
    }

    // SAFETY: init is single-threaded, so the child may run arbitrary code before exec.
    let pid = check(unsafe { libc::fork() }).step(|| "fork the command".into())?;
    if pid == 0 {
        exec_child(&candidates, &c_argv, &c_env, &child_stdio, &exec_write);
    }
    drop((child_stdio, exec_write));
    if let Some(errno) = read_exec_error(exec_read) {
        reap(pid);
        let program = String::from_utf8_lossy(&argv[0]);
        let error = io::Error::from_raw_os_error(errno);
        let why = match foreign_machine(&candidates).filter(|_| errno == libc::ENOEXEC) {
            Some(machine) => format!(
                "a program for {machine}, and this guest is {guest}: run a static {guest} program, or boot a kernel of the program's architecture (--arch)",
                guest = this_guest()
            ),
            None => error.to_string(),
        };
        port.send(&GuestMessage::Stderr(
            format!("vmlane: {program}: {why}\n").into_bytes(),
        ))?;
        return Ok(if errno == libc::ENOENT {
            GuestStatus::NotFound
        } else {
            GuestStatus::NotExecutable
        });
    }
    port.mark(vmlane_proto::COMMAND_STARTED)?;
    Relay {
        port,
        port_open: true,
        outputs: endpoints.outputs,
        input: endpoints.input,
        pending: Vec::new(),
        input_ended: false,
        terminal: endpoints.terminal,
        buf: vec![0u8; CHUNK],
    }
    .run(pid, sigchld)
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

/// The machine an ELF program among `candidates` was built for, when it is not this guest's:
/// the kernel only says "Exec format error".
fn foreign_machine(candidates: &[CString]) -> Option<&'static str> {
    let mut head = [0u8; 20];
    let read = candidates.iter().any(|path| {
        File::open(std::ffi::OsStr::from_bytes(path.as_bytes()))
            .and_then(|mut file| file.read_exact(&mut head))
            .is_ok()
    });
    if !read || !head.starts_with(b"\x7fELF") {
        return None;
    }
    let big_endian = head[5] == 2;
    let machine = match big_endian {
        true => u16::from_be_bytes([head[18], head[19]]),
        false => u16::from_le_bytes([head[18], head[19]]),
    };
    let own = (machine_of_this_init(), cfg!(target_endian = "big"));
    if (machine, big_endian) == own {
        return None;
    }
    Some(match (machine, big_endian) {
        (3, _) => "i386",
        (40, _) => "arm",
        (62, _) => "x86_64",
        (183, _) => "aarch64",
        (243, _) => "riscv64",
        (22, _) => "s390x",
        (21, true) => "ppc64",
        (21, false) => "ppc64le",
        _ => "another architecture",
    })
}

/// This guest's architecture as `uname -m` names it (Rust calls both POWER byte orders
/// `powerpc64`).
fn this_guest() -> &'static str {
    match (std::env::consts::ARCH, cfg!(target_endian = "big")) {
        ("powerpc64", false) => "ppc64le",
        ("powerpc64", true) => "ppc64",
        (arch, _) => arch,
    }
}

/// The ELF `e_machine` of the programs this guest runs: the init's own.
const fn machine_of_this_init() -> u16 {
    if cfg!(target_arch = "x86_64") {
        62
    } else if cfg!(target_arch = "aarch64") {
        183
    } else if cfg!(target_arch = "riscv64") {
        243
    } else if cfg!(target_arch = "s390x") {
        22
    } else if cfg!(target_arch = "powerpc64") {
        21
    } else {
        0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// The command's ends of its standard streams.
struct ChildStdio {
    /// `None`: /dev/null.
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    /// stdin is a terminal, to become the command's controlling terminal.
    terminal: bool,
}

/// Init's ends, all non-blocking.
struct Endpoints {
    /// The stdout and stderr pipes, or the terminal's master alone.
    outputs: Vec<(OwnedFd, Stream)>,
    /// Where the host's input goes: the stdin pipe, or a second descriptor of the master.
    input: Option<OwnedFd>,
    terminal: bool,
}

fn wire(input: Input) -> io::Result<(ChildStdio, Endpoints)> {
    if let Input::Terminal(size) = input {
        let pty = pty::open(size)?;
        let child = ChildStdio {
            stdout: pty.slave.try_clone()?,
            stderr: pty.slave.try_clone()?,
            stdin: Some(pty.slave),
            terminal: true,
        };
        let endpoints = Endpoints {
            input: Some(pty.master.try_clone()?),
            outputs: vec![(pty.master, Stream::Stdout)],
            terminal: true,
        };
        return Ok((child, endpoints));
    }
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let (stdin, input) = match input {
        Input::Pipe => {
            let (read, write) = pipe()?;
            sys::set_nonblocking(&write)?;
            (Some(read), Some(write))
        }
        _ => (None, None),
    };
    sys::set_nonblocking(&out_read)?;
    sys::set_nonblocking(&err_read)?;
    let child = ChildStdio {
        stdin,
        stdout: out_write,
        stderr: err_write,
        terminal: false,
    };
    let endpoints = Endpoints {
        outputs: vec![(out_read, Stream::Stdout), (err_read, Stream::Stderr)],
        input,
        terminal: false,
    };
    Ok((child, endpoints))
}

/// In the forked child: wire up stdio and exec; on failure report errno through the pipe.
fn exec_child(
    candidates: &[CString],
    argv: &[CString],
    env: &[CString],
    stdio: &ChildStdio,
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
        let stdin = match &stdio.stdin {
            Some(fd) => fd.as_raw_fd(),
            None => libc::open(devnull.as_ptr(), libc::O_RDONLY),
        };
        if stdio.terminal {
            // A session leader without a terminal takes this one as its controlling terminal.
            libc::ioctl(stdin, libc::TIOCSCTTY, 0);
        }
        let mut unblock: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut unblock);
        libc::sigprocmask(libc::SIG_SETMASK, &unblock, std::ptr::null_mut());
        // Rust ignores SIGPIPE in init, and an ignored signal stays ignored across exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::dup2(stdin, 0);
        libc::dup2(stdio.stdout.as_raw_fd(), 1);
        libc::dup2(stdio.stderr.as_raw_fd(), 2);
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

/// The running command's streams: output to the host, the host's input to the command.
struct Relay<'a> {
    port: &'a mut Port,
    /// Until the host hangs up its end.
    port_open: bool,
    outputs: Vec<(OwnedFd, Stream)>,
    input: Option<OwnedFd>,
    /// Host input not yet taken by the command.
    pending: Vec<u8>,
    /// The host sent `StdinClosed`.
    input_ended: bool,
    terminal: bool,
    buf: Vec<u8>,
}

impl Relay<'_> {
    /// Relays until the command exits, then sends what it wrote before.
    fn run(mut self, pid: libc::pid_t, sigchld: OwnedFd) -> Result<GuestStatus, Failure> {
        // Input the host sent right behind the request.
        let early = self.port.buffered()?;
        self.on_messages(early)?;
        loop {
            let mut fds: Vec<libc::pollfd> = self
                .outputs
                .iter()
                .map(|(fd, _)| poll_fd(fd.as_raw_fd(), libc::POLLIN))
                .collect();
            let input_at = match &self.input {
                Some(fd) if !self.pending.is_empty() => {
                    fds.push(poll_fd(fd.as_raw_fd(), libc::POLLOUT));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            let port_at = if self.port_open && self.pending.len() < MAX_PENDING_INPUT {
                fds.push(poll_fd(self.port.fd(), libc::POLLIN));
                Some(fds.len() - 1)
            } else {
                None
            };
            let sigchld_at = fds.len();
            fds.push(poll_fd(sigchld.as_raw_fd(), libc::POLLIN));
            // SAFETY: `fds` is a valid array of pollfd for the call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Failure::new("wait for the command's output", error));
            }
            // Backwards, so removing a finished stream leaves the earlier indices valid.
            for i in (0..self.outputs.len()).rev() {
                if fds[i].revents != 0 && !self.forward(i)? {
                    self.outputs.remove(i);
                }
            }
            if input_at.is_some_and(|i| fds[i].revents != 0) {
                self.write_input();
            }
            if port_at.is_some_and(|i| fds[i].revents != 0) {
                match self.port.read_messages()? {
                    Some(messages) => self.on_messages(messages)?,
                    None => self.port_open = false,
                }
            }
            if fds[sigchld_at].revents != 0 {
                drain_signalfd(&sigchld);
                if let Some(status) = reap_all(pid) {
                    self.drain_outputs()?;
                    return Ok(status);
                }
            }
        }
    }

    fn on_messages(&mut self, messages: Vec<HostMessage>) -> Result<(), Failure> {
        for message in messages {
            match message {
                HostMessage::Stdin(data) => {
                    if self.input.is_some() && !self.input_ended {
                        self.pending.extend_from_slice(&data);
                    }
                }
                HostMessage::StdinClosed => self.input_ended = true,
                HostMessage::WindowSize(size) => {
                    if let Some(master) = self.input.as_ref().filter(|_| self.terminal) {
                        // A terminal that is already gone has no size to set.
                        let _ = pty::set_window_size(master, size);
                    }
                }
                HostMessage::Run(_) | HostMessage::Prepare { .. } | HostMessage::Start => {
                    return Err(Failure::new(
                        "relay the host's input",
                        "the host sent a second run request",
                    ))
                }
            }
        }
        self.write_input();
        Ok(())
    }

    /// Writes what the command can take now; at the end of the host's input closes the pipe,
    /// or hangs up the terminal (the shell gets SIGHUP, as when a terminal window closes).
    fn write_input(&mut self) {
        if let Some(fd) = &self.input {
            if !self.pending.is_empty() {
                // SAFETY: writes from a valid buffer of the given length.
                let n = unsafe {
                    libc::write(
                        fd.as_raw_fd(),
                        self.pending.as_ptr().cast(),
                        self.pending.len(),
                    )
                };
                if n >= 0 {
                    self.pending.drain(..n as usize);
                } else if !matches!(
                    io::Error::last_os_error().kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    // The command closed its input (EPIPE) or the terminal is gone (EIO).
                    self.input = None;
                }
            }
        }
        if self.input.is_none() {
            self.pending.clear();
        } else if self.input_ended && self.pending.is_empty() {
            self.input = None;
            if self.terminal {
                self.outputs.clear();
            }
        }
    }

    /// Reads one chunk of an output and sends it; returns whether it is still open.
    fn forward(&mut self, index: usize) -> Result<bool, Failure> {
        let (fd, stream) = &self.outputs[index];
        // SAFETY: reads into a valid, writable buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), CHUNK) };
        if n > 0 {
            let data = self.buf[..n as usize].to_vec();
            self.port.send(&match stream {
                Stream::Stdout => GuestMessage::Stdout(data),
                Stream::Stderr => GuestMessage::Stderr(data),
            })?;
            return Ok(true);
        }
        if n == 0 {
            return Ok(false);
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => Ok(true),
            // A terminal's master reads EIO once no process has the terminal open.
            _ if error.raw_os_error() == Some(libc::EIO) => Ok(false),
            _ => Err(Failure::new("read the command's output", error)),
        }
    }

    /// Sends what the command wrote before it exited.
    fn drain_outputs(&mut self) -> Result<(), Failure> {
        for i in 0..self.outputs.len() {
            for _ in 0..MAX_DRAIN_READS {
                let mut fd = poll_fd(self.outputs[i].0.as_raw_fd(), libc::POLLIN);
                // SAFETY: one valid pollfd, zero timeout.
                let ready = unsafe { libc::poll(&mut fd, 1, 0) };
                if ready <= 0 || fd.revents & libc::POLLIN == 0 || !self.forward(i)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

fn poll_fd(fd: libc::c_int, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
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
