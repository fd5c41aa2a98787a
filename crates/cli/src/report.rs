//! Results of `vmlane test` for people (a line per run, a summary) and for machines (JSON
//! lines, JUnit XML).

use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmlane_checks::ktap::{KtapResult, KtapStatus};
use vmlane_suite::Status;

/// One (test, kernel) result, with the paths of everything it left.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The test's name.
    pub test: String,
    /// The kernel as given, or `default`.
    pub kernel: String,
    /// How it ended.
    pub status: Status,
    /// Wall time of the run and its checks.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// The command's exit status, when it finished.
    pub exit: Option<i32>,
    /// Why it did not pass, one entry per failed check.
    pub reasons: Vec<String>,
    /// Unexpected kernel reports, with their backtraces.
    pub splats: Vec<String>,
    /// KTAP subtests, when the test declared KTAP output.
    pub subtests: Vec<KtapResult>,
    /// The guest console.
    pub console_log: PathBuf,
    /// The command's stdout.
    pub stdout_path: PathBuf,
    /// The command's stderr.
    pub stderr_path: PathBuf,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

impl CaseResult {
    /// A result not yet run, writing into `dir`.
    pub fn new(test: &str, kernel: &str, dir: &Path) -> CaseResult {
        CaseResult {
            test: test.into(),
            kernel: kernel.into(),
            status: Status::Error,
            duration: Duration::ZERO,
            exit: None,
            reasons: Vec::new(),
            splats: Vec::new(),
            subtests: Vec::new(),
            console_log: dir.join("console.log"),
            stdout_path: dir.join("stdout"),
            stderr_path: dir.join("stderr"),
        }
    }
}

/// `PASS name [kernel] 1.2 s`, and the reasons under a failure.
pub fn line(result: &CaseResult) -> String {
    let label = match result.status {
        Status::Passed => "PASS",
        Status::Failed => "FAIL",
        Status::Hang => "HANG",
        Status::Error => "ERROR",
        Status::Interrupted => "STOP",
    };
    let mut text = format!(
        "{label:<5} {} [{}] {:.1} s",
        result.test,
        result.kernel,
        result.duration.as_secs_f64()
    );
    for reason in &result.reasons {
        for (i, reason_line) in reason.lines().enumerate() {
            text.push_str(if i == 0 { "\n      - " } else { "\n        " });
            text.push_str(reason_line);
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

/// Counts by status and where the results are.
pub fn summary(
    out: &mut dyn Write,
    results: &[CaseResult],
    planned: usize,
    results_dir: &Path,
) -> io::Result<()> {
    let count = |status| results.iter().filter(|r| r.status == status).count();
    writeln!(
        out,
        "{} passed, {} failed, {} hung, {} errors{}; results in {}",
        count(Status::Passed),
        count(Status::Failed),
        count(Status::Hang),
        count(Status::Error),
        match planned - results.len() + count(Status::Interrupted) {
            0 => String::new(),
            n => format!(", {n} not run"),
        },
        results_dir.display()
    )
}

/// One JSON object per line.
pub fn json(out: &mut dyn Write, results: &[CaseResult]) -> io::Result<()> {
    for result in results {
        serde_json::to_writer(&mut *out, result)?;
        writeln!(out)?;
    }
    Ok(())
}

/// JUnit XML: one testsuite, one testcase per (test, kernel), `classname` the kernel.
pub fn junit(out: &mut dyn Write, results: &[CaseResult]) -> io::Result<()> {
    let failed = results
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Hang))
        .count();
    let errors = results
        .iter()
        .filter(|r| matches!(r.status, Status::Error | Status::Interrupted))
        .count();
    let total: f64 = results.iter().map(|r| r.duration.as_secs_f64()).sum();
    let subtests: usize = results.iter().map(|r| r.subtests.len()).sum();
    let failed_subtests = results
        .iter()
        .flat_map(|r| &r.subtests)
        .filter(|s| s.status == KtapStatus::NotOk)
        .count();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuite name="vmlane" tests="{}" failures="{}" errors="{errors}" time="{total:.3}">"#,
        results.len() + subtests,
        failed + failed_subtests
    )?;
    for result in results {
        // Each KTAP subtest is a test case of its own, named below its vmlane test.
        for subtest in &result.subtests {
            write!(
                out,
                r#"  <testcase name="{}/{}" classname="{}" time="0.000""#,
                xml(&result.test),
                xml(&subtest.name),
                xml(&result.kernel)
            )?;
            match subtest.status {
                KtapStatus::Ok | KtapStatus::Todo => writeln!(out, "/>")?,
                KtapStatus::Skip => writeln!(
                    out,
                    ">\n    <skipped message=\"{}\"/>\n  </testcase>",
                    xml(&subtest.reason)
                )?,
                KtapStatus::NotOk => writeln!(
                    out,
                    ">\n    <failure message=\"not ok\">not ok {}</failure>\n  </testcase>",
                    xml(&subtest.name)
                )?,
            }
        }
        write!(
            out,
            r#"  <testcase name="{}" classname="{}" time="{:.3}""#,
            xml(&result.test),
            xml(&result.kernel),
            result.duration.as_secs_f64()
        )?;
        let message = result.reasons.join("\n");
        match result.status {
            Status::Passed => writeln!(out, "/>")?,
            Status::Failed | Status::Hang => writeln!(
                out,
                ">\n    <failure message=\"{}\">{}</failure>\n    <system-out>console log: {}</system-out>\n  </testcase>",
                xml(result.reasons.first().map_or("", String::as_str)),
                xml(&message),
                xml(&result.console_log.display().to_string())
            )?,
            Status::Error | Status::Interrupted => writeln!(
                out,
                ">\n    <error message=\"{}\">{}</error>\n  </testcase>",
                xml(result.reasons.first().map_or("", String::as_str)),
                xml(&message)
            )?,
        }
    }
    writeln!(out, "</testsuite>")
}

