//! Ctrl-C while vmlane fills its cache (a download, an unpack, a kernel or root build): the
//! programs it runs get the terminal's SIGINT and stop, and vmlane outlives them to remove
//! what they left half-written, then exits as a shell reports a command a signal ended.

use anyhow::{Context, Result};
use vmlane_backend::StopSignals;

/// Runs `step` with SIGINT and SIGTERM caught. A step that fails after one arrived ends in
/// the signal's exit code, saying what became of its work; one that finished anyway stands.
pub fn ride_out<T>(kept: &str, step: impl FnOnce() -> Result<T>) -> Result<Result<T, i32>> {
    let signals = StopSignals::register().context("failed to catch Ctrl-C")?;
    let result = step();
    match (result, signals.received()) {
        (Err(_), Some(signal)) => {
            eprintln!("vmlane: interrupted by signal {signal}; {kept}");
            Ok(Err(128 + signal))
        }
        (result, _) => result.map(Ok),
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
        let failed = ride_out("nothing was kept", || -> Result<()> {
            raise(libc::SIGINT);
            bail!("apt-get download: killed")
        });
        assert_eq!(failed.unwrap(), Err(130));
        let finished = ride_out("nothing was kept", || {
            raise(libc::SIGTERM);
            Ok(7)
        });
        assert_eq!(finished.unwrap(), Ok(7));
        let plain = ride_out("", || -> Result<()> { bail!("no such package") });
        assert!(plain.unwrap_err().to_string().contains("no such package"));
    }
}
