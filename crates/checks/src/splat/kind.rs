//! Which kind of failure report a console line starts, told from its first line alone.

use crate::error::Error;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// The kind of a kernel failure report. The names (`panic`, `hung_task`, ...) are what suite
/// files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplatKind {
    /// Linux `Kernel panic - not syncing: ...`.
    Panic,
    /// Linux `BUG: ...` (other than KASAN) and `kernel BUG at file:line!`.
    Bug,
    /// Linux `WARNING: ...` (other than lockdep's), usually `WARNING: CPU: 0 PID: 1 at ...`.
    Warning,
    /// Linux `Oops: ...`, `general protection fault`, `Internal error: Oops`,
    /// `Unable to handle kernel ...` when it is the report's first line.
    Oops,
    /// Linux `BUG: KASAN: ...`.
    Kasan,
    /// Linux `UBSAN: ...`.
    Ubsan,
    /// Linux lockdep: `WARNING: possible circular locking dependency detected` and its kin.
    Lockdep,
    /// Linux `INFO: task X:123 blocked for more than N seconds.`
    HungTask,
    /// Linux `rcu: INFO: rcu_sched self-detected stall on CPU` and `... detected stalls ...`.
    RcuStall,
    /// FreeBSD `panic: ...`.
    #[serde(rename = "freebsd_panic")]
    FreeBsdPanic,
    /// FreeBSD `Fatal trap N: ...` or `Fatal double fault`.
    FatalTrap,
    /// FreeBSD's kernel debugger prompt `db>`: the kernel stopped and waits for a human.
    Debugger,
}

impl SplatKind {
    /// Every kind, in declaration order.
    pub const ALL: [SplatKind; 12] = [
        SplatKind::Panic,
        SplatKind::Bug,
        SplatKind::Warning,
        SplatKind::Oops,
        SplatKind::Kasan,
        SplatKind::Ubsan,
        SplatKind::Lockdep,
        SplatKind::HungTask,
        SplatKind::RcuStall,
        SplatKind::FreeBsdPanic,
        SplatKind::FatalTrap,
        SplatKind::Debugger,
    ];

    /// The names of [`SplatKind::ALL`], for error messages and suite validation.
    pub const NAMES: [&'static str; 12] = [
        "panic",
        "bug",
        "warning",
        "oops",
        "kasan",
        "ubsan",
        "lockdep",
        "hung_task",
        "rcu_stall",
        "freebsd_panic",
        "fatal_trap",
        "debugger",
    ];

    /// The kind's name as suite files spell it.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for SplatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SplatKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<SplatKind, Error> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| Error::UnknownSplatKind(name.to_string()))
    }
}

/// First-line patterns, tried in order: the specific ones (KASAN, lockdep) before the general
/// `BUG:` and `WARNING:` they would otherwise fall under. All are anchored at the start of the
/// line (printk timestamp already stripped), so a message merely quoting one does not count.
static STARTS: LazyLock<Vec<(SplatKind, Regex)>> = LazyLock::new(|| {
    let table: [(SplatKind, &str); 12] = [
        (SplatKind::Panic, r"^Kernel panic - not syncing"),
        (SplatKind::Kasan, r"^BUG: KASAN: "),
        (SplatKind::Bug, r"^(?:watchdog: )?BUG: |^kernel BUG at "),
        (SplatKind::Ubsan, r"^UBSAN: "),
        (
            SplatKind::Lockdep,
            r"^WARNING: (?:possible circular locking dependency|possible recursive locking|inconsistent lock state|possible irq lock inversion|suspicious RCU usage|bad unlock balance|held lock freed|lock held when returning to user space|Nested lock was not taken|\S+-safe -> \S+-unsafe lock order)",
        ),
        // Linux's WARN() format; FreeBSD prints boot notices (`WARNING: WITNESS option
        // enabled, expect reduced performance.`) that are not failures.
        (
            SplatKind::Warning,
            r"^WARNING: (?:CPU: \d+ PID: \d+ at |at )",
        ),
        (
            SplatKind::Oops,
            r"^(?:Oops(?::| -)|Internal error: Oops|general protection fault|Unable to handle kernel )",
        ),
        (
            SplatKind::HungTask,
            r"^INFO: task .+ blocked for more than ",
        ),
        (
            SplatKind::RcuStall,
            r"^(?:rcu: )?INFO: rcu_\w+ (?:self-detected stall|detected (?:expedited )?stalls)",
        ),
        (SplatKind::FatalTrap, r"^Fatal (?:trap \d+|double fault)"),
        (SplatKind::FreeBsdPanic, r"^panic: "),
        (SplatKind::Debugger, r"^db(?::[\w.:]+)?>"),
    ];
    table
        .into_iter()
        .map(|(kind, re)| {
            (
                kind,
                Regex::new(re).expect("built-in splat pattern compiles"),
            )
        })
        .collect()
});

