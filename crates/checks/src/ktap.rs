//! KTAP (and TAP 13), the result format of KUnit and kselftest: every subtest, nested names
//! joined with `.`, and whether the stream was complete. A stream that stops early (the
//! kernel crashed, the runner was killed) is reported as truncated, never as a pass.

use serde::Serialize;

/// How one (sub)test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KtapStatus {
    /// `ok`.
    Ok,
    /// `not ok`.
    NotOk,
    /// `ok … # SKIP`.
    Skip,
    /// `… # TODO`: a known failure, not counted against the test.
    Todo,
}

/// One result line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KtapResult {
    /// The names from the outermost test down, joined with `.`.
    pub name: String,
    /// Its status.
    pub status: KtapStatus,
    /// The text after `# SKIP` / `# TODO`, if any.
    pub reason: String,
}

/// A whole stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KtapReport {
    /// Every result, subtests before the test that holds them, as the stream lists them.
    pub results: Vec<KtapResult>,
    /// Why the stream is incomplete or broken: no version line, fewer results than a plan
    /// announced, `Bail out!`.
    pub problems: Vec<String>,
}

impl KtapReport {
    /// Nothing failed (TODO does not count) and the stream was complete.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && !self.results.iter().any(|r| r.status == KtapStatus::NotOk)
    }
}

/// One nesting level while parsing.
#[derive(Debug, Default)]
struct Level {
    indent: usize,
    planned: Option<usize>,
    seen: usize,
    /// Results of this level's subtests, waiting for this level's next result line to name
    /// their parent.
    children: Vec<KtapResult>,
}

/// Parses KTAP from `text`; lines may carry a printk timestamp (KUnit writes to the console).
pub fn parse_ktap(text: &str) -> KtapReport {
    let mut report = KtapReport::default();
    let mut levels: Vec<Level> = Vec::new();
    let mut started = false;
    for raw in text.lines() {
        let line = crate::strip_timestamp(raw.trim_end_matches('\r'));
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.starts_with("KTAP version") || body.starts_with("TAP version") {
            if !started {
                started = true;
                levels.push(Level {
                    indent,
                    ..Level::default()
                });
            } else if levels.last().is_none_or(|l| indent > l.indent) {
                levels.push(Level {
                    indent,
                    ..Level::default()
                });
            }
            continue;
        }
        if !started {
            continue;
        }
        if body.starts_with("Bail out!") {
            report.problems.push(body.to_string());
            continue;
        }
        if let Some(count) = plan(body) {
            // A plan deeper than the current level opens a subtest without a version line
            // (TAP 13 style).
            if levels
                .last()
                .is_some_and(|l| indent > l.indent && l.planned.is_some())
            {
                levels.push(Level {
                    indent,
                    ..Level::default()
                });
            }
            if let Some(level) = levels.last_mut() {
                level.planned = Some(count);
            }
            continue;
        }
        let Some((status, name, reason)) = result_line(body) else {
            continue;
        };
        // Close every level deeper than this line: their results belong to this one.
        let mut children = Vec::new();
        while levels.len() > 1 && levels.last().is_some_and(|l| l.indent > indent) {
            let closed = levels.pop().expect("checked non-empty");
            check_plan(&closed, &name, &mut report.problems);
            children = closed.children;
        }
        let Some(level) = levels.last_mut() else {
            continue;
        };
        level.seen += 1;
        for mut child in children {
            child.name = format!("{name}.{}", child.name);
            level.children.push(child);
        }
        level.children.push(KtapResult {
            name,
            status,
            reason,
        });
    }
    if !started {
        report.problems.push("no KTAP or TAP version line".into());
        return report;
    }
    // Whatever is still open at the end was cut off.
    while let Some(level) = levels.pop() {
        let depth = levels.len();
        check_plan(
            &level,
            if depth == 0 {
                "the stream"
            } else {
                "an unfinished subtest"
            },
            &mut report.problems,
        );
        match levels.last_mut() {
            Some(parent) => {
                report
                    .problems
                    .push("a subtest has no result line: the stream stopped inside it".into());
                parent.children.extend(level.children);
            }
            None => report.results.extend(level.children),
        }
    }
    report
}

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

