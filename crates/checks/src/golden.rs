//! Golden console logs: a run's log is normalised (what changes from boot to boot replaced by
//! placeholders) and compared with a file kept in the repository. Writing ("blessing") that
//! file is the caller's job; this module only says what the normalised log is and whether, and
//! how, it differs.
//!
//! The built-in replacements, applied line by line in this order:
//!
//! 1. a printk timestamp at the start of a line, `[    1.234567]` → `[TIMESTAMP]`;
//! 2. hex addresses: `0x` and 6 or more hex digits, and any whole word of exactly 16 hex digits
//!    (`ffff888003a4b2c8`, `0000000000000000`) → `ADDR`; shorter offsets such as
//!    `probe_write+0x2b/0x40` stay, as they do not change between boots;
//! 3. durations: a number (`12`, `1.23`) then an optional space and one of `ns`, `us`, `µs`,
//!    `usec`, `usecs`, `ms`, `msec`, `msecs`, `s`, `sec`, `secs`, `second`, `seconds`, as a
//!    whole word → `DURATION` (`1.23 ms`, `456 usecs`, `in 12s`);
//! 4. pids, only in these forms: `PID: 123` → `PID: PID`; `pid 123`, `pid: 123`, `pid:123`,
//!    `pid=123` (lower case, as a whole word, so `ppid` stays) → `pid PID` etc.; and a syslog
//!    tag `name[123]:` → `name[PID]:`;
//! 5. figures the kernel measures at boot, which jitter from run to run (under emulation most
//!    of all): `281.34 BogoMIPS` → `N BogoMIPS`, `lpj=562688` → `lpj=N`, `2445.415 MHz` →
//!    `N MHz`, and the nanosecond figures of `sched_clock: Marking stable (…)->(…)`. Nothing
//!    else that looks like a number is touched.
//!
//! A line's trailing `\r` is dropped, and the line vmlane writes where a restored guest's run
//! begins ([`RESTORE_LINE`]) is left out, so cold and warm runs compare alike. User substitutions (regex → replacement, `$1` for groups)
//! run after the built-in ones, in the order given, also line by line.

use crate::error::{compile, Error};
use regex::Regex;
use similar::TextDiff;
use std::sync::LazyLock;

/// The line in a console log between the boot a saved guest kept and the run that restored
/// it.
pub const RESTORE_LINE: &str =
    "vmlane: --- restored from a saved, ready guest: the run's own console starts here ---";

/// Lines of unchanged context around each change in a diff.
pub const DIFF_CONTEXT: usize = 3;

/// The built-in replacements of the module doc, in order.
static BUILT_IN: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let table: [(&str, &str); 11] = [
        (r"^\s*\[\s*\d+\.\d+\]", "[TIMESTAMP]"),
        (r"\b0x[0-9a-fA-F]{6,}\b", "ADDR"),
        (r"\b[0-9a-fA-F]{16}\b", "ADDR"),
        (
            r"\b\d+(?:\.\d+)? ?(?:ns|us|µs|usecs?|ms|msecs?|s|secs?|seconds?)\b",
            "DURATION",
        ),
        (r"\bPID: \d+\b", "PID: PID"),
        (r"\bpid(: ?| |=)\d+\b", "pid${1}PID"),
        (r"\b([A-Za-z_][\w.-]*)\[\d+\]:", "${1}[PID]:"),
        (r"\b\d+(?:\.\d+)? BogoMIPS\b", "N BogoMIPS"),
        (r"\blpj=\d+\b", "lpj=N"),
        (r"\b\d+(?:\.\d+)? MHz\b", "N MHz"),
        (
            r"Marking stable \(-?\d+, -?\d+\)->\(-?\d+, -?\d+\)",
            "Marking stable (N)",
        ),
    ];
    table
        .into_iter()
        .map(|(re, with)| {
            (
                Regex::new(re).expect("built-in normalisation compiles"),
                with,
            )
        })
        .collect()
});

/// Turns a log into its golden form: the built-in replacements, then the test's own.
#[derive(Debug, Clone, Default)]
pub struct Normaliser {
    substitutions: Vec<(Regex, String)>,
}

impl Normaliser {
    /// Only the built-in replacements.
    pub fn new() -> Normaliser {
        Normaliser::default()
    }

    /// Adds a substitution run after the built-in ones and those added before it.
    pub fn substitute(mut self, pattern: &str, replacement: &str) -> Result<Normaliser, Error> {
        self.substitutions
            .push((compile(pattern)?, replacement.to_string()));
        Ok(self)
    }

