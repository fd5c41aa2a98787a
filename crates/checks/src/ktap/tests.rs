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

fn diagnostics<'a>(report: &'a KtapReport, name: &str) -> &'a [String] {
    match report.results.iter().find(|r| r.name == name) {
        Some(result) => &result.diagnostics,
        None => panic!("no result {name} in {report:#?}"),
    }
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
    assert!(report.results.iter().all(|r| r.diagnostics.is_empty()));
    assert!(!report.passed());
}

#[test]
fn a_complete_passing_kselftest_stream_passes() {
    let text = "TAP version 13\n1..2\n# selftests: timers: posix_timers\nok 1 selftests: timers: posix_timers\nok 2 selftests: timers: nanosleep # SKIP needs root\n";
    let report = parse_ktap(text);
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.results.len(), 2);
    assert_eq!(report.results[1].status, KtapStatus::Skip);
    assert_eq!(
        report.results[0].diagnostics,
        ["selftests: timers: posix_timers"]
    );
}

#[test]
fn a_stream_without_a_plan_keeps_its_first_tests_diagnostics() {
    let report = parse_ktap("TAP version 13\n# selftests: x: y\nok 1 selftests: x: y\n");
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.results[0].diagnostics, ["selftests: x: y"]);
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
    let report = parse_ktap(text);
    assert!(report.passed());
    assert!(report.results[0].diagnostics.is_empty());
}

#[test]
fn xfail_and_todo_do_not_fail_a_stream_but_timeout_and_error_do() {
    let passing = "KTAP version 1\n1..3\nok 1 a # XFAIL known\nnot ok 2 b # TODO later\nok 3 c # XPASS fixed\n";
    let report = parse_ktap(passing);
    assert!(report.passed(), "{report:?}");
    assert_eq!(
        statuses(&report),
        [
            ("a", KtapStatus::Xfail),
            ("b", KtapStatus::Todo),
            ("c", KtapStatus::Ok)
        ]
    );
    for failing in [
        "not ok 1 a # TIMEOUT 9 seconds",
        "not ok 1 a # ERROR ENOMEM",
    ] {
        let report = parse_ktap(&format!("KTAP version 1\n1..1\n{failing}\n"));
        assert!(!report.passed(), "{failing}");
    }
}

#[test]
fn a_diagnostic_at_the_parents_depth_belongs_to_the_parent() {
    // The spec's own example: `# example failed` after the subtests, before `not ok 1 example`.
    let text = "KTAP version 1\n1..1\n  KTAP version 1\n  1..2\n  ok 1 test_1\n  # test_2: FAIL\n  not ok 2 test_2\n# example failed\nnot ok 1 example\n";
    let report = parse_ktap(text);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(diagnostics(&report, "example.test_1").is_empty());
    assert_eq!(diagnostics(&report, "example.test_2"), ["test_2: FAIL"]);
    assert_eq!(diagnostics(&report, "example"), ["example failed"]);
}

#[test]
fn subtest_lines_are_no_diagnostics_and_suite_headers_go_to_the_suite() {
    let text = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: suite\n    # module: suite_mod\n    1..1\n    # case: initializing\n    ok 1 case\n# suite: pass:1 fail:0 skip:0 total:1\nok 1 suite\n";
    let report = parse_ktap(text);
    assert!(report.passed(), "{report:?}");
    assert_eq!(diagnostics(&report, "suite.case"), ["case: initializing"]);
    assert_eq!(
        diagnostics(&report, "suite"),
        ["module: suite_mod", "suite: pass:1 fail:0 skip:0 total:1"]
    );
}

#[test]
fn unmarked_indented_lines_continue_a_diagnostic_but_margin_lines_do_not() {
    let text = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: s
    1..1
    # c: EXPECTATION FAILED at lib/c.c:3
random: crng init done
    Expected x == y, but
        x == 1
        y == 2
    not ok 1 c
    this indented line follows no diagnostic
not ok 1 s
";
    let report = parse_ktap(text);
    assert_eq!(
        diagnostics(&report, "s.c"),
        [
            "c: EXPECTATION FAILED at lib/c.c:3",
            "Expected x == y, but",
            "    x == 1",
            "    y == 2",
        ]
    );
    assert!(diagnostics(&report, "s").is_empty());
}

