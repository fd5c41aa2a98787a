//! The pass/fail judgement of a finished run, made here rather than in the CLI so a library
//! user gets the verdict `vmlane test` would give. Every expectation is checked and every
//! failure kept, so one verdict says all that went wrong.

use crate::golden::golden_failures;
use crate::model::{ConsoleLine, Expectations, KtapSource, Test};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::Duration;
use vmlane_checks::events::{expect_events, extract_events};
use vmlane_checks::ktap::{parse_ktap, KtapResult, KtapStatus};
use vmlane_checks::lines::{check_lines, LineExpectation};
use vmlane_checks::splat::{scan, triage, Splat, SplatKind, SplatMatcher, Triage};
use vmlane_checks::TextPattern;
use vmlane_spec::{GuestStatus, Outcome};

/// How a run ended, as a suite sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every expectation held and the kernel reported nothing unexpected.
    Passed,
    /// Passed on a retry after failing: worth a look, as a flaky test hides real failures.
    /// Only a runner that retries gives it; [`judge`] judges one run.
    Flaky,
    /// An expectation failed or the kernel reported a splat.
    Failed,
    /// No result before the timeout.
    Hang,
    /// vmlane could not run it (no such kernel, say); [`judge`] never gives it, as a run that
    /// could not start has nothing to judge.
    Error,
    /// Ended by SIGINT or SIGTERM.
    Interrupted,
}

/// What the suite made of one finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// How it ended.
    pub status: Status,
    /// The command's exit status, when it finished.
    pub exit: Option<i32>,
    /// Why it did not pass, one entry per failed check; a hang's own reason comes first.
    pub reasons: Vec<String>,
    /// Unexpected kernel reports, with their backtraces (with source lines when the kernel's
    /// debug info was given).
    pub splats: Vec<String>,
    /// KTAP subtests, when the test declared KTAP output.
    pub subtests: Vec<KtapResult>,
}

impl Verdict {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }
}

/// What a finished run left to judge.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// How the run ended.
    pub outcome: &'a Outcome,
    /// The whole guest console.
    pub console: &'a str,
    /// The command's stdout.
    pub stdout: &'a str,
    /// The timeout the run was given, named in a hang's reason.
    pub timeout: Duration,
    /// The kernel's file with symbols and DWARF (`vmlinux`, `kernel.debug`), when known:
    /// the backtraces of splats get `file:line` from it.
    pub debug_info: Option<&'a Path>,
}

/// Why a run could not be judged. A failed expectation is a reason in the [`Verdict`], never
/// this: these are faults of the test or the host.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// An expectation cannot be set up: a bad regex or splat kind (`load` refuses these in
    /// files, so only a test built by hand gets here).
    #[error("{file}: test {test:?}: an expectation cannot be checked")]
    Expectation {
        /// The suite file.
        file: PathBuf,
        /// The test's name.
        test: String,
        /// What is wrong with it.
        #[source]
        source: vmlane_checks::Error,
    },
    /// `--bless` could not create the golden log's directory.
    #[error("cannot create {path} for the golden log")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--bless` could not write the golden log.
    #[error("cannot bless the golden log {path}")]
    Bless {
        /// The golden log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl JudgeError {
    pub(crate) fn expectation(test: &Test, source: vmlane_checks::Error) -> JudgeError {
        JudgeError::Expectation {
            file: test.file.clone(),
            test: test.name.clone(),
            source,
        }
    }
}

/// Judges a finished run of `test`; with `bless`, the golden log is written from this run's
/// console instead of compared.
pub fn judge(test: &Test, run: &Finished<'_>, bless: bool) -> Result<Verdict, JudgeError> {
    let expect = &test.expect;
    let bad = |source| JudgeError::expectation(test, source);
    let matchers = splat_matchers(expect).map_err(bad)?;
    let triaged = triage(scan(run.console), &matchers);
    let mut verdict = Verdict {
        status: Status::Passed,
        exit: None,
        reasons: Vec::new(),
        splats: with_source_lines(
            triaged.unexpected.iter().map(Splat::text).collect(),
            run.debug_info,
        ),
        subtests: Vec::new(),
    };
    let mut failures = splat_failures(&triaged, &matchers);

    match run.outcome {
        Outcome::Completed(status) => {
            let code = run.outcome.exit_code();
            verdict.exit = Some(code);
            let wanted = expect.exit.unwrap_or(0);
            if code != wanted {
                let how = match status {
                    GuestStatus::NotFound => " (command not found)",
                    _ => "",
                };
                failures.push(format!("exit status {code}{how}, expected {wanted}"));
            }
        }
        Outcome::TimedOut => {
            verdict.status = Status::Hang;
            verdict.reasons.push(hang_reason(run));
        }
        Outcome::Interrupted(_) => {
            // Nothing else is checked: the run was cut short on purpose.
            verdict.status = Status::Interrupted;
            verdict.reasons.push("interrupted".into());
            return Ok(verdict);
        }
        Outcome::KernelPanic(line) => {
            // A panic the console shows is already a splat, declared or failing.
            let declared = triaged.expected.iter().any(|s| is_panic(s.kind));
            if !declared && !triaged.unexpected.iter().any(|s| is_panic(s.kind)) {
                failures.push(format!("the guest kernel panicked: {line}"));
            }
            if expect.exit.is_some() {
                failures.push("the command never finished: the kernel panicked".into());
            }
        }
        other => failures.push(other.to_string()),
    }

    failures.extend(line_failures(expect, run.console, run.stdout).map_err(bad)?);
    failures.extend(event_failures(expect, run.console, run.stdout));
    if let Some(source) = expect.ktap {
        let text = match source {
            KtapSource::Stdout => run.stdout,
            KtapSource::Console => run.console,
        };
        let ktap = parse_ktap(text);
        failures.extend(
            ktap.results
                .iter()
                .filter(|r| r.status == KtapStatus::NotOk)
                .map(|r| format!("ktap: not ok {}", r.name)),
        );
        failures.extend(ktap.problems.iter().map(|p| format!("ktap: {p}")));
        if source == KtapSource::Console && ktap.problems.is_empty() && ktap.results.is_empty() {
            // vmlane's kernels have KUnit's core built in, which prints `1..0` without tests.
            failures.push(
                "ktap: the kernel ran no KUnit tests (its plan is 1..0): build some in \
                 (`vmlane kernel build -e KUNIT_EXAMPLE_TEST`, or --config with a .kunitconfig), \
                 or widen kunit.filter_glob"
                    .into(),
            );
        }
        verdict.subtests = ktap.results;
    }
    if let Some(golden) = &expect.golden {
        failures.extend(golden_failures(test, golden, run.console, bless)?);
    }

    if verdict.status != Status::Hang {
        verdict.status = if failures.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
    }
    verdict.reasons.extend(failures);
    Ok(verdict)
}

