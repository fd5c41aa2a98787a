//! `vmlane test`: a suite's (test, kernel) matrix, run N VMs at a time, each run checked
//! against its expectations and the console scanned for kernel failure reports.

use crate::args::{BootArgs, ReportFormat, TestArgs};
use crate::report::{suite_exit_code, Reporter, RESULTS_FILE};
use crate::turns::Turns;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vmlane::launch::launch_captured_echoing;
use vmlane::{LaunchEvent, Request};
use vmlane_backend::{Turn, TurnWait};
use vmlane_report::{
    now, tail, time_of, Attempt, CaseResult, KernelInfo, PlannedCase, RunEnd, RunInfo, Shard,
    ShardKind, OUTPUT_TAIL_BYTES,
};
use vmlane_spec::Arch;
use vmlane_suite::{
    judge, matrix, partition, select, Case, Finished, NamePattern, Partition, PartitionKind,
    Status, Test,
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
    let all = matrix(&suite, &args.kernels);
    let matrix_size = all.len();
    let mut cases = select(
        &suite,
        all,
        &patterns(&args.filter)?,
        &patterns(&args.skip)?,
    );
    let mut shard = None;
    if let Some(share) = &args.partition {
        let share = share.parse::<Partition>()?;
        cases = partition(&suite, cases, share);
        shard = Some(Shard {
            kind: match share.kind {
                PartitionKind::Count => ShardKind::Count,
                PartitionKind::Hash => ShardKind::Hash,
            },
            index: share.index,
            count: share.count,
        });
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
    // Streamed consoles of runs side by side would interleave: one at a time then.
    let jobs = match args.verbose {
        true => 1,
        false => args.jobs.map_or_else(default_jobs, |n| n as usize).max(1),
    };
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    let planned: Vec<PlannedCase> = cases
        .iter()
        .map(|case| PlannedCase {
            index: case.index,
            test: suite.tests[case.test].name.clone(),
            kernel: kernel_label(case),
        })
        .collect();
    let run = RunInfo {
        suite: suite_name(&args.suite),
        shard,
        planned: planned.clone(),
        matrix_size,
        started_at: now(),
        vmlane_version: env!("CARGO_PKG_VERSION").into(),
    };
    eprintln!(
        "vmlane: {} runs of {} tests{}, {jobs} at a time; results in {}",
        cases.len(),
        suite.tests.len(),
        shard.map_or(String::new(), |s| format!(" (shard {s})")),
        results_dir.display()
    );
    // On a terminal a bar counts runs and per-run lines scroll above it; otherwise plain lines.
    let bar = (std::io::stderr().is_terminal() && !args.verbose).then(|| {
        let bar = indicatif::ProgressBar::new(cases.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs, {elapsed} {msg}")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let reporter = Reporter::start(
        run.clone(),
        args.format,
        &args.files,
        Some(&results_dir.join(RESULTS_FILE)),
        bar,
    )?;
    let reporter = Mutex::new(reporter);
    let kernels = KernelInfos::default();
    let turns = Turns::new(cases.len(), jobs);
    let interrupted = AtomicBool::new(false);
    // One case more than jobs gets ready ahead, unless streamed output would interleave.
    let ahead = usize::from(!args.verbose && !args.no_ready_ahead);
    std::thread::scope(|scope| {
        for _ in 0..(jobs + ahead).min(cases.len()) {
            scope.spawn(|| loop {
                let (i, turn) = match turns.take() {
                    Ok(Some(taken)) => taken,
                    Ok(None) => break,
                    Err(error) => {
                        eprintln!("vmlane: cannot start a case: {error}");
                        turns.stop();
                        break;
                    }
                };
                let case = &cases[i];
                let runner = CaseRunner {
                    test: &suite.tests[case.test],
                    case,
                    planned: &planned[i],
                    run: &run,
                    cwd: &cwd,
                    results_dir: &results_dir,
                    boot: &args.boot,
                    bless: args.bless,
                    retries: args.retries,
                    verbose: args.verbose,
                    kernels: &kernels,
                    shared_kernel: cases.iter().filter(|c| c.kernel == case.kernel).count() > 1,
                    turn: &turn,
                };
                let result = runner.run();
                let stopped = result.status == Status::Interrupted;
                if stopped && !turn.is_cancelled() {
                    interrupted.store(true, Ordering::SeqCst);
                    turns.stop();
                }
                if args.fail_fast && !result.passed() {
                    turns.stop();
                }
                // Only now: a case waiting must not get the job of one that stops the suite.
                turns.done(&turn);
                // Stopped while it waited for its turn: its command never ran.
                if stopped && turn.outcome() != Some(TurnWait::Go) {
                    continue;
                }
                reporter.lock().expect("reporter lock").case_ended(result);
            });
        }
    });
    let reporter = reporter.into_inner().expect("reporter lock");
    let code = suite_exit_code(reporter.results(), cases.len());
    let end = RunEnd {
        finished: reporter.results().len(),
        not_run: cases.len() - reporter.results().len(),
        interrupted: interrupted.load(Ordering::SeqCst),
        ended_at: now(),
        exit_code: code,
    };
    reporter.finish(end, &results_dir)?;
    Ok(code)
}

/// The runs `--list` names: `TEST<TAB>KERNEL` lines, or with `--format json` one object each.
fn list(tests: &[Test], cases: &[Case], format: ReportFormat) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    for case in cases {
        let test = &tests[case.test].name;
        let kernel = kernel_label(case);
        match format {
            ReportFormat::Json => writeln!(
                stdout,
                "{}",
                serde_json::json!({ "test": test, "kernel": kernel, "index": case.index })
            )?,
            _ => writeln!(stdout, "{test}\t{kernel}")?,
        }
    }
    Ok(())
}

fn kernel_label(case: &Case) -> String {
    case.kernel.clone().unwrap_or_else(|| "default".into())
}

/// A suite is named by its file (without `.toml`) or its directory.
fn suite_name(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let name = match path.is_dir() {
        true => path.file_name(),
        false => path.file_stem(),
    };
    name.map_or_else(|| "suite".into(), |n| n.to_string_lossy().into_owned())
}

/// What reports say about each kernel, learnt once per image: its git commit costs a `git`.
#[derive(Default)]
struct KernelInfos {
    known: Mutex<HashMap<PathBuf, KernelInfo>>,
}

impl KernelInfos {
    fn get(
        &self,
        image: &Path,
        release: Option<String>,
        config: Option<PathBuf>,
        arch: Arch,
    ) -> KernelInfo {
        let mut known = self.known.lock().expect("kernel infos lock");
        known
            .entry(image.to_path_buf())
            .or_insert_with(|| {
                let (git_commit, git_describe) = tree_commit(image);
                KernelInfo {
                    image: image.to_path_buf(),
                    release,
                    config,
                    git_commit,
                    git_describe,
                    architecture: arch.uname().into(),
                }
            })
            .clone()
    }
}

/// The commit of the Linux tree an image was built in (`arch/x86/boot/bzImage`, `vmlinux`):
/// `git rev-parse` and `git describe` there.
fn tree_commit(image: &Path) -> (Option<String>, Option<String>) {
    let Some(tree) = image
        .ancestors()
        .skip(1)
        .take(5)
        .find(|dir| dir.join("Kconfig").is_file() && dir.join("Makefile").is_file())
    else {
        return (None, None);
    };
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(tree)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    let commit = git(&["rev-parse", "--verify", "HEAD"]).filter(|c| c.len() == 40);
    let describe = commit
        .as_ref()
        .and_then(|_| git(&["describe", "--tags", "--always", "--dirty"]));
    (commit, describe)
}

/// One (test, kernel) run and its checks, retried as asked.
struct CaseRunner<'a> {
    test: &'a Test,
    case: &'a Case,
    planned: &'a PlannedCase,
    run: &'a RunInfo,
    cwd: &'a Path,
    results_dir: &'a Path,
    boot: &'a BootArgs,
    bless: bool,
    retries: u32,
    /// Stream the console and output to stderr as they come.
    verbose: bool,
    kernels: &'a KernelInfos,
    /// Other cases run on the same kernel: the first saves its ready guest for them.
    shared_kernel: bool,
    /// When this case's command may start.
    turn: &'a Turn,
}

impl CaseRunner<'_> {
    /// Runs the case until it passes or its retries are spent; a pass after a failure is
    /// [`Status::Flaky`], and each failed attempt's files are kept beside the last one's.
    fn run(&self) -> CaseResult {
        let dir = self.dir();
        let mut retries = Vec::new();
        loop {
            let mut result = self.attempt(&dir);
            let retry = retries.len() < self.retries as usize
                && matches!(result.status, Status::Failed | Status::Hang);
            if !retry {
                if !retries.is_empty() && result.status == Status::Passed {
                    result.status = Status::Flaky;
                }
                result.retries = retries;
                return result;
            }
            let kept = dir.with_file_name(format!(
                "{}.try-{}",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                retries.len() + 1
            ));
            let _ = std::fs::remove_dir_all(&kept);
            let console_log = match std::fs::rename(&dir, &kept) {
                Ok(()) => kept.join("console.log"),
                Err(_) => result.console_log.clone(),
            };
            retries.push(Attempt {
                status: result.status,
                started_at: result.started_at,
                duration: result.duration,
                reasons: result.reasons,
                console_log,
            });
        }
    }

    /// `RESULTS/TEST/KERNEL`; a kernel given as a path is filed under its last component.
    fn dir(&self) -> PathBuf {
        let kernel_label = &self.planned.kernel;
        let kernel_dir = Path::new(kernel_label)
            .file_name()
            .map_or(kernel_label.clone(), |n| n.to_string_lossy().into_owned());
        self.results_dir
            .join(file_name(&self.test.name))
            .join(file_name(&kernel_dir))
    }

    fn attempt(&self, dir: &Path) -> CaseResult {
        let mut result = CaseResult::new(self.planned, &self.run.suite, self.run.shard, dir);
        let mut started = Instant::now();
        if let Err(error) = self.run_in(dir, &mut result) {
            result.status = Status::Error;
            result.reasons.push(format!("{error:#}"));
        }
        // A case readied ahead counts from its turn, when its command could start.
        if let Some(turn) = self.turn.opened_at().filter(|at| *at > started) {
            started = turn;
            result.started_at = time_of(turn);
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
        let kernel = Mutex::new(None);
        let events = |event: LaunchEvent| {
            if let LaunchEvent::Kernel {
                image,
                release,
                config,
                arch,
                ..
            } = event
            {
                let info = self.kernels.get(&image, release, config, arch);
                *kernel.lock().expect("kernel lock") = Some(info);
            }
        };
        let stderr = || Box::new(std::io::stderr()) as Box<dyn Write + Send>;
        let echo = self
            .verbose
            .then_some(&stderr as &dyn Fn() -> Box<dyn Write + Send>);
        let request = self.request(timeout);
        // What the test writes to its writable directories is what its report links.
        result.artifacts = request
            .rwdirs
            .iter()
            .map(|d| self.cwd.join(&d.host))
            .collect();
        let launched =
            launch_captured_echoing(request, &result.console_log, echo, Some(self.turn), &events);
        result.kernel_info = kernel.into_inner().expect("kernel lock");
        let captured = launched?;
        std::fs::write(&result.stdout_path, &captured.stdout)?;
        std::fs::write(&result.stderr_path, &captured.stderr)?;
        result.stdout_tail = tail(&captured.stdout, OUTPUT_TAIL_BYTES);
        result.stderr_tail = tail(&captured.stderr, OUTPUT_TAIL_BYTES);
        result.console_tail = tail(captured.console.as_bytes(), OUTPUT_TAIL_BYTES);
        let stdout = String::from_utf8_lossy(&captured.stdout);
        let finished = Finished {
            outcome: &captured.outcome,
            console: &captured.console,
            stdout: &stdout,
            timeout,
            debug_info: captured.debug_info.as_deref(),
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
        request.rwdirs = test.rwdirs.clone();
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
    fn names_become_single_path_components() {
        assert_eq!(file_name("probe/enotsup 1"), "probe_enotsup_1");
        assert_eq!(file_name("6.1.0-56-cloud-amd64"), "6.1.0-56-cloud-amd64");
    }

    #[test]
    fn a_kernel_built_in_a_git_tree_is_reported_with_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("linux");
        std::fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
        for file in ["Kconfig", "Makefile", "arch/x86/boot/bzImage"] {
            std::fs::write(tree.join(file), "x").unwrap();
        }
        let image = tree.join("arch/x86/boot/bzImage");
        assert_eq!(tree_commit(&image), (None, None), "not a git tree yet");
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .arg("-C")
                .arg(&tree)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
                .args(args)
                .output()
                .expect("git runs");
            assert!(status.status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "Kconfig", "Makefile"]);
        git(&["commit", "-q", "-m", "v6.19"]);
        git(&["tag", "v6.19"]);
        let (commit, describe) = tree_commit(&image);
        let commit = commit.expect("a commit");
        assert!(commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(describe.as_deref(), Some("v6.19"));
        let cached = dir.path().join("cache/kernels/6.1/boot/vmlinuz-6.1");
        assert_eq!(
            tree_commit(&cached),
            (None, None),
            "a cached kernel has none"
        );
    }
}
