//! KCIDB I/O JSON (schema v5.3), what KernelCI's database takes: a checkout and a build per
//! kernel, and a test per case and per KTAP subtest, with `path` from the suite and test
//! names. A flaky pass is `PASS` marked flaky in `misc`; a case that never ran is `MISS`.

use crate::result::{CaseResult, KernelInfo, PlannedCase};
use crate::Report;
use serde_json::{json, Map, Value};
use vmlane_checks::ktap::{KtapResult, KtapStatus};
use vmlane_suite::Status;

/// The schema version written.
pub const VERSION: (u32, u32) = (5, 3);

/// KCIDB caps log excerpts at this many characters.
const LOG_EXCERPT_CHARS: usize = 16384;

/// The report as a KCIDB I/O object; `origin` names the submitting CI system
/// (`[a-z0-9_]+`, checked by the caller with [`valid_origin`]).
pub fn kcidb(report: &Report, origin: &str) -> Value {
    let run_id = format!("{origin}:{}", segment(&report.run.started_at));
    let mut checkouts = Map::new();
    let mut builds = Map::new();
    let mut tests = Vec::new();
    for result in &report.results {
        let build_id = match &result.kernel_info {
            Some(info) => {
                let (checkout_id, checkout) = checkout(origin, &result.kernel, info);
                let (build_id, build) = build(origin, &checkout_id, &result.kernel, info);
                checkouts.entry(checkout_id).or_insert(checkout);
                builds.entry(build_id.clone()).or_insert(build);
                build_id
            }
            None => {
                let (build_id, build) = unknown_build(origin, &result.kernel);
                checkouts.entry(format!("{origin}:unknown")).or_insert(
                    json!({ "id": format!("{origin}:unknown"), "origin": origin, "valid": false }),
                );
                builds.entry(build_id.clone()).or_insert(build);
                build_id
            }
        };
        let case_id = format!("{run_id}:{}", result.index);
        tests.push(case_test(
            origin,
            &report.run.suite,
            &case_id,
            &build_id,
            result,
        ));
        for (i, subtest) in result.subtests.iter().enumerate() {
            let id = format!("{case_id}.{}", i + 1);
            tests.push(subtest_test(
                origin,
                &report.run.suite,
                &id,
                &build_id,
                result,
                subtest,
            ));
        }
    }
    for planned in report.not_run() {
        let build_id = report
            .results
            .iter()
            .find(|r| r.kernel == planned.kernel && r.kernel_info.is_some())
            .and_then(|r| {
                let info = r.kernel_info.as_ref()?;
                let (checkout_id, _) = checkout(origin, &r.kernel, info);
                Some(build(origin, &checkout_id, &r.kernel, info).0)
            });
        let build_id = build_id.unwrap_or_else(|| {
            let (id, build) = unknown_build(origin, &planned.kernel);
            checkouts.entry(format!("{origin}:unknown")).or_insert(
                json!({ "id": format!("{origin}:unknown"), "origin": origin, "valid": false }),
            );
            builds.entry(id.clone()).or_insert(build);
            id
        });
        let id = format!("{run_id}:{}", planned.index);
        tests.push(missed_test(
            origin,
            &report.run.suite,
            &id,
            &build_id,
            planned,
            &report.state(),
        ));
    }
    json!({
        "version": { "major": VERSION.0, "minor": VERSION.1 },
        "checkouts": checkouts.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "builds": builds.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "tests": tests,
    })
}

