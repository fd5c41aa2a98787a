use std::fmt;

/// vmlane's own exit codes; everything else is the guest command's.
///
/// They follow timeout(1) and POSIX shells so scripts can tell them apart.
pub mod exit_code {
    /// The VM ran past `--timeout` and was ended.
    pub const TIMEOUT: i32 = 124;
    /// vmlane or the VM failed: bad input, QEMU error, guest kernel panic, a failed init step.
    pub const VMLANE_FAILED: i32 = 125;
    /// The command exists but could not be executed.
    pub const NOT_EXECUTABLE: i32 = 126;
    /// The command was not found.
    pub const NOT_FOUND: i32 = 127;
    /// Added to a signal number, as shells do for a death by signal.
    pub const SIGNAL_BASE: i32 = 128;
}

/// How the command inside the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(i32),
    /// The program was not found on the guest's PATH.
    NotFound,
    /// The program was found but could not be executed.
    NotExecutable,
}

impl GuestStatus {
    /// The exit code a shell would give for this status.
    pub fn exit_code(self) -> i32 {
        match self {
            GuestStatus::Exited(code) => code,
            GuestStatus::Signaled(sig) => exit_code::SIGNAL_BASE + sig,
            GuestStatus::NotFound => exit_code::NOT_FOUND,
            GuestStatus::NotExecutable => exit_code::NOT_EXECUTABLE,
        }
    }
}

/// How a whole run ended, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran and ended with this status.
    Completed(GuestStatus),
    /// The VM ran past its timeout and was ended.
    TimedOut,
    /// vmlane was asked to stop by this signal (SIGINT, SIGTERM) and ended the VM.
    Interrupted(i32),
    /// The guest kernel panicked; the panic line from the console.
    KernelPanic(String),
    /// A step of the guest init failed.
    InitFailed {
        /// The step that failed, e.g. `mount the host root`.
        step: String,
        /// Why it failed.
        message: String,
    },
    /// The VM went away without reporting a result; the last console line, if any.
    VmDied(Option<String>),
}

impl Outcome {
    /// The exit code vmlane itself should exit with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Completed(status) => status.exit_code(),
            Outcome::TimedOut => exit_code::TIMEOUT,
            Outcome::Interrupted(sig) => exit_code::SIGNAL_BASE + sig,
            Outcome::KernelPanic(_) | Outcome::InitFailed { .. } | Outcome::VmDied(_) => {
                exit_code::VMLANE_FAILED
            }
        }
    }

    /// Whether the command ran to an end of its own.
    pub fn completed(&self) -> bool {
        matches!(self, Outcome::Completed(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed(GuestStatus::Exited(code)) => {
                write!(f, "command exited with {code}")
            }
            Outcome::Completed(GuestStatus::Signaled(sig)) => {
                write!(f, "command was killed by signal {sig}")
            }
            Outcome::Completed(GuestStatus::NotFound) => {
                write!(f, "command not found in the guest")
            }
            Outcome::Completed(GuestStatus::NotExecutable) => {
                write!(f, "command could not be executed in the guest")
            }
            Outcome::TimedOut => write!(f, "the VM ran past its timeout and was ended"),
            Outcome::Interrupted(sig) => write!(f, "interrupted by signal {sig}; the VM was ended"),
            Outcome::KernelPanic(line) => write!(f, "the guest kernel panicked: {line}"),
            Outcome::InitFailed { step, message } => {
                write!(f, "guest init failed to {step}: {message}")
            }
            Outcome::VmDied(Some(line)) => {
                write!(
                    f,
                    "the VM stopped without reporting a result; last console line: {line}"
                )
            }
            Outcome::VmDied(None) => {
                write!(
                    f,
                    "the VM stopped without reporting a result and printed nothing"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_death_maps_to_128_plus_signal() {
        assert_eq!(
            Outcome::Completed(GuestStatus::Signaled(9)).exit_code(),
            137
        );
    }

    #[test]
    fn exit_codes_pass_through() {
        for code in [0, 1, 7, 255] {
            assert_eq!(
                Outcome::Completed(GuestStatus::Exited(code)).exit_code(),
                code
            );
        }
    }

    #[test]
    fn vmlane_endings_have_their_own_codes() {
        assert_eq!(Outcome::TimedOut.exit_code(), 124);
        assert_eq!(Outcome::Interrupted(2).exit_code(), 130);
        assert_eq!(Outcome::Interrupted(15).exit_code(), 143);
        assert_eq!(Outcome::KernelPanic("x".into()).exit_code(), 125);
        assert_eq!(Outcome::Completed(GuestStatus::NotFound).exit_code(), 127);
    }
}