#[test]
fn diagnostics_are_bounded_per_result_and_say_so() {
    let mut text = String::from("TAP version 13\n1..1\n");
    for n in 0..70 {
        text.push_str(&format!("# line {n}\n"));
    }
    text.push_str("not ok 1 noisy\n");
    let report = parse_ktap(&text);
    let lines = diagnostics(&report, "noisy");
    assert_eq!(lines.len(), diagnostics::MAX_LINES + 1);
    assert_eq!(lines[0], "line 0");
    assert!(lines[diagnostics::MAX_LINES].contains("50 of 70 lines kept"));
}

#[test]
fn a_second_stream_is_checked_on_its_own() {
    // A module loaded later prints a whole new stream; its truncation must not hide behind the
    // results of the first one.
    let text = "KTAP version 1\n1..2\nok 1 a\nok 2 b\nKTAP version 1\n1..2\nok 1 c\n";
    let report = parse_ktap(text);
    assert_eq!(report.problems, ["the stream: 1 of 2 planned results"]);
    assert_eq!(report.results.len(), 3);
    let whole = "KTAP version 1\n1..1\nok 1 a\nKTAP version 1\n1..1\nok 1 b\n";
    assert!(parse_ktap(whole).passed());
}

#[test]
fn a_subtest_cut_off_by_the_next_one_keeps_its_results_under_its_name() {
    let text = "\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: first
    1..2
    ok 1 one
    KTAP version 1
    # Subtest: second
    1..1
    ok 1 two
ok 2 second
";
    let report = parse_ktap(text);
    assert_eq!(
        statuses(&report),
        [
            ("first.one", KtapStatus::Ok),
            ("second.two", KtapStatus::Ok),
            ("second", KtapStatus::Ok),
        ]
    );
    assert_eq!(
        report.problems,
        [
            "subtest first: 1 of 2 planned results",
            "subtest first has no result line: the stream stopped inside it",
            "the stream: 1 of 2 planned results",
        ]
    );
}

#[test]
fn grandchildren_of_a_result_whose_child_never_finished_are_kept() {
    let text = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: suite
    1..1
        KTAP version 1
        # Subtest: case
        1..2
        ok 1 param-0
ok 1 suite
";
    let report = parse_ktap(text);
    assert_eq!(
        statuses(&report),
        [
            ("suite.case.param-0", KtapStatus::Ok),
            ("suite", KtapStatus::Ok)
        ]
    );
    assert!(!report.passed());
    assert!(
        report
            .problems
            .contains(&"subtest case has no result line: the stream stopped inside it".into()),
        "{:?}",
        report.problems
    );
}

#[test]
fn results_deeper_than_any_plan_open_a_subtest() {
    // Older KUnit printed parameterised results one level deeper with no version or plan.
    let text = "\
TAP version 14
1..1
    # Subtest: suite
    1..1
        # Subtest: case
        ok 1 - param-0
        ok 2 - param-1
    ok 1 - case
ok 1 - suite
";
    let report = parse_ktap(text);
    assert!(report.passed(), "{report:?}");
    assert_eq!(
        statuses(&report),
        [
            ("suite.case.param-0", KtapStatus::Ok),
            ("suite.case.param-1", KtapStatus::Ok),
            ("suite.case", KtapStatus::Ok),
            ("suite", KtapStatus::Ok),
        ]
    );
}

#[test]
fn diagnostics_are_left_out_of_json_when_empty_and_default_when_missing() {
    let report = parse_ktap("KTAP version 1\n1..2\nok 1 quiet\n# why\nnot ok 2 loud\n");
    let json = serde_json::to_value(&report.results).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            { "name": "quiet", "status": "ok", "reason": "" },
            { "name": "loud", "status": "not_ok", "reason": "", "diagnostics": ["why"] },
        ])
    );
    let back: Vec<KtapResult> = serde_json::from_value(json).unwrap();
    assert_eq!(back, report.results);
    let xfail: KtapStatus = serde_json::from_str("\"xfail\"").unwrap();
    assert_eq!(xfail, KtapStatus::Xfail);
}

#[test]
fn a_default_result_is_not_a_pass() {
    assert_eq!(KtapResult::default().status, KtapStatus::NotOk);
}
