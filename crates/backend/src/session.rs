//! The host side of one run, the same for every backend: listen for the console and the port,
//! start the VM, send the run request, stream output, and decide how the run ended.

use crate::console::ConsoleLog;
use crate::machine::{Backend, BackendError, Machine, RunningVm};
use crate::signals::StopSignals;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};
use vmlane_proto::{encode, DecodeError, Decoder, GuestMessage, HostMessage, RunRequest};
use vmlane_spec::Outcome;

/// Everything one run needs besides the backend.
pub struct Session<'a> {
    /// The VM to start; its socket paths are where the session listens.
    pub machine: Machine,
    /// What to run in it.
    pub request: RunRequest,
    /// Wall-clock limit from the VM's start.
    pub timeout: Option<Duration>,
    /// Where the command's stdout goes.
    pub stdout: &'a mut dyn Write,
    /// Where the command's stderr goes.
    pub stderr: &'a mut dyn Write,
    /// The console log.
    pub console: &'a mut ConsoleLog,
    /// SIGINT/SIGTERM, already being caught.
    pub signals: &'a StopSignals,
}

/// When each phase of the run was reached, measured from the start of the session.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    /// Host-side points: `vm started`, `port connected`, `result received`, `vm gone`.
    pub host: Vec<(String, Duration)>,
    /// Points the guest init reported, with the guest's time since its kernel started.
    pub guest: Vec<(String, Duration)>,
}

/// A run that could not reach an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The backend could not start the VM.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The VMM itself failed (bad arguments, unreadable kernel…); its own words.
    #[error("the VMM exited before the guest started: {0}")]
    VmmFailed(String),
    /// The guest sent bytes that are not vmlane frames.
    #[error("the guest broke the vmlane protocol")]
    Protocol(#[source] DecodeError),
    /// Host-side I/O failed.
    #[error("failed to {action}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str) -> impl FnOnce(io::Error) -> SessionError {
    move |source| SessionError::Io { action, source }
}

/// Runs one VM to its end. The VM and its helpers are gone when this returns, whatever happened.
pub fn run_session(
    backend: &dyn Backend,
    session: Session<'_>,
) -> Result<(Outcome, Timings), SessionError> {
    let started = Instant::now();
    let console_listener = listen(&session.machine.console_socket)?;
    let port_listener = session
        .machine
        .port_socket
        .as_deref()
        .map(listen)
        .transpose()?;
    let vm = backend.start(&session.machine)?;
    let mut run = Run {
        vm,
        started,
        deadline: session.timeout.map(|t| started + t),
        timings: Timings::default(),
        console_listener: Some(console_listener),
        port_listener,
        console: None,
        port: None,
        outgoing: encode(&HostMessage::Run(session.request)),
        decoder: Decoder::new(),
        stdout: session.stdout,
        stderr: session.stderr,
        log: session.console,
        signals: session.signals,
    };
    run.mark("vm started");
    let result = run.until_outcome();
    run.vm.kill();
    run.drain_console();
    run.mark("vm gone");
    result.map(|outcome| (outcome, run.timings))
}

