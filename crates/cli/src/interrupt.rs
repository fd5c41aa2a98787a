//! Ctrl-C while vmlane fills its cache (a download, an unpack, a kernel or root build): the
//! programs it runs get the terminal's SIGINT and stop, and vmlane outlives them to remove
//! what they left half-written, then exits as a shell reports a command a signal ended.

use anyhow::{Context, Result};
use std::fmt;
use vmlane_backend::StopSignals;

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

/// Runs `step` with SIGINT and SIGTERM caught. A step that fails after one arrived is
/// [`Interrupted`]; one that finished anyway stands.
pub fn ride_out<T>(step: impl FnOnce() -> Result<T>) -> Result<T> {
    let signals = StopSignals::register().context("failed to catch Ctrl-C")?;
    let result = step();
    match (result, signals.received()) {
        (Err(_), Some(signal)) => Err(Interrupted { signal }.into()),
        (result, _) => result,
    }
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
