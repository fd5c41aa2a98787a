//! `vmlane test`: suites run on a real kernel, with passing, failing, hanging and panicking
//! tests, machine-readable reports, golden logs and CI sharding.

mod common;

use common::{text, Sandbox, TestKernel};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// vmlane's own kernel boots fastest; any kernel the e2e tests know works.
fn test_kernel() -> Option<TestKernel> {
    let mut kernels = common::kernels();
    let index = kernels
        .iter()
        .position(|k| k.label == "vmlane-built")
        .unwrap_or(0);
    (!kernels.is_empty()).then(|| kernels.swap_remove(index))
}

fn kernel() -> Option<String> {
    test_kernel().map(|k| k.dir.to_string_lossy().into_owned())
}

fn vmlane_test(suite: &Path, extra: &[&str]) -> Output {
    vmlane_test_in(&Sandbox::new(), suite, extra)
}

/// `vmlane test` in the sandbox's runtime dir, so leftovers can be attributed.
fn vmlane_test_in(sandbox: &Sandbox, suite: &Path, extra: &[&str]) -> Output {
    vmlane_test_command(sandbox, suite, extra)
        .output()
        .expect("start vmlane")
}

/// The [`vmlane_test_in`] command, for a test that reads its output as it comes.
fn vmlane_test_command(sandbox: &Sandbox, suite: &Path, extra: &[&str]) -> Command {
    sandbox.vmlane_test(suite, extra)
}

/// The result records of `--format json` (between its start and end records).
fn json_results(output: &Output) -> Vec<Value> {
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|record| record["type"] == "result")
        .collect()
}

fn by_test<'a>(results: &'a [Value], name: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["test"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {results:?}"))
}

fn write_suite(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("suite.toml");
    std::fs::write(&path, body).unwrap();
    path
}

const MIXED: &str = r#"
[[test]]
name = "passes"
command = """printf '%s\n' 'hello' '{"kind":"probe","data":{"errno_name":"ENOTSUP","errno":95}}'"""
expect.stdout = ["hello"]
expect.events = [{ kind = "probe", data = { errno_name = "ENOTSUP" } }]
expect.console = ["Linux version", "Run /init"]
expect.console_in_order = true

[[test]]
name = "fails"
command = "echo '{\"kind\":\"probe\",\"data\":{\"errno_name\":\"EINVAL\"}}'; exit 2"
expect.events = [{ kind = "probe", data = { errno_name = "ENOTSUP" } }]
expect.console = ["no such line in any console"]
expect.console_absent = ["Linux version"]
expect.stdout = ["never printed"]

[[test]]
name = "hangs"
command = ["sleep", "600"]
timeout = 4

[[test]]
name = "panics-unexpectedly"
command = "echo c > /proc/sysrq-trigger"

[[test]]
name = "panics-as-declared"
command = "echo c > /proc/sysrq-trigger"
expect.splats = [{ kind = "panic", contains = "sysrq triggered crash" }]
"#;

