//! The host side of one run, the same for every backend: listen for the console and the port,
//! start the VM, send the run request, stream output, and decide how the run ended.

use crate::console::ConsoleLog;
use crate::machine::{Backend, BackendError, Machine, RunningVm};
use crate::marked::{ConsoleEvent, MarkedConsole};
use crate::signals::StopSignals;
use crate::turn::{Turn, TurnWait};
use input::{HostInput, Received};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vmlane_checks::golden::RESTORE_LINE;
use vmlane_proto::{
    encode, DecodeError, Decoder, Frame, GuestMessage, HostMessage, Marker, RunRequest,
};
use vmlane_spec::Outcome;

mod input;

/// How the guest learns what to run and tells how it ended.
#[derive(Debug, Clone)]
pub enum GuestChannel {
    /// vmlane's Linux init: the request goes over the vmlane port, results come back on it.
    Port(RunRequest),
    /// A guest that already knows what to run (it is on its disk) and reports with marker
    /// lines carrying this token on the serial console.
    Console {
        /// The run's token.
        token: String,
        /// At a kernel prompt (`db>`, `mountroot>`), hand the console to the user (stdin in,
        /// console out on stderr) instead of ending the run.
        debugger: bool,
        /// The command's output and status come as frames on the machine's port (a FreeBSD
        /// init's second serial port), so the console is the kernel's: its lines are never
        /// output, while a marker there (a step that failed before the port was open) or a
        /// panic still ends the run.
        framed: bool,
        /// With `framed`: the request, sent on the port (after the clock and entropy) once the
        /// guest says it is ready, followed by the command's input. `None`: the guest has the
        /// whole run on its disk and reads nothing from the port.
        request: Option<RunRequest>,
    },
}

/// What the session does with saved guests.
#[derive(Debug, Clone, Default)]
pub enum Snapshotting {
    /// Nothing: the guest boots and runs.
    #[default]
    Off,
    /// The guest boots; once its init is ready for the request, the VM is saved to `state`
    /// (its RAM to `ram` when it is in a memory file) and the console so far to `console`,
    /// then it runs on. A save that fails leaves none of the files and the run goes on.
    Save {
        /// Where the VM's state goes.
        state: PathBuf,
        /// Where the RAM goes, when the machine keeps it in a memory file.
        ram: PathBuf,
        /// Where the console up to that point goes.
        console: PathBuf,
    },
    /// The machine restores a guest saved that way; `console` is what it printed while it
    /// booted, put at the head of this run's console log.
    Restored {
        /// The saved boot console.
        console: Vec<u8>,
        /// How long the restored init may take to say its root is ready; one that stays
        /// silent longer was not restored whole (see [`RESTORED_ANSWER_LIMIT`]).
        answer_within: Duration,
    },
}

/// How long a restored init may take to start its command once its turn came: it does in well
/// under a second, even under emulation. QEMU sometimes restores a guest whose timer interrupt
/// never comes (seen on s390x under TCG: the CPU in an enabled wait for its clock comparator),
/// and such a run must boot instead of hanging.
pub const RESTORED_ANSWER_LIMIT: Duration = Duration::from_secs(20);

/// How long a kernel that printed its panic line may take to finish the report and reset
/// before the run is ended anyway.
const PANIC_GRACE: Duration = Duration::from_secs(3);

/// Everything one run needs besides the backend.
pub struct Session<'a> {
    /// The VM to start; its socket paths are where the session listens.
    pub machine: Machine,
    /// What to run in it, and how results come back.
    pub channel: GuestChannel,
    /// Wall-clock limit from the VM's start, or from the command's start for a run that
    /// waits for its turn.
    pub timeout: Option<Duration>,
    /// When the command may start; `None` starts it as soon as the guest is ready.
    pub turn: Option<&'a Turn>,
    /// Where the command's stdout goes.
    pub stdout: &'a mut dyn Write,
    /// Where the command's stderr goes.
    pub stderr: &'a mut dyn Write,
    /// The console log.
    pub console: &'a mut ConsoleLog,
    /// SIGINT/SIGTERM, already being caught.
    pub signals: &'a StopSignals,
    /// Whether the guest is saved, or was.
    pub snapshot: Snapshotting,
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
    /// A helper the guest depends on stopped while the guest ran.
    #[error("{0}")]
    HelperFailed(String),
    /// A saved guest could not be restored; the VMM's words.
    #[error("the saved guest could not be restored: {0}")]
    RestoreFailed(String),
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
/// A command that reads input gets vmlane's stdin; a terminal there is in raw mode until then.
pub fn run_session(
    backend: &dyn Backend,
    session: Session<'_>,
) -> Result<(Outcome, Timings), SessionError> {
    let stdin = io::stdin();
    run_session_with_input(backend, session, stdin.as_fd())
}

