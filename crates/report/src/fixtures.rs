//! Results for the writers' tests.

use crate::{Attempt, CaseResult, KernelInfo, PlannedCase, Report, RunEnd, RunInfo};
use std::path::Path;
use std::time::Duration;
use vmlane_checks::ktap::{KtapResult, KtapStatus};
use vmlane_suite::Status;

pub fn planned(index: usize, test: &str) -> PlannedCase {
    PlannedCase {
        index,
        test: test.into(),
        kernel: "6.1.0-57-cloud-amd64".into(),
    }
}

pub fn result(index: usize, test: &str, status: Status, reasons: &[&str]) -> CaseResult {
    let dir = Path::new("/results").join(test);
    let mut r = CaseResult::new(&planned(index, test), "smoke", None, &dir);
    r.status = status;
    r.started_at = "2026-12-05T06:00:00.000+00:00".into();
    r.duration = Duration::from_millis(1500);
    r.reasons = reasons.iter().map(|s| s.to_string()).collect();
    r.stdout_tail = "hello\n".into();
    r.kernel_info = Some(KernelInfo {
        image: "/cache/vmlinuz-6.1.0-57-cloud-amd64".into(),
        release: Some("6.1.0-57-cloud-amd64".into()),
        config: Some("/cache/config-6.1.0-57-cloud-amd64".into()),
        git_commit: None,
        git_describe: None,
        architecture: "x86_64".into(),
    });
    r
}

pub fn subtest(name: &str, status: KtapStatus, reason: &str) -> KtapResult {
    KtapResult {
        name: name.into(),
        status,
        reason: reason.into(),
        ..KtapResult::default()
    }
}

/// Five planned cases: passed, flaky, failed with a splat and KTAP subtests, errored, and one
/// not run; the run was interrupted.
pub fn report() -> Report {
    let run = RunInfo {
        suite: "smoke".into(),
        shard: None,
        planned: ["boot", "retry", "ktap & <x>", "no-kernel", "later"]
            .iter()
            .enumerate()
            .map(|(i, t)| planned(i, t))
            .collect(),
        matrix_size: 5,
        started_at: "2026-12-05T06:00:00.000+00:00".into(),
        vmlane_version: "0.1.0".into(),
    };
    let mut report = Report::new(run);
    report.add(result(0, "boot", Status::Passed, &[]));
    let mut flaky = result(1, "retry", Status::Flaky, &[]);
    flaky.retries.push(Attempt {
        status: Status::Failed,
        started_at: "2026-12-05T06:00:01.000+00:00".into(),
        duration: Duration::from_millis(900),
        reasons: vec!["exit status 1, expected 0".into()],
        console_log: "/results/retry/try-1/console.log".into(),
    });
    report.add(flaky);
    let mut ktap = result(
        2,
        "ktap & <x>",
        Status::Failed,
        &["ktap: not ok list.add", "the kernel reported a splat"],
    );
    ktap.splats = vec!["WARNING: CPU: 0 PID: 1 at lib/list.c:42 list_add+0x1a/0x40\nCall Trace:\n list_add+0x1a/0x40".into()];
    ktap.subtests = vec![
        subtest("list.init", KtapStatus::Ok, ""),
        subtest("list.add", KtapStatus::NotOk, ""),
        subtest("list.del", KtapStatus::Skip, "not on this arch"),
        subtest("list", KtapStatus::NotOk, ""),
    ];
    ktap.console_tail = "[    1.0] WARNING: CPU: 0\u{1b}[0m\n".into();
    report.add(ktap);
    let mut error = result(3, "no-kernel", Status::Error, &["no kernel named 9.9"]);
    error.kernel_info = None;
    report.add(error);
    report.end = Some(RunEnd {
        finished: 4,
        not_run: 1,
        interrupted: true,
        ended_at: "2026-12-05T06:00:09.000+00:00".into(),
        exit_code: 130,
    });
    report
}
