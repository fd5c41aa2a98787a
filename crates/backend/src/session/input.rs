//! The host's input to a guest command that reads it (`vmlane shell`): a pipe passed through
//! as it is, or the user's terminal, put in raw mode so every key (Ctrl-C, Ctrl-Z, arrows)
//! reaches the guest's own terminal, watched for resizes and for vmlane's escape, Ctrl-A X.

use signal_hook::SigId;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use vmlane_proto::{Input, WindowSize};

const CTRL_A: u8 = 0x01;
const READ_CHUNK: usize = 16 * 1024;

/// The host's stdin, relayed to the guest.
pub(super) struct HostInput {
    fd: RawFd,
    /// Until end of file (or a hang-up) on it.
    pub open: bool,
    terminal: Option<Terminal>,
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

struct Terminal {
    raw: RawMode,
    escape: EscapeScanner,
    size: WindowSize,
    resized: SignalPipe,
    continued: SignalPipe,
    /// Signals that end a run in a raw terminal the way SIGINT and SIGTERM do.
    stops: Vec<(i32, SignalPipe)>,
}

impl HostInput {
    /// Starts relaying `fd` when the request reads input. For a terminal this switches it to
    /// raw mode (undone on drop) and fills in the request's window size.
    pub fn start(fd: RawFd, input: &mut Input) -> io::Result<Option<HostInput>> {
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
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Descriptors that become readable when the terminal was resized or vmlane continued.
    pub fn resize_fds(&self) -> Vec<RawFd> {
        self.terminal
            .iter()
            .flat_map(|t| [t.resized.fd(), t.continued.fd()])
            .collect()
    }

    /// Descriptors of signals that end the run.
    pub fn stop_fds(&self) -> Vec<RawFd> {
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
        // SAFETY: reads into a local buffer of the given length. The descriptor stays blocking
        // (its flags are shared with the user's shell), which is why this waits for poll.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let error = io::Error::last_os_error();
            if matches!(
                error.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                return Received::Data(Vec::new());
            }
        }
        // An error here is a terminal that hung up (EIO) or a descriptor that is not there.
        if n <= 0 {
            self.open = false;
            return Received::Closed;
        }
        let data = &buf[..n as usize];
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
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
    raw: libc::termios,
}

impl RawMode {
    fn enable(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios; cfmakeraw only edits its flags.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        let mode = RawMode { fd, saved, raw };
        mode.set(&mode.raw)?;
        Ok(mode)
    }

    fn reapply(&self) {
        let _ = self.set(&self.raw);
    }

    fn set(&self, termios: &libc::termios) -> io::Result<()> {
        // SAFETY: `termios` is a valid termios; tcsetattr only reads it.
        if unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, termios) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for RawMode {
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

    fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
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
pub(super) fn window_size(fd: RawFd) -> Option<WindowSize> {
    // SAFETY: a zeroed winsize is a valid buffer for TIOCGWINSZ to fill.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    Some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}