/// `1..N`.
fn plan(body: &str) -> Option<usize> {
    let rest = body.strip_prefix("1..")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `ok 3 name # SKIP reason`, `not ok 1 - name`.
fn result_line(body: &str) -> Option<(KtapStatus, String, String)> {
    let (ok, rest) = if let Some(rest) = body.strip_prefix("not ok ") {
        (false, rest)
    } else {
        (true, body.strip_prefix("ok ")?)
    };
    let number_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if number_end == 0 {
        return None;
    }
    let number = &rest[..number_end];
    let rest = rest[number_end..].trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.split_once('#') {
        Some((name, directive)) => (name.trim(), directive.trim()),
        None => (rest.trim(), ""),
    };
    let upper = directive.to_ascii_uppercase();
    let (status, reason) = if upper.starts_with("SKIP") {
        (KtapStatus::Skip, directive[4..].trim())
    } else if upper.starts_with("TODO") {
        (KtapStatus::Todo, directive[4..].trim())
    } else if ok {
        (KtapStatus::Ok, "")
    } else {
        (KtapStatus::NotOk, "")
    };
    let name = if name.is_empty() {
        format!("test_{number}")
    } else {
        name.to_string()
    };
    Some((status, name, reason.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUNIT: &str = "\
[    1.100000] KTAP version 1
[    1.100001] 1..2
[    1.100002]     KTAP version 1
[    1.100003]     # Subtest: list-kunit-test
[    1.100004]     1..3
[    1.100005]     ok 1 list_test_list_init
[    1.100006]     not ok 2 list_test_list_add
[    1.100007]     ok 3 list_test_list_del # SKIP not on this arch
[    1.100008] not ok 1 list-kunit-test
[    1.100009] ok 2 time_test_cases # TODO flaky under emulation
";

    fn statuses(report: &KtapReport) -> Vec<(&str, KtapStatus)> {
        report
            .results
            .iter()
            .map(|r| (r.name.as_str(), r.status))
            .collect()
    }

    #[test]
    fn nested_kunit_results_get_dotted_names_and_directives() {
        let report = parse_ktap(KUNIT);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            statuses(&report),
            [
                ("list-kunit-test.list_test_list_init", KtapStatus::Ok),
                ("list-kunit-test.list_test_list_add", KtapStatus::NotOk),
                ("list-kunit-test.list_test_list_del", KtapStatus::Skip),
                ("list-kunit-test", KtapStatus::NotOk),
                ("time_test_cases", KtapStatus::Todo),
            ]
        );
        assert_eq!(report.results[2].reason, "not on this arch");
        assert!(!report.passed());
    }

    #[test]
    fn a_complete_passing_kselftest_stream_passes() {
        let text = "TAP version 13\n1..2\n# selftests: timers: posix_timers\nok 1 selftests: timers: posix_timers\nok 2 selftests: timers: nanosleep # SKIP needs root\n";
        let report = parse_ktap(text);
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.results.len(), 2);
        assert_eq!(report.results[1].status, KtapStatus::Skip);
    }

    #[test]
    fn a_truncated_stream_is_a_failure_even_if_all_seen_passed() {
        let text = "KTAP version 1\n1..3\n    KTAP version 1\n    1..2\n    ok 1 a\n";
        let report = parse_ktap(text);
        assert!(!report.passed());
        assert!(
            report.problems.iter().any(|p| p.contains("1 of 2 planned")),
            "{:?}",
            report.problems
        );
        assert!(
            report.problems.iter().any(|p| p.contains("stopped inside")),
            "{:?}",
            report.problems
        );
        let top = "KTAP version 1\n1..3\nok 1 a\nok 2 b\n";
        let report = parse_ktap(top);
        assert!(
            report.problems.iter().any(|p| p.contains("2 of 3 planned")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn no_version_line_and_bail_out_are_problems() {
        assert!(!parse_ktap("ok 1 a\n").passed());
        let report = parse_ktap("KTAP version 1\n1..2\nok 1 a\nBail out! the kernel oopsed\n");
        assert!(report.problems.iter().any(|p| p.starts_with("Bail out!")));
    }

    #[test]
    fn other_console_lines_between_results_are_ignored() {
        let text = "[ 0.1] Linux version 6.1\nKTAP version 1\n1..1\n[ 0.2] random: crng init done\nok 1 only\n";
        assert!(parse_ktap(text).passed());
    }
}