/// Whether `origin` is a name KCIDB takes.
pub fn valid_origin(origin: &str) -> bool {
    !origin.is_empty()
        && origin
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The source the kernel came from: its commit when it was built from a git tree.
fn checkout(origin: &str, kernel: &str, info: &KernelInfo) -> (String, Value) {
    let key = info
        .git_commit
        .clone()
        .unwrap_or_else(|| info.release.clone().unwrap_or_else(|| kernel.to_string()));
    let id = format!("{origin}:{}", segment(&key));
    let mut checkout = json!({ "id": id, "origin": origin, "valid": true });
    if let Some(commit) = &info.git_commit {
        checkout["git_commit_hash"] = json!(commit);
    }
    if let Some(describe) = &info.git_describe {
        checkout["git_commit_name"] = json!(describe);
    }
    if let Some(release) = &info.release {
        checkout["comment"] = json!(format!("Linux or FreeBSD release {release}"));
    }
    (id, checkout)
}

/// The kernel itself: its image, release and config.
fn build(origin: &str, checkout_id: &str, kernel: &str, info: &KernelInfo) -> (String, Value) {
    let id = format!(
        "{checkout_id}:{}",
        segment(&info.image.display().to_string())
    );
    let mut misc = json!({ "image": info.image, "kernel": kernel });
    if let Some(release) = &info.release {
        misc["release"] = json!(release);
    }
    let mut build = json!({
        "id": id,
        "checkout_id": checkout_id,
        "origin": origin,
        "architecture": info.architecture,
        "status": "PASS",
        "comment": info.release.as_deref().unwrap_or(kernel),
        "misc": misc,
    });
    if let Some(config) = &info.config {
        build["config_name"] = json!(config.file_name().map_or_else(
            || config.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ));
        build["misc"]["config"] = json!(config);
    }
    (id, build)
}

/// A kernel vmlane never found: the test still needs a build to hang from.
fn unknown_build(origin: &str, kernel: &str) -> (String, Value) {
    let id = format!("{origin}:unknown:{}", segment(kernel));
    let build = json!({
        "id": id,
        "checkout_id": format!("{origin}:unknown"),
        "origin": origin,
        "comment": kernel,
        "status": "ERROR",
    });
    (id, build)
}

fn case_test(origin: &str, suite: &str, id: &str, build_id: &str, result: &CaseResult) -> Value {
    let status = match result.status {
        Status::Passed | Status::Flaky => "PASS",
        Status::Failed | Status::Hang => "FAIL",
        Status::Error => "ERROR",
        Status::Interrupted => "MISS",
    };
    let mut misc = json!({
        "kernel": result.kernel,
        "vmlane_status": result.status,
        "console_log": result.console_log,
        "stdout": result.stdout_path,
        "stderr": result.stderr_path,
    });
    if result.status == Status::Flaky {
        misc["flaky"] = json!(true);
    }
    if !result.retries.is_empty() {
        misc["attempts"] = json!(result.retries.len() + 1);
    }
    if let Some(exit) = result.exit {
        misc["exit"] = json!(exit);
    }
    if !result.artifacts.is_empty() {
        misc["artifacts"] = json!(result.artifacts);
    }
    let mut test = json!({
        "id": id,
        "build_id": build_id,
        "origin": origin,
        "path": path(suite, &result.test, None),
        "status": status,
        "duration": result.duration.as_secs_f64(),
        "comment": format!("{} on {}", result.test, result.kernel),
        "misc": misc,
    });
    if chrono::DateTime::parse_from_rfc3339(&result.started_at).is_ok() {
        test["start_time"] = json!(result.started_at);
    }
    let excerpt = excerpt(result);
    if !excerpt.is_empty() {
        test["log_excerpt"] = json!(excerpt);
    }
    test
}

fn subtest_test(
    origin: &str,
    suite: &str,
    id: &str,
    build_id: &str,
    result: &CaseResult,
    subtest: &KtapResult,
) -> Value {
    let status = match subtest.status {
        KtapStatus::Ok => "PASS",
        KtapStatus::NotOk => "FAIL",
        KtapStatus::Skip => "SKIP",
        KtapStatus::Todo | KtapStatus::Xfail => "DONE",
    };
    let mut test = json!({
        "id": id,
        "build_id": build_id,
        "origin": origin,
        "path": path(suite, &result.test, Some(&subtest.name)),
        "status": status,
        "comment": format!("{} on {}", subtest.name, result.kernel),
        "misc": { "kernel": result.kernel, "ktap_status": subtest.status },
    });
    let mut lines = Vec::new();
    if !subtest.reason.is_empty() {
        lines.push(subtest.reason.clone());
    }
    lines.extend(subtest.diagnostics.iter().cloned());
    if !lines.is_empty() {
        test["log_excerpt"] = json!(cap(&lines.join("\n")));
    }
    test
}

fn missed_test(
    origin: &str,
    suite: &str,
    id: &str,
    build_id: &str,
    planned: &PlannedCase,
    why: &str,
) -> Value {
    json!({
        "id": id,
        "build_id": build_id,
        "origin": origin,
        "path": path(suite, &planned.test, None),
        "status": "MISS",
        "comment": format!("{} on {}: not run; {why}", planned.test, planned.kernel),
        "misc": { "kernel": planned.kernel },
    })
}

/// `suite.test[.subtest.parts]`, each part cut down to what KCIDB paths take.
fn path(suite: &str, test: &str, subtest: Option<&str>) -> String {
    let mut parts = vec![segment(suite), segment(test)];
    if let Some(subtest) = subtest {
        parts.extend(subtest.split('.').map(segment));
    }
    parts.join(".")
}

/// One path part or id part: `[a-zA-Z0-9_-]+`.
fn segment(text: &str) -> String {
    let part: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if part.is_empty() {
        "_".into()
    } else {
        part
    }
}

/// Reasons, splats, then the end of the console: the part of the log that explains it.
fn excerpt(result: &CaseResult) -> String {
    let mut text = result.reasons.join("\n");
    for splat in &result.splats {
        text.push_str("\n\n");
        text.push_str(splat);
    }
    if !result.passed() && !result.console_tail.is_empty() {
        text.push_str("\n\n--- the end of the guest console ---\n");
        text.push_str(&result.console_tail);
    }
    cap(&text)
}

/// At most KCIDB's excerpt length, keeping the start (the reasons) and the end (the
/// console's last lines); NUL is not allowed.
fn cap(text: &str) -> String {
    let text = text.replace('\0', "");
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= LOG_EXCERPT_CHARS {
        return text;
    }
    let marker = "\n[...]\n";
    let keep = LOG_EXCERPT_CHARS - marker.len();
    let head: String = chars[..keep / 2].iter().collect();
    let tail: String = chars[chars.len() - (keep - keep / 2)..].iter().collect();
    format!("{head}{marker}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn tests_by_path(value: &Value) -> Vec<(String, String)> {
        value["tests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["path"].as_str().unwrap().to_string(),
                    t["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn every_case_and_subtest_is_a_test_with_a_kcidb_status() {
        let value = kcidb(&fixtures::report(), "vmlane_ci");
        let tests = tests_by_path(&value);
        let expected = [
            ("smoke.boot", "PASS"),
            ("smoke.retry", "PASS"),
            ("smoke.ktap____x_", "FAIL"),
            ("smoke.ktap____x_.list.init", "PASS"),
            ("smoke.ktap____x_.list.add", "FAIL"),
            ("smoke.ktap____x_.list.del", "SKIP"),
            ("smoke.ktap____x_.list", "FAIL"),
            ("smoke.no-kernel", "ERROR"),
            ("smoke.later", "MISS"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();
        assert_eq!(tests, expected);
        assert_eq!(value["tests"][1]["misc"]["flaky"], true);
        assert_eq!(value["builds"][0]["architecture"], "x86_64");
        assert_eq!(
            value["builds"][0]["config_name"],
            "config-6.1.0-57-cloud-amd64"
        );
        let failed = value["tests"][2]["log_excerpt"].as_str().unwrap();
        assert!(failed.contains("Call Trace:"), "{failed}");
    }

    #[test]
    fn ids_and_paths_stay_within_kcidbs_patterns() {
        let value = kcidb(&fixtures::report(), "vmlane_ci");
        for kind in ["checkouts", "builds", "tests"] {
            for object in value[kind].as_array().unwrap() {
                let id = object["id"].as_str().unwrap();
                let (origin, rest) = id.split_once(':').unwrap();
                assert_eq!(origin, "vmlane_ci");
                assert!(!rest.is_empty() && !rest.contains('\0'), "{id}");
            }
        }
        for test in value["tests"].as_array().unwrap() {
            let path = test["path"].as_str().unwrap();
            assert!(
                path.split('.').all(|part| !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))),
                "{path}"
            );
        }
    }

    #[test]
    fn long_excerpts_keep_their_start_and_end_within_the_limit() {
        let text = format!("reason\n{}\nlast line", "x".repeat(40_000));
        let capped = cap(&text);
        assert!(capped.chars().count() <= LOG_EXCERPT_CHARS);
        assert!(capped.starts_with("reason\n") && capped.ends_with("last line"));
    }

    /// KCIDB's own validator (the `kcidb-io` package, in the virtual environment scripts/test
    /// makes) takes the report; without it the test says so, and fails in CI.
    #[test]
    fn the_report_validates_against_kcidbs_own_schema() {
        let python = match std::env::var_os("VMLANE_KCIDB_PYTHON") {
            Some(path) => std::path::PathBuf::from(path),
            None => cache_dir().join("tools/kcidb/bin/python"),
        };
        if !python.is_file() {
            let message = format!(
                "no {} with kcidb-io (scripts/test makes it)",
                python.display()
            );
            assert!(
                std::env::var_os("VMLANE_E2E_REQUIRED").is_none(),
                "{message}"
            );
            eprintln!("skipped: {message}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kcidb.json");
        let mut report = fixtures::report();
        // A kernel from a git tree, and an excerpt past the limit.
        report.results[0].kernel_info.as_mut().unwrap().git_commit =
            Some("0123456789abcdef0123456789abcdef01234567".into());
        report.results[2].console_tail = "x".repeat(40_000);
        std::fs::write(
            &path,
            serde_json::to_vec(&kcidb(&report, "vmlane_ci")).unwrap(),
        )
        .unwrap();
        let script = "import json, sys, kcidb_io\n\
                      kcidb_io.schema.LATEST.validate(json.load(open(sys.argv[1])))";
        let output = std::process::Command::new(&python)
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// vmlane's cache directory, as scripts/setup finds it.
    fn cache_dir() -> std::path::PathBuf {
        if let Some(dir) = std::env::var_os("VMLANE_CACHE_DIR") {
            return dir.into();
        }
        match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) => std::path::PathBuf::from(dir).join("vmlane"),
            None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/vmlane"),
        }
    }

    #[test]
    fn origins_are_checked() {
        assert!(valid_origin("vmlane_ci2"));
        for bad in ["", "Vmlane", "a-b", "a b"] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }
}