/// `texts` with `file:line` after their backtrace frames. The kernel's debug info is read
/// only when there is a splat, once per kernel for the whole process; when it cannot be
/// read, each text says why instead.
fn with_source_lines(texts: Vec<String>, debug_info: Option<&Path>) -> Vec<String> {
    let Some(path) = debug_info.filter(|_| !texts.is_empty()) else {
        return texts;
    };
    match vmlane_symbols::shared(path) {
        Ok(symbolizer) => {
            let symbolizer = symbolizer.lock().unwrap_or_else(PoisonError::into_inner);
            texts
                .iter()
                .map(|text| symbolizer.symbolize(text))
                .collect()
        }
        Err(error) => {
            let mut why = error.to_string();
            if let Some(source) = std::error::Error::source(&error) {
                why = format!("{why}: {source}");
            }
            texts
                .into_iter()
                .map(|text| {
                    format!(
                        "{text}
(no source lines: {why})"
                    )
                })
                .collect()
        }
    }
}

/// Linux's panic, or FreeBSD's (`panic:`, or the `Fatal trap` before it).
fn is_panic(kind: SplatKind) -> bool {
    matches!(
        kind,
        SplatKind::Panic | SplatKind::FreeBsdPanic | SplatKind::FatalTrap
    )
}

fn splat_matchers(expect: &Expectations) -> Result<Vec<SplatMatcher>, vmlane_checks::Error> {
    expect
        .splats
        .iter()
        .map(|s| {
            let mut matcher = match &s.kind {
                Some(kind) => SplatMatcher::kind(kind.parse::<SplatKind>()?),
                None => SplatMatcher::first_line(TextPattern::substring("")),
            };
            if let Some(text) = &s.contains {
                matcher = matcher.with_first_line(TextPattern::substring(text.clone()));
            }
            Ok(matcher)
        })
        .collect()
}

/// Every undeclared splat, then every declared one that did not happen.
fn splat_failures(triaged: &Triage, matchers: &[SplatMatcher]) -> Vec<String> {
    let unexpected = triaged
        .unexpected
        .iter()
        .map(|splat| format!("the kernel reported {}: {}", splat.kind, splat.first_line));
    let unseen = triaged
        .unmatched
        .iter()
        .map(|index| format!("expected splat not seen: {}", matchers[*index]));
    unexpected.chain(unseen).collect()
}

/// The timeout and the console's last lines, which usually show where the guest stuck.
fn hang_reason(run: &Finished<'_>) -> String {
    let tail: Vec<&str> = run.console.lines().rev().take(10).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "no result within {:?}; console ends:\n{}",
        run.timeout,
        tail.join("\n")
    )
}

/// Console lines present and absent, then stdout lines (prefixed `stdout: `).
fn line_failures(
    expect: &Expectations,
    console: &str,
    stdout: &str,
) -> Result<Vec<String>, vmlane_checks::Error> {
    let console_checks: Vec<LineExpectation> = patterns(&expect.console)?
        .into_iter()
        .map(LineExpectation::appears)
        .chain(
            patterns(&expect.console_absent)?
                .into_iter()
                .map(LineExpectation::absent),
        )
        .collect();
    let stdout_checks: Vec<LineExpectation> = patterns(&expect.stdout)?
        .into_iter()
        .map(LineExpectation::appears)
        .collect();
    let console_failures = check_lines(console, &console_checks, expect.console_in_order);
    let stdout_failures = check_lines(stdout, &stdout_checks, false);
    Ok(console_failures
        .iter()
        .map(ToString::to_string)
        .chain(stdout_failures.iter().map(|f| format!("stdout: {f}")))
        .collect())
}

fn patterns(lines: &[ConsoleLine]) -> Result<Vec<TextPattern>, vmlane_checks::Error> {
    lines
        .iter()
        .map(|line| match line {
            ConsoleLine::Text(text) => Ok(TextPattern::substring(text.clone())),
            ConsoleLine::Regex { regex } => TextPattern::regex(regex),
        })
        .collect()
}

/// Expected events, looked for in stdout's events then the console's.
fn event_failures(expect: &Expectations, console: &str, stdout: &str) -> Vec<String> {
    if expect.events.is_empty() {
        return Vec::new();
    }
    let mut events = extract_events(stdout);
    events.extend(extract_events(console));
    expect_events(&events, &expect.events)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[cfg(test)]
mod tests;