/// The kind of report a console line starts, if any; the printk timestamp may be present.
pub fn kind_of(line: &str) -> Option<SplatKind> {
    classify_stripped(crate::strip_timestamp(line.trim_end_matches('\r')))
}

/// The kind of report `line` starts, if any. `line` must already be timestamp-stripped.
pub(crate) fn classify_stripped(line: &str) -> Option<SplatKind> {
    STARTS
        .iter()
        .find(|(_, re)| re.is_match(line))
        .map(|(kind, _)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for kind in SplatKind::ALL {
            assert_eq!(kind.name().parse::<SplatKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<SplatKind>(&json).unwrap(), kind);
        }
        let err = "oopsie".parse::<SplatKind>().unwrap_err();
        assert!(err.to_string().contains("hung_task"), "{err}");
    }

    #[test]
    fn first_lines_are_classified() {
        let cases = [
            ("Kernel panic - not syncing: Fatal exception", SplatKind::Panic),
            (
                "BUG: kernel NULL pointer dereference, address: 0000000000000000",
                SplatKind::Bug,
            ),
            (
                "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
                SplatKind::Bug,
            ),
            (
                "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]",
                SplatKind::Bug,
            ),
            ("kernel BUG at mm/slub.c:4283!", SplatKind::Bug),
            (
                "BUG: KASAN: slab-use-after-free in vmlane_probe+0x4e/0x90",
                SplatKind::Kasan,
            ),
            (
                "WARNING: CPU: 0 PID: 1 at fs/x.c:12 f+0x1/0x2",
                SplatKind::Warning,
            ),
            (
                "WARNING: possible circular locking dependency detected",
                SplatKind::Lockdep,
            ),
            (
                "WARNING: possible recursive locking detected",
                SplatKind::Lockdep,
            ),
            ("WARNING: suspicious RCU usage", SplatKind::Lockdep),
            ("Oops: 0002 [#1] PREEMPT SMP NOPTI", SplatKind::Oops),
            (
                "general protection fault, probably for non-canonical address 0xdffffc0000000000: 0000 [#1] PREEMPT SMP KASAN NOPTI",
                SplatKind::Oops,
            ),
            (
                "Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP",
                SplatKind::Oops,
            ),
            (
                "UBSAN: array-index-out-of-bounds in drivers/misc/x.c:12:5",
                SplatKind::Ubsan,
            ),
            (
                "INFO: task kworker/0:1:23 blocked for more than 122 seconds.",
                SplatKind::HungTask,
            ),
            (
                "rcu: INFO: rcu_sched self-detected stall on CPU",
                SplatKind::RcuStall,
            ),
            (
                "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
                SplatKind::RcuStall,
            ),
            (
                "Fatal trap 12: page fault while in kernel mode",
                SplatKind::FatalTrap,
            ),
            ("panic: page fault", SplatKind::FreeBsdPanic),
            ("db> ", SplatKind::Debugger),
            ("db:0:kdb.enter.panic>  bt", SplatKind::Debugger),
        ];
        for (line, kind) in cases {
            assert_eq!(classify_stripped(line), Some(kind), "{line}");
        }
    }

    #[test]
    fn ordinary_lines_and_quotes_are_not_reports() {
        for line in [
            "Linux version 6.1.0 (gcc 12.2.0)",
            "echo 'BUG: not really'",
            "rcu: Hierarchical RCU implementation.",
            "INFO: lockdep is turned off.",
            "---[ end Kernel panic - not syncing: Fatal exception ]---",
            "Kernel command line: console=ttyS0 panic=-1",
            "RIP: 0010:sysrq_handle_crash+0x16/0x20",
            "dbus> hello",
            "",
        ] {
            assert_eq!(classify_stripped(line), None, "{line}");
        }
    }
}