fn run_session_with_input(
    backend: &dyn Backend,
    session: Session<'_>,
    input_fd: BorrowedFd<'_>,
) -> Result<(Outcome, Timings), SessionError> {
    let started = Instant::now();
    if let Snapshotting::Restored { console, .. } = &session.snapshot {
        let newline: &[u8] = if console.ends_with(b"\n") || console.is_empty() {
            b""
        } else {
            b"\n"
        };
        let head = [console.as_slice(), newline, RESTORE_LINE.as_bytes(), b"\n"].concat();
        session
            .console
            .write(&head)
            .map_err(io_err("write the console log"))?;
    }
    let console_listener = listen(&session.machine.console_socket)?;
    let port_listener = session
        .machine
        .port_socket
        .as_deref()
        .map(listen)
        .transpose()?;
    // Only a guest that asks over its port is started by a frame; any other waited for its
    // turn before it booted.
    let port_channel = matches!(session.channel, GuestChannel::Port(_));
    let awaiting = session
        .turn
        .filter(|turn| port_channel && turn.outcome() != Some(TurnWait::Go));
    let (requests, gated, marked, debugger, framed, input) = match session.channel {
        GuestChannel::Port(mut request) => {
            let input = HostInput::start(input_fd, &mut request.input)
                .map_err(io_err("put the terminal in raw mode"))?;
            let mut frames = encode(&HostMessage::Run(request));
            if awaiting.is_none() {
                HostMessage::Start.encode_into(&mut frames);
            }
            (frames, false, None, false, true, input)
        }
        GuestChannel::Console {
            token,
            debugger,
            framed,
            request,
        } => {
            let (frames, input) = match request {
                Some(mut request) => {
                    let input = HostInput::start(input_fd, &mut request.input)
                        .map_err(io_err("put the terminal in raw mode"))?;
                    (encode(&HostMessage::Run(request)), input)
                }
                None => (Vec::new(), None),
            };
            let marked = Some(MarkedConsole::new(&token));
            (frames, true, marked, debugger, framed, input)
        }
    };
    // A guest to be saved gets its request only after the save, or the saved one would
    // already have it; a guest that opens its port late (a serial port is no socket that
    // keeps what came before) gets it once it says it listens.
    let restored = matches!(session.snapshot, Snapshotting::Restored { .. });
    // Linux's init answers (its root is ready, then its command started) over its port; a
    // FreeBSD guest's first frame may be its command's output, which may take any time.
    let answer_deadline = match &session.snapshot {
        Snapshotting::Restored { answer_within, .. } if port_channel => {
            Some((started + *answer_within, *answer_within))
        }
        _ => None,
    };
    let (outgoing, held, save) = match session.snapshot {
        Snapshotting::Save {
            state,
            ram,
            console,
        } => (
            Vec::new(),
            Some(requests),
            Some(SaveTo {
                state,
                ram,
                console,
            }),
        ),
        // A restored guest said it was ready before it was saved.
        _ if gated && !restored => (Vec::new(), Some(requests), None),
        _ => (with_prepare(requests)?, None, None),
    };
    let vm = backend.start(&session.machine)?;
    let mut run = Run {
        vm,
        started,
        deadline: session
            .timeout
            .filter(|_| awaiting.is_none())
            .map(|t| started + t),
        timeout: session.timeout,
        awaiting,
        answer_deadline,
        timings: Timings::default(),
        console_listener: Some(console_listener),
        port_listener,
        console: None,
        port: None,
        outgoing,
        held,
        save,
        restored,
        answer_within: answer_deadline.map(|(_, limit)| limit),
        heard_from_vm: false,
        decoder: Decoder::new(),
        marked,
        framed,
        panic_deadline: None,
        debugger,
        interactive: false,
        input_fd,
        input,
        stdout: session.stdout,
        stderr: session.stderr,
        log: session.console,
        signals: session.signals,
    };
    run.mark("vm started");
    if run.restored {
        if let Err(error) = run.resume() {
            run.vm.kill();
            return Err(error);
        }
    }
    let result = run.until_outcome();
    run.vm.kill();
    run.drain_console();
    run.mark("vm gone");
    result.map(|outcome| (outcome, run.timings))
}

