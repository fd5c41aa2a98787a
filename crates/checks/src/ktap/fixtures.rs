//! Whole streams in the shapes KUnit and kselftest print, from `tests/fixtures/ktap/`.

use super::*;
use KtapStatus::{NotOk, Ok, Skip, Todo, Xfail};

pub(super) const KUNIT_NESTED: &str = include_str!("../../tests/fixtures/ktap/kunit_nested.log");
pub(super) const KUNIT_FAILURE: &str = include_str!("../../tests/fixtures/ktap/kunit_failure.log");
pub(super) const KUNIT_SKIPPED_SUITE: &str =
    include_str!("../../tests/fixtures/ktap/kunit_skipped_suite.log");
pub(super) const KUNIT_CRASH: &str = include_str!("../../tests/fixtures/ktap/kunit_crash.log");
pub(super) const KSELFTEST: &str = include_str!("../../tests/fixtures/ktap/kselftest_tap13.log");
pub(super) const KUNIT_INTERLEAVED: &str =
    include_str!("../../tests/fixtures/ktap/kunit_interleaved.log");
pub(super) const CONSOLE_CRLF: &str = include_str!("../../tests/fixtures/ktap/console_crlf.log");
pub(super) const KSELFTEST_BAIL_OUT: &str =
    include_str!("../../tests/fixtures/ktap/kselftest_bail_out.log");
pub(super) const DIRECTIVES: &str = include_str!("../../tests/fixtures/ktap/directives.log");

/// Every fixture, for the property tests.
pub(super) const ALL: [&str; 9] = [
    KUNIT_NESTED,
    KUNIT_FAILURE,
    KUNIT_SKIPPED_SUITE,
    KUNIT_CRASH,
    KSELFTEST,
    KUNIT_INTERLEAVED,
    CONSOLE_CRLF,
    KSELFTEST_BAIL_OUT,
    DIRECTIVES,
];

/// Name, status and reason of every result, in order.
fn rows(report: &KtapReport) -> Vec<(&str, KtapStatus, &str)> {
    report
        .results
        .iter()
        .map(|r| (r.name.as_str(), r.status, r.reason.as_str()))
        .collect()
}

fn diagnostics<'a>(report: &'a KtapReport, name: &str) -> &'a [String] {
    match report.results.iter().find(|r| r.name == name) {
        Some(result) => &result.diagnostics,
        None => panic!("no result {name} in {report:#?}"),
    }
}

/// Only the named results have diagnostics.
fn only_these_have_diagnostics(report: &KtapReport, names: &[&str]) {
    for result in &report.results {
        assert_eq!(
            !result.diagnostics.is_empty(),
            names.contains(&result.name.as_str()),
            "{}: {:?}",
            result.name,
            result.diagnostics
        );
    }
}

#[test]
fn kunit_nested_suites_and_parameterised_cases() {
    let report = parse_ktap(KUNIT_NESTED);
    assert_eq!(
        rows(&report),
        [
            ("ring_buffer_test.ring_push_pop", Ok, ""),
            ("ring_buffer_test.ring_wraps_at_capacity.param-0", Ok, ""),
            ("ring_buffer_test.ring_wraps_at_capacity.param-1", Ok, ""),
            (
                "ring_buffer_test.ring_wraps_at_capacity.capacity=4096",
                Ok,
                ""
            ),
            ("ring_buffer_test.ring_wraps_at_capacity", Ok, ""),
            (
                "ring_buffer_test.ring_drain_empty",
                Skip,
                "needs CONFIG_RING_DEBUG"
            ),
            ("ring_buffer_test", Ok, ""),
            ("bitmap_ops_test.bitmap_set_clear", Ok, ""),
            ("bitmap_ops_test.bitmap_find_next.dense", Ok, ""),
            ("bitmap_ops_test.bitmap_find_next.sparse", Ok, ""),
            ("bitmap_ops_test.bitmap_find_next", Ok, ""),
            ("bitmap_ops_test", Ok, ""),
        ]
    );
    assert_eq!(
        diagnostics(&report, "ring_buffer_test.ring_wraps_at_capacity"),
        ["ring_wraps_at_capacity: pass:3 fail:0 skip:0 total:3"]
    );
    assert_eq!(
        diagnostics(&report, "ring_buffer_test"),
        [
            "module: ring_buffer_test",
            "ring_buffer_test: pass:2 fail:0 skip:1 total:3",
            "Totals: pass:4 fail:0 skip:1 total:5",
        ]
    );
    assert_eq!(
        diagnostics(&report, "bitmap_ops_test"),
        [
            "bitmap_ops_test: pass:2 fail:0 skip:0 total:2",
            "Totals: pass:3 fail:0 skip:0 total:3",
        ]
    );
    only_these_have_diagnostics(
        &report,
        &[
            "ring_buffer_test.ring_wraps_at_capacity",
            "ring_buffer_test",
            "bitmap_ops_test",
        ],
    );
    assert_eq!(report.problems, [] as [&str; 0]);
    assert!(report.passed());
}

