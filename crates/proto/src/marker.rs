//! Result lines on the serial console of FreeBSD guests: the whole result where the VM has no
//! channel (an image's rc.d hook, bhyve); with one, the start of the command and a failure
//! before the channel was open.
//!
//! The guest prints `vmlane:TOKEN:start` before the command runs and one ending line after it:
//! `exit N`, `signal N`, `notfound`, `noexec` or `failed STEP: MESSAGE`. The token is chosen
//! per run by the host, so output that merely looks like a marker does not end the run.

use vmlane_spec::GuestStatus;

/// What a marker line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// The command is about to run: what follows is its output.
    Start,
    /// The command ended.
    Ended(GuestStatus),
    /// A step of the guest's set-up failed.
    Failed {
        /// What was being done.
        step: String,
        /// Why it failed.
        message: String,
    },
}

/// What every marker line starts with.
pub const MARKER_PREFIX: &str = "vmlane:";
/// The token a guest uses for a failure before it could read its own token.
pub const UNKNOWN_TOKEN: &str = "?";

/// A new random token for one run: 16 hex digits.
pub fn new_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// The marker in one console line (without its line ending), if it carries this run's token.
/// A failure reported with the unknown token counts too: the guest could not read the token.
pub fn parse_marker(line: &str, token: &str) -> Option<Marker> {
    let rest = line.trim_end_matches('\r').strip_prefix(MARKER_PREFIX)?;
    let (line_token, what) = rest.split_once(':')?;
    let (word, argument) = what.split_once(' ').unwrap_or((what, ""));
    if line_token != token && !(line_token == UNKNOWN_TOKEN && word == "failed") {
        return None;
    }
    let number = || argument.trim().parse::<i32>().ok().filter(|n| *n >= 0);
    match word {
        "start" if argument.is_empty() => Some(Marker::Start),
        "exit" => number().map(|n| Marker::Ended(GuestStatus::Exited(n))),
        "signal" => number().map(|n| Marker::Ended(GuestStatus::Signaled(n))),
        "notfound" => Some(Marker::Ended(GuestStatus::NotFound)),
        "noexec" => Some(Marker::Ended(GuestStatus::NotExecutable)),
        "failed" => {
            let (step, message) = argument.split_once(": ").unwrap_or((argument, ""));
            Some(Marker::Failed {
                step: step.to_string(),
                message: message.to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_parses() {
        let t = "0123456789abcdef";
        let cases = [
            ("vmlane:0123456789abcdef:start", Marker::Start),
            (
                "vmlane:0123456789abcdef:exit 7",
                Marker::Ended(GuestStatus::Exited(7)),
            ),
            (
                "vmlane:0123456789abcdef:signal 12\r",
                Marker::Ended(GuestStatus::Signaled(12)),
            ),
            (
                "vmlane:0123456789abcdef:notfound",
                Marker::Ended(GuestStatus::NotFound),
            ),
            (
                "vmlane:0123456789abcdef:noexec",
                Marker::Ended(GuestStatus::NotExecutable),
            ),
            (
                "vmlane:0123456789abcdef:failed mount devfs on /dev: errno 19 (ENODEV)",
                Marker::Failed {
                    step: "mount devfs on /dev".into(),
                    message: "errno 19 (ENODEV)".into(),
                },
            ),
            (
                "vmlane:?:failed read /vmlane/run: errno 2 (ENOENT)",
                Marker::Failed {
                    step: "read /vmlane/run".into(),
                    message: "errno 2 (ENOENT)".into(),
                },
            ),
        ];
        for (line, marker) in cases {
            assert_eq!(parse_marker(line, t), Some(marker), "{line}");
        }
    }

    #[test]
    fn lines_that_are_not_this_runs_markers_are_output() {
        let t = "0123456789abcdef";
        for line in [
            "",
            "vmlane:",
            "vmlane:ffffffffffffffff:exit 0",
            "vmlane:?:exit 0",
            " vmlane:0123456789abcdef:exit 0",
            "vmlane:0123456789abcdef:exit",
            "vmlane:0123456789abcdef:exit -1",
            "vmlane:0123456789abcdef:exit 99999999999",
            "vmlane:0123456789abcdef:start now",
            "vmlane:0123456789abcdef:reboot",
            "hello vmlane:0123456789abcdef:exit 0",
        ] {
            assert_eq!(parse_marker(line, t), None, "{line:?}");
        }
    }

    #[test]
    fn tokens_differ_between_runs() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
