//! KTAP (and TAP 13), the result format of KUnit and kselftest: every subtest, nested names
//! joined with `.`, their directives and diagnostic lines, and whether the stream was complete.
//! A stream that stops early (the kernel crashed, the runner was killed) is reported as
//! truncated, never as a pass.
//!
//! The reader follows the kernel's `Documentation/dev-tools/ktap.rst`: a result line is
//! `<ok|not ok> <number> [<description>][ # [<directive>] [<diagnostic data>]]`, where only a
//! `#` that follows whitespace opens the directive part, and lines that are none of KTAP's
//! kinds (console output from elsewhere in the kernel) never change a result.

mod diagnostics;
mod line;

use diagnostics::Diagnostics;
use line::{Line, ResultLine};
use serde::{Deserialize, Serialize};

/// How one (sub)test ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KtapStatus {
    /// `ok`, also `ok … # XPASS` (kselftest's unexpected pass; the reason keeps `XPASS`).
    Ok,
    /// `not ok`, also `… # TIMEOUT` and `… # ERROR` (the reason keeps the directive). The
    /// default, so a result nobody filled in never reads as a pass.
    #[default]
    NotOk,
    /// `ok … # SKIP`.
    Skip,
    /// `… # TODO`: a known failure, not counted against the test.
    Todo,
    /// `… # XFAIL`: an expected failure, not counted against the test.
    Xfail,
}

/// One result line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KtapResult {
    /// The names from the outermost test down, joined with `.`.
    pub name: String,
    /// Its status.
    pub status: KtapStatus,
    /// The text after the `#`: the data of `SKIP`/`TODO`/`XFAIL`, the whole text for
    /// `TIMEOUT`/`ERROR`/`XPASS` or for diagnostic data that is no directive (`rcode=0`).
    pub reason: String,
    /// The diagnostic lines printed for this test before its result line, without their `# `;
    /// at most about 50 lines and 8 KiB, with a last line saying so when more were cut.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

/// A whole stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KtapReport {
    /// Every result, subtests before the test that holds them, as the stream lists them.
    pub results: Vec<KtapResult>,
    /// Why the stream is incomplete or broken: no version line, fewer results than a plan
    /// announced, a subtest without its result line, `Bail out!`.
    pub problems: Vec<String>,
}

impl KtapReport {
    /// Nothing failed (TODO and XFAIL do not count) and the stream was complete.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && !self.results.iter().any(|r| r.status == KtapStatus::NotOk)
    }
}

/// Parses KTAP from `text`; lines may carry a printk timestamp (KUnit writes to the console)
/// and a `\r` (serial consoles).
pub fn parse_ktap(text: &str) -> KtapReport {
    let mut parser = Parser::default();
    for (number, raw) in text.lines().enumerate() {
        parser.line(number, raw);
    }
    parser.finish()
}

/// One nesting level while parsing. Levels nest strictly deeper, so their indents rise.
#[derive(Debug, Default)]
struct Level {
    indent: usize,
    /// From `# Subtest: name`, to name the results of a subtest that never got its own.
    name: Option<String>,
    planned: Option<usize>,
    seen: usize,
    /// Results of this level's subtests, waiting for this level's next result line to name
    /// their parent.
    children: Vec<KtapResult>,
    /// Diagnostics printed before a subtest's plan or first result (`# module: x`): they
    /// describe the test the subtest belongs to, not its first case.
    header: Diagnostics,
    /// Diagnostics waiting for this level's next result line.
    pending: Diagnostics,
}

impl Level {
    fn new(indent: usize, name: Option<String>) -> Self {
        Self {
            indent,
            name,
            ..Self::default()
        }
    }

    /// Nothing but a version line (and maybe a `# Subtest:`) so far.
    fn is_fresh(&self) -> bool {
        self.planned.is_none() && self.seen == 0 && self.children.is_empty()
    }

    /// What the problems call this level.
    fn owner(&self) -> String {
        match &self.name {
            Some(name) => format!("subtest {name}"),
            None => "an unfinished subtest".into(),
        }
    }
}

