//! `vmlane run --os freebsd` end to end on real QEMU, with vmlane's PVH test kernel standing
//! in for a FreeBSD kernel: it prints the command line and virtio-mmio devices it was given and
//! plays the FreeBSD guest's part (result markers, panics, prompts) as the command line asks.

mod common;

use common::{assert_code, text, Sandbox, TestKernel};
use std::path::PathBuf;
use std::process::Output;

/// The test kernel, or `None` (having said why) where it cannot be built or QEMU is missing.
fn test_kernel() -> Option<TestKernel> {
    let required = std::env::var_os("VMLANE_E2E_REQUIRED").is_some();
    let missing = |why: String| {
        assert!(!required, "{why}");
        eprintln!("skipped: {why}");
        None
    };
    let kernel = match vmlane_testkernel::pvh_kernel() {
        Ok(path) => path,
        Err(why) => return missing(format!("the PVH test kernel is not built: {why}")),
    };
    if let Err(why) = vmlane_guest_freebsd::init_binary() {
        return missing(format!("vmlane's FreeBSD init is not built: {why}"));
    }
    let makefs = common::has_program("makefs") || std::path::Path::new("/usr/sbin/makefs").exists();
    if !common::has_program("qemu-system-x86_64") || !makefs {
        return missing(
            "FreeBSD end-to-end tests need qemu-system-x86_64 and makefs (run scripts/setup)"
                .into(),
        );
    }
    Some(TestKernel {
        label: "pvh-test-kernel",
        dir: kernel.to_path_buf(),
    })
}

/// A static FreeBSD executable in the sandbox's work dir: vmlane's own init serves, since the
/// test kernel never runs it.
fn probe(sandbox: &Sandbox) -> PathBuf {
    let path = sandbox.work().join("probe");
    std::fs::write(&path, vmlane_guest_freebsd::init_binary().unwrap()).unwrap();
    path
}

fn run_action(sandbox: &Sandbox, kernel: &TestKernel, action: &str, extra: &[&str]) -> Output {
    probe(sandbox);
    let append = format!("vmlane_test.action={action}");
    let mut args = vec!["--os", "freebsd", "--append", &append];
    args.extend_from_slice(extra);
    sandbox.run(kernel, &args, &["./probe", "arg one"])
}

#[test]
fn the_guests_status_is_the_exit_code_and_its_output_streams() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let log = sandbox.root.path().join("console.log");
    let output = run_action(
        &sandbox,
        &kernel,
        "exit:7",
        &["--log", log.to_str().unwrap()],
    );
    assert_code(&kernel, &output, 7);
    assert_eq!(
        text(&output.stdout),
        "hello from the test kernel\n{\"kind\":\"probe\",\"status\":\"ok\",\"data\":{\"n\":1}}\n"
    );
    let console = std::fs::read_to_string(&log).unwrap();
    let cmdline = console
        .lines()
        .find_map(|l| l.strip_prefix("vmlane-testkernel: cmdline: "))
        .unwrap_or_else(|| panic!("no command line in the console:\n{console}"));
    for word in [
        "vfs.root.mountfrom=ufs:/dev/vtbd0",
        "init_path=/vmlane/init",
        "kern.panic_reboot_wait_time=0",
        "debug.debugger_on_panic=0",
        "vmlane_test.action=exit:7",
    ] {
        assert!(
            cmdline.split(' ').any(|w| w == word),
            "{word} missing from {cmdline}"
        );
    }
    if common::accel() == "tcg" {
        assert!(cmdline.contains("machdep.disable_tsc_calibration=0"));
    }
    // The root image reached the kernel as a virtio-mmio block device named on its command line.
    assert!(
        console.lines().any(|l| l.contains("virtio_mmio:")
            && l.contains("magic=0x74726976")
            && l.contains("device_id=2")),
        "no virtio-mmio block device in the console:\n{console}"
    );
}

#[test]
fn a_signal_death_is_128_plus_n() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "signal:12", &[]);
    assert_code(&kernel, &output, 140);
}

