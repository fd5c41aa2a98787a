//! `vmlane run`: flags become a launch, its outcome becomes vmlane's exit code, and the
//! console log is kept when something went wrong.

use crate::args::RunArgs;
use crate::vm::{launch_here, settle_log_after_error, Events};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use vmlane::Request;
use vmlane_backend::{ConsoleLog, StopSignals};
use vmlane_checks::splat::SplatKind;
use vmlane_spec::{GuestStatus, Outcome};

/// Runs the command and returns the exit code vmlane should exit with.
pub fn run(args: RunArgs) -> Result<i32> {
    let signals = StopSignals::register().context("failed to catch SIGINT and SIGTERM")?;
    let events = Events::new(args.vm.verbose);
    let request = request(&args)?;
    let mut console = args.vm.console_log()?;
    let finished = match launch_here(request, &mut console, &signals, &events) {
        Ok(finished) => finished,
        Err(error) => {
            settle_log_after_error(&console, args.vm.log.is_some());
            return Err(error.into());
        }
    };
    for (name, at) in &finished.timings.host {
        events.say(&format!("{name} at {} ms", at.as_millis()));
    }
    for (name, at) in &finished.timings.guest {
        events.say(&format!(
            "guest {name} at {} ms after its kernel started",
            at.as_millis()
        ));
    }
    if let Some(kib) = peak_memory_kib() {
        events.say(&format!("peak memory {kib} KiB"));
    }
    let outcome = finished.outcome;
    report(
        &outcome,
        &mut console,
        finished.debug_info.as_deref(),
        args.vm.log.is_some(),
        args.vm.verbose,
    );
    Ok(outcome.exit_code())
}

/// The request: the VM's options, the guest's, and the command.
fn request(args: &RunArgs) -> Result<Request> {
    let mut request = args.vm.request(args.command.clone())?;
    args.guest.apply(&mut request);
    Ok(request)
}

pub(crate) fn default_log_path(cache: &Path) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = cache.join("logs");
    prune_logs(&dir, KEPT_LOGS);
    dir.join(format!("{stamp}-{}.console.log", std::process::id()))
}

/// Console logs of failed runs are kept, but only the newest few hundred.
const KEPT_LOGS: usize = 200;

fn prune_logs(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    if logs.len() <= keep {
        return;
    }
    // Names start with a millisecond timestamp of equal width, so they sort by age.
    logs.sort();
    for old in &logs[..logs.len() - keep] {
        let _ = std::fs::remove_file(old);
    }
}

/// How much of a panic report is quoted on stderr; the log has all of it.
const PANIC_LINES_SHOWN: usize = 30;

/// Tells the user what went wrong, if anything, and decides whether the console log stays.
/// With the kernel's `debug_info`, a panic's backtrace is shown with source lines.
pub(crate) fn report(
    outcome: &Outcome,
    console: &mut ConsoleLog,
    debug_info: Option<&Path>,
    log_requested: bool,
    verbose: bool,
) {
    // A kernel WARNING or BUG during a run that otherwise succeeded is what a kernel developer
    // most needs to hear about; such a log is kept.
    let splats = std::fs::read(console.path())
        .map(|bytes| vmlane_checks::splat::scan(&String::from_utf8_lossy(&bytes)))
        .unwrap_or_default();
    let panicked = matches!(outcome, Outcome::KernelPanic(_));
    for splat in &splats {
        let is_panic = matches!(
            splat.kind,
            SplatKind::Panic | SplatKind::FreeBsdPanic | SplatKind::FatalTrap
        );
        if is_panic && panicked {
            // The panic and its backtrace are the lines that matter; the outcome says the rest.
            let shown = &splat.body[..splat.body.len().min(PANIC_LINES_SHOWN)];
            for line in with_source_lines(shown, debug_info) {
                eprintln!("vmlane: console: {line}");
            }
        } else if splat.kind != SplatKind::Panic {
            eprintln!(
                "vmlane: the guest kernel reported {}: {}",
                splat.kind, splat.first_line
            );
        }
    }
    let clean = matches!(outcome, Outcome::Completed(GuestStatus::Exited(0))) && splats.is_empty();
    if !outcome.completed() {
        eprintln!("vmlane: {outcome}");
        if matches!(
            outcome,
            Outcome::TimedOut | Outcome::VmDied(_) | Outcome::InitFailed { .. }
        ) {
            for line in console
                .tail()
                .iter()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                eprintln!("vmlane: console: {line}");
            }
        }
        eprintln!("vmlane: console log: {}", console.path().display());
    } else if !splats.is_empty() {
        eprintln!("vmlane: console log: {}", console.path().display());
    } else if verbose && (log_requested || !clean) {
        eprintln!(
            "vmlane: {outcome}; console log: {}",
            console.path().display()
        );
    } else if verbose {
        // Named only where it stays: a clean run's log is removed just below.
        eprintln!(
            "vmlane: {outcome}; the console log of a clean run is not kept (--log FILE keeps it)"
        );
    }
    if clean && !log_requested {
        let _ = std::fs::remove_file(console.path());
    }
}

/// `lines` with `file:line` after each backtrace frame, when the kernel's debug info is known;
/// when it cannot be read, the lines as they are, after a note saying why.
fn with_source_lines(lines: &[String], debug_info: Option<&Path>) -> Vec<String> {
    let Some(path) = debug_info else {
        return lines.to_vec();
    };
    match vmlane_symbols::Symbolizer::open(path) {
        Ok(symbolizer) => symbolizer
            .symbolize(&lines.join("\n"))
            .lines()
            .map(str::to_string)
            .collect(),
        Err(error) => {
            eprintln!("vmlane: no source lines: {:#}", anyhow::Error::from(error));
            lines.to_vec()
        }
    }
}

/// The high-water mark of vmlane's own resident memory (QEMU is a separate process).
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_logs() {
        let dir = tempfile::tempdir().unwrap();
        for stamp in 1000..1010 {
            std::fs::write(dir.path().join(format!("{stamp}-1.console.log")), "x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "kept").unwrap();
        prune_logs(dir.path(), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "1007-1.console.log",
                "1008-1.console.log",
                "1009-1.console.log",
                "notes.txt"
            ]
        );
    }
}
