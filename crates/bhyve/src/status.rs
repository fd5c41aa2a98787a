//! What bhyve's exit status says about how the guest ended (bhyve(8), EXIT STATUS).

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// How a bhyve process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BhyveExit {
    /// 0: the guest reset or rebooted (a FreeBSD panic with `kern.panic_reboot_wait_time=0`).
    Reset,
    /// 1: the guest powered off.
    PoweredOff,
    /// 2: the guest halted.
    Halted,
    /// 3: the guest triple-faulted.
    TripleFault,
    /// 4: bhyve itself failed (bad arguments, a device it could not open, ...).
    Error,
    /// A status bhyve does not document.
    Other(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl BhyveExit {
    /// Reads a wait status.
    pub fn from_status(status: ExitStatus) -> BhyveExit {
        match (status.code(), status.signal()) {
            (Some(code), _) => BhyveExit::from_code(code),
            (None, Some(signal)) => BhyveExit::Signal(signal),
            (None, None) => BhyveExit::Other(-1),
        }
    }

    /// Reads an exit code.
    pub fn from_code(code: i32) -> BhyveExit {
        match code {
            0 => BhyveExit::Reset,
            1 => BhyveExit::PoweredOff,
            2 => BhyveExit::Halted,
            3 => BhyveExit::TripleFault,
            4 => BhyveExit::Error,
            other => BhyveExit::Other(other),
        }
    }

    /// A sentence for the run's report when the exit itself is the problem; `None` when the
    /// guest ended the VM the ordinary ways and its console tells the rest.
    pub fn problem(self) -> Option<String> {
        match self {
            BhyveExit::Reset | BhyveExit::PoweredOff | BhyveExit::Halted => None,
            BhyveExit::TripleFault => Some("the guest triple-faulted (bhyve exit status 3)".into()),
            BhyveExit::Error => Some("bhyve exited due to an error (status 4)".into()),
            BhyveExit::Other(code) => Some(format!("bhyve exited with status {code}")),
            BhyveExit::Signal(signal) => Some(format!("bhyve was killed by signal {signal}")),
        }
    }
}

/// What `try_wait` reports: bhyve's stderr, then what its exit status means if that is a
/// problem.
pub fn report(stderr: &str, exit: Option<BhyveExit>) -> String {
    let said = stderr.trim();
    match exit.and_then(BhyveExit::problem) {
        Some(problem) if said.is_empty() => problem,
        Some(problem) => format!("{said}\n{problem}"),
        None => said.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes() {
        let codes: Vec<BhyveExit> = (0..=5).map(BhyveExit::from_code).collect();
        assert_eq!(
            codes,
            [
                BhyveExit::Reset,
                BhyveExit::PoweredOff,
                BhyveExit::Halted,
                BhyveExit::TripleFault,
                BhyveExit::Error,
                BhyveExit::Other(5)
            ]
        );
    }

    #[test]
    fn wait_statuses() {
        assert_eq!(
            BhyveExit::from_status(ExitStatus::from_raw(1 << 8)),
            BhyveExit::PoweredOff
        );
        assert_eq!(
            BhyveExit::from_status(ExitStatus::from_raw(libc::SIGKILL)),
            BhyveExit::Signal(libc::SIGKILL)
        );
    }

    #[test]
    fn the_guests_own_endings_add_nothing() {
        assert_eq!(report("", Some(BhyveExit::PoweredOff)), "");
        assert_eq!(report("  \n", Some(BhyveExit::Reset)), "");
        assert_eq!(report("", Some(BhyveExit::Halted)), "");
    }

    #[test]
    fn failures_are_explained_after_what_bhyve_said() {
        assert_eq!(
            report("", Some(BhyveExit::TripleFault)),
            "the guest triple-faulted (bhyve exit status 3)"
        );
        assert_eq!(
            report(
                "bhyve: could not open backing file\n",
                Some(BhyveExit::Error)
            ),
            "bhyve: could not open backing file\nbhyve exited due to an error (status 4)"
        );
        assert_eq!(
            report("", Some(BhyveExit::Signal(9))),
            "bhyve was killed by signal 9"
        );
        assert_eq!(report("oops", None), "oops");
    }
}