/// Where a ready guest is saved.
struct SaveTo {
    state: PathBuf,
    ram: PathBuf,
    console: PathBuf,
}

/// The clock and entropy as they are now, then `frames` (the request and what follows it);
/// nothing for a guest that is sent no request.
fn with_prepare(frames: Vec<u8>) -> Result<Vec<u8>, SessionError> {
    if frames.is_empty() {
        return Ok(frames);
    }
    let mut all = encode(&prepare().map_err(io_err("read the host's entropy"))?);
    all.extend(frames);
    Ok(all)
}

/// The clock and entropy every guest gets before its request.
fn prepare() -> io::Result<HostMessage> {
    let wall_clock_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut entropy = vec![0u8; 64];
    let mut filled = 0;
    while filled < entropy.len() {
        filled += rustix::rand::getrandom(
            &mut entropy[filled..],
            rustix::rand::GetRandomFlags::empty(),
        )?;
    }
    Ok(HostMessage::Prepare {
        wall_clock_ns,
        entropy,
    })
}

fn listen(path: &std::path::Path) -> Result<UnixListener, SessionError> {
    // A socket left by an earlier attempt in the same run directory.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(io_err("listen on a socket in the run dir"))?;
    listener
        .set_nonblocking(true)
        .map_err(io_err("configure a socket"))?;
    Ok(listener)
}

struct Run<'a, 'fd> {
    vm: Box<dyn RunningVm>,
    started: Instant,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    /// The turn the command waits for; the timeout counts from when it comes.
    awaiting: Option<&'a Turn>,
    /// When a restored guest whose command has not started counts as not restored, and the
    /// limit that was; paused while its command waits for the run's turn.
    answer_deadline: Option<(Instant, Duration)>,
    timings: Timings,
    console_listener: Option<UnixListener>,
    port_listener: Option<UnixListener>,
    console: Option<UnixStream>,
    port: Option<UnixStream>,
    outgoing: Vec<u8>,
    /// Frames for the guest held back until it has been saved.
    held: Option<Vec<u8>>,
    /// Where to save the ready guest.
    save: Option<SaveTo>,
    /// Whether the VM was restored from a saved guest.
    restored: bool,
    /// How long a restored guest may take to start its command once its turn came.
    answer_within: Option<Duration>,
    /// Whether the VM has sent anything, on the console or the port.
    heard_from_vm: bool,
    decoder: Decoder,
    marked: Option<MarkedConsole>,
    /// The command's output comes in frames on the port, never from the console.
    framed: bool,
    panic_deadline: Option<Instant>,
    /// Whether a kernel prompt hands the console to the user.
    debugger: bool,
    /// Whether it has: stdin goes to the console and the console to stderr.
    interactive: bool,
    /// vmlane's stdin.
    input_fd: BorrowedFd<'fd>,
    /// The command's input, when it reads the host's.
    input: Option<HostInput<'fd>>,
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
    /// The run's turn came.
    Turn,
    VmExited,
    /// A helper of the VM (virtiofsd) exited.
    HelperExited,
    Signal,
    Stdin,
    /// The host's input for the command.
    Input,
    /// The terminal was resized, or vmlane continued after a stop.
    Resize,
    /// A signal that ends a run in a raw terminal.
    TerminalStop,
}

const READ_CHUNK: usize = 64 * 1024;
/// Frames for the guest not yet taken by the port. Above this the host's input is left unread,
/// so a guest that reads slowly slows the sender down instead of filling vmlane's memory.
const MAX_OUTGOING: usize = 256 * 1024;
const MAX_GUEST_MARKS: usize = 64;
/// How long the VM may take to exit after a helper did, for the helper's exit to count as
/// part of the VM's end.
const HELPER_GRACE_MS: i32 = 1000;

impl Run<'_, '_> {
    fn mark(&mut self, name: &str) {
        self.timings
            .host
            .push((name.to_string(), self.started.elapsed()));
    }