/// The reader's state between lines.
#[derive(Debug, Default)]
struct Parser {
    report: KtapReport,
    /// Open levels, outermost first; empty until the first version line.
    levels: Vec<Level>,
    /// A `# Subtest:` name (with its indent) seen before the level it names was opened.
    subtest: Option<(usize, String)>,
    /// Where an indented line without `#` goes: right after a diagnostic, KUnit prints the
    /// rest of a failed expectation (`Expected a == b, but`) unmarked. The level's index and
    /// the diagnostic's indent.
    continuation: Option<(usize, usize)>,
}

impl Parser {
    fn line(&mut self, number: usize, raw: &str) {
        let line = crate::strip_timestamp(raw.trim_matches('\r')).trim_end_matches('\r');
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let kind = line::classify(body);
        if self.levels.is_empty() {
            if kind == Line::Version {
                self.open(indent);
            }
            return;
        }
        if !matches!(kind, Line::Other | Line::Diagnostic(_)) {
            self.continuation = None;
        }
        match kind {
            Line::Version => self.version(indent),
            Line::Plan(count) => self.plan(indent, count),
            Line::Result(result) => self.result(indent, result),
            Line::Subtest(name) => self.subtest(indent, name),
            Line::Diagnostic(text) => self.diagnostic(number, indent, text),
            Line::BailOut => self.report.problems.push(body.to_string()),
            Line::Other => self.continued(number, line, indent),
        }
    }

    /// A deeper version line opens a subtest. One at the depth of an open subtest means that
    /// subtest never finished; one at the top starts a new stream (a module loaded later).
    fn version(&mut self, indent: usize) {
        if self
            .innermost()
            .is_some_and(|l| l.indent == indent && l.is_fresh())
        {
            return;
        }
        while self.levels.len() > 1 && self.innermost().is_some_and(|l| l.indent >= indent) {
            self.abandon_innermost();
        }
        if self.innermost().is_some_and(|l| indent > l.indent) {
            self.open(indent);
        } else {
            self.restart_top();
        }
    }

    /// Checks the plan of the stream so far and counts afresh; the results stay.
    fn restart_top(&mut self) {
        let Some(top) = self.levels.last_mut() else {
            return;
        };
        if !top.is_fresh() {
            check_plan(top, "the stream", &mut self.report.problems);
            top.planned = None;
            top.seen = 0;
        }
    }

    /// A plan deeper than a level that already has one opens a subtest without a version
    /// line (TAP 13 style).
    fn plan(&mut self, indent: usize, count: usize) {
        if self
            .innermost()
            .is_some_and(|l| indent > l.indent && l.planned.is_some())
        {
            self.open(indent);
        }
        if let Some(level) = self.levels.last_mut() {
            level.planned = Some(count);
        }
    }

    fn result(&mut self, indent: usize, result: ResultLine) {
        // A result deeper than every level belongs to a subtest that printed no version or
        // plan line (older KUnit's parameterised tests).
        if self.innermost().is_some_and(|l| indent > l.indent) {
            self.open(indent);
        }
        self.subtest = None;
        let closed = self.close_subtest_of(indent);
        self.record(result, closed);
    }

    /// Closes the levels deeper than a result line at `indent`: the nearest one is that
    /// result's subtest, any deeper ones never got their own result line.
    fn close_subtest_of(&mut self, indent: usize) -> Option<Level> {
        while self
            .levels
            .len()
            .checked_sub(2)
            .and_then(|parent| self.levels.get(parent))
            .is_some_and(|parent| parent.indent > indent)
        {
            self.abandon_innermost();
        }
        if self.levels.len() > 1 && self.innermost().is_some_and(|l| l.indent > indent) {
            self.levels.pop()
        } else {
            None
        }
    }

    /// Adds a result to the innermost level, after the results of the subtest it closes and
    /// with that subtest's leftover diagnostics.
    fn record(&mut self, result: ResultLine, closed: Option<Level>) {
        let Some(level) = self.levels.last_mut() else {
            return;
        };
        level.seen += 1;
        let mut diagnostics = std::mem::take(&mut level.pending);
        if let Some(closed) = closed {
            check_plan(&closed, &result.name, &mut self.report.problems);
            diagnostics = diagnostics.merge(closed.header).merge(closed.pending);
            for mut child in closed.children {
                child.name = format!("{}.{}", result.name, child.name);
                level.children.push(child);
            }
        }
        level.children.push(KtapResult {
            name: result.name,
            status: result.status,
            reason: result.reason,
            diagnostics: diagnostics.into_lines(),
        });
    }

