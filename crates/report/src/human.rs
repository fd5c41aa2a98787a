//! The view for people: a line per case as it ends, and a summary at the end.

use crate::result::{CaseResult, RunEnd};
use vmlane_checks::ktap::KtapStatus;
use vmlane_suite::Status;

/// The short label of a status.
pub fn label(status: Status) -> &'static str {
    match status {
        Status::Passed => "PASS",
        Status::Flaky => "FLAKY",
        Status::Failed => "FAIL",
        Status::Hang => "HANG",
        Status::Error => "ERROR",
        Status::Interrupted => "STOP",
    }
}

/// `PASS name [kernel] 1.2 s`, and the reasons under a failure.
pub fn line(result: &CaseResult) -> String {
    let mut text = format!(
        "{:<5} {} [{}] {:.1} s",
        label(result.status),
        result.test,
        result.kernel,
        result.duration.as_secs_f64()
    );
    if !result.retries.is_empty() {
        text.push_str(&format!(" (attempt {})", result.retries.len() + 1));
    }
    for reason in &result.reasons {
        for (i, reason_line) in reason.lines().enumerate() {
            text.push_str(if i == 0 { "\n      - " } else { "\n        " });
            text.push_str(reason_line);
        }
    }
    if result.status == Status::Flaky {
        for attempt in &result.retries {
            let why = attempt.reasons.first().map_or("", String::as_str);
            text.push_str(&format!(
                "\n      - earlier {}: {why}",
                label(attempt.status)
            ));
        }
    }
    if !result.subtests.is_empty() {
        let count = |status| {
            result
                .subtests
                .iter()
                .filter(|s| s.status == status)
                .count()
        };
        text.push_str(&format!(
            "\n      ktap: {} ok, {} not ok, {} skipped, {} todo",
            count(KtapStatus::Ok),
            count(KtapStatus::NotOk),
            count(KtapStatus::Skip),
            count(KtapStatus::Todo)
        ));
    }
    if result.status != Status::Passed {
        text.push_str(&format!(
            "\n      console: {}",
            result.console_log.display()
        ));
    }
    text
}

/// Counts by status, what did not run, and where the results are.
pub fn summary(results: &[CaseResult], end: &RunEnd, results_dir: &std::path::Path) -> String {
    let count = |status| results.iter().filter(|r| r.status == status).count();
    let mut text = format!(
        "{} passed, {} failed, {} hung, {} errors",
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Hang),
        count(Status::Error),
    );
    if count(Status::Flaky) > 0 {
        text.push_str(&format!(", {} flaky", count(Status::Flaky)));
    }
    let not_run = end.not_run + count(Status::Interrupted);
    if not_run > 0 {
        text.push_str(&format!(", {not_run} not run"));
    }
    text.push_str(&format!("; results in {}", results_dir.display()));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Attempt, PlannedCase};
    use std::path::Path;
    use std::time::Duration;

    fn result(status: Status, reasons: &[&str]) -> CaseResult {
        let planned = PlannedCase {
            index: 0,
            test: "probe <1>".into(),
            kernel: "6.1".into(),
        };
        let mut r = CaseResult::new(&planned, "s", None, Path::new("/r/probe/6.1"));
        r.status = status;
        r.duration = Duration::from_millis(1500);
        r.reasons = reasons.iter().map(|s| s.to_string()).collect();
        r
    }

    #[test]
    fn a_failure_line_lists_its_reasons_and_the_console() {
        let text = line(&result(
            Status::Failed,
            &["exit status 1, expected 0", "a\nb"],
        ));
        assert!(text.starts_with("FAIL  probe <1> [6.1] 1.5 s"), "{text}");
        assert!(
            text.contains("\n      - exit status 1, expected 0"),
            "{text}"
        );
        assert!(text.contains("\n      - a\n        b"), "{text}");
        assert!(text.contains("console: /r/probe/6.1/console.log"), "{text}");
    }

    #[test]
    fn a_flaky_line_names_the_attempt_and_the_earlier_failure() {
        let mut flaky = result(Status::Flaky, &[]);
        flaky.retries.push(Attempt {
            status: Status::Failed,
            started_at: String::new(),
            duration: Duration::ZERO,
            reasons: vec!["exit status 1, expected 0".into()],
            console_log: "/r/try-1/console.log".into(),
        });
        let text = line(&flaky);
        assert!(
            text.starts_with("FLAKY probe <1> [6.1] 1.5 s (attempt 2)"),
            "{text}"
        );
        assert!(
            text.contains("earlier FAIL: exit status 1, expected 0"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_counts_flaky_and_not_run_cases() {
        let results = [
            result(Status::Passed, &[]),
            result(Status::Flaky, &[]),
            result(Status::Interrupted, &[]),
        ];
        let end = RunEnd {
            finished: 3,
            not_run: 2,
            interrupted: true,
            ended_at: String::new(),
            exit_code: 130,
        };
        let text = summary(&results, &end, Path::new("/r"));
        assert_eq!(
            text,
            "1 passed, 0 failed, 0 hung, 0 errors, 1 flaky, 3 not run; results in /r"
        );
    }
}