    fn until_outcome(&mut self) -> Result<Outcome, SessionError> {
        loop {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| d <= now) {
                return Ok(Outcome::TimedOut);
            }
            if self.panic_deadline.is_some_and(|d| d <= now) {
                return Ok(self.panicked());
            }
            if let Some((_, limit)) = self.answer_deadline.filter(|(at, _)| *at <= now) {
                return Err(SessionError::RestoreFailed(format!(
                    "the restored guest did not start its command within {:.1} s",
                    limit.as_secs_f64()
                )));
            }
            let answer = self.answer_deadline.map(|(at, _)| at);
            let next = [self.deadline, self.panic_deadline, answer]
                .into_iter()
                .flatten()
                .min();
            let timeout = match next {
                Some(at) => at
                    .saturating_duration_since(now)
                    .as_millis()
                    .clamp(1, i32::MAX as u128) as i32,
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
        let mut entries: Vec<(BorrowedFd<'_>, PollFlags, Ready)> = Vec::new();
        if let Some(l) = &self.console_listener {
            entries.push((l.as_fd(), PollFlags::IN, Ready::ConsoleListener));
        }
        if let Some(l) = &self.port_listener {
            entries.push((l.as_fd(), PollFlags::IN, Ready::PortListener));
        }
        if let Some(s) = &self.console {
            entries.push((s.as_fd(), PollFlags::IN, Ready::Console));
        }
        if let Some(s) = &self.port {
            entries.push((s.as_fd(), PollFlags::IN, Ready::Port));
            if !self.outgoing.is_empty() {
                entries.push((s.as_fd(), PollFlags::OUT, Ready::PortWritable));
            }
        }
        if let Some(turn) = self.awaiting {
            entries.push((turn.fd(), PollFlags::IN, Ready::Turn));
        }
        // SAFETY: the descriptor belongs to `self.vm`, borrowed (so neither dropped nor killed)
        // until the poll below returns.
        let exit_fd = unsafe { BorrowedFd::borrow_raw(self.vm.exit_fd()) };
        entries.push((exit_fd, PollFlags::IN, Ready::VmExited));
        for fd in self.vm.helper_fds() {
            // SAFETY: as the exit descriptor: `self.vm`'s, alive through the poll.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            entries.push((fd, PollFlags::IN, Ready::HelperExited));
        }
        if let Some(input) = &self.input {
            // A resize is handled before keys typed after it.
            for fd in input.resize_fds() {
                entries.push((fd, PollFlags::IN, Ready::Resize));
            }
            // Input waits while the request does, so it cannot pile up unbounded, and until a
            // restored guest's command starts: a guest that stalls before then is booted
            // again, and the input must still be there for it.
            if input.open
                && self.held.is_none()
                && self.awaiting.is_none()
                && self.answer_deadline.is_none()
                && self.outgoing.len() < MAX_OUTGOING
            {
                entries.push((input.fd(), PollFlags::IN, Ready::Input));
            }
            for fd in input.stop_fds() {
                entries.push((fd, PollFlags::IN, Ready::TerminalStop));
            }
        }
        if self.interactive {
            entries.push((self.input_fd, PollFlags::IN, Ready::Stdin));
        }
        for fd in self.signals.fds() {
            // SAFETY: the descriptor belongs to `self.signals`, which outlives the run.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            entries.push((fd, PollFlags::IN, Ready::Signal));
        }
        let mut fds: Vec<PollFd<'_>> = entries
            .iter()
            .map(|&(fd, events, _)| PollFd::from_borrowed_fd(fd, events))
            .collect();
        match poll_ms(&mut fds, timeout_ms) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(Vec::new()),
            Err(errno) => return Err(io_err("wait for the VM")(errno.into())),
        }
        Ok(entries
            .into_iter()
            .zip(fds)
            .filter(|(_, pfd)| !pfd.revents().is_empty())
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
            Ready::Console => return self.read_console(),
            Ready::PortWritable => self.write_request()?,
            Ready::Turn => return Ok(self.turn_came()),
            Ready::Port => return self.read_port(),
            Ready::Signal => {
                if let Some(signal) = self.signals.received() {
                    return Ok(Some(Outcome::Interrupted(signal)));
                }
            }
            Ready::VmExited => return self.vm_exited().map(Some),
            Ready::HelperExited => return self.helper_exited().map(Some),
            Ready::Stdin => return self.relay_stdin(),
            Ready::Input => return self.relay_input(),
            Ready::Resize => {
                if let Some(size) = self.input.as_mut().and_then(HostInput::resized) {
                    self.send(&HostMessage::WindowSize(size));
                }
            }
            Ready::TerminalStop => {
                if let Some(signal) = self.input.as_ref().and_then(HostInput::stop_received) {
                    return Ok(Some(Outcome::Interrupted(signal)));
                }
            }
        }
        Ok(None)
    }

    /// Starts the command, its timeout counted from now; a cancelled turn ends the run.
    fn turn_came(&mut self) -> Option<Outcome> {
        let outcome = self.awaiting.take()?.outcome()?;
        match outcome {
            TurnWait::Stop(signal) => Some(Outcome::Interrupted(signal)),
            TurnWait::Go => {
                self.mark("turn came");
                self.deadline = self.timeout.map(|t| Instant::now() + t);
                if self.restored {
                    self.answer_deadline = self
                        .answer_within
                        .map(|limit| (Instant::now() + limit, limit));
                }
                self.send(&HostMessage::Start);
                None
            }
        }
    }

    /// Queues a frame for the guest, behind the request while that is held.
    fn send(&mut self, message: &HostMessage) {
        match self.held.as_mut() {
            Some(held) => message.encode_into(held),
            None => message.encode_into(&mut self.outgoing),
        }
    }

    /// Passes the host's input to the command; Ctrl-A X on a terminal ends the run as
    /// Ctrl-C ends `vmlane run`.
    fn relay_input(&mut self) -> Result<Option<Outcome>, SessionError> {
        let Some(input) = self.input.as_mut() else {
            return Ok(None);
        };
        match input.read() {
            Received::Data(data) => {
                if !data.is_empty() {
                    self.send(&HostMessage::Stdin(data));
                }
            }
            Received::Closed => self.send(&HostMessage::StdinClosed),
            Received::Escape(data) => {
                if !data.is_empty() {
                    self.send(&HostMessage::Stdin(data));
                }
                forward(self.stderr, b"\r\nvmlane: Ctrl-A X: ending the VM\r\n")?;
                return Ok(Some(Outcome::Interrupted(libc::SIGINT)));
            }
        }
        Ok(None)
    }

    /// Reads what the console has; on a guest that reports there, this may be the outcome.
    fn read_console(&mut self) -> Result<Option<Outcome>, SessionError> {
        let Some(stream) = self.console.as_mut() else {
            return Ok(None);
        };
        let mut buf = [0u8; READ_CHUNK];
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                self.console = None;
                return Ok(None);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.console = None;
                return Ok(None);
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return Ok(None)
            }
            Err(e) => return Err(io_err("read the guest console")(e)),
        };
        self.heard_from_vm = true;
        self.log
            .write(&buf[..n])
            .map_err(io_err("write the console log"))?;
        if self.interactive {
            forward(self.stderr, &buf[..n])?;
            return Ok(None);
        }
        if !self.debugger && self.panic_deadline.is_none() && self.log.panic_line().is_some() {
            self.panic_deadline = Some(Instant::now() + PANIC_GRACE);
        }
        let Some(marked) = self.marked.as_mut() else {
            return Ok(None);
        };
        for event in marked.push(&buf[..n]) {
            if let Some(outcome) = self.on_console_event(event)? {
                return Ok(Some(outcome));
            }
        }
        Ok(None)
    }

    fn on_console_event(&mut self, event: ConsoleEvent) -> Result<Option<Outcome>, SessionError> {
        Ok(match event {
            // With frames, console lines after the start marker are the kernel's.
            ConsoleEvent::Output(_) if self.framed => None,
            ConsoleEvent::Output(bytes) => forward(self.stdout, &bytes)?,
            ConsoleEvent::Marker(Marker::Start) => {
                self.mark("command started");
                None
            }
            ConsoleEvent::Marker(Marker::Ended(status)) => {
                self.mark("result received");
                Some(Outcome::Completed(status))
            }
            ConsoleEvent::Marker(Marker::Failed { step, message }) => {
                Some(Outcome::InitFailed { step, message })
            }
            ConsoleEvent::Stuck { prompt, .. } if self.debugger => {
                self.hand_over_console(&prompt)?;
                None
            }
            ConsoleEvent::Stuck { prompt, .. } if prompt == "db>" => Some(self.panicked()),
            ConsoleEvent::Stuck { prompt, reason } => Some(Outcome::InitFailed {
                step: "mount the root filesystem".into(),
                message: format!(
                    "{}the kernel stopped at its {prompt} prompt",
                    reason.map(|r| format!("{r} ")).unwrap_or_default()
                ),
            }),
        })
    }

    /// Shows the user where the kernel stopped and lets them type at its prompt.
    fn hand_over_console(&mut self, prompt: &str) -> Result<(), SessionError> {
        let mut shown = format!(
            "vmlane: the kernel stopped at its {prompt} prompt; the console is yours (Ctrl-C ends the VM)\n"
        );
        for line in self.log.tail() {
            shown.push_str(line);
            shown.push('\n');
        }
        // The prompt itself has no newline; it is the last, unfinished line.
        shown.pop();
        forward(self.stderr, shown.as_bytes())?;
        self.interactive = true;
        self.panic_deadline = None;
        Ok(())
    }

    /// Passes what the user typed to the kernel's prompt; their end of input ends the run.
    fn relay_stdin(&mut self) -> Result<Option<Outcome>, SessionError> {
        let mut buf = [0u8; 1024];
        let n = match rustix::io::read(self.input_fd, &mut buf) {
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return Ok(None),
            Err(errno) => return Err(io_err("read the terminal")(errno.into())),
        };
        if n == 0 {
            self.interactive = false;
            return Ok(Some(self.panicked()));
        }
        if let Some(console) = self.console.as_mut() {
            console
                .write_all(&buf[..n])
                .map_err(io_err("write to the guest console"))?;
        }
        Ok(None)
    }

    /// The outcome of a kernel that panicked (or stopped in its debugger) and did not reset.
    fn panicked(&mut self) -> Outcome {
        match self.log.panic_line() {
            Some(line) => Outcome::KernelPanic(line.to_string()),
            None => Outcome::KernelPanic("the kernel stopped in its debugger (db>)".into()),
        }
    }

    fn drain_console(&mut self) {
        while readable(self.console.as_ref()) {
            if self.read_console().is_err() {
                break;
            }
        }
    }

    /// Reads the rest of the console of a VM that is gone, for a result it sent last.
    fn drain_console_for_outcome(&mut self) -> Result<Option<Outcome>, SessionError> {
        while readable(self.console.as_ref()) {
            if let Some(outcome) = self.read_console()? {
                return Ok(Some(outcome));
            }
        }
        if let Some(rest) = self.marked.as_mut().and_then(MarkedConsole::finish) {
            if !self.framed {
                forward(self.stdout, &rest)?;
            }
        }
        Ok(None)
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
            // The guest side is gone; how the run ended is still to be read.
            Err(e)
                if e.kind() == ErrorKind::BrokenPipe || e.kind() == ErrorKind::ConnectionReset =>
            {
                self.outgoing.clear();
                Ok(())
            }
            Err(e) => Err(io_err("write to the guest port")(e)),
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
            Ok(n) => {
                self.heard_from_vm = true;
                // Its root is ready; the limit starts again when its turn does.
                if self.awaiting.is_some() {
                    self.answer_deadline = None;
                }
                self.decoder.push(&buf[..n]);
            }
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
        let command_under_way = match &message {
            GuestMessage::Mark { name, .. } => name == vmlane_proto::COMMAND_STARTED,
            GuestMessage::Ready => false,
            _ => true,
        };
        if command_under_way {
            self.answer_deadline = None;
        }
        match message {
            // A bounded number: the guest decides how many it sends.
            GuestMessage::Mark { name, boot_ns } if self.timings.guest.len() < MAX_GUEST_MARKS => {
                self.timings
                    .guest
                    .push((name.clone(), Duration::from_nanos(boot_ns)));
                self.mark(&format!("guest: {name}"));
            }
            GuestMessage::Mark { .. } => {}
            GuestMessage::Ready => self.ready()?,
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

    /// Loads a restored guest's state and runs it; a VM that dies meanwhile could not be
    /// restored.
    fn resume(&mut self) -> Result<(), SessionError> {
        let Err(error) = self.vm.resume() else {
            self.mark("guest restored");
            return Ok(());
        };
        // QEMU's own words say why, once it has exited.
        // SAFETY: the descriptor belongs to `self.vm`, alive through the poll.
        let exit_fd = unsafe { BorrowedFd::borrow_raw(self.vm.exit_fd()) };
        let exited = matches!(poll_ms(&mut [PollFd::from_borrowed_fd(exit_fd, PollFlags::IN)], 2000), Ok(n) if n > 0);
        let said = exited
            .then(|| self.vm.try_wait().ok().flatten())
            .flatten()
            .filter(|said| !said.trim().is_empty());
        Err(SessionError::RestoreFailed(
            said.unwrap_or_else(|| error.to_string()),
        ))
    }

    /// The init waits for its request: save the VM first if asked, then plug in what the
    /// saved guest must not have, then let the request go. A save that fails costs the run
    /// nothing but the time it took.
    fn ready(&mut self) -> Result<(), SessionError> {
        if let Some(to) = self.save.take() {
            // The console up to this point is the saved guest's boot.
            self.drain_console();
            self.mark("saving the guest");
            let saved = self
                .vm
                .save(&to.state, &to.ram)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    std::fs::copy(self.log.path(), &to.console)
                        .map(drop)
                        .map_err(|e| format!("cannot keep the boot console: {e}"))
                });
            match saved {
                Ok(()) => self.mark("guest saved"),
                Err(why) => {
                    for file in [&to.state, &to.ram, &to.console] {
                        let _ = std::fs::remove_file(file);
                    }
                    self.mark(&format!("guest not saved: {why}"));
                }
            }
        }
        if let Some(frames) = self.held.take() {
            self.vm.plug_share()?;
            // The clock is read now: the guest sets it from this frame.
            self.outgoing.extend(with_prepare(frames)?);
        }
        Ok(())
    }

    /// A helper that goes while the VM runs leaves the guest waiting on it; one that goes
    /// because the VM is ending is part of the VM's end.
    fn helper_exited(&mut self) -> Result<Outcome, SessionError> {
        // SAFETY: the descriptor belongs to `self.vm`, alive through the poll.
        let exit_fd = unsafe { BorrowedFd::borrow_raw(self.vm.exit_fd()) };
        let mut exit = [PollFd::from_borrowed_fd(exit_fd, PollFlags::IN)];
        if matches!(poll_ms(&mut exit, HELPER_GRACE_MS), Ok(n) if n > 0) {
            return self.vm_exited();
        }
        let said = self.vm.helper_exited().unwrap_or_default();
        Err(SessionError::HelperFailed(said))
    }

    fn vm_exited(&mut self) -> Result<Outcome, SessionError> {
        let vmm_said = self.vm.try_wait().map_err(io_err("wait for the VMM"))?;
        if self.restored
            && !self.heard_from_vm
            && !readable(self.port.as_ref())
            && !readable(self.console.as_ref())
        {
            let said = vmm_said.unwrap_or_default();
            return Err(SessionError::RestoreFailed(said.trim().to_string()));
        }
        // Whatever the guest sent before it went down still counts.
        while readable(self.port.as_ref()) {
            if let Some(outcome) = self.read_port()? {
                return Ok(outcome);
            }
        }
        if let Some(outcome) = self.drain_console_for_outcome()? {
            return Ok(outcome);
        }
        if let Some(line) = self.log.panic_line() {
            return Ok(Outcome::KernelPanic(line.to_string()));
        }
        if let Some((step, message)) = self.log.init_failure() {
            return Ok(Outcome::InitFailed {
                step: step.to_string(),
                message: message.to_string(),
            });
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
    let mut fds = [PollFd::new(stream, PollFlags::IN)];
    matches!(poll_ms(&mut fds, 0), Ok(n) if n > 0)
}

/// poll(2) with a timeout in milliseconds, as the C call takes it: negative waits forever.
fn poll_ms(fds: &mut [PollFd<'_>], timeout_ms: i32) -> rustix::io::Result<usize> {
    let timeout = u64::try_from(timeout_ms).ok().map(|ms| Timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as _,
    });
    rustix::event::poll(fds, timeout.as_ref())
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
