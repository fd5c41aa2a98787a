use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// SIGINT and SIGTERM turned into readable file descriptors, so a run can end its VM and clean
/// up instead of dying mid-step. Registered for as long as this value lives.
#[derive(Debug)]
pub struct StopSignals {
    pipes: Vec<(i32, UnixStream)>,
    ids: Vec<SigId>,
}

impl StopSignals {
    /// Starts catching SIGINT and SIGTERM.
    pub fn register() -> io::Result<StopSignals> {
        let mut pipes = Vec::new();
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            ids.push(signal_hook::low_level::pipe::register(signal, write)?);
            pipes.push((signal, read));
        }
        Ok(StopSignals { pipes, ids })
    }

    /// The descriptors to poll.
    pub fn fds(&self) -> Vec<RawFd> {
        self.pipes
            .iter()
            .map(|(_, pipe)| pipe.as_raw_fd())
            .collect()
    }

    /// The first stop signal received so far, if any.
    pub fn received(&self) -> Option<i32> {
        let mut buf = [0u8; 16];
        for (signal, mut pipe) in self.pipes.iter().map(|(s, p)| (*s, p)) {
            if matches!(pipe.read(&mut buf), Ok(n) if n > 0) {
                return Some(signal);
            }
        }
        None
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
