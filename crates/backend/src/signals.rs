use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// SIGINT and SIGTERM turned into readable file descriptors, so a run can end its VM and clean
/// up instead of dying mid-step. Registered for as long as this value lives.
#[derive(Debug)]
pub struct StopSignals {
    pipes: Vec<(i32, UnixStream)>,
    ids: Vec<SigId>,
    /// The write end of a pipe that [`StopHandle::stop`] uses like a SIGTERM.
    local: UnixStream,
}

/// Ends a run from another thread of the same process, as SIGTERM would, without sending a
/// signal to the whole process (`vmlane image check` ends the boot once it has seen enough).
#[derive(Debug)]
pub struct StopHandle(UnixStream);

impl StopHandle {
    /// Asks the run to end; it sees [`SIGTERM`].
    pub fn stop(&self) {
        let _ = (&self.0).write(&[1]);
    }
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
        let (read, local) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        local.set_nonblocking(true)?;
        pipes.push((SIGTERM, read));
        Ok(StopSignals { pipes, ids, local })
    }

    /// A handle that ends the run from elsewhere in this process.
    pub fn handle(&self) -> io::Result<StopHandle> {
        self.local.try_clone().map(StopHandle)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_stops_the_run_as_sigterm_would() {
        let signals = StopSignals::register().unwrap();
        assert_eq!(signals.received(), None);
        let handle = signals.handle().unwrap();
        std::thread::spawn(move || handle.stop()).join().unwrap();
        assert_eq!(signals.received(), Some(SIGTERM));
        assert_eq!(signals.received(), None, "seen once");
    }
}