#[test]
fn every_outcome_is_reported_with_its_reasons_and_files() {
    let Some(test_kernel) = test_kernel() else {
        eprintln!("skipped: no kernel (run scripts/setup)");
        return;
    };
    let kernel = test_kernel.dir.to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), MIXED);
    let results_dir = dir.path().join("results");
    let sandbox = Sandbox::new();
    let output = vmlane_test_in(
        &sandbox,
        &suite,
        &[
            "-k",
            &kernel,
            "-j",
            "2",
            "--format",
            "json",
            "--results",
            results_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let results = json_results(&output);
    assert_eq!(results.len(), 5, "{results:?}");

    let passes = by_test(&results, "passes");
    assert_eq!(passes["status"], "passed", "{passes}");
    assert_eq!(passes["exit"], 0);
    let stdout = std::fs::read_to_string(passes["stdout_path"].as_str().unwrap()).unwrap();
    assert!(stdout.starts_with("hello\n"), "{stdout}");
    let console = std::fs::read_to_string(passes["console_log"].as_str().unwrap()).unwrap();
    assert!(console.contains("Linux version"));

    let fails = by_test(&results, "fails");
    assert_eq!(fails["status"], "failed");
    let reasons = fails["reasons"].to_string();
    assert!(reasons.contains("exit status 2, expected 0"), "{reasons}");
    assert!(reasons.contains("ENOTSUP"), "{reasons}");
    assert!(
        reasons.contains("EINVAL"),
        "the closest event is shown: {reasons}"
    );
    assert!(reasons.contains("no such line in any console"), "{reasons}");
    assert!(
        reasons.contains("forbidden") && reasons.contains("Linux version"),
        "{reasons}"
    );
    assert!(
        reasons.contains("stdout: ") && reasons.contains("never printed"),
        "{reasons}"
    );

    let hangs = by_test(&results, "hangs");
    assert_eq!(hangs["status"], "hang", "{hangs}");
    assert!(hangs["reasons"][0]
        .as_str()
        .unwrap()
        .contains("no result within"));

    let unexpected = by_test(&results, "panics-unexpectedly");
    assert_eq!(unexpected["status"], "failed");
    assert!(
        unexpected["reasons"]
            .to_string()
            .contains("sysrq triggered crash"),
        "{unexpected}"
    );
    let splat = unexpected["splats"][0].as_str().unwrap();
    assert!(
        splat.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{splat}"
    );
    assert!(
        splat.contains("sysrq_handle_crash"),
        "the backtrace is in the report: {splat}"
    );

    assert_eq!(by_test(&results, "panics-as-declared")["status"], "passed");
    sandbox.assert_nothing_left(&test_kernel);
}

#[test]
fn golden_logs_are_blessed_then_compared_after_normalisation() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        r##"
[[test]]
name = "boot-log"
# A quiet boot, so the log holds what the test printed: boot messages interleave differently
# from run to run.
append = ["quiet"]
command = "echo '<2>vmlane-golden: probe 7 at 0xffff888003a4b2c8 took 12 ms' > /dev/kmsg"
expect.golden = "golden/boot.log"
expect.substitutions = [{ regex = "probe [0-9]+", replace = "probe N" }]
"##,
    );
    let results = dir.path().join("results");
    let args = [
        "-k",
        kernel.as_str(),
        "--results",
        results.to_str().unwrap(),
    ];
    let missing = vmlane_test(&suite, &args);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("--bless"),
        "{}",
        text(&missing.stderr)
    );

    let blessed = vmlane_test(&suite, &[&args[..], &["--bless"]].concat());
    assert_eq!(blessed.status.code(), Some(0), "{}", text(&blessed.stderr));
    let golden = dir.path().join("golden/boot.log");
    let golden_text = std::fs::read_to_string(&golden).unwrap();
    assert!(
        golden_text.contains("[TIMESTAMP] vmlane-golden: probe N at ADDR took DURATION"),
        "built-in and user normalisation: {golden_text}"
    );

    let again = vmlane_test(&suite, &args);
    assert_eq!(
        again.status.code(),
        Some(0),
        "a second boot matches: {}",
        text(&again.stderr)
    );

    std::fs::write(
        &golden,
        golden_text.replace("vmlane-golden", "vmlane-GOLDEN"),
    )
    .unwrap();
    let differs = vmlane_test(&suite, &args);
    assert_eq!(differs.status.code(), Some(1));
    let stderr = text(&differs.stderr);
    assert!(stderr.contains("console differs from"), "{stderr}");
    assert!(stderr.contains("-[TIMESTAMP] vmlane-GOLDEN"), "{stderr}");
    assert!(stderr.contains("+[TIMESTAMP] vmlane-golden"), "{stderr}");
}

#[test]
fn partitions_split_the_matrix_and_junit_lists_each_run() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "[[test]]\nname = \"a\"\ncommand = \"true\"\n\n[[test]]\nname = \"b\"\ncommand = \"exit 1\"\nexpect.exit = 1\n",
    );
    let results = dir.path().join("results");
    let mut seen = Vec::new();
    for share in ["1/2", "2/2"] {
        let output = vmlane_test(
            &suite,
            &[
                "-k",
                &kernel,
                "--partition",
                share,
                "--format",
                "junit",
                "--results",
                results.to_str().unwrap(),
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let xml = text(&output.stdout);
        for count in [r#"tests="1""#, r#"failures="0""#, r#"errors="0""#] {
            assert!(xml.contains(count), "{count}: {xml}");
        }
        for name in ["a", "b"] {
            if xml.contains(&format!("<testcase name=\"{name}\"")) {
                seen.push(name);
            }
        }
    }
    seen.sort();
    assert_eq!(seen, ["a", "b"], "each test ran in exactly one share");
}

#[test]
fn a_broken_suite_is_refused_before_any_vm_starts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "[[test]]\nname = \"t\"\ncommand = \"true\"\nexpect.exti = 0\n",
    );
    let output = vmlane_test(&suite, &[]);
    assert_eq!(output.status.code(), Some(125));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("suite.toml") && stderr.contains("exti"),
        "{stderr}"
    );
}

#[test]
fn a_case_vmlane_cannot_run_exits_125_not_as_a_failed_test() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "[[test]]\nname = \"t\"\ncommand = \"true\"\n");
    let results = dir.path().join("results");
    let args = [
        "-k",
        "no-such-kernel-9.9",
        "--format",
        "json",
        "--results",
        results.to_str().unwrap(),
    ];
    let output = vmlane_test(&suite, &args);
    assert_eq!(output.status.code(), Some(125), "{}", text(&output.stderr));
    let results = json_results(&output);
    assert_eq!(results[0]["status"], "error", "{results:?}");
}

