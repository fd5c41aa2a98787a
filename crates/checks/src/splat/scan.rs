//! Finding reports in a console log and deciding where each one ends (rules in the
//! `splat` module doc).

use super::kind::{classify_stripped, SplatKind};
use super::Splat;
use crate::printk::{console_lines, strip_timestamp};
use regex::Regex;
use std::sync::LazyLock;

/// A body never holds more lines than this, so a flood cannot grow one report without bound.
pub const MAX_BODY_LINES: usize = 200;
/// How many lines in a row that do not look like part of a report a body may bridge.
pub const MAX_STRAY_LINES: usize = 2;

/// Lines that belong to a Linux report. Anchored at the start of the timestamp-stripped line,
/// except for the `func+0x1a/0x30` frame shape, which is matched anywhere.
static LINUX_REPORT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:Call [Tt]race:|</?(?:TASK|IRQ|NMI|SOFTIRQ|#DF)>|Code:|[RE]IP:|[RE]SP:",
        r"|[A-Z][A-Z0-9]{1,2}: [0-9a-f]{4}|[A-Z]S: |CR[0-9]: |DR[0-9]: |PKRU: |Modules linked in:",
        r"|CPU: ?\d|Hardware name:|Workqueue:|#PF:|(?:PGD|P4D|PUD|PMD|PTE) |Oops|Kernel Offset:",
        r"|Stack:|Tainted:|irq event stamp:|hardirqs |softirqs |(?:Read|Write) of size",
        r"|Allocated by task|Freed by task|Last potentially|Second to last|The buggy address",
        r"|Memory state around|NMI backtrace|Sending NMI|rcu:|task:|\x22echo 0 >|in_atomic\(\)",
        r"|preempt_count:|RCU nest depth:|Preemption disabled at:|\[<[0-9a-f]+>\]",
        r"|\d+ locks? held by|no locks held by|(?:pc|lr|sp) : |x\d+ ?: [0-9a-f]|Mem abort info:",
        r"|Data abort info:|Internal error:|Unable to handle kernel|Showing all locks|---\[ ",
        r"|index \d+ is out of range|shift exponent|signed integer overflow|load of value",
        r"|stack backtrace:)",
        r"|[A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+",
    ))
    .expect("built-in report line pattern compiles")
});

/// Lines that belong to a FreeBSD `Fatal trap` / `panic:` report.
static FREEBSD_REPORT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"=|^(?:KDB: |\[ thread |Stopped at |--- |Uptime: |Dumping |Automatic reboot|Tracing pid )",
        r"|^\S+\(\) at |/frame 0x|^#[0-9]+ 0x[0-9a-f]+ at |^[a-z0-9]{2,3}: [0-9a-f]{8,}",
    ))
    .expect("built-in FreeBSD report line pattern compiles")
});

/// How an open body decides which lines are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Lines that look like a Linux report.
    Trace,
    /// Every line, up to a closing `====` rule (KASAN, UBSAN).
    UntilRule,
    /// Every line up to `stack backtrace:`, then [`Mode::Trace`] (lockdep).
    UntilBacktrace,
    /// Lines that look like a FreeBSD report.
    FreeBsd,
}

impl Mode {
    fn for_kind(kind: SplatKind) -> Mode {
        match kind {
            SplatKind::Kasan | SplatKind::Ubsan => Mode::UntilRule,
            SplatKind::Lockdep => Mode::UntilBacktrace,
            SplatKind::FreeBsdPanic | SplatKind::FatalTrap | SplatKind::Debugger => Mode::FreeBsd,
            SplatKind::Panic
            | SplatKind::Bug
            | SplatKind::Warning
            | SplatKind::Oops
            | SplatKind::HungTask
            | SplatKind::RcuStall => Mode::Trace,
        }
    }
}

/// What an open body makes of the next line.
enum Verdict {
    /// Part of the report.
    Take,
    /// Part of the report, and its last line.
    End,
    /// Not obviously part of it.
    Stray,
}

#[derive(Debug)]
struct Open {
    splat: Splat,
    mode: Mode,
    stray: Vec<String>,
}

