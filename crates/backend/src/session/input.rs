//! The host's input to a guest command that reads it (`vmlane shell`): a pipe passed through
//! as it is, or the user's terminal, put in raw mode so every key (Ctrl-C, Ctrl-Z, arrows)
//! reaches the guest's own terminal, watched for resizes and for vmlane's escape, Ctrl-A X.

use rustix::io::Errno;
use rustix::termios::{OptionalActions, SpecialCodeIndex, Termios};
use signal_hook::SigId;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use vmlane_proto::{Input, WindowSize};

const CTRL_A: u8 = 0x01;
const READ_CHUNK: usize = 16 * 1024;

/// The host's stdin, relayed to the guest.
pub(super) struct HostInput<'fd> {
    fd: BorrowedFd<'fd>,
    /// Until end of file (or a hang-up) on it.
    pub open: bool,
    terminal: Option<Terminal<'fd>>,
}

/// What one read of the host's input gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// Bytes for the guest (possibly none: an escape key waiting for the next one).
    Data(Vec<u8>),
    /// End of input; the guest gets `StdinClosed`.
    Closed,
    /// The user typed Ctrl-A X; the bytes before it still go to the guest.
    Escape(Vec<u8>),
}

struct Terminal<'fd> {
    raw: RawMode<'fd>,
    escape: EscapeScanner,
    size: WindowSize,
    resized: SignalPipe,
    continued: SignalPipe,
    /// Signals that end a run in a raw terminal the way SIGINT and SIGTERM do.
    stops: Vec<(i32, SignalPipe)>,
}

impl<'fd> HostInput<'fd> {
    /// Starts relaying `fd` when the request reads input. For a terminal this switches it to
    /// raw mode (undone on drop) and fills in the request's window size.
    pub fn start(fd: BorrowedFd<'fd>, input: &mut Input) -> io::Result<Option<HostInput<'fd>>> {
        let terminal = match input {
            Input::Null => return Ok(None),
            Input::Pipe => None,
            Input::Terminal(size) => {
                let terminal = Terminal {
                    resized: SignalPipe::register(libc::SIGWINCH)?,
                    continued: SignalPipe::register(libc::SIGCONT)?,
                    stops: [libc::SIGHUP, libc::SIGQUIT]
                        .into_iter()
                        .map(|signal| Ok((signal, SignalPipe::register(signal)?)))
                        .collect::<io::Result<_>>()?,
                    raw: RawMode::enable(fd)?,
                    escape: EscapeScanner::default(),
                    size: window_size(fd).unwrap_or_default(),
                };
                *size = terminal.size;
                Some(terminal)
            }
        };
        Ok(Some(HostInput {
            fd,
            open: true,
            terminal,
        }))
    }

    /// The descriptor to poll for input.
    pub fn fd(&self) -> BorrowedFd<'fd> {
        self.fd
    }

    /// Descriptors that become readable when the terminal was resized or vmlane continued.
    pub fn resize_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.terminal
            .iter()
            .flat_map(|t| [t.resized.fd(), t.continued.fd()])
            .collect()
    }

    /// Descriptors of signals that end the run.
    pub fn stop_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.terminal
            .iter()
            .flat_map(|t| t.stops.iter().map(|(_, pipe)| pipe.fd()))
            .collect()
    }

    /// The stop signal that arrived, if any.
    pub fn stop_received(&self) -> Option<i32> {
        let terminal = self.terminal.as_ref()?;
        terminal
            .stops
            .iter()
            .find(|(_, pipe)| pipe.take())
            .map(|(signal, _)| *signal)
    }

    /// The terminal's new size, when it changed. After vmlane was stopped and continued, its
    /// shell may have reset the terminal, so raw mode is applied again.
    pub fn resized(&mut self) -> Option<WindowSize> {
        let terminal = self.terminal.as_mut()?;
        terminal.resized.take();
        if terminal.continued.take() {
            terminal.raw.reapply();
        }
        let size = window_size(self.fd)?;
        (size != terminal.size).then(|| {
            terminal.size = size;
            size
        })
    }

    /// Reads what is there; call only when the descriptor polled readable.
    pub fn read(&mut self) -> Received {
        let mut buf = [0u8; READ_CHUNK];
        // The descriptor stays blocking (its flags are shared with the user's shell), which is
        // why this waits for poll.
        let n = match rustix::io::read(self.fd, &mut buf) {
            Ok(n) => n,
            Err(Errno::INTR | Errno::AGAIN) => return Received::Data(Vec::new()),
            // A terminal that hung up (EIO) or a descriptor that is not there.
            Err(_) => 0,
        };
        if n == 0 {
            self.open = false;
            return Received::Closed;
        }
        let data = &buf[..n];
        match self.terminal.as_mut() {
            Some(terminal) => terminal.escape.scan(data),
            None => Received::Data(data.to_vec()),
        }
    }
}

/// Finds Ctrl-A X in what the user types; Ctrl-A Ctrl-A is one Ctrl-A and Ctrl-A followed by
/// anything else is passed on whole, so only the escape itself is lost to the guest.
#[derive(Debug, Default)]
pub(super) struct EscapeScanner {
    after_ctrl_a: bool,
}

impl EscapeScanner {
    pub(super) fn scan(&mut self, input: &[u8]) -> Received {
        let mut out = Vec::with_capacity(input.len());
        for &byte in input {
            if std::mem::take(&mut self.after_ctrl_a) {
                match byte {
                    b'x' | b'X' => return Received::Escape(out),
                    CTRL_A => out.push(CTRL_A),
                    other => out.extend_from_slice(&[CTRL_A, other]),
                }
            } else if byte == CTRL_A {
                self.after_ctrl_a = true;
            } else {
                out.push(byte);
            }
        }
        Received::Data(out)
    }
}

/// A terminal in raw mode until this is dropped, however the run ends.
struct RawMode<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Termios,
    raw: Termios,
}

impl<'fd> RawMode<'fd> {
    fn enable(fd: BorrowedFd<'fd>) -> io::Result<RawMode<'fd>> {
        let saved = rustix::termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        raw.special_codes[SpecialCodeIndex::VMIN] = 1;
        raw.special_codes[SpecialCodeIndex::VTIME] = 0;
        let mode = RawMode { fd, saved, raw };
        mode.set(&mode.raw)?;
        Ok(mode)
    }

    fn reapply(&self) {
        let _ = self.set(&self.raw);
    }

    fn set(&self, termios: &Termios) -> io::Result<()> {
        Ok(rustix::termios::tcsetattr(
            self.fd,
            OptionalActions::Drain,
            termios,
        )?)
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        // A terminal that hung up cannot be restored, and there is nobody to tell.
        let _ = self.set(&self.saved);
    }
}

/// A signal turned into a readable descriptor while this lives.
struct SignalPipe {
    id: SigId,
    read: UnixStream,
}

impl SignalPipe {
    fn register(signal: i32) -> io::Result<SignalPipe> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let id = signal_hook::low_level::pipe::register(signal, write)?;
        Ok(SignalPipe { id, read })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Whether the signal arrived since the last call.
    fn take(&self) -> bool {
        let mut buf = [0u8; 64];
        let mut got = false;
        while matches!((&self.read).read(&mut buf), Ok(n) if n > 0) {
            got = true;
        }
        got
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// The size of the terminal on `fd`, if it is one.
pub(super) fn window_size(fd: BorrowedFd<'_>) -> Option<WindowSize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    Some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}
