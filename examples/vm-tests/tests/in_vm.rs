//! Tests whose bodies run in a VM. Each needs a kernel vmlane can find (`scripts/setup` puts
//! some in its cache); without one they say so and skip, or fail under
//! `VMLANE_E2E_REQUIRED=1`.

use std::time::Duration;
use vmlane::{LaunchError, Run, RunResult};

/// Runs in a VM, or explains why the test cannot.
fn in_vm(run: Run) -> Option<RunResult> {
    match run.timeout(Duration::from_secs(120)).output() {
        Ok(result) => Some(result),
        Err(LaunchError::Kernel(error)) if std::env::var_os("VMLANE_E2E_REQUIRED").is_none() => {
            eprintln!("skipped: no kernel to boot ({error})");
            None
        }
        Err(error) => panic!("vmlane could not run the test: {error}"),
    }
}

#[test]
fn the_guest_runs_our_kernel_and_sees_this_directory() {
    let here = std::env::current_dir().unwrap();
    let Some(result) = in_vm(Run::new(["sh", "-c", "cat /proc/version; pwd"])) else {
        return;
    };
    assert!(result.success(), "{:?}\n{}", result.outcome, result.console);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.starts_with("Linux version "), "{stdout}");
    assert!(stdout.contains(&here.display().to_string()), "{stdout}");
    assert!(result.splats.is_empty(), "{:?}", result.splats);
}

#[test]
fn a_probe_reports_an_event_that_a_partial_pattern_matches() {
    let probe = r#"printf '%s\n' '{"kind":"probe","status":"syscall_error","data":{"syscall":468,"errno_name":"ENOTSUP"}}'"#;
    let Some(result) = in_vm(Run::new(["sh", "-c", probe]).env("PROBE", "1")) else {
        return;
    };
    assert!(result.success(), "{:?}", result.outcome);
    let wanted = serde_json::json!({"kind": "probe", "data": {"errno_name": "ENOTSUP"}});
    assert!(
        result
            .events
            .iter()
            .any(|e| vmlane_checks_match(&wanted, &e.value)),
        "{:?}",
        result.events
    );
}

#[test]
fn a_kernel_panic_is_an_outcome_with_its_splat() {
    let Some(result) = in_vm(Run::new(["sh", "-c", "echo c > /proc/sysrq-trigger"])) else {
        return;
    };
    assert!(!result.success());
    assert_eq!(result.exit_code(), 125, "{:?}", result.outcome);
    assert!(
        result.splats.iter().any(|s| s.first_line.contains("sysrq")),
        "{:?}",
        result.splats
    );
}

#[test]
fn a_profile_shapes_the_vm_as_it_does_for_vmlane_run() {
    let script = "cat /proc/sys/kernel/panic_on_warn; \
                  mountpoint -q /sys/kernel/debug && echo debugfs";
    let Some(result) = in_vm(Run::new(["sh", "-c", script]).profile("debug")) else {
        return;
    };
    assert!(result.success(), "{:?}\n{}", result.outcome, result.console);
    assert_eq!(String::from_utf8_lossy(&result.stdout), "1\ndebugfs\n");
}

/// Subset matching, as `vmlane test` does it for `expect.events`.
fn vmlane_checks_match(pattern: &serde_json::Value, value: &serde_json::Value) -> bool {
    vmlane::events_match(pattern, value)
}

#[test]
fn what_the_guest_writes_to_a_writable_directory_is_the_tests_to_read() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rwdir-{nanos}"));
    std::fs::create_dir_all(&out).unwrap();
    let run = Run::new(["sh", "-c", "uname -r > /mnt/out/release"])
        .rwdir(format!("{}=/mnt/out", out.display()));
    let Some(result) = in_vm(run) else {
        return;
    };
    assert!(result.success(), "{:?}\n{}", result.outcome, result.console);
    let release = std::fs::read_to_string(out.join("release")).unwrap();
    assert!(!release.trim().is_empty(), "{release:?}");
    std::fs::remove_dir_all(&out).unwrap();
}
