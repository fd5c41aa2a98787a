//! KTAP v1 out, as the kernel's own tools read it: the run is the top-level test plan, each
//! (test, kernel) case a test whose KTAP subtests are nested under it, reasons as `#`
//! diagnostic lines. Cases that never ran are `# SKIP`, so a cut-short run stays valid.

use crate::result::{CaseResult, PlannedCase};
use crate::Report;
use vmlane_checks::ktap::{KtapResult, KtapStatus};
use vmlane_suite::Status;

/// The header: version, where it comes from, and the plan.
pub fn header(report: &Report) -> String {
    let mut text = String::from("KTAP version 1\n");
    text.push_str(&format!("# vmlane suite {}", report.run.suite));
    if let Some(shard) = report.run.shard {
        text.push_str(&format!(", shard {shard}"));
    }
    text.push_str(&format!("\n1..{}\n", report.run.planned.len()));
    text
}

/// The whole report: every planned case in matrix order, then how the run stands.
pub fn ktap(report: &Report) -> String {
    let mut text = header(report);
    for (i, planned) in report.run.planned.iter().enumerate() {
        let number = i + 1;
        match report.results.iter().find(|r| r.index == planned.index) {
            Some(result) => text.push_str(&case(number, result)),
            None => text.push_str(&not_run(number, planned, "not run")),
        }
    }
    text.push_str(&format!("# vmlane: {}\n", report.state()));
    text
}

/// One case as test `number`: its subtests nested, its reasons as diagnostics, its result.
pub fn case(number: usize, result: &CaseResult) -> String {
    let mut text = String::new();
    if !result.subtests.is_empty() {
        text.push_str("    KTAP version 1\n");
        text.push_str(&format!(
            "    # Subtest: {}\n",
            name(&result.test, &result.kernel)
        ));
        text.push_str(&format!("    1..{}\n", result.subtests.len()));
        for (i, subtest) in result.subtests.iter().enumerate() {
            text.push_str(&subtest_lines(i + 1, subtest));
        }
    }
    for reason in &result.reasons {
        for line in reason.lines() {
            text.push_str(&format!("# {line}\n"));
        }
    }
    for attempt in &result.retries {
        let why = attempt.reasons.first().map_or("", String::as_str);
        text.push_str(&format!(
            "# earlier attempt: {} {why}\n",
            crate::human::label(attempt.status)
        ));
    }
    if result.status == Status::Flaky {
        text.push_str("# flaky: passed on a retry\n");
    }
    let case_name = name(&result.test, &result.kernel);
    let line = match result.status {
        Status::Passed | Status::Flaky => format!("ok {number} {case_name}"),
        Status::Failed => format!("not ok {number} {case_name}"),
        Status::Hang => format!("not ok {number} {case_name} # TIMEOUT"),
        Status::Error => format!("not ok {number} {case_name} # ERROR"),
        Status::Interrupted => format!("ok {number} {case_name} # SKIP interrupted"),
    };
    text.push_str(&line);
    text.push('\n');
    text
}

/// A planned case without a result.
pub fn not_run(number: usize, planned: &PlannedCase, why: &str) -> String {
    format!(
        "ok {number} {} # SKIP {why}\n",
        name(&planned.test, &planned.kernel)
    )
}

fn subtest_lines(number: usize, subtest: &KtapResult) -> String {
    let mut text = String::new();
    for line in &subtest.diagnostics {
        text.push_str(&format!("    # {line}\n"));
    }
    let name = clean(&subtest.name);
    let reason = clean(&subtest.reason);
    let line = match subtest.status {
        KtapStatus::Ok => format!("ok {number} {name}"),
        KtapStatus::NotOk => format!("not ok {number} {name}"),
        KtapStatus::Skip => format!("ok {number} {name} # SKIP {reason}"),
        KtapStatus::Todo => format!("not ok {number} {name} # TODO {reason}"),
        // kselftest prints an expected failure as ok: it is no failure of the test.
        KtapStatus::Xfail => format!("ok {number} {name} # XFAIL {reason}"),
    };
    text.push_str("    ");
    text.push_str(line.trim_end());
    text.push('\n');
    text
}

/// `test [kernel]`, with nothing a KTAP reader would take for a directive.
fn name(test: &str, kernel: &str) -> String {
    clean(&format!("{test} [{kernel}]"))
}

/// A `#` starts a directive in a result line, and a line break ends it.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c == '#' || c.is_control() { '_' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use vmlane_checks::ktap::parse_ktap;

    #[test]
    fn the_report_reads_back_with_every_case_and_subtest() {
        let text = ktap(&fixtures::report());
        let parsed = parse_ktap(&text);
        assert!(parsed.problems.is_empty(), "{:?}\n{text}", parsed.problems);
        let statuses: Vec<(&str, KtapStatus)> = parsed
            .results
            .iter()
            .map(|r| (r.name.as_str(), r.status))
            .collect();
        let kernel = "[6.1.0-57-cloud-amd64]";
        assert_eq!(
            statuses,
            [
                (format!("boot {kernel}").as_str(), KtapStatus::Ok),
                (format!("retry {kernel}").as_str(), KtapStatus::Ok),
                (
                    format!("ktap & <x> {kernel}.list.init").as_str(),
                    KtapStatus::Ok
                ),
                (
                    format!("ktap & <x> {kernel}.list.add").as_str(),
                    KtapStatus::NotOk
                ),
                (
                    format!("ktap & <x> {kernel}.list.del").as_str(),
                    KtapStatus::Skip
                ),
                (
                    format!("ktap & <x> {kernel}.list").as_str(),
                    KtapStatus::NotOk
                ),
                (format!("ktap & <x> {kernel}").as_str(), KtapStatus::NotOk),
                (format!("no-kernel {kernel}").as_str(), KtapStatus::NotOk),
                (format!("later {kernel}").as_str(), KtapStatus::Skip),
            ]
        );
        assert!(text.contains("\n# ktap: not ok list.add\n"), "{text}");
        assert!(text.contains("\n# flaky: passed on a retry\n"), "{text}");
        assert!(text.ends_with("# vmlane: the run was interrupted: 4 cases finished, 1 not run\n"));
    }

    #[test]
    fn names_lose_what_a_reader_would_take_for_a_directive() {
        let mut result = fixtures::result(0, "a # SKIP b\nc", Status::Passed, &[]);
        result.kernel = "k".into();
        assert_eq!(case(1, &result), "ok 1 a _ SKIP b_c [k]\n");
    }
}
