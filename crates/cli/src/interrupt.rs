//! Ctrl-C while vmlane fills its cache (a download, an unpack, a kernel or root build): the
//! programs it runs get the terminal's SIGINT and stop, and vmlane outlives them to remove
//! what they left half-written, then exits as a shell reports a command a signal ended.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A step ended by a signal, its half-made work removed; `main` exits with [`Interrupted::code`].
#[derive(Debug)]
pub struct Interrupted {
    signal: i32,
}

impl Interrupted {
    /// 128 plus the signal's number, as a shell reports a command a signal ended.
    pub fn code(&self) -> i32 {
        128 + self.signal
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "interrupted by signal {}; nothing half-made was kept in the cache",
            self.signal
        )
    }
}

impl std::error::Error for Interrupted {}

/// SIGINT and SIGTERM caught, the last one's number kept, for as long as this lives.
#[derive(Debug)]
pub struct Caught {
    signal: Arc<AtomicUsize>,
    ids: Vec<SigId>,
}

impl Caught {
    /// Starts catching them.
    pub fn register() -> Result<Caught> {
        let signal = Arc::new(AtomicUsize::new(0));
        let ids = [SIGINT, SIGTERM]
            .into_iter()
            .map(|sig| signal_hook::flag::register_usize(sig, signal.clone(), sig as usize))
            .collect::<std::io::Result<_>>()
            .context("failed to catch Ctrl-C")?;
        Ok(Caught { signal, ids })
    }

    /// The signal caught so far, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            caught => Some(caught as i32),
        }
    }

    /// A step's result: [`Interrupted`] if it failed after a signal; as it is otherwise, so
    /// a step that finished anyway stands.
    pub fn settle<T>(&self, result: Result<T>) -> Result<T> {
        match (result, self.signal()) {
            (Err(_), Some(signal)) => Err(Interrupted { signal }.into()),
            (result, _) => result,
        }
    }
}

impl Drop for Caught {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Runs `step` with SIGINT and SIGTERM caught, settling its result.
pub fn ride_out<T>(step: impl FnOnce() -> Result<T>) -> Result<T> {
    let caught = Caught::register()?;
    let result = step();
    caught.settle(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::bail;

    fn raise(signal: i32) {
        // SAFETY: raise() sends a signal to this thread; ride_out has a handler registered.
        assert_eq!(unsafe { libc::raise(signal) }, 0);
    }

    #[test]
    fn a_step_failing_after_ctrl_c_ends_as_interrupted_and_one_that_finished_stands() {
        let failed = ride_out(|| -> Result<()> {
            raise(libc::SIGINT);
            bail!("apt-get download: killed")
        });
        let error = failed.unwrap_err();
        let interrupted = error.downcast_ref::<Interrupted>().unwrap();
        assert_eq!(interrupted.code(), 130);
        assert_eq!(
            error.to_string(),
            "interrupted by signal 2; nothing half-made was kept in the cache"
        );
        let finished = ride_out(|| {
            raise(libc::SIGTERM);
            Ok(7)
        });
        assert_eq!(finished.unwrap(), 7);
        let plain = ride_out(|| -> Result<()> { bail!("no such package") });
        assert!(plain.unwrap_err().to_string().contains("no such package"));
    }
}
