//! Carries the guest's serial console from bhyve's stdout to the session's console socket, and
//! tells the session the VM is gone only once every byte of it has been handed over: the last
//! console lines (a result, a panic) are written just before the guest powers off.

use crate::sys;
use rustix::event::{PollFd, PollFlags};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long after bhyve exits its stdout may stay open (held by a straggler) before the rest is
/// given up.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// How long after bhyve exits the session gets to take the remaining bytes.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// Console bytes held while the session is not reading; beyond this, new bytes are dropped.
const MAX_BUFFERED: usize = 16 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// A running relay.
pub struct Relay {
    done: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

/// Which descriptor a poll entry is.
enum Source {
    Output,
    VmExit,
    Console,
}

/// What the relay thread works on.
struct Pump {
    pending: VecDeque<u8>,
    output: Option<File>,
    vm_exit: Option<File>,
    console: Option<UnixStream>,
    gone_at: Option<Instant>,
}

impl Relay {
    /// Starts relaying: first `initial` (bhyveload's console), then `output` until it ends.
    /// `vm_exit` is the read end of a pipe only bhyve holds the write end of: its end of file
    /// means bhyve is gone.
    pub fn spawn(
        initial: Vec<u8>,
        output: OwnedFd,
        vm_exit: OwnedFd,
        console: UnixStream,
    ) -> io::Result<Relay> {
        console.set_nonblocking(true)?;
        let (done, done_tx) = sys::pipe()?;
        let mut pump = Pump {
            pending: initial.into(),
            output: Some(File::from(output)),
            vm_exit: Some(File::from(vm_exit)),
            console: Some(console),
            gone_at: None,
        };
        let thread = std::thread::Builder::new()
            .name("bhyve-console".into())
            .spawn(move || {
                pump.run();
                // Closing the last write end makes the session's exit fd readable.
                drop(done_tx);
            })?;
        Ok(Relay {
            done,
            thread: Some(thread),
        })
    }

    /// Readable once bhyve is gone and its console output is delivered (or given up).
    pub fn done_fd(&self) -> BorrowedFd<'_> {
        self.done.as_fd()
    }

    /// Waits at most `timeout` for the relay to finish; true when it has.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let done = sys::wait_readable(self.done.as_fd(), Some(timeout)).unwrap_or(false);
        if done {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        done
    }
}

impl Pump {
    fn run(&mut self) {
        loop {
            if let Some(gone) = self.gone_at {
                let output_over = self.output.is_none() || gone.elapsed() >= OUTPUT_GRACE;
                let flushed = self.pending.is_empty() || self.console.is_none();
                if (output_over && flushed) || gone.elapsed() >= FLUSH_LIMIT {
                    return;
                }
            }
            let mut fds = Vec::with_capacity(3);
            let mut sources = Vec::with_capacity(3);
            if let Some(f) = &self.output {
                fds.push(PollFd::new(f, PollFlags::IN));
                sources.push(Source::Output);
            }
            if let Some(f) = &self.vm_exit {
                fds.push(PollFd::new(f, PollFlags::IN));
                sources.push(Source::VmExit);
            }
            if let Some(s) = self.console.as_ref().filter(|_| !self.pending.is_empty()) {
                fds.push(PollFd::new(s, PollFlags::OUT));
                sources.push(Source::Console);
            }
            let timeout = self.gone_at.map(|_| Duration::from_millis(50));
            if sys::poll(&mut fds, timeout).is_err() {
                return;
            }
            let ready: Vec<Source> = sources
                .into_iter()
                .zip(&fds)
                .filter(|(_, pfd)| !pfd.revents().is_empty())
                .map(|(source, _)| source)
                .collect();
            for source in ready {
                match source {
                    Source::Output => self.read_output(),
                    Source::VmExit => {
                        self.vm_exit = None;
                        self.gone_at = Some(Instant::now());
                    }
                    Source::Console => self.write_console(),
                }
            }
        }
    }

    fn read_output(&mut self) {
        let Some(output) = self.output.as_mut() else {
            return;
        };
        let mut buf = [0u8; READ_CHUNK];
        match output.read(&mut buf) {
            Ok(0) => self.output = None,
            Ok(n) => {
                let room = MAX_BUFFERED.saturating_sub(self.pending.len());
                self.pending.extend(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => self.output = None,
        }
    }

    fn write_console(&mut self) {
        let Some(console) = self.console.as_ref() else {
            return;
        };
        let (front, _) = self.pending.as_slices();
        match sys::send_nosignal(console.as_fd(), front) {
            Ok(n) => drop(self.pending.drain(..n)),
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::WouldBlock => {}
            // The session is gone; keep draining bhyve so it never blocks on its console.
            Err(_) => {
                self.console = None;
                self.pending.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn forwards_everything_then_reports_done() {
        let (out_r, out_w) = sys::pipe().unwrap();
        let (exit_r, exit_w) = sys::pipe().unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut relay = Relay::spawn(b"loader\n".to_vec(), out_r, exit_r, theirs).unwrap();
        let mut out = File::from(out_w);
        out.write_all(b"guest line\n").unwrap();
        assert!(
            !relay.wait(Duration::from_millis(100)),
            "done before the VM exited"
        );
        out.write_all(b"last line\n").unwrap();
        drop(out);
        drop(exit_w);
        assert!(relay.wait(Duration::from_secs(5)));
        let mut got = String::new();
        let mut ours = ours;
        ours.read_to_string(&mut got).unwrap();
        assert_eq!(got, "loader\nguest line\nlast line\n");
    }

    #[test]
    fn a_vanished_session_does_not_stop_the_relay() {
        let (out_r, out_w) = sys::pipe().unwrap();
        let (exit_r, exit_w) = sys::pipe().unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(ours);
        let mut relay = Relay::spawn(Vec::new(), out_r, exit_r, theirs).unwrap();
        let mut out = File::from(out_w);
        for _ in 0..64 {
            out.write_all(&[b'x'; 4096]).unwrap();
        }
        drop(out);
        drop(exit_w);
        assert!(relay.wait(Duration::from_secs(5)));
    }
}