#[test]
fn list_names_the_selected_runs_without_booting() {
    let dir = tempfile::tempdir().unwrap();
    let tests: String = ["probe-a", "probe-b", "probe-a-slow", "boot"]
        .iter()
        .map(|n| format!("[[test]]\nname = \"{n}\"\ncommand = \"true\"\n\n"))
        .collect();
    let suite = write_suite(dir.path(), &tests);
    let args = [
        "--list",
        "-k",
        "no-such-kernel-1",
        "-k",
        "no-such-kernel-2",
        "--filter",
        "probe-*",
        "--skip",
        "/slow/",
        "--partition",
        "1/2",
    ];
    let output = vmlane_test(&suite, &args);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "probe-a\tno-such-kernel-1\nprobe-b\tno-such-kernel-1\n"
    );
    let bad = vmlane_test(&suite, &["--list", "--filter", "/(/"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(
        text(&bad.stderr).contains("between slashes"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn json_results_arrive_as_each_case_ends() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "[[test]]\nname = \"quick\"\ncommand = \"true\"\n\n\
         [[test]]\nname = \"slow\"\ncommand = [\"sleep\", \"4\"]\n",
    );
    let sandbox = Sandbox::new();
    let results = dir.path().join("results");
    let args = ["-j", "1", "--format", "json", "-k", &kernel];
    let mut child = vmlane_test_command(&sandbox, &suite, &args)
        .args(["--results", results.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let start: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(start["type"], "start", "{start}");
    assert_eq!(start["planned"].as_array().unwrap().len(), 2, "{start}");
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["test"], "quick", "{first}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first result came only when the run ended"
    );
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["test"], "slow", "{second}");
    let end: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(end["type"], "end", "{end}");
    assert!(lines.next().is_none());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn fail_fast_starts_nothing_after_a_failure() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "[[test]]\nname = \"fails\"\ncommand = \"false\"\n\n\
         [[test]]\nname = \"never-runs\"\ncommand = \"true\"\n",
    );
    let results = dir.path().join("results");
    let args = ["-k", &kernel, "-j", "1", "--fail-fast", "--format", "json"];
    let output = vmlane_test(
        &suite,
        &[&args[..], &["--results", results.to_str().unwrap()]].concat(),
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let results = json_results(&output);
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["test"], "fails");
}

const KTAP: &str = r#"
[[test]]
name = "kselftest-like"
command = """printf '%s\n' 'TAP version 13' '1..2' '    KTAP version 1' '    # Subtest: timers' '    1..3' '    ok 1 posix_timers' '    not ok 2 nanosleep' '    ok 3 raw_skew # SKIP needs root' 'not ok 1 timers' 'ok 2 exec # TODO flaky'"""
expect.ktap = "stdout"

[[test]]
name = "truncated"
command = """printf '%s\n' 'KTAP version 1' '1..3' 'ok 1 first'"""
expect.ktap = "stdout"

[[test]]
name = "all-ok"
command = """printf '%s\n' 'KTAP version 1' '1..1' 'ok 1 only'"""
expect.ktap = "stdout"
"#;

#[test]
fn ktap_subtests_are_results_of_their_own_and_truncation_fails() {
    let Some(kernel) = kernel() else {
        eprintln!("skipped: no kernel (run scripts/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), KTAP);
    let results = dir.path().join("results");
    let base = [
        "-k",
        kernel.as_str(),
        "--results",
        results.to_str().unwrap(),
    ];
    let output = vmlane_test(&suite, &[&base[..], &["--format", "json"]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let json = json_results(&output);
    let nested = by_test(&json, "kselftest-like");
    assert_eq!(nested["status"], "failed");
    let subtests: Vec<(String, String)> = nested["subtests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("timers.posix_timers", "ok"),
        ("timers.nanosleep", "not_ok"),
        ("timers.raw_skew", "skip"),
        ("timers", "not_ok"),
        ("exec", "todo"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(subtests, expected);
    assert!(nested["reasons"]
        .to_string()
        .contains("ktap: not ok timers.nanosleep"));

    let truncated = by_test(&json, "truncated");
    assert_eq!(
        truncated["status"], "failed",
        "every result seen was ok, but 2 are missing"
    );
    assert!(
        truncated["reasons"].to_string().contains("1 of 3 planned"),
        "{truncated}"
    );
    assert_eq!(by_test(&json, "all-ok")["status"], "passed");

    let junit = vmlane_test(&suite, &[&base[..], &["--format", "junit"]].concat());
    let xml = text(&junit.stdout);
    assert!(
        xml.contains(r#"<testcase name="kselftest-like/timers.nanosleep""#),
        "{xml}"
    );
    assert!(xml.contains(r#"<skipped message="needs root"/>"#), "{xml}");
    // Three tests, and the subtests of each: five, one and one.
    assert_eq!(xml.matches("<testcase ").count(), 3 + 5 + 1 + 1, "{xml}");
}

#[test]
fn a_two_kernel_matrix_gives_a_result_per_test_and_kernel() {
    let kernels = common::kernels();
    if kernels.len() < 2 {
        eprintln!("skipped: fewer than two kernels (run scripts/setup)");
        return;
    }
    let names: Vec<String> = kernels
        .iter()
        .take(2)
        .map(|k| k.dir.to_string_lossy().into_owned())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(
        dir.path(),
        "[[test]]\nname = \"release\"\ncommand = \"uname -r\"\nexpect.stdout = [{ regex = \"^6\\\\.1\" }]\n",
    );
    let results = dir.path().join("results");
    let output = vmlane_test(
        &suite,
        &[
            "-k",
            &names[0],
            "-k",
            &names[1],
            "--format",
            "json",
            "--results",
            results.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let json = json_results(&output);
    // In the order the runs ended, which parallel runs do not fix.
    let mut kernels_seen: Vec<&str> = json.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    kernels_seen.sort();
    let mut expected = [names[0].as_str(), names[1].as_str()];
    expected.sort();
    assert_eq!(kernels_seen, expected);
    let releases: Vec<String> = json
        .iter()
        .map(|r| std::fs::read_to_string(r["stdout_path"].as_str().unwrap()).unwrap())
        .collect();
    assert_ne!(
        releases[0], releases[1],
        "two different kernels booted: {releases:?}"
    );
}

#[test]
fn suites_take_profiles_per_test_and_from_the_command_line() {
    let Some(kernel) = kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let suite = write_suite(
        &sandbox.work(),
        &format!(
            r#"
[defaults]
kernels = ["{kernel}"]
timeout = 120

[[test]]
name = "zfs-scratch-disks"
command = ["sh", "-c", "cat /sys/block/vd?/size"]
profiles = ["zfs-scratch"]
expect.stdout = ["2097152"]

[[test]]
name = "debug-from-the-command-line"
command = ["sh", "-c", "cat /proc/sys/kernel/panic_on_warn; ls /sys/block | grep -c vd || true"]
expect.stdout = ["1", "0"]
"#
        ),
    );
    let output = vmlane_test_in(
        &sandbox,
        &suite,
        &["--format", "json", "--profile", "debug"],
    );
    let results = json_results(&output);
    for name in ["zfs-scratch-disks", "debug-from-the-command-line"] {
        assert_eq!(by_test(&results, name)["status"], "passed", "{results:?}");
    }
    let stdout = std::fs::read_to_string(Path::new(
        by_test(&results, "zfs-scratch-disks")["stdout_path"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(stdout, "2097152\n".repeat(4), "four disks from the profile");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn a_suite_boots_a_bare_kernel_image_with_the_modules_given_on_the_command_line() {
    let Some(generic) = common::kernels()
        .into_iter()
        .find(|k| k.label == "debian-generic")
    else {
        return;
    };
    let sandbox = Sandbox::new();
    // Alone, away from the cache, the image has no modules and cannot mount the share.
    let image = sandbox.work().join("bzImage");
    std::fs::copy(generic.vmlinuz(), &image).unwrap();
    let release = generic
        .dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let modules = generic.dir.join("lib/modules").join(&release);
    let suite = write_suite(
        &sandbox.work(),
        r#"
[[test]]
name = "uname"
command = ["uname", "-r"]
timeout = 180
"#,
    );
    let image = image.to_string_lossy().into_owned();
    let without = vmlane_test_in(&sandbox, &suite, &["--format", "json", "-k", &image]);
    let failed = &json_results(&without)[0];
    assert_eq!(failed["status"], "failed", "{failed}");
    // Its virtio drivers are modules, so the init never finds its port, and says so.
    let reason = failed["reasons"][0].as_str().unwrap();
    assert!(reason.contains("failed to find the host port"), "{reason}");
    let with = vmlane_test_in(
        &sandbox,
        &suite,
        &[
            "--format",
            "json",
            "-k",
            &image,
            "--modules",
            &modules.to_string_lossy(),
        ],
    );
    let results = json_results(&with);
    assert_eq!(results[0]["status"], "passed", "{results:?}");
    let stdout = std::fs::read_to_string(results[0]["stdout_path"].as_str().unwrap()).unwrap();
    assert_eq!(stdout.trim(), release);
}