/// Escapes text for XML attributes and content; control characters a console may carry are
/// not allowed in XML 1.0 at all, so they become U+FFFD.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status, reasons: &[&str]) -> CaseResult {
        let mut r = CaseResult::new("probe <1>", "6.1", Path::new("/r/probe/6.1"));
        r.status = status;
        r.duration = Duration::from_millis(1500);
        r.reasons = reasons.iter().map(|s| s.to_string()).collect();
        r
    }

    #[test]
    fn json_has_one_object_per_result_with_status_and_paths() {
        let mut out = Vec::new();
        json(
            &mut out,
            &[
                result(Status::Passed, &[]),
                result(Status::Hang, &["no result"]),
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let objects: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["status"], "passed");
        assert_eq!(objects[1]["status"], "hang");
        assert_eq!(objects[1]["duration_ms"], 1500);
        assert_eq!(objects[1]["console_log"], "/r/probe/6.1/console.log");
        assert_eq!(objects[1]["reasons"][0], "no result");
    }

    #[test]
    fn junit_counts_failures_and_escapes_names_and_console_bytes() {
        let mut out = Vec::new();
        junit(
            &mut out,
            &[
                result(Status::Passed, &[]),
                result(
                    Status::Failed,
                    &["the kernel reported WARNING: at <x> & \u{1b}[0m"],
                ),
                result(Status::Error, &["no kernel named 9.9"]),
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#"tests="3" failures="1" errors="1""#),
            "{text}"
        );
        assert!(text.contains(r#"name="probe &lt;1&gt;""#), "{text}");
        assert!(text.contains("at &lt;x&gt; &amp; \u{fffd}[0m"), "{text}");
        assert!(
            text.contains("<error message=\"no kernel named 9.9\">"),
            "{text}"
        );
        assert_eq!(text.matches("<testcase").count(), 3);
    }

    /// Parses the report as XML and returns (element, attributes) in document order.
    fn xml_elements(text: &str) -> Vec<(String, Vec<(String, String)>)> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(text);
        let mut elements = Vec::new();
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(e) | Event::Empty(e) => {
                    let attributes = e
                        .attributes()
                        .map(|a| {
                            let a = a.expect("a well-formed attribute");
                            let value = a.unescape_value().expect("escaped correctly");
                            (
                                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                                value.into_owned(),
                            )
                        })
                        .collect();
                    elements.push((
                        String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                        attributes,
                    ));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        elements
    }

    #[test]
    fn junit_is_well_formed_with_the_attributes_ci_systems_read() {
        let mut ktap = result(Status::Failed, &["ktap: not ok s.b"]);
        ktap.subtests = vec![
            KtapResult {
                name: "s.a".into(),
                status: KtapStatus::Ok,
                reason: String::new(),
            },
            KtapResult {
                name: "s.b".into(),
                status: KtapStatus::NotOk,
                reason: String::new(),
            },
            KtapResult {
                name: "s.c".into(),
                status: KtapStatus::Skip,
                reason: "no <root>".into(),
            },
        ];
        let mut out = Vec::new();
        junit(
            &mut out,
            &[
                result(Status::Passed, &[]),
                ktap,
                result(Status::Hang, &["no result\n\u{7}"]),
            ],
        )
        .unwrap();
        let elements = xml_elements(&String::from_utf8(out).unwrap());
        let names: Vec<&str> = elements.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "testsuite");
        assert_eq!(names.iter().filter(|n| **n == "testcase").count(), 6);
        assert_eq!(names.iter().filter(|n| **n == "failure").count(), 3);
        assert_eq!(names.iter().filter(|n| **n == "skipped").count(), 1);
        let suite = &elements[0].1;
        let attr = |key: &str| {
            suite
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(attr("tests"), Some("6"));
        assert_eq!(attr("failures"), Some("3"));
        for (name, attributes) in elements.iter().filter(|(n, _)| n == "testcase") {
            for key in ["name", "classname", "time"] {
                assert!(
                    attributes.iter().any(|(k, _)| k == key),
                    "{name} lacks {key}"
                );
            }
        }
        let skipped = elements.iter().find(|(n, _)| n == "skipped").unwrap();
        assert_eq!(skipped.1[0].1, "no <root>");
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
}
