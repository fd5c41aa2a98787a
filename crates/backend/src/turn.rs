//! A run's turn to start its command. A suite readies its next run ahead (restores the saved
//! guest and mounts its root) while the run before it goes, and starts its command only when
//! its turn comes, so no more commands run at once than the suite's job count.

use crate::signals::StopSignals;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Instant;

/// Opened once, by whoever hands out turns; readable from then on.
#[derive(Debug)]
pub struct Turn {
    read: OwnedFd,
    write: OwnedFd,
    state: Mutex<TurnState>,
}

#[derive(Debug, Default)]
struct TurnState {
    opened_at: Option<Instant>,
    cancelled: bool,
}

/// How waiting for a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnWait {
    /// The turn came: the command may start.
    Go,
    /// The run is to end without starting its command: this signal, or SIGTERM for a turn
    /// that was cancelled.
    Stop(i32),
}

impl Turn {
    /// A turn not yet given.
    pub fn new() -> std::io::Result<Turn> {
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        Ok(Turn {
            read,
            write,
            state: Mutex::default(),
        })
    }

    /// Gives the turn; the first call counts.
    pub fn open(&self) {
        let mut state = self.state.lock().expect("turn lock");
        if state.opened_at.is_none() {
            state.opened_at = Some(Instant::now());
            // One byte, never read: the read end stays readable for good.
            let _ = rustix::io::write(&self.write, &[1]);
        }
    }

    /// Ends a run readied for a turn that will not come (the suite stopped); a turn already
    /// given stays given.
    pub fn cancel(&self) {
        let mut state = self.state.lock().expect("turn lock");
        if state.opened_at.is_none() {
            state.cancelled = true;
            drop(state);
            self.open();
        }
    }

    /// Whether the turn was cancelled before it was given.
    pub fn is_cancelled(&self) -> bool {
        self.state.lock().expect("turn lock").cancelled
    }

    /// When the turn was given, if it was.
    pub fn opened_at(&self) -> Option<Instant> {
        self.state.lock().expect("turn lock").opened_at
    }

    /// What a run that sees the turn open does: go, or stop as if sent SIGTERM.
    pub fn outcome(&self) -> Option<TurnWait> {
        let state = self.state.lock().expect("turn lock");
        state.opened_at.map(|_| match state.cancelled {
            true => TurnWait::Stop(signal_hook::consts::SIGTERM),
            false => TurnWait::Go,
        })
    }

    /// The descriptor that becomes readable when the turn is given.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Blocks until the turn comes or a stop signal arrives.
    pub fn wait(&self, signals: &StopSignals) -> TurnWait {
        loop {
            if let Some(signal) = signals.received() {
                return TurnWait::Stop(signal);
            }
            if let Some(outcome) = self.outcome() {
                return outcome;
            }
            let signal_fds = signals.fds();
            let mut fds: Vec<PollFd<'_>> = signal_fds
                .iter()
                .map(|&fd| {
                    // SAFETY: the descriptors belong to `signals`, alive through the poll.
                    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                    PollFd::from_borrowed_fd(fd, PollFlags::IN)
                })
                .collect();
            fds.push(PollFd::from_borrowed_fd(self.fd(), PollFlags::IN));
            let _ = rustix::event::poll(&mut fds, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_turn_is_closed_until_given_then_stays_open() {
        let turn = Turn::new().unwrap();
        assert_eq!(turn.outcome(), None);
        assert!(turn.opened_at().is_none());
        turn.open();
        let at = turn.opened_at().expect("opened");
        turn.open();
        assert_eq!(turn.opened_at(), Some(at), "the first opening counts");
        let signals = StopSignals::register().unwrap();
        assert_eq!(turn.wait(&signals), TurnWait::Go);
        assert_eq!(turn.wait(&signals), TurnWait::Go, "still open");
    }

    #[test]
    fn a_waiting_run_goes_when_another_thread_gives_the_turn() {
        let turn = Turn::new().unwrap();
        let signals = StopSignals::register().unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                turn.open();
            });
            assert_eq!(turn.wait(&signals), TurnWait::Go);
        });
        assert!(turn.opened_at().is_some());
    }

    #[test]
    fn a_cancelled_turn_stops_the_run_as_sigterm_would() {
        let given = Turn::new().unwrap();
        given.open();
        given.cancel();
        assert!(!given.is_cancelled(), "a turn given stays given");
        let turn = Turn::new().unwrap();
        turn.cancel();
        assert!(turn.is_cancelled());
        let signals = StopSignals::register().unwrap();
        assert_eq!(
            turn.wait(&signals),
            TurnWait::Stop(signal_hook::consts::SIGTERM)
        );
    }

    #[test]
    fn a_stop_signal_ends_the_wait() {
        let turn = Turn::new().unwrap();
        let signals = StopSignals::register().unwrap();
        signals.handle().unwrap().stop();
        assert_eq!(
            turn.wait(&signals),
            TurnWait::Stop(signal_hook::consts::SIGTERM)
        );
        assert_eq!(turn.outcome(), None, "the turn itself was never given");
    }
}
