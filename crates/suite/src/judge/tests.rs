//! The judge on made-up runs: a parsed test, an outcome, a console and a stdout, no VM.

use super::*;
use crate::load::parse;
use std::path::Path;

const TIMEOUT: Duration = Duration::from_secs(30);
const EXITED_0: Outcome = Outcome::Completed(GuestStatus::Exited(0));

/// An ordinary Linux boot to a command that printed one probe line.
const BOOT: &str = "\
[    0.000000] Linux version 6.1.0 (vmlane@build) #1 SMP PREEMPT_DYNAMIC
[    0.512345] Run /init as init process
[    0.600000] probe: op 7
";

/// A sysrq crash as Linux 6.1 prints it.
const SYSRQ_PANIC: &str = "\
[    2.000000] sysrq: Trigger a crash
[    2.000021] Kernel panic - not syncing: sysrq triggered crash
[    2.000022] CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0 #1
[    2.000023] Call Trace:
[    2.000024]  <TASK>
[    2.000025]  sysrq_handle_crash+0x16/0x20
[    2.000026]  </TASK>
[    2.000027] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---
";

/// FreeBSD's first report on a NULL dereference; the `panic:` line after it may be lost.
const FREEBSD_TRAP: &str = "\
Fatal trap 12: page fault while in kernel mode
cpuid = 0; apic id = 00
fault virtual address\t= 0x0
trap number\t\t= 12
";

/// A WARNING from a module that did not stop the command.
const WARNING: &str = "\
[    1.100001] WARNING: CPU: 0 PID: 1 at drivers/misc/vmlane_probe.c:42 probe_write+0x2b/0x40
[    1.100002] Modules linked in:
[    1.100013] Call Trace:
[    1.100014]  <TASK>
[    1.100015]  vfs_write+0xb9/0x3f0
[    1.100020]  </TASK>
[    1.100021] ---[ end trace 0000000000000000 ]---
";

/// A test named `t` in `/suites/s.toml` with `extra` lines added to its table.
fn test_with(extra: &str) -> Test {
    test_in(Path::new("/suites/s.toml"), extra)
}

fn test_in(file: &Path, extra: &str) -> Test {
    let text = format!("[[test]]\nname = \"t\"\ncommand = \"./probe\"\n{extra}\n");
    parse(&text, file).unwrap().tests.remove(0)
}

fn finished<'a>(outcome: &'a Outcome, console: &'a str, stdout: &'a str) -> Finished<'a> {
    Finished {
        outcome,
        console,
        stdout,
        timeout: TIMEOUT,
        debug_info: None,
    }
}

fn verdict(test: &Test, outcome: &Outcome, console: &str, stdout: &str) -> Verdict {
    judge(test, &finished(outcome, console, stdout), false).unwrap()
}

#[test]
fn a_clean_run_with_exit_0_passes_with_no_reasons() {
    let v = verdict(&test_with(""), &EXITED_0, BOOT, "hello\n");
    assert_eq!(
        v,
        Verdict {
            status: Status::Passed,
            exit: Some(0),
            reasons: vec![],
            splats: vec![],
            subtests: vec![],
        }
    );
    assert!(v.passed());
}

#[test]
fn a_wrong_exit_code_fails_naming_both_codes() {
    let v = verdict(
        &test_with(""),
        &Outcome::Completed(GuestStatus::Exited(2)),
        BOOT,
        "",
    );
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.exit, Some(2));
    assert_eq!(v.reasons, ["exit status 2, expected 0"]);
}

#[test]
fn the_expected_nonzero_exit_code_passes() {
    let v = verdict(
        &test_with("expect.exit = 2"),
        &Outcome::Completed(GuestStatus::Exited(2)),
        BOOT,
        "",
    );
    assert_eq!(v.status, Status::Passed, "{v:?}");
}

#[test]
fn a_command_not_found_fails_and_says_so() {
    let v = verdict(
        &test_with(""),
        &Outcome::Completed(GuestStatus::NotFound),
        BOOT,
        "",
    );
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.exit, Some(127));
    assert_eq!(
        v.reasons,
        ["exit status 127 (command not found), expected 0"]
    );
}