    /// Names the level it follows, or the next one to open at its indent.
    fn subtest(&mut self, indent: usize, name: &str) {
        match self.levels.last_mut() {
            Some(level) if level.indent == indent && level.name.is_none() && level.is_fresh() => {
                level.name = Some(name.to_string());
            }
            _ => self.subtest = Some((indent, name.to_string())),
        }
    }

    /// A diagnostic belongs to the next result line at its own depth or shallower: the
    /// innermost level not deeper than the line.
    fn diagnostic(&mut self, number: usize, indent: usize, text: &str) {
        let index = self
            .levels
            .partition_point(|l| l.indent <= indent)
            .saturating_sub(1);
        self.continuation = Some((index, indent));
        self.keep(index, number, text);
    }

    /// An indented line right after a diagnostic, at least as deep, continues it; lines at
    /// the margin are the rest of the kernel talking and neither count nor interrupt.
    fn continued(&mut self, number: usize, line: &str, indent: usize) {
        let Some((index, base)) = self.continuation else {
            return;
        };
        if indent == 0 || indent < base {
            return;
        }
        let text = line.get(base..).unwrap_or(line.trim_start()).trim_end();
        self.keep(index, number, text);
    }

    fn keep(&mut self, index: usize, number: usize, text: &str) {
        if text.is_empty() {
            return;
        }
        // The top level is no subtest: what it prints first belongs to its first test.
        let subtest = index > 0;
        if let Some(level) = self.levels.get_mut(index) {
            if subtest && level.is_fresh() {
                level.header.push(number, text);
            } else {
                level.pending.push(number, text);
            }
        }
    }

    fn open(&mut self, indent: usize) {
        let name = self.take_subtest(indent);
        self.levels.push(Level::new(indent, name));
    }

    fn take_subtest(&mut self, indent: usize) -> Option<String> {
        match self.subtest.take() {
            Some((at, name)) if at == indent => Some(name),
            other => {
                self.subtest = other;
                None
            }
        }
    }

    fn innermost(&self) -> Option<&Level> {
        self.levels.last()
    }

    /// Closes the innermost level, which never got its result line: it is reported with its
    /// last diagnostic, and its results move up, named by its `# Subtest:` line if it had one.
    fn abandon_innermost(&mut self) {
        let Some(level) = self.levels.pop() else {
            return;
        };
        let owner = level.owner();
        check_plan(&level, &owner, &mut self.report.problems);
        // What it printed last says where it stopped; no later result should carry it.
        let leftovers = level.header.merge(level.pending);
        let after = leftovers
            .last()
            .map(|line| format!(" (last diagnostic: {line})"))
            .unwrap_or_default();
        let who = match &level.name {
            Some(name) => format!("subtest {name}"),
            None => "a subtest".into(),
        };
        self.report.problems.push(format!(
            "{who} has no result line: the stream stopped inside it{after}"
        ));
        let Some(parent) = self.levels.last_mut() else {
            return;
        };
        for mut child in level.children {
            if let Some(name) = &level.name {
                child.name = format!("{name}.{}", child.name);
            }
            parent.children.push(child);
        }
    }

    /// Whatever is still open at the end was cut off.
    fn finish(mut self) -> KtapReport {
        while self.levels.len() > 1 {
            self.abandon_innermost();
        }
        match self.levels.pop() {
            Some(top) => {
                check_plan(&top, "the stream", &mut self.report.problems);
                self.report.results.extend(top.children);
            }
            None => self
                .report
                .problems
                .push("no KTAP or TAP version line".into()),
        }
        self.report
    }
}

/// Reports a level that announced more results than it printed, or printed nothing at all.
fn check_plan(level: &Level, owner: &str, problems: &mut Vec<String>) {
    match level.planned {
        Some(planned) if level.seen < planned => problems.push(format!(
            "{owner}: {} of {planned} planned results",
            level.seen
        )),
        None if level.seen == 0 => problems.push(format!("{owner}: no plan and no results")),
        _ => {}
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