#[test]
fn a_freebsd_panic_fails_the_run_with_its_panic_line_and_keeps_the_log() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "panic:vmlane_test_panic", &[]);
    assert_code(&kernel, &output, 125);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("panic: vmlane test panic"), "{stderr}");
    // The backtrace is quoted with its function names.
    assert!(stderr.contains("KDB: stack backtrace:"), "{stderr}");
    assert!(stderr.contains("at vmlane_test_panic+0x11"), "{stderr}");
    let log = stderr
        .lines()
        .find_map(|l| l.strip_prefix("vmlane: console log: "))
        .unwrap_or_else(|| panic!("no console log named: {stderr}"));
    let kept = std::fs::read_to_string(log).unwrap();
    assert!(kept.contains("panic: vmlane test panic"), "{kept}");
    std::fs::remove_file(log).unwrap();
}

#[test]
fn a_kernel_stopped_at_db_ends_the_run_at_once_not_at_the_timeout() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let output = run_action(
        &sandbox,
        &kernel,
        "panic:stuck_in_ddb",
        &["--append", "vmlane_test.debugger=1", "--timeout", "600"],
    );
    assert_code(&kernel, &output, 125);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("panic: stuck in ddb"), "{stderr}");
}

#[test]
fn a_fatal_trap_is_a_panic() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "trap", &[]);
    assert_code(&kernel, &output, 125);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("page fault"), "{stderr}");
}

#[test]
fn a_kernel_waiting_at_mountroot_fails_at_once_with_the_mount_error() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "mountroot", &["--timeout", "600"]);
    assert_code(&kernel, &output, 125);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("mountroot>"), "{stderr}");
    assert!(stderr.contains("failed with error 19"), "{stderr}");
}

#[test]
fn a_silent_or_flooding_guest_times_out() {
    let Some(kernel) = test_kernel() else { return };
    for action in ["hang", "flood"] {
        let sandbox = Sandbox::new();
        let output = run_action(&sandbox, &kernel, action, &["--timeout", "4"]);
        assert_code(&kernel, &output, 124);
    }
}

#[test]
fn an_image_run_attaches_the_image_and_a_run_disk_and_boots_without_vmlanes_init() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let image = sandbox.work().join("freebsd.img");
    std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
    let log = sandbox.root.path().join("console.log");
    let output = sandbox.run(
        &kernel,
        &[
            "--os",
            "freebsd",
            "--image",
            "freebsd.img",
            "--append",
            "vmlane_test.action=exit:0",
            "--log",
            log.to_str().unwrap(),
        ],
        &["/usr/bin/true"],
    );
    assert_code(&kernel, &output, 0);
    let console = std::fs::read_to_string(&log).unwrap();
    let disks = console
        .lines()
        .filter(|l| l.contains("virtio_mmio:") && l.contains("device_id=2"))
        .count();
    assert_eq!(disks, 2, "image and run disk expected:\n{console}");
    assert!(!console.contains("init_path="), "{console}");
    assert_eq!(std::fs::read(&image).unwrap(), vec![0u8; 1 << 20]);
}

#[test]
fn bad_input_is_refused_before_any_vm_starts() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let linux_elf = std::env::current_exe().unwrap();
    std::fs::copy(&linux_elf, sandbox.work().join("linux-program")).unwrap();
    for (argv, extra, expected) in [
        (
            "./script.sh",
            &["--os", "freebsd"][..],
            "is not an ELF executable",
        ),
        (
            "./linux-program",
            &["--os", "freebsd"][..],
            "is not a FreeBSD executable",
        ),
        ("./missing", &["--os", "freebsd"][..], "cannot be read"),
        ("./probe", &["--os", "linux"][..], "is a FreeBSD kernel"),
        // bhyve runs on FreeBSD hosts only; here it is simply not there.
        ("./probe", &["--backend", "bhyve"][..], "bhyve"),
    ] {
        probe(&sandbox);
        let output = sandbox.run(&kernel, extra, &[argv]);
        assert_code(&kernel, &output, 125);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{argv}: {stderr}");
    }
}