#[test]
fn a_hang_names_the_timeout_and_the_console_tail_first_and_stays_a_hang() {
    let console: String = (1..=12).map(|i| format!("line {i}\n")).collect();
    let test = test_with("expect.console = [\"never printed\"]");
    let v = verdict(&test, &Outcome::TimedOut, &console, "");
    assert_eq!(
        v.status,
        Status::Hang,
        "other failures do not turn it into a fail"
    );
    assert_eq!(v.exit, None);
    let tail: Vec<String> = (3..=12).map(|i| format!("line {i}")).collect();
    assert_eq!(
        v.reasons[0],
        format!("no result within 30s; console ends:\n{}", tail.join("\n"))
    );
    assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
    assert!(v.reasons[1].contains("never printed"), "{:?}", v.reasons);
}

#[test]
fn an_interrupted_run_is_interrupted_and_nothing_else_is_checked() {
    let test = test_with("expect.exit = 3\nexpect.console = [\"never printed\"]");
    let v = verdict(&test, &Outcome::Interrupted(2), BOOT, "");
    assert_eq!(v.status, Status::Interrupted);
    assert_eq!(v.reasons, ["interrupted"]);
    assert_eq!(v.exit, None);
}

#[test]
fn an_undeclared_panic_fails_with_its_report() {
    let outcome = Outcome::KernelPanic("Kernel panic - not syncing: sysrq triggered crash".into());
    let v = verdict(&test_with(""), &outcome, SYSRQ_PANIC, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(
        v.reasons,
        ["the kernel reported panic: Kernel panic - not syncing: sysrq triggered crash"],
        "the splat is the one reason; the panic is not reported twice"
    );
    assert_eq!(v.splats.len(), 1);
    assert!(
        v.splats[0].contains("sysrq_handle_crash"),
        "{}",
        v.splats[0]
    );
}

#[test]
fn a_panic_missing_from_the_console_still_fails() {
    let outcome = Outcome::KernelPanic("Kernel panic - not syncing: lost".into());
    let v = verdict(&test_with(""), &outcome, BOOT, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(
        v.reasons,
        ["the guest kernel panicked: Kernel panic - not syncing: lost"]
    );
}

#[test]
fn a_declared_panic_passes() {
    let test = test_with("expect.splats = [{ kind = \"panic\", contains = \"sysrq\" }]");
    let outcome = Outcome::KernelPanic("Kernel panic - not syncing: sysrq triggered crash".into());
    let v = verdict(&test, &outcome, SYSRQ_PANIC, "");
    assert_eq!(v.status, Status::Passed, "{v:?}");
    assert_eq!(v.exit, None);
    assert!(v.splats.is_empty());
}

#[test]
fn a_declared_panic_with_an_exit_expectation_fails_as_the_command_never_finished() {
    let test = test_with("expect.exit = 0\nexpect.splats = [{ kind = \"panic\" }]");
    let outcome = Outcome::KernelPanic("Kernel panic - not syncing: sysrq triggered crash".into());
    let v = verdict(&test, &outcome, SYSRQ_PANIC, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(
        v.reasons,
        ["the command never finished: the kernel panicked"]
    );
}

#[test]
fn a_declared_freebsd_fatal_trap_counts_as_the_panic() {
    let test = test_with("expect.splats = [{ kind = \"fatal_trap\" }]");
    let outcome = Outcome::KernelPanic("Fatal trap 12: page fault while in kernel mode".into());
    let v = verdict(&test, &outcome, FREEBSD_TRAP, "");
    assert_eq!(v.status, Status::Passed, "{v:?}");
}

#[test]
fn an_undeclared_freebsd_fatal_trap_fails_once_as_the_panic() {
    let outcome = Outcome::KernelPanic("Fatal trap 12: page fault while in kernel mode".into());
    let v = verdict(&test_with(""), &outcome, FREEBSD_TRAP, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(
        v.reasons,
        ["the kernel reported fatal_trap: Fatal trap 12: page fault while in kernel mode"]
    );
}

#[test]
fn an_unexpected_warning_fails_even_with_exit_0() {
    let console = format!("{BOOT}{WARNING}");
    let v = verdict(&test_with(""), &EXITED_0, &console, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.exit, Some(0));
    assert_eq!(
        v.reasons,
        ["the kernel reported warning: WARNING: CPU: 0 PID: 1 at \
          drivers/misc/vmlane_probe.c:42 probe_write+0x2b/0x40"]
    );
    assert!(v.splats[0].contains("vfs_write"), "{:?}", v.splats);
}

#[test]
fn an_expected_splat_that_did_not_happen_fails() {
    let test = test_with("expect.splats = [{ kind = \"warning\", contains = \"probe\" }]");
    let v = verdict(&test, &EXITED_0, BOOT, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(
        v.reasons,
        ["expected splat not seen: a warning splat whose first line has \"probe\""]
    );
}

#[test]
fn console_lines_present_and_absent_pass_when_they_hold() {
    let test = test_with(
        "expect.console = [\"Linux version\", { regex = \"probe: op [0-9]+\" }]\n\
         expect.console_in_order = true\n\
         expect.console_absent = [\"BUG:\"]",
    );
    let v = verdict(&test, &EXITED_0, BOOT, "");
    assert_eq!(v.status, Status::Passed, "{v:?}");
}

#[test]
fn a_missing_console_line_and_a_forbidden_one_are_both_reasons() {
    let test = test_with(
        "expect.console = [\"no such line\"]\nexpect.console_absent = [\"Linux version\"]",
    );
    let v = verdict(&test, &EXITED_0, BOOT, "");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
    assert!(v.reasons[0].contains("no such line"), "{:?}", v.reasons);
    assert!(
        v.reasons[1].contains("forbidden") && v.reasons[1].contains("Linux version"),
        "{:?}",
        v.reasons
    );
}

#[test]
fn console_lines_out_of_order_fail_when_order_is_asked() {
    let test = test_with(
        "expect.console = [\"probe: op\", \"Linux version\"]\nexpect.console_in_order = true",
    );
    let v = verdict(&test, &EXITED_0, BOOT, "");
    assert_eq!(v.status, Status::Failed);
    assert!(v.reasons[0].contains("too early"), "{:?}", v.reasons);
}

#[test]
fn stdout_lines_are_checked_in_stdout_and_their_reasons_say_stdout() {
    let test = test_with("expect.stdout = [\"hello\", { regex = \"^never printed$\" }]");
    let v = verdict(&test, &EXITED_0, "Linux version\n", "hello\n");
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert!(v.reasons[0].starts_with("stdout: "), "{:?}", v.reasons);
    assert!(v.reasons[0].contains("never printed"), "{:?}", v.reasons);
}

#[test]
fn events_match_partially_from_stdout_or_the_console() {
    let test = test_with(
        "expect.events = [{ kind = \"probe\", data = { errno_name = \"ENOTSUP\" } }, \
         { kind = \"boot\" }]",
    );
    let stdout =
        "{\"kind\":\"probe\",\"pid\":12,\"data\":{\"errno_name\":\"ENOTSUP\",\"errno\":95}}\n";
    let console = format!("{BOOT}[    0.700000] {{\"kind\":\"boot\",\"ms\":700}}\n");
    let v = verdict(&test, &EXITED_0, &console, stdout);
    assert_eq!(v.status, Status::Passed, "{v:?}");
}

#[test]
fn a_missing_event_fails_showing_the_closest_one() {
    let test =
        test_with("expect.events = [{ kind = \"probe\", data = { errno_name = \"ENOTSUP\" } }]");
    let stdout = "{\"kind\":\"probe\",\"data\":{\"errno_name\":\"EINVAL\"}}\n";
    let v = verdict(&test, &EXITED_0, BOOT, stdout);
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("ENOTSUP") && v.reasons[0].contains("EINVAL"),
        "{:?}",
        v.reasons
    );
}

#[test]
fn ktap_not_ok_and_truncation_fail_and_every_subtest_is_kept() {
    let test = test_with("expect.ktap = \"stdout\"");
    let stdout = "TAP version 13\n1..3\nok 1 alpha\nnot ok 2 beta\n";
    let v = verdict(&test, &EXITED_0, BOOT, stdout);
    assert_eq!(v.status, Status::Failed);
    assert_eq!(v.reasons[0], "ktap: not ok beta");
    assert_eq!(v.reasons.len(), 2, "{:?}", v.reasons);
    assert!(v.reasons[1].starts_with("ktap: "), "{:?}", v.reasons);
    let names: Vec<&str> = v.subtests.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
}

#[test]
fn ktap_on_the_console_passes_when_all_ok() {
    let test = test_with("expect.ktap = \"console\"");
    let console = format!(
        "{BOOT}[    1.000000] KTAP version 1\n[    1.000001] 1..1\n[    1.000002] ok 1 example\n"
    );
    let v = verdict(&test, &EXITED_0, &console, "not ok 1 ignored\n");
    assert_eq!(v.status, Status::Passed, "{v:?}");
    assert_eq!(v.subtests.len(), 1);
}

#[test]
fn a_kernel_that_ran_no_kunit_tests_fails_a_console_ktap_test_saying_what_to_build() {
    let test = test_with("expect.ktap = \"console\"");
    let console = format!("{BOOT}[    0.300000] KTAP version 1\n[    0.300001] 1..0\n");
    let v = verdict(&test, &EXITED_0, &console, "");
    assert_eq!(v.status, Status::Failed, "{v:?}");
    assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("ran no KUnit tests"),
        "{:?}",
        v.reasons
    );
    assert!(
        v.reasons[0].contains("KUNIT_EXAMPLE_TEST"),
        "{:?}",
        v.reasons
    );
    assert!(
        v.reasons[0].contains("build some in (`vmlane kernel build")
            && !v.reasons[0].contains("  "),
        "one line, single-spaced: {:?}",
        v.reasons
    );
    // A command's own empty KTAP (a kselftest with nothing to run) is its business.
    let test = test_with("expect.ktap = \"stdout\"");
    let v = verdict(&test, &EXITED_0, BOOT, "KTAP version 1\n1..0\n");
    assert_eq!(v.status, Status::Passed, "{v:?}");
}

#[test]
fn kunit_ktap_printed_at_boot_gives_one_verdict_cold_and_warm() {
    // KUnit's built-in tests print their KTAP while the kernel boots: in a warm run's log that
    // is the saved boot, before the restore line and the run's own console.
    let test = test_with("expect.ktap = \"console\"\nexpect.console = [\"Run /init\"]");
    let kunit = |second: &str| {
        format!(
            "[    0.300000] KTAP version 1\n[    0.300001] 1..2\n[    0.300002] ok 1 example\n\
             [    0.300003] {second} 2 list-kunit-test\n"
        )
    };
    let run_part = "[    0.700000] random: crng reseeded\n";
    for second in ["ok", "not ok"] {
        let cold = format!("{}{BOOT}{run_part}", kunit(second));
        let warm = format!(
            "{}{BOOT}{}\n{run_part}",
            kunit(second),
            vmlane_checks::golden::RESTORE_LINE
        );
        let cold = verdict(&test, &EXITED_0, &cold, "");
        let warm = verdict(&test, &EXITED_0, &warm, "");
        assert_eq!(cold.status, warm.status, "{second}: {warm:?}");
        assert_eq!(cold.reasons, warm.reasons, "{second}");
        assert_eq!(warm.subtests.len(), 2, "{second}: {warm:?}");
        let expected = if second == "ok" {
            Status::Passed
        } else {
            Status::Failed
        };
        assert_eq!(warm.status, expected, "{second}: {warm:?}");
    }
}

#[test]
fn other_endings_fail_with_their_own_description() {
    for outcome in [
        Outcome::VmDied(Some("qemu: terminating on signal 15".into())),
        Outcome::InitFailed {
            step: "mount the host root".into(),
            message: "ENODEV".into(),
        },
    ] {
        let v = verdict(&test_with(""), &outcome, BOOT, "");
        assert_eq!(v.status, Status::Failed);
        assert_eq!(v.exit, None);
        assert_eq!(v.reasons, [outcome.to_string()]);
    }
}

#[test]
fn a_golden_log_is_blessed_into_new_directories_then_compared() {
    let dir = tempfile::tempdir().unwrap();
    let test = test_in(
        &dir.path().join("s.toml"),
        "expect.golden = \"golden/t.log\"\n\
         expect.substitutions = [{ regex = \"op [0-9]+\", replace = \"op N\" }]",
    );
    let golden = dir.path().join("golden/t.log");

    let missing = verdict(&test, &EXITED_0, BOOT, "");
    assert_eq!(missing.status, Status::Failed);
    assert!(
        missing.reasons[0].contains("--bless"),
        "{:?}",
        missing.reasons
    );

    let blessed = judge(&test, &finished(&EXITED_0, BOOT, ""), true).unwrap();
    assert_eq!(blessed.status, Status::Passed, "{blessed:?}");
    let written = std::fs::read_to_string(&golden).unwrap();
    assert!(written.contains("[TIMESTAMP] probe: op N\n"), "{written}");

    let later_boot = BOOT.replace("0.600000] probe: op 7", "0.650000] probe: op 9");
    let again = verdict(&test, &EXITED_0, &later_boot, "");
    assert_eq!(again.status, Status::Passed, "{again:?}");

    let differs = verdict(
        &test,
        &EXITED_0,
        &BOOT.replace("Run /init", "Run /sbin/init"),
        "",
    );
    assert_eq!(differs.status, Status::Failed);
    assert!(
        differs.reasons[0].starts_with(&format!("console differs from {}", golden.display()))
            && differs.reasons[0].contains("+[TIMESTAMP] Run /sbin/init"),
        "{:?}",
        differs.reasons
    );
}

#[test]
fn blessing_where_no_directory_can_be_made_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("golden"), "a file, not a directory").unwrap();
    let test = test_in(
        &dir.path().join("s.toml"),
        "expect.golden = \"golden/t.log\"",
    );
    let error = judge(&test, &finished(&EXITED_0, BOOT, ""), true).unwrap_err();
    assert!(matches!(error, JudgeError::CreateDir { .. }), "{error:?}");
    assert!(error.to_string().contains("golden"), "{error}");
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn a_bad_expectation_in_a_hand_built_test_is_an_error_naming_file_and_test() {
    let mut test = test_with("");
    test.expect.console = vec![ConsoleLine::Regex { regex: "(".into() }];
    let error = judge(&test, &finished(&EXITED_0, BOOT, ""), false).unwrap_err();
    assert_eq!(
        error.to_string(),
        "/suites/s.toml: test \"t\": an expectation cannot be checked"
    );
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert!(cause.contains("invalid regex"), "{cause}");

    let mut test = test_with("");
    test.expect.splats = vec![crate::ExpectedSplat {
        kind: Some("oopsie".into()),
        contains: None,
    }];
    let error = judge(&test, &finished(&EXITED_0, BOOT, ""), false).unwrap_err();
    assert!(matches!(error, JudgeError::Expectation { .. }), "{error:?}");
}

#[test]
fn statuses_serialise_in_snake_case() {
    let names: Vec<String> = [
        Status::Passed,
        Status::Failed,
        Status::Hang,
        Status::Error,
        Status::Interrupted,
    ]
    .iter()
    .map(|s| serde_json::to_string(s).unwrap())
    .collect();
    assert_eq!(
        names,
        [
            "\"passed\"",
            "\"failed\"",
            "\"hang\"",
            "\"error\"",
            "\"interrupted\""
        ]
    );
}

/// A program standing in for a kernel: two functions a WARNING's backtrace names.
const PROBE_C: &str = "\
volatile int sink;

__attribute__((noinline, noclone)) int probe_write(int x)
{
	sink = x;
	return x + 1;
}

__attribute__((noinline, noclone)) int vfs_write(int x)
{
	int r = probe_write(x);
	sink = r;
	return r;
}

int main(int argc, char **argv)
{
	(void)argv;
	return vfs_write(argc);
}
";

/// [`PROBE_C`] compiled in `dir` with `flags`, or `None` (with a message) without `cc`.
fn compile_probe(dir: &Path, flags: &[&str]) -> Option<PathBuf> {
    std::fs::write(dir.join("probe.c"), PROBE_C).unwrap();
    let built = std::process::Command::new("cc")
        .current_dir(dir)
        .args(flags)
        .args(["-O2", "-fno-pie", "-no-pie", "probe.c", "-o", "probe"])
        .status();
    match built {
        Ok(status) => {
            assert!(status.success(), "cc failed on probe.c");
            Some(dir.join("probe"))
        }
        Err(why) if std::env::var("VMLANE_E2E_REQUIRED").as_deref() == Ok("1") => {
            panic!("VMLANE_E2E_REQUIRED=1 but cc cannot run: {why}")
        }
        Err(why) => {
            println!("skipped: cc cannot run ({why}); install a C compiler (Debian: gcc)");
            None
        }
    }
}

/// The line number after `frame` and `file:` in `text`.
fn line_after(text: &str, frame: &str, file: &str) -> u32 {
    let start = text
        .find(frame)
        .unwrap_or_else(|| panic!("{frame} in {text}"))
        + frame.len();
    let rest = text[start..]
        .strip_prefix(&format!(" {file}:"))
        .unwrap_or_else(|| {
            panic!("{frame} is followed by {file}:LINE in {text}");
        });
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn a_splat_gets_source_lines_from_the_kernels_debug_info() {
    let dir = tempfile::tempdir().unwrap();
    let Some(binary) = compile_probe(dir.path(), &["-g"]) else {
        return;
    };
    let console = "\
[    1.100001] WARNING: CPU: 0 PID: 1 at drivers/misc/probe.c:42 probe_write+0x0/0x10
[    1.100013] Call Trace:
[    1.100014]  <TASK>
[    1.100015]  vfs_write+0x1/0x40
[    1.100016]  snd_write+0x1/0x40 [snd]
[    1.100020]  </TASK>
[    1.100021] ---[ end trace 0000000000000000 ]---
";
    let outcome = EXITED_0;
    let run = Finished {
        debug_info: Some(&binary),
        ..finished(&outcome, console, "")
    };
    let v = judge(&test_with(""), &run, false).unwrap();
    assert_eq!(v.splats.len(), 1, "{v:?}");
    let text = &v.splats[0];
    let line_of =
        |needle: &str| PROBE_C.lines().position(|l| l.contains(needle)).unwrap() as u32 + 1;
    let probe = line_after(text, "probe_write+0x0/0x10", "probe.c");
    assert!(
        (line_of("int probe_write")..line_of("int vfs_write")).contains(&probe),
        "{text}"
    );
    let vfs = line_after(text, "vfs_write+0x1/0x40", "probe.c");
    assert!(
        (line_of("int vfs_write")..line_of("int main")).contains(&vfs),
        "{text}"
    );
    assert!(text.contains("\n snd_write+0x1/0x40 [snd]\n"), "{text}");
    assert!(
        v.reasons[0].starts_with("the kernel reported warning: WARNING: CPU: 0 PID: 1 at"),
        "the reasons keep the report as the console has it: {:?}",
        v.reasons
    );
}

#[test]
fn a_kernel_without_debug_info_says_so_under_its_splat() {
    let dir = tempfile::tempdir().unwrap();
    let Some(binary) = compile_probe(dir.path(), &[]) else {
        return;
    };
    let outcome = EXITED_0;
    let run = Finished {
        debug_info: Some(&binary),
        ..finished(&outcome, WARNING, "")
    };
    let v = judge(&test_with(""), &run, false).unwrap();
    assert!(v.splats[0].starts_with("WARNING: CPU: 0"), "{:?}", v.splats);
    assert!(
        v.splats[0].ends_with("CONFIG_DEBUG_INFO (e.g. CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y; FreeBSD: makeoptions DEBUG=-g))"),
        "{:?}",
        v.splats
    );
    let clean = verdict(&test_with(""), &EXITED_0, BOOT, "");
    assert!(clean.splats.is_empty());
}
