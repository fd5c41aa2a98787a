//! JUnit XML as GitLab, GitHub's test reporters and Jenkins show it, written with nextest's
//! writer: one testsuite per vmlane suite, a testcase per (test, kernel) and per KTAP
//! subtest, flaky attempts as `flakyFailure`, cases that never ran as skipped.

use crate::result::{Attempt, CaseResult};
use crate::Report;
use quick_junit::{
    NonSuccessKind, Property, Report as JunitReport, TestCase, TestCaseStatus, TestRerun, TestSuite,
};
use std::time::Duration;
use vmlane_checks::ktap::{KtapResult, KtapStatus};
use vmlane_suite::Status;

/// The report as JUnit XML.
pub fn junit(report: &Report) -> String {
    let mut suite = TestSuite::new(report.run.suite.as_str());
    if let Some(at) = timestamp(&report.run.started_at) {
        suite.set_timestamp(at);
    }
    suite.set_time(report.results.iter().map(|r| r.duration).sum());
    suite.add_property(Property::new("vmlane.run", report.state()));
    if let Some(shard) = report.run.shard {
        suite.add_property(Property::new("vmlane.shard", shard.to_string()));
    }
    for result in &report.results {
        for subtest in &result.subtests {
            suite.add_test_case(subtest_case(result, subtest));
        }
        suite.add_test_case(case(result));
    }
    for planned in report.not_run() {
        let mut status = TestCaseStatus::skipped();
        status.set_message("not run");
        status.set_description(report.state());
        let mut case = TestCase::new(planned.test.as_str(), status);
        case.set_classname(planned.kernel.as_str());
        suite.add_test_case(case);
    }
    let mut junit = JunitReport::new("vmlane");
    junit.add_test_suite(suite);
    junit
        .to_string()
        .expect("serialising to a string cannot fail")
}

fn case(result: &CaseResult) -> TestCase {
    let status = match result.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Flaky => TestCaseStatus::Success {
            flaky_runs: result.retries.iter().map(rerun).collect(),
        },
        Status::Failed | Status::Hang | Status::Error => {
            let kind = if result.status == Status::Error {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_type(crate::human::label(result.status));
            status.set_message(result.reasons.first().map_or("", String::as_str));
            status.set_description(failure_text(result));
            status.add_reruns(result.retries.iter().map(rerun));
            status
        }
        Status::Interrupted => {
            let mut status = TestCaseStatus::skipped();
            status.set_message("interrupted");
            status
        }
    };
    let mut case = TestCase::new(result.test.as_str(), status);
    case.set_classname(result.kernel.as_str());
    case.set_time(result.duration);
    if let Some(at) = timestamp(&result.started_at) {
        case.set_timestamp(at);
    }
    case.set_system_out(result.stdout_tail.as_str());
    let mut err = result.stderr_tail.clone();
    if !result.passed() && !result.console_tail.is_empty() {
        err.push_str("\n--- the end of the guest console ---\n");
        err.push_str(&result.console_tail);
    }
    case.set_system_err(err);
    case.add_property(Property::new(
        "console_log",
        result.console_log.display().to_string(),
    ));
    if let Some(exit) = result.exit {
        case.add_property(Property::new("exit", exit.to_string()));
    }
    for artifacts in &result.artifacts {
        case.add_property(Property::new("artifacts", artifacts.display().to_string()));
    }
    case
}

/// Every reason, then each splat's whole report.
fn failure_text(result: &CaseResult) -> String {
    let mut text = result.reasons.join("\n");
    for splat in &result.splats {
        text.push_str("\n\n");
        text.push_str(splat);
    }
    text
}

fn rerun(attempt: &Attempt) -> TestRerun {
    let kind = if attempt.status == Status::Error {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut rerun = TestRerun::new(kind);
    rerun.set_type(crate::human::label(attempt.status));
    rerun.set_message(attempt.reasons.first().map_or("", String::as_str));
    rerun.set_description(attempt.reasons.join("\n"));
    rerun.set_time(attempt.duration);
    if let Some(at) = timestamp(&attempt.started_at) {
        rerun.set_timestamp(at);
    }
    rerun
}

/// A KTAP subtest as a case of its own, named below its vmlane test.
fn subtest_case(result: &CaseResult, subtest: &KtapResult) -> TestCase {
    let status = match subtest.status {
        KtapStatus::NotOk => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("not ok {}", subtest.name));
            status.set_description(subtest_text(subtest));
            status
        }
        KtapStatus::Skip => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(subtest.reason.as_str());
            status
        }
        _ => TestCaseStatus::success(),
    };
    let mut case = TestCase::new(format!("{}/{}", result.test, subtest.name), status);
    case.set_classname(result.kernel.as_str());
    case.set_time(Duration::ZERO);
    case
}

/// Why a subtest failed: its directive's text and its diagnostics.
fn subtest_text(subtest: &KtapResult) -> String {
    let mut lines = Vec::new();
    if !subtest.reason.is_empty() {
        lines.push(subtest.reason.clone());
    }
    lines.extend(subtest.diagnostics.iter().cloned());
    lines.join("\n")
}

fn timestamp(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn parsed() -> (String, JunitReport) {
        let text = junit(&fixtures::report());
        let parsed =
            JunitReport::deserialize_from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        (text, parsed)
    }

    #[test]
    fn the_counts_cover_subtests_flaky_errors_and_cases_that_never_ran() {
        let (text, report) = parsed();
        let suite = &report.test_suites[0];
        assert_eq!(suite.name.as_str(), "smoke");
        // 5 planned cases and 4 subtests.
        assert_eq!(suite.tests, 9, "{text}");
        assert_eq!(
            suite.failures, 3,
            "the case and its two not-ok subtests: {text}"
        );
        assert_eq!(suite.errors, 1, "{text}");
        assert_eq!(
            suite.skipped, 2,
            "a skipped subtest and the case not run: {text}"
        );
        assert!(text.contains("<flakyFailure"), "{text}");
        assert!(text.contains("the run was interrupted: 4 cases finished, 1 not run"));
    }

    #[test]
    fn a_failure_carries_its_reasons_splat_output_and_console() {
        let (_, report) = parsed();
        let suite = &report.test_suites[0];
        let failed = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "ktap & <x>")
            .unwrap();
        let TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &failed.status
        else {
            panic!("{failed:?}")
        };
        assert_eq!(message.as_ref().unwrap().as_str(), "ktap: not ok list.add");
        let description = description.as_ref().unwrap().as_str();
        assert!(
            description.contains("Call Trace:\n list_add+0x1a/0x40"),
            "{description}"
        );
        assert_eq!(
            failed.classname.as_ref().unwrap().as_str(),
            "6.1.0-57-cloud-amd64"
        );
        assert_eq!(failed.system_out.as_ref().unwrap().as_str().trim(), "hello");
        let err = failed.system_err.as_ref().unwrap().as_str();
        assert!(err.contains("[    1.0] WARNING: CPU: 0"), "{err}");
        assert!(!err.contains('\u{1b}'), "escapes stripped: {err:?}");
        assert!(failed.timestamp.is_some() && failed.time == Some(Duration::from_millis(1500)));
        let subtest = suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == "ktap & <x>/list.del")
            .unwrap();
        assert!(matches!(subtest.status, TestCaseStatus::Skipped { .. }));
    }
}