#[test]
fn kunit_failed_expectation_says_why() {
    let report = parse_ktap(KUNIT_FAILURE);
    assert_eq!(
        rows(&report),
        [
            ("fifo-kunit-test.fifo_test_init", Ok, ""),
            ("fifo-kunit-test.fifo_test_put_get", NotOk, ""),
            ("fifo-kunit-test.fifo_test_reset", Ok, ""),
            ("fifo-kunit-test", NotOk, ""),
        ]
    );
    assert_eq!(
        diagnostics(&report, "fifo-kunit-test.fifo_test_put_get"),
        [
            "fifo_test_put_get: EXPECTATION FAILED at lib/fifo_kunit.c:58",
            "Expected kfifo_len(&fifo) == 2, but",
            "    kfifo_len(&fifo) == 3 (0x3)",
            "    2 == 2 (0x2)",
            "fifo_test_put_get: EXPECTATION FAILED at lib/fifo_kunit.c:61",
            "Expected out == 7, but",
            "    out == 0 (0x0)",
        ]
    );
    assert_eq!(
        diagnostics(&report, "fifo-kunit-test"),
        [
            "fifo-kunit-test: pass:2 fail:1 skip:0 total:3",
            "Totals: pass:2 fail:1 skip:0 total:3",
        ]
    );
    only_these_have_diagnostics(
        &report,
        &["fifo-kunit-test.fifo_test_put_get", "fifo-kunit-test"],
    );
    assert_eq!(report.problems, [] as [&str; 0]);
    assert!(!report.passed());
}

#[test]
fn kunit_skipped_suites_pass() {
    let report = parse_ktap(KUNIT_SKIPPED_SUITE);
    assert_eq!(
        rows(&report),
        [
            ("dma_fence_test.dma_fence_signal", Ok, ""),
            ("dma_fence_test.dma_fence_wait", Ok, ""),
            ("dma_fence_test", Ok, ""),
            (
                "iommu_sva_test.iommu_sva_bind",
                Skip,
                "no SVA-capable device"
            ),
            (
                "iommu_sva_test.iommu_sva_unbind",
                Skip,
                "no SVA-capable device"
            ),
            ("iommu_sva_test", Skip, "all tests skipped"),
            ("tpm_selftest", Skip, "all tests skipped"),
        ]
    );
    only_these_have_diagnostics(&report, &[]);
    assert_eq!(report.problems, [] as [&str; 0]);
    assert!(report.passed());
}

#[test]
fn kunit_crash_mid_suite_is_a_problem_never_a_pass() {
    let report = parse_ktap(KUNIT_CRASH);
    assert_eq!(
        rows(&report),
        [
            ("slab_merge_test.slab_merge_same_size", Ok, ""),
            ("slab_merge_test.slab_merge_refused_ctor", Ok, ""),
            ("slab_merge_test", Ok, ""),
            ("pagewalk_test.pagewalk_empty_range", Ok, ""),
        ]
    );
    only_these_have_diagnostics(&report, &[]);
    assert_eq!(
        report.problems,
        [
            "subtest pagewalk_test: 1 of 4 planned results",
            "subtest pagewalk_test has no result line: the stream stopped inside it \
             (last diagnostic: pagewalk_huge_pmd: initializing)",
            "the stream: 1 of 3 planned results",
        ]
    );
    assert!(!report.passed());
}