fn listen(path: &std::path::Path) -> Result<UnixListener, SessionError> {
    let listener = UnixListener::bind(path).map_err(io_err("listen on a socket in the run dir"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configure a socket"))?;
    Ok(listener)
}

struct Run<'a> {
    vm: Box<dyn RunningVm>,
    started: Instant,
    deadline: Option<Instant>,
    timings: Timings,
    console_listener: Option<UnixListener>,
    port_listener: Option<UnixListener>,
    console: Option<UnixStream>,
    port: Option<UnixStream>,
    outgoing: Vec<u8>,
    decoder: Decoder,
    stdout: &'a mut dyn Write,
    stderr: &'a mut dyn Write,
    log: &'a mut ConsoleLog,
    signals: &'a StopSignals,
}

/// What woke the loop.
enum Ready {
    ConsoleListener,
    PortListener,
    Console,
    Port,
    PortWritable,
    VmExited,
    Signal,
}

const READ_CHUNK: usize = 64 * 1024;
const MAX_GUEST_MARKS: usize = 64;

impl Run<'_> {
    fn mark(&mut self, name: &str) {
        self.timings
            .host
            .push((name.to_string(), self.started.elapsed()));
    }

    fn until_outcome(&mut self) -> Result<Outcome, SessionError> {
        loop {
            let timeout = match self.deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left.as_millis().clamp(1, i32::MAX as u128) as i32,
                    None => return Ok(Outcome::TimedOut),
                },
                None => -1,
            };
            for ready in self.poll(timeout)? {
                if let Some(outcome) = self.handle(ready)? {
                    return Ok(outcome);
                }
            }
        }
    }

    fn poll(&mut self, timeout_ms: i32) -> Result<Vec<Ready>, SessionError> {
        let mut entries: Vec<(RawFd, i16, Ready)> = Vec::new();
        if let Some(l) = &self.console_listener {
            entries.push((l.as_raw_fd(), libc::POLLIN, Ready::ConsoleListener));
        }
        if let Some(l) = &self.port_listener {
            entries.push((l.as_raw_fd(), libc::POLLIN, Ready::PortListener));
        }
        if let Some(s) = &self.console {
            entries.push((s.as_raw_fd(), libc::POLLIN, Ready::Console));
        }
        if let Some(s) = &self.port {
            entries.push((s.as_raw_fd(), libc::POLLIN, Ready::Port));
            if !self.outgoing.is_empty() {
                entries.push((s.as_raw_fd(), libc::POLLOUT, Ready::PortWritable));
            }
        }
        entries.push((self.vm.exit_fd(), libc::POLLIN, Ready::VmExited));
        for fd in self.signals.fds() {
            entries.push((fd, libc::POLLIN, Ready::Signal));
        }
        let mut fds: Vec<libc::pollfd> = entries
            .iter()
            .map(|&(fd, events, _)| libc::pollfd {
                fd,
                events,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                ErrorKind::Interrupted => Ok(Vec::new()),
                _ => Err(io_err("wait for the VM")(error)),
            };
        }
        Ok(entries
            .into_iter()
            .zip(fds)
            .filter(|(_, pfd)| pfd.revents != 0)
            .map(|((_, _, ready), _)| ready)
            .collect())
    }

    fn handle(&mut self, ready: Ready) -> Result<Option<Outcome>, SessionError> {
        match ready {
            Ready::ConsoleListener => {
                self.console = accept(&mut self.console_listener)?;
            }
            Ready::PortListener => {
                self.port = accept(&mut self.port_listener)?;
                if self.port.is_some() {
                    self.mark("port connected");
                }
            }
            Ready::Console => self.read_console()?,
            Ready::PortWritable => self.write_request()?,
            Ready::Port => return self.read_port(),
            Ready::Signal => {
                if let Some(signal) = self.signals.received() {
                    return Ok(Some(Outcome::Interrupted(signal)));
                }
            }
            Ready::VmExited => return self.vm_exited().map(Some),
        }
        Ok(None)
    }

    fn read_console(&mut self) -> Result<(), SessionError> {
        let Some(stream) = self.console.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; READ_CHUNK];
        match stream.read(&mut buf) {
            Ok(0) => self.console = None,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => self.console = None,
            Ok(n) => self
                .log
                .write(&buf[..n])
                .map_err(io_err("write the console log"))?,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read the guest console")(e)),
        }
        Ok(())
    }

    fn drain_console(&mut self) {
        while readable(self.console.as_ref()) {
            if self.read_console().is_err() {
                break;
            }
        }
    }

    fn write_request(&mut self) -> Result<(), SessionError> {
        let Some(stream) = self.port.as_mut() else {
            return Ok(());
        };
        match stream.write(&self.outgoing) {
            Ok(n) => {
                self.outgoing.drain(..n);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                Ok(())
            }
            Err(e) => Err(io_err("send the run request to the guest")(e)),
        }
    }

    fn read_port(&mut self) -> Result<Option<Outcome>, SessionError> {
        let Some(stream) = self.port.as_mut() else {
            return Ok(None);
        };
        let mut buf = vec![0u8; READ_CHUNK];
        match stream.read(&mut buf) {
            Ok(0) => {
                self.port = None;
                return Ok(None);
            }
            Ok(n) => self.decoder.push(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(None)
            }
            // QEMU went away; the exit of the VM tells the rest.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.port = None;
                return Ok(None);
            }
            Err(e) => return Err(io_err("read from the guest port")(e)),
        }
        while let Some(message) = self
            .decoder
            .next_message::<GuestMessage>()
            .map_err(SessionError::Protocol)?
        {
            if let Some(outcome) = self.on_message(message)? {
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }

    fn on_message(&mut self, message: GuestMessage) -> Result<Option<Outcome>, SessionError> {
        match message {
            // A bounded number: the guest decides how many it sends.
            GuestMessage::Mark { name, boot_ns } if self.timings.guest.len() < MAX_GUEST_MARKS => {
                self.timings
                    .guest
                    .push((name.clone(), Duration::from_nanos(boot_ns)));
                self.mark(&format!("guest: {name}"));
            }
            GuestMessage::Mark { .. } => {}
            GuestMessage::Stdout(data) => {
                if let Some(outcome) = forward(self.stdout, &data)? {
                    return Ok(Some(outcome));
                }
            }
            GuestMessage::Stderr(data) => {
                if let Some(outcome) = forward(self.stderr, &data)? {
                    return Ok(Some(outcome));
                }
            }
            GuestMessage::Exit(status) => {
                self.mark("result received");
                return Ok(Some(Outcome::Completed(status)));
            }
            GuestMessage::Failed { step, message } => {
                return Ok(Some(Outcome::InitFailed { step, message }));
            }
        }
        Ok(None)
    }

    fn vm_exited(&mut self) -> Result<Outcome, SessionError> {
        let vmm_said = self.vm.try_wait().map_err(io_err("wait for the VMM"))?;
        // Whatever the guest sent before it went down still counts.
        while readable(self.port.as_ref()) {
            if let Some(outcome) = self.read_port()? {
                return Ok(outcome);
            }
        }
        self.drain_console();
        if let Some(line) = self.log.panic_line() {
            return Ok(Outcome::KernelPanic(line.to_string()));
        }
        let last_line = self.log.last_line();
        match (last_line, vmm_said) {
            (None, Some(said)) if !said.trim().is_empty() => {
                Err(SessionError::VmmFailed(said.trim().to_string()))
            }
            (last_line, _) => Ok(Outcome::VmDied(last_line)),
        }
    }
}

/// Whether a stream has bytes (or its end) waiting right now.
fn readable(stream: Option<&UnixStream>) -> bool {
    let Some(stream) = stream else { return false };
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    unsafe { libc::poll(&mut fd, 1, 0) > 0 }
}

fn accept(listener: &mut Option<UnixListener>) -> Result<Option<UnixStream>, SessionError> {
    let Some(l) = listener.as_ref() else {
        return Ok(None);
    };
    match l.accept() {
        Ok((stream, _)) => {
            stream
                .set_nonblocking(true)
                .map_err(io_err("configure a socket"))?;
            *listener = None;
            Ok(Some(stream))
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(io_err("accept the VM's connection")(e)),
    }
}

/// Writes guest output to the host stream. A closed host pipe (`vmlane run … | head`) ends the
/// run the way it would end a local command: as if by SIGPIPE.
fn forward(out: &mut dyn Write, data: &[u8]) -> Result<Option<Outcome>, SessionError> {
    match out.write_all(data).and_then(|()| out.flush()) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            Ok(Some(Outcome::Interrupted(libc::SIGPIPE)))
        }
        Err(e) => Err(io_err("write the command's output")(e)),
    }
}

#[cfg(test)]
mod tests;
