//! `vmlane test`'s report files on real runs, each parsed back: JUnit with nextest's JUnit
//! reader, KTAP with vmlane's own parser, KCIDB with KCIDB's own schema package; sharded runs
//! merged; a run interrupted mid-suite; flaky tests; the human view on stderr.

mod common;

use common::{text, Sandbox, TestKernel};
use quick_junit::{Report as Junit, TestCaseStatus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vmlane_checks::ktap::{parse_ktap, KtapStatus};

/// vmlane's own kernel boots fastest.
fn kernel() -> Option<String> {
    let mut kernels: Vec<TestKernel> = common::kernels();
    let index = kernels.iter().position(|k| k.label == "vmlane-built")?;
    Some(
        kernels
            .swap_remove(index)
            .dir
            .to_string_lossy()
            .into_owned(),
    )
}

fn write(path: &Path, body: &str) -> PathBuf {
    std::fs::write(path, body).unwrap();
    path.to_path_buf()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn results(records: &[Value]) -> Vec<&Value> {
    records.iter().filter(|r| r["type"] == "result").collect()
}

/// The Python of a virtual environment with KCIDB's `kcidb-io` package (scripts/test makes it).
fn kcidb_python() -> Option<PathBuf> {
    let python = match std::env::var_os("VMLANE_KCIDB_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => vmlane_kernel::cache_dir().join("tools/kcidb/bin/python"),
    };
    if python.is_file() {
        return Some(python);
    }
    let message = format!(
        "KCIDB validation needs {} with kcidb-io (scripts/test sets it up)",
        python.display()
    );
    if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped KCIDB validation: {message}");
    None
}

/// Validates `path` against KCIDB's latest I/O schema with KCIDB's own validator.
fn assert_valid_kcidb(path: &Path) {
    let Some(python) = kcidb_python() else {
        return;
    };
    let script = "import json, sys, kcidb_io\n\
                  data = json.load(open(sys.argv[1]))\n\
                  kcidb_io.schema.LATEST.validate(data)\n\
                  print(len(data['tests']))";
    let output = Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "KCIDB rejects {}: {}",
        path.display(),
        text(&output.stderr)
    );
}

/// The kernel's own KTAP parser (tools/testing/kunit, which scripts/test takes from Debian's
/// linux-source) on `path`: its parse errors and each test's (name, status), depth first.
fn kunit_parser(path: &Path) -> Option<(u64, Vec<(String, String)>)> {
    let dir = vmlane_kernel::cache_dir().join("tools/kunit");
    if !dir.join("kunit_parser.py").is_file() {
        let message = format!(
            "no kunit_parser.py in {} (scripts/test puts it there)",
            dir.display()
        );
        if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped the kernel's KTAP parser: {message}");
        return None;
    }
    // Newer kunit_parser takes a printer; 6.1's prints its view to stdout, before the result.
    let script = r#"
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
import kunit_parser
lines = open(sys.argv[2]).read().splitlines()
if len(inspect.signature(kunit_parser.parse_run_tests).parameters) > 1:
    import kunit_printer
    test = kunit_parser.parse_run_tests(lines, kunit_printer.Printer(None))
else:
    test = kunit_parser.parse_run_tests(lines)
def walk(test):
    for sub in test.subtests:
        yield [sub.name, sub.status.name]
        yield from walk(sub)
print("vmlane-result: " + json.dumps({"errors": test.counts.errors, "tests": list(walk(test))}))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&dir)
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix("vmlane-result: "))
        .unwrap_or_else(|| panic!("no result from kunit_parser.py: {stdout}"));
    let parsed: Value = serde_json::from_str(result).unwrap();
    let tests = parsed["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t[0].as_str().unwrap().to_string(),
                t[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    Some((parsed["errors"].as_u64().unwrap(), tests))
}

const MIXED: &str = r#"
[[test]]
name = "passes"
command = "echo hello"
expect.stdout = ["hello"]

[[test]]
name = "fails"
command = "echo to-stderr >&2; exit 3"

[[test]]
name = "kselftest-like"
command = """printf '%s\n' 'KTAP version 1' '1..3' '# setting up' 'ok 1 first' '# expected 4, got 5' 'not ok 2 second' 'ok 3 third # SKIP needs root'"""
expect.ktap = "stdout"
"#;

#[test]
fn every_report_file_reads_back_and_kcidb_validates() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no vmlane-built kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write(&dir.path().join("mixed.toml"), MIXED);
    let path = |name: &str| dir.path().join(name);
    let sandbox = Sandbox::new();
    let output = sandbox
        .vmlane_test(&suite, &["-k", &kernel, "-j", "2", "--format", "json"])
        .args(["--results", path("results").to_str().unwrap()])
        .args(["--junit", path("junit.xml").to_str().unwrap()])
        .args(["--tap", path("results.tap").to_str().unwrap()])
        .args(["--kcidb", path("kcidb.json").to_str().unwrap()])
        .args(["--kcidb-origin", "vmlane_e2e"])
        .args(["--json", path("copy.jsonl").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    // The human view is on stderr whatever the format.
    let stderr = text(&output.stderr);
    assert!(stderr.contains("PASS  passes"), "{stderr}");
    assert!(stderr.contains("FAIL  fails"), "{stderr}");
    assert!(stderr.contains("2 failed"), "{stderr}");

    // JSON lines: start, a result per case, end; the --json copy is the results file.
    let lines = records(&path("results/results.jsonl"));
    assert_eq!(lines.first().unwrap()["type"], "start");
    assert_eq!(lines.last().unwrap()["type"], "end");
    assert_eq!(lines.last().unwrap()["interrupted"], false);
    assert_eq!(results(&lines).len(), 3);
    assert_eq!(records(&path("copy.jsonl")), lines);
    let stdout_lines: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stdout_lines.len(), 5, "start, three results, end");
    let failed = results(&lines)
        .into_iter()
        .find(|r| r["test"] == "fails")
        .unwrap();
    assert_eq!(failed["stderr_tail"], "to-stderr\n");
    assert_eq!(failed["kernel_info"]["architecture"], "x86_64");
    assert!(failed["kernel_info"]["release"]
        .as_str()
        .unwrap()
        .starts_with("6."));

    // JUnit, read back by the writer's own reader.
    let xml = std::fs::read_to_string(path("junit.xml")).unwrap();
    let junit = Junit::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let suite = &junit.test_suites[0];
    assert_eq!(suite.name.as_str(), "mixed");
    assert_eq!(suite.tests, 6, "three cases and three KTAP subtests: {xml}");
    assert_eq!(suite.failures, 3, "{xml}");
    assert_eq!(suite.skipped, 1, "{xml}");
    let case = |name: &str| {
        suite
            .test_cases
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("no testcase {name}: {xml}"))
    };
    let fails = case("fails");
    assert_eq!(
        fails.system_err.as_ref().unwrap().as_str().lines().next(),
        Some("to-stderr")
    );
    assert!(fails.timestamp.is_some() && fails.time.is_some());
    let TestCaseStatus::NonSuccess { description, .. } = &case("kselftest-like/second").status
    else {
        panic!("second passed: {xml}");
    };
    assert!(
        description
            .as_ref()
            .unwrap()
            .as_str()
            .contains("expected 4, got 5"),
        "the subtest's diagnostics say why: {xml}"
    );

    // KTAP, read back by vmlane's KTAP parser.
    let tap = std::fs::read_to_string(path("results.tap")).unwrap();
    let parsed = parse_ktap(&tap);
    assert!(parsed.problems.is_empty(), "{:?}\n{tap}", parsed.problems);
    let status = |suffix: &str| {
        parsed
            .results
            .iter()
            .find(|r| r.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {suffix}: {tap}"))
            .status
    };
    assert_eq!(status("]"), KtapStatus::Ok, "the first case is 'passes'");
    assert_eq!(status(".second"), KtapStatus::NotOk);
    assert_eq!(status(".third"), KtapStatus::Skip);
    assert!(
        tap.ends_with("# vmlane: the run is complete: 3 cases\n"),
        "{tap}"
    );
    if let Some((errors, tests)) = kunit_parser(&path("results.tap")) {
        assert_eq!(errors, 0, "kunit_parser.py found errors in\n{tap}");
        let statuses: Vec<(&str, &str)> = tests
            .iter()
            .map(|(name, status)| (name.split(" [").next().unwrap(), status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [
                ("passes", "SUCCESS"),
                ("fails", "FAILURE"),
                ("kselftest-like", "FAILURE"),
                ("first", "SUCCESS"),
                ("second", "FAILURE"),
                ("third", "SKIPPED"),
            ],
            "{tap}"
        );
    }

    // KCIDB, validated by KCIDB's own schema package.
    let kcidb: Value =
        serde_json::from_str(&std::fs::read_to_string(path("kcidb.json")).unwrap()).unwrap();
    let paths: Vec<(&str, &str)> = kcidb["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["path"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    for expected in [
        ("mixed.passes", "PASS"),
        ("mixed.fails", "FAIL"),
        ("mixed.kselftest-like.second", "FAIL"),
        ("mixed.kselftest-like.third", "SKIP"),
    ] {
        assert!(paths.contains(&expected), "{expected:?} in {paths:?}");
    }
    assert_valid_kcidb(&path("kcidb.json"));
}

/// (test, kernel, status) of every result, sorted.
fn outcomes(records: &[Value]) -> Vec<(String, String, String)> {
    let mut outcomes: Vec<_> = results(records)
        .iter()
        .map(|r| {
            (
                r["test"].as_str().unwrap().to_string(),
                r["kernel"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    outcomes.sort();
    outcomes
}

#[test]
fn hash_shards_cover_the_matrix_once_and_merge_into_the_unsharded_report() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no vmlane-built kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..5)
        .map(|i| {
            let command = if i == 2 { "false" } else { "true" };
            format!("[[test]]\nname = \"t{i}\"\ncommand = \"{command}\"\n\n")
        })
        .collect();
    let suite = write(&dir.path().join("shards.toml"), &body);
    let sandbox = Sandbox::new();
    let run = |name: &str, extra: &[&str]| -> Output {
        let results = dir.path().join(name);
        sandbox
            .vmlane_test(&suite, &["-k", &kernel, "-j", "2"])
            .args(extra)
            .args(["--results", results.to_str().unwrap()])
            .output()
            .unwrap()
    };
    // --list shows the shares without booting: together exactly the matrix.
    let mut listed = Vec::new();
    for k in 1..=3 {
        let share = format!("hash:{k}/3");
        let output = sandbox
            .vmlane_test(&suite, &["-k", &kernel, "--list", "--partition", &share])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        listed.extend(text(&output.stdout).lines().map(String::from));
    }
    listed.sort();
    assert_eq!(listed.len(), 5);
    listed.dedup();
    assert_eq!(listed.len(), 5, "a case in two shares: {listed:?}");

    let whole = run("whole", &[]);
    assert_eq!(whole.status.code(), Some(1), "{}", text(&whole.stderr));
    let shard_dirs: Vec<String> = (1..=3)
        .map(|k| {
            let name = format!("shard-{k}");
            let output = run(&name, &["--partition", &format!("hash:{k}/3")]);
            assert!(output.status.code().is_some(), "{}", text(&output.stderr));
            dir.path().join(name).to_string_lossy().into_owned()
        })
        .collect();
    let merged_json = dir.path().join("merged.jsonl");
    let merged_junit = dir.path().join("merged.xml");
    let merge = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["report", "merge"])
        .args(&shard_dirs)
        .args(["--json", merged_json.to_str().unwrap()])
        .args(["--junit", merged_junit.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        merge.status.code(),
        Some(1),
        "one test fails: {}",
        text(&merge.stderr)
    );
    let whole_records = records(&dir.path().join("whole/results.jsonl"));
    let merged_records = records(&merged_json);
    assert_eq!(outcomes(&merged_records), outcomes(&whole_records));
    let indices = |records: &[Value]| -> Vec<u64> {
        results(records)
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(indices(&merged_records), [0, 1, 2, 3, 4], "matrix order");
    let junit =
        Junit::deserialize_from_str(&std::fs::read_to_string(&merged_junit).unwrap()).unwrap();
    assert_eq!(
        (junit.test_suites[0].tests, junit.test_suites[0].failures),
        (5, 1)
    );

    // A shard left out is named, and the merge fails as vmlane's own failure.
    let partial = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["report", "merge", &shard_dirs[0], &shard_dirs[2]])
        .output()
        .unwrap();
    assert_eq!(partial.status.code(), Some(125));
    assert!(
        text(&partial.stderr).contains("missing shards: hash:2/3"),
        "{}",
        text(&partial.stderr)
    );
}

#[test]
fn ctrl_c_mid_suite_leaves_every_report_valid_and_marked() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no vmlane-built kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write(
        &dir.path().join("slow.toml"),
        "[[test]]\nname = \"quick\"\ncommand = \"true\"\n\n\
         [[test]]\nname = \"slow\"\ncommand = [\"sleep\", \"60\"]\n\n\
         [[test]]\nname = \"never\"\ncommand = \"true\"\n",
    );
    let path = |name: &str| dir.path().join(name);
    let sandbox = Sandbox::new();
    let child = sandbox
        .vmlane_test(&suite, &["-k", &kernel, "-j", "1"])
        .args(["--results", path("results").to_str().unwrap()])
        .args(["--junit", path("junit.xml").to_str().unwrap()])
        .args(["--tap", path("results.tap").to_str().unwrap()])
        .args(["--kcidb", path("kcidb.json").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the quick case has its result, the slow one is running: interrupt it.
    let results_file = path("results/results.jsonl");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&results_file).is_ok_and(|t| t.contains("\"quick\"")) {
        assert!(Instant::now() < deadline, "the quick case never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));

    let lines = records(&results_file);
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["interrupted"], true);
    let xml = std::fs::read_to_string(path("junit.xml")).unwrap();
    let junit = Junit::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert_eq!(junit.test_suites[0].tests, 3, "{xml}");
    assert!(xml.contains("the run was interrupted"), "{xml}");
    let tap = std::fs::read_to_string(path("results.tap")).unwrap();
    let parsed = parse_ktap(&tap);
    assert!(parsed.problems.is_empty(), "{:?}\n{tap}", parsed.problems);
    assert_eq!(parsed.results.len(), 3, "{tap}");
    assert!(tap.contains("# SKIP not run"), "{tap}");
    if let Some((errors, tests)) = kunit_parser(&path("results.tap")) {
        assert_eq!(errors, 0, "kunit_parser.py found errors in\n{tap}");
        assert_eq!(tests.len(), 3, "{tests:?}");
    }
    assert_valid_kcidb(&path("kcidb.json"));
}

#[test]
fn a_case_that_passes_on_a_retry_is_flaky_in_every_report() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no vmlane-built kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // The first attempt leaves a mark in its writable directory and fails; the next passes.
    let body = format!(
        "[[test]]\nname = \"flaky\"\nrwdirs = [\"state\"]\n\
         command = \"if [ -e {s}/once ]; then exit 0; fi; touch {s}/once; exit 1\"\n\n\
         [[test]]\nname = \"broken\"\ncommand = \"exit 1\"\n",
        s = state.display()
    );
    let suite = write(&dir.path().join("retry.toml"), &body);
    let path = |name: &str| dir.path().join(name);
    let sandbox = Sandbox::new();
    let output = sandbox
        .vmlane_test(&suite, &["-k", &kernel, "-j", "1", "--retries", "2"])
        .args(["--results", path("results").to_str().unwrap()])
        .args(["--junit", path("junit.xml").to_str().unwrap()])
        .args(["--tap", path("results.tap").to_str().unwrap()])
        .args(["--kcidb", path("kcidb.json").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("FLAKY flaky ["), "{stderr}");
    let summary = text(&output.stdout);
    assert!(
        summary.contains("0 passed, 1 failed, 0 hung, 0 errors, 1 flaky"),
        "{summary}"
    );

    let lines = records(&path("results/results.jsonl"));
    let by_name = |name: &str| {
        results(&lines)
            .into_iter()
            .find(|r| r["test"] == name)
            .unwrap()
            .clone()
    };
    let flaky = by_name("flaky");
    assert_eq!(flaky["status"], "flaky");
    assert_eq!(flaky["retries"].as_array().unwrap().len(), 1);
    assert_eq!(flaky["retries"][0]["status"], "failed");
    assert_eq!(flaky["artifacts"][0], state.to_str().unwrap());
    let earlier_console = flaky["retries"][0]["console_log"].as_str().unwrap();
    assert!(earlier_console.contains(".try-1/"), "{earlier_console}");
    assert!(
        Path::new(earlier_console).is_file(),
        "the failed attempt's console is kept"
    );
    let broken = by_name("broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(
        broken["retries"].as_array().unwrap().len(),
        2,
        "retried twice, then failed"
    );

    let xml = std::fs::read_to_string(path("junit.xml")).unwrap();
    let junit = Junit::deserialize_from_str(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let case = junit.test_suites[0]
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "flaky")
        .unwrap();
    let TestCaseStatus::Success { flaky_runs } = &case.status else {
        panic!("{xml}");
    };
    assert_eq!(flaky_runs.len(), 1, "{xml}");
    let tap = std::fs::read_to_string(path("results.tap")).unwrap();
    assert!(
        tap.contains("# flaky: passed on a retry\nok 1 flaky"),
        "{tap}"
    );
    let kcidb: Value =
        serde_json::from_str(&std::fs::read_to_string(path("kcidb.json")).unwrap()).unwrap();
    let test = kcidb["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"] == "retry.flaky")
        .unwrap();
    assert_eq!(
        (test["status"].as_str(), test["misc"]["flaky"].as_bool()),
        (Some("PASS"), Some(true))
    );
    assert_valid_kcidb(&path("kcidb.json"));
}

#[test]
fn verbose_streams_the_console_and_output_as_the_run_goes() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no vmlane-built kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write(
        &dir.path().join("one.toml"),
        "[[test]]\nname = \"talks\"\ncommand = \"echo from-the-command\"\n",
    );
    let sandbox = Sandbox::new();
    let quiet = sandbox
        .vmlane_test(&suite, &["-k", &kernel, "--cold"])
        .output()
        .unwrap();
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    assert!(!text(&quiet.stderr).contains("Linux version"));
    let loud = sandbox
        .vmlane_test(&suite, &["-k", &kernel, "--cold", "-v"])
        .output()
        .unwrap();
    assert!(loud.status.success(), "{}", text(&loud.stderr));
    let stderr = text(&loud.stderr);
    let console = stderr
        .find("Linux version")
        .expect("the console is streamed");
    let output = stderr
        .find("from-the-command")
        .expect("the output is streamed");
    let verdict = stderr.find("PASS  talks").unwrap();
    assert!(console < output && output < verdict, "{stderr}");
}

#[test]
fn usage_and_generated_files_come_from_the_cli_definition() {
    let vmlane = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .args(args)
            .output()
            .unwrap()
    };
    let version = text(&vmlane(&["--version"]).stdout);
    assert!(version.starts_with("vmlane 0."), "{version}");
    assert!(version.contains('('), "names the commit: {version}");
    let bash = vmlane(&["completions", "bash"]);
    assert!(bash.status.success());
    assert!(text(&bash.stdout).contains("--kcidb-origin"));
    let man = vmlane(&["man"]);
    assert!(man.status.success());
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..80]
    );
    assert!(page.contains("VMLANE TEST"), "a section per subcommand");
    assert!(page.contains("partition"), "with its options");
    let bad_origin = vmlane(&[
        "test",
        "x.toml",
        "--kcidb",
        "/tmp/k.json",
        "--kcidb-origin",
        "Bad-Name",
    ]);
    assert_eq!(bad_origin.status.code(), Some(125));
    assert!(
        text(&bad_origin.stderr).contains("lower-case letters"),
        "{}",
        text(&bad_origin.stderr)
    );
}