#[test]
fn kselftest_tap13_runner_output() {
    let report = parse_ktap(KSELFTEST);
    assert_eq!(
        rows(&report),
        [
            ("selftests: timers: posix_timers", Ok, ""),
            ("selftests: timers: rtcpie", Skip, ""),
            ("selftests: timers: nsleep-lat", NotOk, "TIMEOUT 45 seconds"),
            ("selftests: timers: set-timer-lat", NotOk, "exit=1"),
        ]
    );
    assert_eq!(
        diagnostics(&report, "selftests: timers: posix_timers"),
        [
            "selftests: timers: posix_timers",
            "TAP version 13",
            "1..2",
            "ok 1 Check itimer virtual",
            "ok 2 Check itimer prof",
            "# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0",
        ]
    );
    assert_eq!(
        diagnostics(&report, "selftests: timers: rtcpie"),
        [
            "selftests: timers: rtcpie",
            "rtcpie: /dev/rtc0 is not available"
        ]
    );
    assert_eq!(
        diagnostics(&report, "selftests: timers: nsleep-lat"),
        ["selftests: timers: nsleep-lat"]
    );
    assert_eq!(
        diagnostics(&report, "selftests: timers: set-timer-lat"),
        [
            "selftests: timers: set-timer-lat",
            "set-timer-lat: timer_create CLOCK_BOOTTIME_ALARM: Operation not supported",
        ]
    );
    assert_eq!(report.problems, [] as [&str; 0]);
    assert!(!report.passed());
}

#[test]
fn kunit_between_unrelated_kernel_lines() {
    let report = parse_ktap(KUNIT_INTERLEAVED);
    assert_eq!(
        rows(&report),
        [
            ("hash_table_test.hash_add_find", Ok, ""),
            ("hash_table_test.hash_del_missing", Ok, ""),
            ("hash_table_test", Ok, ""),
            ("crc_test.crc32c_vectors", Ok, ""),
            ("crc_test", Ok, ""),
        ]
    );
    only_these_have_diagnostics(&report, &[]);
    assert_eq!(report.problems, [] as [&str; 0]);
    assert!(report.passed());
}

#[test]
fn carriage_returns_from_a_serial_console() {
    assert!(CONSOLE_CRLF.contains("\r\n") && CONSOLE_CRLF.contains("\r\r\n"));
    let report = parse_ktap(CONSOLE_CRLF);
    assert_eq!(
        rows(&report),
        [
            ("uart_test.uart_loopback", NotOk, ""),
            ("uart_test.uart_baud_table", Ok, ""),
            ("uart_test", NotOk, ""),
            ("console_test", Skip, "no console"),
        ]
    );
    assert_eq!(
        diagnostics(&report, "uart_test.uart_loopback"),
        [
            "uart_loopback: EXPECTATION FAILED at drivers/tty/uart_kunit.c:77",
            "Expected rx == tx, but",
            "    rx == 0 (0x0)",
            "    tx == 85 (0x55)",
        ]
    );
    only_these_have_diagnostics(&report, &["uart_test.uart_loopback"]);
    assert_eq!(report.problems, [] as [&str; 0]);
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("\\r"), "{json}");
}

#[test]
fn kselftest_bail_out_stops_the_stream() {
    let report = parse_ktap(KSELFTEST_BAIL_OUT);
    assert_eq!(rows(&report), [("selftests: net: socket", Ok, "")]);
    assert_eq!(
        diagnostics(&report, "selftests: net: socket"),
        ["selftests: net: socket"]
    );
    assert_eq!(
        report.problems,
        [
            "Bail out! socketpair(AF_UNIX) failed: Operation not permitted",
            "the stream: 1 of 3 planned results",
        ]
    );
    assert!(!report.passed());
}

#[test]
fn every_directive_and_hashes_in_names() {
    let report = parse_ktap(DIRECTIVES);
    assert_eq!(
        rows(&report),
        [
            ("clock_settime_negative", Xfail, "rejected on this arch"),
            ("hrtimer_long_sleep", NotOk, "TIMEOUT 30 seconds"),
            ("test_3", NotOk, "ERROR could not open /dev/watchdog"),
            ("pidfd_poll_exit", Ok, "XPASS fixed upstream"),
            ("vdso_time", Todo, "not wired up on riscv"),
            ("cgroup_freeze", Skip, "needs cgroup v2"),
            ("test_case#1", Ok, ""),
            ("check return code", Ok, "rcode=0"),
            (
                "mount_setattr_idmapped",
                NotOk,
                "ERROR EPERM from mount_setattr"
            ),
            ("user_ns_nesting", Ok, "SKIPPED is not a directive"),
        ]
    );
    only_these_have_diagnostics(&report, &[]);
    assert_eq!(report.problems, [] as [&str; 0]);
    assert!(!report.passed());
}
