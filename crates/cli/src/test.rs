//! `vmlane test`: a suite's (test, kernel) matrix, run N VMs at a time, each run checked
//! against its expectations and the console scanned for kernel failure reports.

use crate::args::{ReportFormat, TestArgs};
use crate::report::{self, CaseResult, Status};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vmlane::launch::{launch_captured, BackendChoice, BootChoice, Launch, MachineChoice, OsChoice};
use vmlane_checks::events::{expect_events, extract_events};
use vmlane_checks::golden::Normaliser;
use vmlane_checks::ktap::{parse_ktap, KtapStatus};
use vmlane_checks::lines::{check_lines, LineExpectation};
use vmlane_checks::splat::{scan, triage, SplatKind, SplatMatcher};
use vmlane_checks::TextPattern;
use vmlane_spec::{GuestStatus, Outcome, RunSpec};
use vmlane_suite::{matrix, partition, Case, ConsoleLine, KtapSource, Partition, Test};

/// A run without its own timeout is ended after this long and reported as a hang.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the suite; 0 only if every case passed.
pub fn test(args: TestArgs) -> Result<i32> {
    let suite = vmlane_suite::load(&args.suite)?;
    let mut cases = matrix(&suite, &args.kernels);
    if let Some(share) = &args.partition {
        cases = partition(cases, share.parse::<Partition>()?);
    }
    let results_dir = match &args.results {
        Some(dir) => dir.clone(),
        None => default_results_dir(),
    };
    std::fs::create_dir_all(&results_dir)
        .with_context(|| format!("failed to create {}", results_dir.display()))?;
    let jobs = args.jobs.map_or_else(default_jobs, |n| n as usize).max(1);
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let human = args.format == ReportFormat::Human;
    if human {
        eprintln!(
            "vmlane: {} runs of {} tests, {jobs} at a time; results in {}",
            cases.len(),
            suite.tests.len(),
            results_dir.display()
        );
    }

    // On a terminal a bar counts runs and per-run lines scroll above it; otherwise plain lines.
    let bar = (human && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(cases.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs, {elapsed} {msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<CaseResult>>> = Mutex::new(vec![None; cases.len()]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(cases.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= cases.len() || stop.load(Ordering::SeqCst) {
                    break;
                }
                let case = &cases[i];
                let test = &suite.tests[case.test];
                let runner = CaseRunner {
                    test,
                    case,
                    cwd: &cwd,
                    results_dir: &results_dir,
                    accel: args.accel.into(),
                    bless: args.bless,
                };
                let result = runner.run();
                if result.status == Status::Interrupted {
                    stop.store(true, Ordering::SeqCst);
                }
                match (&bar, human) {
                    (Some(bar), _) => {
                        bar.println(report::line(&result));
                        bar.inc(1);
                    }
                    (None, true) => eprintln!("{}", report::line(&result)),
                    (None, false) => {}
                }
                results.lock().expect("results lock")[i] = Some(result);
            });
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let results: Vec<CaseResult> = results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .flatten()
        .collect();
    let mut stdout = std::io::stdout().lock();
    match args.format {
        ReportFormat::Human => report::summary(&mut stdout, &results, cases.len(), &results_dir)?,
        ReportFormat::Json => report::json(&mut stdout, &results)?,
        ReportFormat::Junit => report::junit(&mut stdout, &results)?,
    }
    stdout.flush()?;
    let interrupted = results.iter().any(|r| r.status == Status::Interrupted);
    let all_passed =
        results.len() == cases.len() && results.iter().all(|r| r.status == Status::Passed);
    Ok(if interrupted {
        130
    } else if all_passed {
        0
    } else {
        1
    })
}

/// One (test, kernel) run and its checks.
struct CaseRunner<'a> {
    test: &'a Test,
    case: &'a Case,
    cwd: &'a Path,
    results_dir: &'a Path,
    accel: vmlane_spec::Accel,
    bless: bool,
}

impl CaseRunner<'_> {
    fn run(&self) -> CaseResult {
        let kernel_label = self.case.kernel.clone().unwrap_or_else(|| "default".into());
        // A kernel given as a path is filed under its last component.
        let kernel_dir = Path::new(&kernel_label)
            .file_name()
            .map_or(kernel_label.clone(), |n| n.to_string_lossy().into_owned());
        let dir = self
            .results_dir
            .join(file_name(&self.test.name))
            .join(file_name(&kernel_dir));
        let mut result = CaseResult::new(&self.test.name, &kernel_label, &dir);
        let started = Instant::now();
        match self.run_in(&dir, &mut result) {
            Ok(()) => {}
            Err(error) => {
                result.status = Status::Error;
                result.reasons.push(format!("{error:#}"));
            }
        }
        result.duration = started.elapsed();
        result
    }

    fn run_in(&self, dir: &Path, result: &mut CaseResult) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let mut spec = RunSpec::new(
            self.test.argv.iter().map(Into::into).collect(),
            self.cwd.to_path_buf(),
        );
        spec.env = self
            .test
            .env
            .iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        spec.accel = self.accel;
        if let Some(cpus) = self.test.cpus {
            spec.cpus = cpus;
        }
        if let Some(mib) = self.test.memory_mib {
            spec.memory_mib = mib;
        }
        spec.timeout = Some(
            self.test
                .timeout
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64),
        );
        spec.disks = self.test.disks.clone();
        let launch = Launch {
            spec,
            kernel: self.case.kernel.as_ref().map(PathBuf::from),
            modules: None,
            machine: MachineChoice::Auto,
            append: self.test.append.clone(),
            os: OsChoice::Auto,
            image: None,
            backend: BackendChoice::Auto,
            boot: BootChoice::Auto,
            debugger: false,
            keep_image: false,
        };
        let captured = launch_captured(&launch, &result.console_log)?;
        std::fs::write(&result.stdout_path, &captured.stdout)?;
        std::fs::write(&result.stderr_path, &captured.stderr)?;
        let stdout = String::from_utf8_lossy(&captured.stdout).into_owned();
        self.check(&captured.outcome, &captured.console, &stdout, result)
    }

    /// Every expectation is checked and every failure kept, so one report says all that went
    /// wrong.
    fn check(
        &self,
        outcome: &Outcome,
        console: &str,
        stdout: &str,
        result: &mut CaseResult,
    ) -> Result<()> {
        let expect = &self.test.expect;
        let mut failures = Vec::new();
        let splat_matchers = expect
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
            .collect::<Result<Vec<_>, vmlane_checks::Error>>()?;
        let triaged = triage(scan(console), &splat_matchers);
        for splat in &triaged.unexpected {
            failures.push(format!(
                "the kernel reported {}: {}",
                splat.kind, splat.first_line
            ));
            result.splats.push(splat.text());
        }
        for index in &triaged.unmatched {
            failures.push(format!(
                "expected splat not seen: {}",
                splat_matchers[*index]
            ));
        }

        match outcome {
            Outcome::Completed(status) => {
                let code = outcome.exit_code();
                result.exit = Some(code);
                let wanted = expect.exit.unwrap_or(0);
                if code != wanted {
                    let how = match status {
                        GuestStatus::NotFound => " (command not found)".to_string(),
                        _ => String::new(),
                    };
                    failures.push(format!("exit status {code}{how}, expected {wanted}"));
                }
            }
            Outcome::TimedOut => {
                result.status = Status::Hang;
                let tail: Vec<&str> = console.lines().rev().take(10).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                result.reasons.push(format!(
                    "no result within {:?}; console ends:\n{}",
                    self.test
                        .timeout
                        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64),
                    tail.join("\n")
                ));
            }
            Outcome::Interrupted(_) => {
                result.status = Status::Interrupted;
                result.reasons.push("interrupted".into());
                return Ok(());
            }
            Outcome::KernelPanic(line) => {
                // Linux's panic line, or FreeBSD's (`panic:`, or the `Fatal trap` before it).
                let is_panic = |kind: SplatKind| {
                    matches!(
                        kind,
                        SplatKind::Panic | SplatKind::FreeBsdPanic | SplatKind::FatalTrap
                    )
                };
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

        let console_checks: Vec<LineExpectation> = patterns(&expect.console)?
            .into_iter()
            .map(LineExpectation::appears)
            .chain(
                patterns(&expect.console_absent)?
                    .into_iter()
                    .map(LineExpectation::absent),
            )
            .collect();
        failures.extend(
            check_lines(console, &console_checks, expect.console_in_order)
                .iter()
                .map(ToString::to_string),
        );
        let stdout_checks: Vec<LineExpectation> = patterns(&expect.stdout)?
            .into_iter()
            .map(LineExpectation::appears)
            .collect();
        failures.extend(
            check_lines(stdout, &stdout_checks, false)
                .iter()
                .map(|f| format!("stdout: {f}")),
        );
        if !expect.events.is_empty() {
            let mut events = extract_events(stdout);
            events.extend(extract_events(console));
            failures.extend(
                expect_events(&events, &expect.events)
                    .iter()
                    .map(ToString::to_string),
            );
        }
        if let Some(source) = expect.ktap {
            let text = match source {
                KtapSource::Stdout => stdout,
                KtapSource::Console => console,
            };
            let ktap = parse_ktap(text);
            failures.extend(
                ktap.results
                    .iter()
                    .filter(|r| r.status == KtapStatus::NotOk)
                    .map(|r| format!("ktap: not ok {}", r.name)),
            );
            failures.extend(ktap.problems.iter().map(|p| format!("ktap: {p}")));
            result.subtests = ktap.results;
        }
        if let Some(golden) = &expect.golden {
            let mut normaliser = Normaliser::new();
            for substitution in &expect.substitutions {
                normaliser = normaliser.substitute(&substitution.regex, &substitution.replace)?;
            }
            if self.bless {
                if let Some(parent) = golden.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("failed to create {}", parent.display()))?;
                }
                std::fs::write(golden, normaliser.normalise(console))
                    .with_context(|| format!("failed to bless {}", golden.display()))?;
            } else {
                match std::fs::read_to_string(golden) {
                    Ok(text) => {
                        if let Err(mismatch) = normaliser.compare(console, &text) {
                            failures.push(format!(
                                "console differs from {}:\n{}",
                                golden.display(),
                                mismatch.diff
                            ));
                        }
                    }
                    Err(e) => failures.push(format!(
                        "cannot read the golden log {} ({e}); run with --bless to write it",
                        golden.display()
                    )),
                }
            }
        }

        if result.status != Status::Hang {
            result.status = if failures.is_empty() {
                Status::Passed
            } else {
                Status::Failed
            };
        }
        result.reasons.extend(failures);
        Ok(())
    }
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

/// A test or kernel name as one path component.
fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn default_results_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    vmlane_kernel::cache_dir()
        .join("results")
        .join(format!("{stamp}-{}", std::process::id()))
}

/// One VM per core under emulation, and never more than free memory holds at ~1 GiB each.
fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let free_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(1, |kib| (kib >> 20).max(1) as usize);
    cores.min(free_gib).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_path_components() {
        assert_eq!(file_name("probe/enotsup 1"), "probe_enotsup_1");
        assert_eq!(file_name("6.1.0-56-cloud-amd64"), "6.1.0-56-cloud-amd64");
    }
}