impl Open {
    fn judge(&mut self, line: &str) -> Verdict {
        if is_end_marker(line) {
            return Verdict::End;
        }
        match self.mode {
            Mode::UntilRule if is_rule(line) => Verdict::End,
            Mode::UntilRule => Verdict::Take,
            Mode::UntilBacktrace => {
                if line.starts_with("stack backtrace:") {
                    self.mode = Mode::Trace;
                }
                Verdict::Take
            }
            Mode::Trace if looks_like_linux_report(line) => Verdict::Take,
            Mode::FreeBsd if looks_like_freebsd_report(line) => Verdict::Take,
            Mode::Trace | Mode::FreeBsd => Verdict::Stray,
        }
    }

    /// Whether a report of `kind` starting now is part of this one (see the module doc).
    fn absorbs(&self, kind: SplatKind) -> bool {
        matches!(
            (self.splat.kind, kind),
            (SplatKind::Bug | SplatKind::Oops, SplatKind::Oops)
                | (SplatKind::Debugger, SplatKind::Debugger)
        )
    }

    /// Adds a line and any stray lines before it; false once the body is full.
    fn take(&mut self, line: &str) -> bool {
        for stray in self.stray.drain(..) {
            if self.splat.body.len() < MAX_BODY_LINES {
                self.splat.body.push(stray);
            }
        }
        if self.splat.body.len() < MAX_BODY_LINES {
            self.splat.body.push(line.to_string());
        }
        self.splat.body.len() < MAX_BODY_LINES
    }
}

fn is_end_marker(line: &str) -> bool {
    line.starts_with("---[ end trace") || line.starts_with("---[ end Kernel panic")
}

fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.len() >= 10 && line.bytes().all(|b| b == b'=')
}

fn looks_like_linux_report(line: &str) -> bool {
    line.starts_with([' ', '\t']) || LINUX_REPORT_LINE.is_match(line)
}

fn looks_like_freebsd_report(line: &str) -> bool {
    line.starts_with([' ', '\t']) || FREEBSD_REPORT_LINE.is_match(line)
}

/// Finds reports line by line, for a console read as it arrives. Feed every line with
/// [`SplatScanner::push`] (with or without its printk timestamp and `\r`), then call
/// [`SplatScanner::finish`] for the report still open at the end of the log.
#[derive(Debug, Default)]
pub struct SplatScanner {
    line_number: usize,
    open: Option<Open>,
}

impl SplatScanner {
    /// A scanner at line 1.
    pub fn new() -> SplatScanner {
        SplatScanner::default()
    }

    /// Takes the next console line; returns a report when this line closed one.
    pub fn push(&mut self, line: &str) -> Option<Splat> {
        self.line_number += 1;
        let line = strip_timestamp(line.trim_end_matches(['\r', '\n']));
        if let Some(kind) = classify_stripped(line) {
            if let Some(open) = self.open.as_mut().filter(|open| open.absorbs(kind)) {
                if !open.take(line) {
                    return self.close();
                }
                return None;
            }
            let closed = self.close();
            self.open = Some(Open {
                splat: Splat {
                    kind,
                    line_number: self.line_number,
                    first_line: line.to_string(),
                    body: vec![line.to_string()],
                    ended: false,
                },
                mode: Mode::for_kind(kind),
                stray: Vec::new(),
            });
            return closed;
        }
        let open = self.open.as_mut()?;
        match open.judge(line) {
            Verdict::Take => {
                if !open.take(line) {
                    return self.close();
                }
                None
            }
            Verdict::End => {
                open.take(line);
                open.splat.ended = true;
                self.close()
            }
            Verdict::Stray => {
                open.stray.push(line.to_string());
                if open.stray.len() > MAX_STRAY_LINES {
                    return self.close();
                }
                None
            }
        }
    }

    /// Ends the log: returns the report still open, if any.
    pub fn finish(mut self) -> Option<Splat> {
        self.close()
    }

    fn close(&mut self) -> Option<Splat> {
        self.open.take().map(|open| open.splat)
    }
}

/// Every report in a whole console log, in order.
pub fn scan(log: &str) -> Vec<Splat> {
    let mut scanner = SplatScanner::new();
    let mut splats: Vec<Splat> = console_lines(log)
        .filter_map(|line| scanner.push(line))
        .collect();
    splats.extend(scanner.finish());
    splats
}
