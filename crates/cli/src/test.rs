//! `vmlane test`: a suite's (test, kernel) matrix, run N VMs at a time, each run checked
//! against its expectations and the console scanned for kernel failure reports.

use crate::args::{BootArgs, ReportFormat, TestArgs};
use crate::report::{self, CaseResult};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vmlane::launch::launch_captured;
use vmlane::Request;
use vmlane_spec::exit_code;
use vmlane_suite::{
    judge, matrix, partition, select, Case, Finished, NamePattern, Partition, Status, Test,
};

/// A run without its own timeout is ended after this long and reported as a hang.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the suite; 0 only if every case passed.
pub fn test(args: TestArgs) -> Result<i32> {
    let suite = vmlane_suite::load(&args.suite)?;
    let patterns = |given: &[String]| -> Result<Vec<NamePattern>> {
        Ok(given
            .iter()
            .map(|p| NamePattern::parse(p))
            .collect::<Result<_, _>>()?)
    };
    let mut cases = matrix(&suite, &args.kernels);
    cases = select(
        &suite,
        cases,
        &patterns(&args.filter)?,
        &patterns(&args.skip)?,
    );
    if let Some(share) = &args.partition {
        cases = partition(cases, share.parse::<Partition>()?);
    }
    if args.list {
        list(&suite.tests, &cases, args.format)?;
        return Ok(0);
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
                    boot: &args.boot,
                    bless: args.bless,
                    shared_kernel: cases.iter().filter(|c| c.kernel == case.kernel).count() > 1,
                };
                let result = runner.run();
                let failed_fast = args.fail_fast && result.status != Status::Passed;
                if result.status == Status::Interrupted || failed_fast {
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
                if args.format == ReportFormat::Json {
                    // Each result the moment its case ends, so CI shows progress and a run
                    // cut short still reported every case that finished.
                    let mut stdout = std::io::stdout().lock();
                    let _ = report::json(&mut stdout, std::slice::from_ref(&result))
                        .and_then(|()| stdout.flush());
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
        ReportFormat::Json => {}
        ReportFormat::Junit => report::junit(&mut stdout, &results)?,
    }
    stdout.flush()?;
    Ok(suite_exit_code(&results, cases.len()))
}

/// The runs `--list` names: `TEST<TAB>KERNEL` lines, or with `--format json` one object each.
fn list(tests: &[Test], cases: &[Case], format: ReportFormat) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    for case in cases {
        let test = &tests[case.test].name;
        let kernel = case.kernel.as_deref().unwrap_or("default");
        match format {
            ReportFormat::Json => writeln!(
                stdout,
                "{}",
                serde_json::json!({ "test": test, "kernel": kernel })
            )?,
            _ => writeln!(stdout, "{test}\t{kernel}")?,
        }
    }
    Ok(())
}

/// 130 if interrupted, 125 if vmlane could not run a case (its fault, not the kernel's), 1 if
/// a test failed or hung, 0 when every case ran and passed.
fn suite_exit_code(results: &[CaseResult], cases: usize) -> i32 {
    let any = |status: Status| results.iter().any(|r| r.status == status);
    if any(Status::Interrupted) {
        130
    } else if any(Status::Error) {
        exit_code::VMLANE_FAILED
    } else if results.len() == cases && results.iter().all(|r| r.status == Status::Passed) {
        0
    } else {
        1
    }
}

/// One (test, kernel) run and its checks.
struct CaseRunner<'a> {
    test: &'a Test,
    case: &'a Case,
    cwd: &'a Path,
    results_dir: &'a Path,
    boot: &'a BootArgs,
    bless: bool,
    /// Other cases run on the same kernel: the first saves its ready guest for them.
    shared_kernel: bool,
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
        if let Err(error) = self.run_in(&dir, &mut result) {
            result.status = Status::Error;
            result.reasons.push(format!("{error:#}"));
        }
        result.duration = started.elapsed();
        result
    }

    fn run_in(&self, dir: &Path, result: &mut CaseResult) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let timeout = self
            .test
            .timeout
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        let captured = launch_captured(self.request(timeout), &result.console_log, &|_| {})?;
        std::fs::write(&result.stdout_path, &captured.stdout)?;
        std::fs::write(&result.stderr_path, &captured.stderr)?;
        let stdout = String::from_utf8_lossy(&captured.stdout);
        let finished = Finished {
            outcome: &captured.outcome,
            console: &captured.console,
            stdout: &stdout,
            timeout,
        };
        let verdict = judge(self.test, &finished, self.bless)?;
        result.status = verdict.status;
        result.exit = verdict.exit;
        result.reasons = verdict.reasons;
        result.splats = verdict.splats;
        result.subtests = verdict.subtests;
        Ok(())
    }

    /// The test's own settings, then the command line's for every test; the suite's
    /// profiles come before the command line's.
    fn request(&self, timeout: Duration) -> Request {
        let test = self.test;
        let mut request = Request::new(
            test.argv.iter().map(Into::into).collect(),
            self.cwd.to_path_buf(),
        );
        request.kernel = self.case.kernel.as_ref().map(PathBuf::from);
        request.env = test.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        request.cpus = test.cpus;
        request.memory_mib = test.memory_mib;
        request.timeout = Some(timeout);
        request.disks = test.disks.clone();
        request.append = test.append.clone();
        request.profiles = test.profiles.clone();
        request.cold = test.cold;
        request.save_on_first_use = self.shared_kernel;
        self.boot.apply(&mut request);
        request
    }
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
    fn the_exit_code_tells_failed_tests_from_vmlane_failing() {
        let result = |status| {
            let mut r = CaseResult::new("t", "6.1", Path::new("/r/t/6.1"));
            r.status = status;
            r
        };
        let code = |statuses: &[Status], cases| {
            let results: Vec<_> = statuses.iter().map(|s| result(*s)).collect();
            suite_exit_code(&results, cases)
        };
        assert_eq!(code(&[Status::Passed, Status::Passed], 2), 0);
        assert_eq!(code(&[Status::Passed], 2), 1, "a case without a result");
        assert_eq!(code(&[Status::Passed, Status::Failed], 2), 1);
        assert_eq!(code(&[Status::Hang, Status::Passed], 2), 1);
        assert_eq!(code(&[Status::Failed, Status::Error], 2), 125);
        assert_eq!(code(&[Status::Error, Status::Interrupted], 2), 130);
    }

    #[test]
    fn names_become_single_path_components() {
        assert_eq!(file_name("probe/enotsup 1"), "probe_enotsup_1");
        assert_eq!(file_name("6.1.0-56-cloud-amd64"), "6.1.0-56-cloud-amd64");
    }
}
