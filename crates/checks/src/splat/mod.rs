//! Kernel failure reports ("splats") in a console log, found without being told to look for
//! them: a test fails on any report it did not declare, because a WARNING or a KASAN report
//! means the kernel misbehaved even when the command exited 0.
//!
//! [`scan`] (or [`SplatScanner`] line by line) finds them; [`SplatMatcher`] declares the ones a
//! test provokes on purpose; [`triage`] splits what was found into expected and unexpected.
//!
//! # Where a report ends
//!
//! A report starts at a line [`SplatKind`] recognises and its body runs:
//!
//! - through the kernel's own end marker (`---[ end trace ... ]---`,
//!   `---[ end Kernel panic ... ]---`) or, for KASAN and UBSAN, the closing `====` rule;
//! - else over the following lines that look like part of a report (Call Trace, `<TASK>` ...
//!   `</TASK>`, register dumps, indented frames, `#PF:`, `Modules linked in:` ...). Up to
//!   [`MAX_STRAY_LINES`] other lines in a row (a process writing to the console mid-report)
//!   are kept when report lines follow them, and dropped when none do;
//! - FreeBSD reports likewise take the lines that look like theirs (`key = value`, `KDB:`,
//!   `f() at f+0x2b/frame 0x...`, `--- trap ...`, `Stopped at`, indented lines);
//! - lockdep reports are free text up to `stack backtrace:`, so every line up to there counts;
//! - never past [`MAX_BODY_LINES`].
//!
//! Nesting rule: reports never share lines. A line that starts a report ends the open one just
//! before it, so a `Kernel panic` inside a WARNING (`panic_on_warn`) or after an Oops is its own
//! splat holding its own lines. The one exception is an `Oops` header inside an open `BUG:` or
//! Oops report (x86 prints `BUG: kernel NULL pointer dereference` then `Oops: 0002 [#1]` for one
//! fault; arm64 prints `Unable to handle kernel ...` then `Internal error: Oops`): it is the same
//! fault, so it stays in that body and is not a splat of its own. Likewise repeated `db>`
//! prompts belong to one debugger session.

mod expect;
mod kind;
mod scan;

pub use expect::{triage, SplatMatcher, Triage};
pub use kind::{kind_of, SplatKind};
pub use scan::{scan, SplatScanner, MAX_BODY_LINES, MAX_STRAY_LINES};

use std::fmt;

/// One kernel failure report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    /// What kind of report it is.
    pub kind: SplatKind,
    /// The 1-based line number of its first line in the log.
    pub line_number: usize,
    /// Its first line, without printk timestamp.
    pub first_line: String,
    /// Its lines, first line included, without printk timestamps.
    pub body: Vec<String>,
    /// Whether the kernel's own end marker (`---[ end trace`, `---[ end Kernel panic`, KASAN's
    /// closing rule) closed it; false when vmlane had to guess where it ends.
    pub ended: bool,
}

impl Splat {
    /// The body as one block of text, for a failure message.
    pub fn text(&self) -> String {
        self.body.join("\n")
    }
}

impl fmt::Display for Splat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at console line {}: {}",
            self.kind, self.line_number, self.first_line
        )
    }
}

#[cfg(test)]
mod tests;