    /// The golden form of `log`. Every line ends in `\n`, the last one included.
    pub fn normalise(&self, log: &str) -> String {
        let mut out = String::with_capacity(log.len());
        for line in log.lines() {
            let mut line = line.trim_end_matches('\r').to_string();
            if line == RESTORE_LINE {
                continue;
            }
            for (regex, with) in BUILT_IN.iter() {
                line = regex.replace_all(&line, *with).into_owned();
            }
            for (regex, with) in &self.substitutions {
                line = regex.replace_all(&line, with.as_str()).into_owned();
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Compares `log`, normalised, with `golden` as it is (it was written by
    /// [`Normaliser::normalise`]); only `\r\n` versus `\n` and a missing final newline in
    /// `golden` are forgiven.
    pub fn compare(&self, log: &str, golden: &str) -> Result<(), GoldenMismatch> {
        compare_normalised(&self.normalise(log), golden)
    }
}

/// A log that differs from its golden file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("console log differs from the golden log (-golden +actual):\n{diff}")]
pub struct GoldenMismatch {
    /// A unified diff from the golden log to the normalised log.
    pub diff: String,
}

/// Compares an already normalised log with a golden one (see [`Normaliser::compare`]).
pub fn compare_normalised(normalised: &str, golden: &str) -> Result<(), GoldenMismatch> {
    let golden: String = golden
        .lines()
        .map(|line| format!("{}\n", line.trim_end_matches('\r')))
        .collect();
    if golden == normalised {
        return Ok(());
    }
    let diff = TextDiff::from_lines(golden.as_str(), normalised)
        .unified_diff()
        .context_radius(DIFF_CONTEXT)
        .header("golden", "actual")
        .to_string();
    Err(GoldenMismatch { diff })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(line: &str) -> String {
        Normaliser::new().normalise(line).trim_end().to_string()
    }

    #[test]
    fn the_line_where_a_restored_run_begins_is_left_out() {
        let cold = "[    0.1] Linux version 6.1\nhello\n";
        let warm = format!("[    0.1] Linux version 6.1\n{RESTORE_LINE}\nhello\n");
        let normaliser = Normaliser::new();
        assert_eq!(normaliser.normalise(cold), normaliser.normalise(&warm));
    }

    #[test]
    fn timestamps_only_at_the_start_of_a_line() {
        assert_eq!(norm("[    1.234567] Run /init"), "[TIMESTAMP] Run /init");
        assert_eq!(norm("[12345.000001] x"), "[TIMESTAMP] x");
        assert_eq!(norm("x [    1.234567] y"), "x [    1.234567] y");
        assert_eq!(norm("[  OK  ] Started"), "[  OK  ] Started");
    }

    #[test]
    fn boot_measurements_are_replaced() {
        assert_eq!(
            norm("Calibrating delay loop... 281.34 BogoMIPS (lpj=562688)"),
            "Calibrating delay loop... N BogoMIPS (lpj=N)"
        );
        assert_eq!(
            norm("tsc: Detected 2445.415 MHz processor"),
            "tsc: Detected N MHz processor"
        );
        assert_eq!(
            norm("Memory: 498072K/523896K available"),
            "Memory: 498072K/523896K available"
        );
    }

    #[test]
    fn a_16_digit_word_after_a_colon_is_an_address() {
        assert_eq!(
            norm("RSP: 0018:ffffc90000013e28 EFLAGS: 00010246"),
            "RSP: 0018:ADDR EFLAGS: 00010246"
        );
    }

    #[test]
    fn hex_forms_are_replaced_as_documented() {
        assert_eq!(
            norm("RAX: 0000000000000000 RBX: ffff888003a4b2c8"),
            "RAX: ADDR RBX: ADDR"
        );
        assert_eq!(norm("at addr 0xffff888003a4b2c8"), "at addr ADDR");
        assert_eq!(
            norm("RIP: 0010:probe_write+0x2b/0x40"),
            "RIP: 0010:probe_write+0x2b/0x40"
        );
        assert_eq!(norm("ipi 0x12345"), "ipi 0x12345");
        assert_eq!(
            norm("---[ end trace 0000000000000000 ]---"),
            "---[ end trace ADDR ]---"
        );
        assert_eq!(
            norm("[<ffffffff81234567>] foo+0x1/0x2"),
            "[<ADDR>] foo+0x1/0x2"
        );
        assert_eq!(norm("id 00000000000000001"), "id 00000000000000001");
    }

    #[test]
    fn durations_as_documented() {
        assert_eq!(norm("took 1.23 ms"), "took DURATION");
        assert_eq!(
            norm("initcall foo+0x0/0x10 returned 0 after 456 usecs"),
            "initcall foo+0x0/0x10 returned 0 after DURATION"
        );
        assert_eq!(norm("reboot in 12s"), "reboot in DURATION");
        assert_eq!(
            norm("INFO: task sh:57 blocked for more than 122 seconds."),
            "INFO: task sh:57 blocked for more than DURATION."
        );
        assert_eq!(norm("x86_64 512M 4K 10 files"), "x86_64 512M 4K 10 files");
        assert_eq!(norm("3 sections"), "3 sections");
    }

    #[test]
    fn pids_only_in_the_documented_forms() {
        assert_eq!(
            norm("CPU: 0 PID: 57 Comm: sh Not tainted 6.1.0 #1"),
            "CPU: 0 PID: PID Comm: sh Not tainted 6.1.0 #1"
        );
        assert_eq!(
            norm("task:sh state:D stack:0 pid:57 ppid:1 flags:0x00004000"),
            "task:sh state:D stack:0 pid:PID ppid:1 flags:ADDR"
        );
        assert_eq!(
            norm("[ thread pid 1 tid 100002 ]"),
            "[ thread pid PID tid 100002 ]"
        );
        assert_eq!(
            norm("non_block: 0, pid=12, name"),
            "non_block: 0, pid=PID, name"
        );
        assert_eq!(
            norm("vmlane-probe[42]: started"),
            "vmlane-probe[PID]: started"
        );
        assert_eq!(norm("int [4] and buf[3] = 1"), "int [4] and buf[3] = 1");
        assert_eq!(norm("Oops: 0002 [#1] SMP"), "Oops: 0002 [#1] SMP");
    }

    #[test]
    fn user_substitutions_run_after_the_built_in_ones() {
        let normaliser = Normaliser::new()
            .substitute(r"Linux version \S+", "Linux version VERSION")
            .unwrap()
            .substitute(r"ADDR", "<a>")
            .unwrap()
            .substitute(r"(\w+)@build", "$1@HOST")
            .unwrap();
        assert_eq!(
            normaliser.normalise(
                "[    0.000000] Linux version 6.1.0-13-amd64 (root@build) 0xffffffffff\r\n"
            ),
            "[TIMESTAMP] Linux version VERSION (root@HOST) <a>\n"
        );
        assert!(Normaliser::new().substitute("(", "x").is_err());
    }

    #[test]
    fn the_same_boot_twice_compares_equal() {
        let first = "[    0.100000] Run /init as init process\n[    0.200000] CPU: 0 PID: 1 at 0xffffffff81000000 in 1.5 ms\n";
        let second = "[    0.300000] Run /init as init process\r\n[    0.912345] CPU: 0 PID: 7 at 0xffffffff82000000 in 2 ms\r\n";
        let normaliser = Normaliser::new();
        let golden = normaliser.normalise(first);
        assert_eq!(
            golden,
            "[TIMESTAMP] Run /init as init process\n[TIMESTAMP] CPU: 0 PID: PID at ADDR in DURATION\n"
        );
        assert_eq!(normaliser.compare(second, &golden), Ok(()));
        assert_eq!(normaliser.compare(second, golden.trim_end()), Ok(()));
        assert_eq!(
            normaliser.compare(second, &golden.replace('\n', "\r\n")),
            Ok(())
        );
    }

    #[test]
    fn a_difference_is_shown_as_a_unified_diff_with_context() {
        let golden: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let log = golden.replace("line 10\n", "line ten\n");
        let err = Normaliser::new().compare(&log, &golden).unwrap_err();
        let diff = &err.diff;
        assert!(diff.starts_with("--- golden\n+++ actual\n"), "{diff}");
        assert!(diff.contains("\n-line 10\n+line ten\n"), "{diff}");
        assert!(diff.contains(" line 7\n"), "{diff}");
        assert!(!diff.contains(" line 6\n"), "{diff}");
        assert!(diff.contains(" line 13\n"), "{diff}");
        assert!(!diff.contains(" line 14\n"), "{diff}");
        assert!(err
            .to_string()
            .starts_with("console log differs from the golden log"));
    }

    #[test]
    fn an_extra_line_at_the_end_is_a_difference() {
        let err = compare_normalised("a\nb\n", "a\n").unwrap_err();
        assert!(err.diff.contains("+b\n"), "{}", err.diff);
    }

    #[test]
    fn odd_input_does_not_panic() {
        let normaliser = Normaliser::new().substitute("$", "!").unwrap();
        for input in [
            "",
            "\r",
            "\n\n",
            "\u{0}[ 1.2]µs 0x",
            "é[1]:pid=9999999999999999999999",
        ] {
            let normalised = normaliser.normalise(input);
            assert_eq!(normalised.lines().count(), input.lines().count());
            assert!(normaliser.compare(input, &normalised).is_ok());
        }
    }
}
