//! `vmlane run --os freebsd` end to end on real QEMU, with vmlane's PVH test kernel standing
//! in for a FreeBSD kernel: it prints the command line and virtio-mmio devices it was given and
//! plays the FreeBSD guest's part as the command line asks: frames on COM2 when the run gives
//! the VM that port (what the minimal guest's init, and vmlane-relay in an image, send), result
//! markers on the console otherwise, panics, prompts.

mod common;

use common::freebsd::{probe, stand_in_root, test_kernel};
use common::{assert_code, text, Sandbox, TestKernel};
use std::process::Output;

fn run_action(sandbox: &Sandbox, kernel: &TestKernel, action: &str, extra: &[&str]) -> Output {
    probe(sandbox);
    let append = format!("vmlane_test.action={action}");
    let mut args = vec!["--os", "freebsd", "--append", &append];
    if kernel.label == "pvh-test-kernel" {
        // Under TCG vmlane would enter it through its boot stub; this kernel tests PVH.
        args.extend_from_slice(&["--boot", "pvh"]);
    }
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
        "hint.uart.1.at=isa",
        "hint.uart.1.port=0x2F8",
        "hint.uart.1.irq=3",
    ] {
        assert!(
            cmdline.split(' ').any(|w| w == word),
            "{word} missing from {cmdline}"
        );
    }
    if common::accel() == "tcg" {
        assert!(cmdline.contains("machdep.disable_tsc_calibration=0"));
    }
    // The output came on COM2: the console has the start marker and not the output, so the
    // probe's event is seen once.
    assert!(console.contains(":start"), "{console}");
    assert!(!console.contains("hello from the test kernel"), "{console}");
    assert!(!console.contains(r#""kind":"probe""#), "{console}");
    // The root image reached the kernel as a virtio-mmio block device named on its command line.
    assert!(
        console.lines().any(|l| l.contains("virtio_mmio:")
            && l.contains("magic=0x74726976")
            && l.contains("device_id=2")),
        "no virtio-mmio block device in the console:\n{console}"
    );
}

#[test]
fn a_signal_death_is_128_plus_n_and_the_kernels_line_about_it_is_not_output() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let log = sandbox.root.path().join("console.log");
    let output = run_action(
        &sandbox,
        &kernel,
        "signal:12",
        &["--log", log.to_str().unwrap()],
    );
    assert_code(&kernel, &output, 140);
    assert_eq!(text(&output.stdout), "");
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(
        console.contains("pid 14 (probe), jid 0, uid 0: exited on signal 12"),
        "{console}"
    );
}

#[test]
fn stdout_and_stderr_arrive_apart_and_byte_exact_and_kernel_messages_stay_on_the_console() {
    let Some(kernel) = test_kernel() else { return };
    assert_streams_apart(run_action, &kernel);
}

/// The `streams` action: stdout and stderr byte-exact and apart, the kernel's own line about
/// the command's signal only in the console log, and none of the output there.
fn assert_streams_apart(
    run: fn(&Sandbox, &TestKernel, &str, &[&str]) -> Output,
    kernel: &TestKernel,
) {
    let sandbox = Sandbox::new();
    let log = sandbox.root.path().join("console.log");
    let output = run(
        &sandbox,
        kernel,
        "streams",
        &["--log", log.to_str().unwrap()],
    );
    assert_code(kernel, &output, 0);
    assert_eq!(output.stdout, b"out 1\n\0\xff\r\n\tend");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("err 1\nerr 2, no newline"), "{stderr}");
    assert!(!stderr.contains("out 1"), "{stderr}");
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(
        console.contains("exited on signal 6 (core dumped)"),
        "{console}"
    );
    assert!(
        !console.contains("out 1") && !console.contains("err 1"),
        "{console}"
    );
}

#[test]
fn a_large_output_arrives_whole_and_in_order() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let n = 300_000;
    let output = run_action(&sandbox, &kernel, &format!("big:{n}"), &[]);
    assert_code(&kernel, &output, 0);
    let expected: Vec<u8> = (0..n).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    assert!(output.stdout == expected, "{} bytes", output.stdout.len());
}

#[test]
fn a_program_not_found_or_not_executable_is_127_or_126() {
    let Some(kernel) = test_kernel() else { return };
    for (action, code) in [("notfound", 127), ("noexec", 126)] {
        let sandbox = Sandbox::new();
        let output = run_action(&sandbox, &kernel, action, &[]);
        assert_code(&kernel, &output, code);
    }
}

#[test]
fn a_failed_step_is_reported_before_and_after_the_channel_opened() {
    let Some(kernel) = test_kernel() else { return };
    let cases = [
        (
            "fail-early:open_the_channel_/dev/cuau1",
            "open the channel /dev/cuau1",
            "ENOENT",
        ),
        ("fail:fork", "fork", "EAGAIN"),
    ];
    assert_failed_steps(run_action, &kernel, &cases);
}

/// Each (action, step, errno name) ends the run with 125 and names its step and errno.
fn assert_failed_steps(
    run: fn(&Sandbox, &TestKernel, &str, &[&str]) -> Output,
    kernel: &TestKernel,
    cases: &[(&str, &str, &str)],
) {
    for (action, step, why) in cases {
        let sandbox = Sandbox::new();
        let output = run(&sandbox, kernel, action, &[]);
        assert_code(kernel, &output, 125);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(step) && stderr.contains(why), "{stderr}");
    }
}

#[test]
fn a_panic_while_the_command_runs_ends_the_run_with_its_report_after_the_output() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "panic-mid:while_running", &[]);
    assert_code(&kernel, &output, 125);
    assert_eq!(text(&output.stdout), "before the panic\n");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("panic: while running"), "{stderr}");
    assert!(stderr.contains("at vmlane_test_panic+0x11"), "{stderr}");
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
fn a_fatal_trap_whose_report_never_ends_fails_the_run_without_a_timeout() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let started = std::time::Instant::now();
    let output = run_action(&sandbox, &kernel, "trap-hang", &[]);
    assert_code(&kernel, &output, 125);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("vmlane: console: Fatal trap 12: page fault while in kernel mode"),
        "the report is quoted: {stderr}"
    );
    assert!(stderr.contains("fault virtual address"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "ended by the panic grace, not a timeout: {:?}",
        started.elapsed()
    );
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

/// `vmlane run --image` of a stand-in image (the test kernel never reads it) with `action`.
fn run_image_action(
    sandbox: &Sandbox,
    kernel: &TestKernel,
    action: &str,
    extra: &[&str],
) -> Output {
    let image = sandbox.work().join("freebsd.img");
    std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
    let append = format!("vmlane_test.action={action}");
    let mut args = vec![
        "--os",
        "freebsd",
        "--boot",
        "pvh",
        "--image",
        "freebsd.img",
        "--append",
        &append,
    ];
    args.extend_from_slice(extra);
    let output = sandbox.run(kernel, &args, &["/usr/bin/true"]);
    assert_eq!(std::fs::read(&image).unwrap(), vec![0u8; 1 << 20]);
    output
}

#[test]
fn an_image_run_attaches_the_image_and_a_run_disk_and_reports_on_com2() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let log = sandbox.root.path().join("console.log");
    let output = run_image_action(
        &sandbox,
        &kernel,
        "exit:0",
        &["--log", log.to_str().unwrap()],
    );
    assert_code(&kernel, &output, 0);
    let console = std::fs::read_to_string(&log).unwrap();
    let disks = console
        .lines()
        .filter(|l| l.contains("virtio_mmio:") && l.contains("device_id=2"))
        .count();
    assert_eq!(disks, 2, "image and run disk expected:\n{console}");
    assert!(!console.contains("init_path="), "{console}");
    // The image's hook runs the command through vmlane-relay, which sends its output and
    // status on COM2: the VM has the port, and the output is not on the console.
    assert!(console.contains("hint.uart.1.port=0x2F8"), "{console}");
    assert!(console.contains(":start"), "{console}");
    assert!(!console.contains("hello from the test kernel"), "{console}");
    assert!(
        text(&output.stdout).starts_with("hello from the test kernel\n"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn an_image_runs_stdout_stderr_and_status_arrive_apart_on_com2() {
    let Some(kernel) = test_kernel() else { return };
    assert_streams_apart(run_image_action, &kernel);

    for (action, code) in [("signal:12", 140), ("notfound", 127), ("noexec", 126)] {
        let sandbox = Sandbox::new();
        let output = run_image_action(&sandbox, &kernel, action, &[]);
        assert_code(&kernel, &output, code);
    }
}

#[test]
fn an_image_run_that_fails_before_or_in_the_relay_says_which_step() {
    let Some(kernel) = test_kernel() else { return };
    let cases = [
        // The hook's own failure lines on the console, before the relay has the channel.
        (
            "fail-early:change_to_the_working_directory",
            "change to the working directory",
            "ENOENT",
        ),
        (
            "fail-early:start_vmlane-relay",
            "start vmlane-relay",
            "ENOENT",
        ),
        // The relay's Failed frame.
        ("fail:fork", "fork", "EAGAIN"),
    ];
    assert_failed_steps(run_image_action, &kernel, &cases);
}

#[test]
fn an_image_run_with_a_network_gets_a_virtio_net_device_on_microvm() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let log = sandbox.root.path().join("console.log");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let forward = format!("{}:22", free.local_addr().unwrap().port());
    drop(free);
    let output = run_image_action(
        &sandbox,
        &kernel,
        "exit:0",
        &[
            "--net",
            "user",
            "--forward",
            &forward,
            "--log",
            log.to_str().unwrap(),
        ],
    );
    assert_code(&kernel, &output, 0);
    let console = std::fs::read_to_string(&log).unwrap();
    let nics = console
        .lines()
        .filter(|l| l.contains("virtio_mmio:") && l.contains("device_id=1"))
        .count();
    assert_eq!(nics, 1, "one virtio-net device expected:\n{console}");
}

#[test]
fn bad_input_is_refused_before_any_vm_starts() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let linux_elf = std::env::current_exe().unwrap();
    std::fs::copy(&linux_elf, sandbox.work().join("linux-program")).unwrap();
    // This kernel is entered at PVH (under TCG vmlane would choose its boot stub).
    for (argv, extra, expected) in [
        (
            "./script.sh",
            &["--os", "freebsd", "--boot", "pvh"][..],
            "is not an ELF executable",
        ),
        (
            "./linux-program",
            &["--os", "freebsd", "--boot", "pvh"][..],
            "is not a FreeBSD executable",
        ),
        (
            "./missing",
            &["--os", "freebsd", "--boot", "pvh"][..],
            "cannot be read",
        ),
        ("./probe", &["--os", "linux"][..], "is a FreeBSD kernel"),
        // bhyve runs on FreeBSD hosts only; here it is simply not there.
        (
            "./probe",
            &["--backend", "bhyve", "--boot", "pvh"][..],
            "bhyve",
        ),
    ] {
        probe(&sandbox);
        let output = sandbox.run(&kernel, extra, &[argv]);
        assert_code(&kernel, &output, 125);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(expected), "{argv}: {stderr}");
    }
}

/// The test kernel with FreeBSD's native entry convention, booted through vmlane's stub.
fn native_kernel() -> Option<TestKernel> {
    test_kernel()?;
    match (
        vmlane_testkernel::native_kernel(),
        vmlane_freebsd_boot::stub_binary(),
    ) {
        (Ok(path), Ok(_)) => Some(TestKernel {
            label: "native-test-kernel",
            dir: path.to_path_buf(),
        }),
        (Err(why), _) | (_, Err(why)) => {
            let why = format!("the native test kernel or the boot stub is not built: {why}");
            assert!(std::env::var_os("VMLANE_E2E_REQUIRED").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// The `vmlane-testkernel: ` lines of a console log, without the prefix.
fn reported(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("vmlane-testkernel: "))
        .collect()
}

#[test]
fn the_boot_stub_hands_over_kernel_symbols_environment_and_memory_map_on_q35_and_microvm() {
    let Some(kernel) = native_kernel() else {
        return;
    };
    for (machine, serial_flag) in [("q35", true), ("microvm", false)] {
        let sandbox = Sandbox::new();
        let log = sandbox.root.path().join("console.log");
        let output = run_action(
            &sandbox,
            &kernel,
            "exit:5",
            &[
                "--machine",
                machine,
                "--append",
                "-v",
                "--log",
                log.to_str().unwrap(),
                "-v",
            ],
        );
        assert_code(&kernel, &output, 5);
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("Native entry: the kernel has no PVH entry"),
            "{machine}: {stderr}"
        );
        let console = std::fs::read_to_string(&log).unwrap();
        let lines = reported(&console);
        let has = |wanted: &str| lines.contains(&wanted);
        let starts = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
        assert!(
            starts("module: name=/boot/kernel/kernel type=elf kernel addr=0x200000 size=0x"),
            "{machine}:\n{console}"
        );
        // -v (verbose) always; -h (serial console) on q35, where vmlane asks for it.
        let howto = if serial_flag {
            "howto=0x1800"
        } else {
            "howto=0x800"
        };
        assert!(has(howto), "{machine}: {howto} missing:\n{console}");
        for env in [
            "env: vfs.root.mountfrom=ufs:/dev/vtbd0",
            "env: kern.panic_reboot_wait_time=0",
            "env: debug.debugger_on_panic=0",
            "env: init_path=/vmlane/init",
            "env: vmlane_test.action=exit:5",
            "env: hint.uart.1.port=0x2F8",
        ] {
            assert!(has(env), "{machine}: {env} missing:\n{console}");
        }
        if common::accel() == "tcg" {
            assert!(has("env: machdep.disable_tsc_calibration=0"));
        }
        if serial_flag {
            assert!(has("env: hw.uart.console=io:0x3f8,br:115200"), "{console}");
        } else {
            // microvm's devices reach the kernel's environment from the command line.
            assert!(starts("env: virtio_mmio.device="), "{console}");
        }
        assert!(
            starts("smap: base=0x100000 length=0x"),
            "{machine}:\n{console}"
        );
        assert!(starts("ssym=0x"), "{console}");
        assert!(starts("kernend-record=0x"), "{console}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("symbols: ") && l.ends_with(", ok")),
            "{machine}:\n{console}"
        );
        assert!(has("symbol-check: ok"), "{machine}:\n{console}");
        assert_eq!(
            text(&output.stdout),
            "hello from the test kernel\n{\"kind\":\"probe\",\"status\":\"ok\",\"data\":{\"n\":1}}\n"
        );
    }
}

#[test]
fn a_panic_through_the_stub_names_its_frames_from_the_handed_over_symbols() {
    let Some(kernel) = native_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "panic:boom", &[]);
    assert_code(&kernel, &output, 125);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("panic: boom"), "{stderr}");
    for frame in [
        "at vmlane_panic+0x",
        "at vmlane_test_panic+0x",
        "at btext+0x",
    ] {
        assert!(stderr.contains(frame), "{frame} missing: {stderr}");
    }
}

#[test]
fn a_kernel_too_big_for_the_vms_memory_is_refused_before_it_starts() {
    let Some(kernel) = native_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    // The same kernel, its first segment grown to 600 MiB in memory (zero-filled, like a bss).
    let mut bytes = std::fs::read(&kernel.dir).unwrap();
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    bytes[phoff + 40..phoff + 48].copy_from_slice(&(600u64 << 20).to_le_bytes());
    let big = sandbox.work().join("big-kernel");
    std::fs::write(&big, bytes).unwrap();
    let big = TestKernel {
        label: "big-kernel",
        dir: big,
    };
    let output = run_action(&sandbox, &big, "exit:0", &["-m", "512M"]);
    assert_code(&big, &output, 125);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("MiB of guest memory"), "{stderr}");
    assert!(stderr.contains("raise it with -m"), "{stderr}");
}

#[test]
fn pvh_is_refused_for_a_kernel_without_the_note() {
    let Some(kernel) = native_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = run_action(&sandbox, &kernel, "exit:0", &["--boot", "pvh"]);
    assert_code(&kernel, &output, 125);
    assert!(text(&output.stderr).contains("no PVH entry note"));
}

#[test]
fn with_debugger_a_panic_hands_the_db_prompt_to_the_terminal_until_it_closes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let Some(kernel) = native_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    probe(&sandbox);
    let log = sandbox.root.path().join("console.log");
    let mut child = sandbox
        .command(
            &kernel,
            &[
                "--os",
                "freebsd",
                "--debugger",
                "--append",
                "vmlane_test.action=panic:into_ddb",
                "--append",
                "vmlane_test.debugger=1",
                "--log",
                log.to_str().unwrap(),
                "--timeout",
                "600",
            ],
            &["./probe"],
        )
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("the console is yours") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "{seen}");
        seen.push_str(&line);
    }
    // The panic's report is shown with the prompt; closing the terminal ends the run.
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(125), "{seen}{rest}");
    assert!(rest.contains("panic: into ddb"), "{seen}{rest}");
    sandbox.assert_nothing_left(&kernel);
    let console = std::fs::read_to_string(&log).unwrap();
    assert!(
        !console.contains("env: debug.debugger_on_panic=0"),
        "{console}"
    );
    assert!(
        !console.contains("env: kern.panic_reboot_wait_time=0"),
        "{console}"
    );
}

#[test]
fn vmlane_test_runs_freebsd_probes_and_checks_their_events_and_panics() {
    let Some(kernel) = native_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    probe(&sandbox);
    let suite = sandbox.work().join("freebsd.toml");
    std::fs::write(
        &suite,
        r#"
[[test]]
name = "probe-ok"
command = ["./probe", "--op", "1"]
append = ["vmlane_test.action=exit:0"]
expect.exit = 0
expect.stdout = ["hello from the test kernel"]
expect.events = [{ kind = "probe", data = { n = 1 } }]

[[test]]
name = "probe-panics"
command = ["./probe"]
append = ["vmlane_test.action=panic:expected_one"]
expect.splats = [{ kind = "freebsd_panic", contains = "expected one" }]

[[test]]
name = "probe-fails"
command = ["./probe"]
append = ["vmlane_test.action=exit:3"]
expect.exit = 0
"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .arg("test")
        .arg(&suite)
        .arg("-k")
        .arg(&kernel.dir)
        .args(["--accel", common::accel(), "--format", "json", "--results"])
        .arg(sandbox.root.path().join("results"))
        .current_dir(sandbox.work())
        .env("XDG_RUNTIME_DIR", sandbox.runtime())
        .output()
        .unwrap();
    let stdout = text(&output.stdout);
    let status = |name: &str| {
        stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["test"] == name)
            .unwrap_or_else(|| panic!("no result for {name}: {stdout}"))["status"]
            .clone()
    };
    assert_eq!(status("probe-ok"), "passed", "{stdout}");
    assert_eq!(status("probe-fails"), "failed", "{stdout}");
    // The panic is what that test declared.
    assert_eq!(status("probe-panics"), "passed", "{stdout}");
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn an_image_built_by_vmlane_is_cached_and_never_changed_by_runs() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let root = sandbox.work().join("root");
    stand_in_root(&root);
    let cache = sandbox.root.path().join("cache");
    let build = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .args(["image", "build", "--os", "freebsd", "--from"])
            .arg(&root)
            .args(extra)
            .current_dir(sandbox.work())
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };
    let first = build(&["-o", "copy.img"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let image = text(&first.stdout).lines().next().unwrap().to_string();
    assert!(image.starts_with(cache.to_str().unwrap()), "{image}");
    let copy = std::fs::read(sandbox.work().join("copy.img")).unwrap();
    assert!(
        copy == std::fs::read(&image).unwrap(),
        "-o wrote another image"
    );
    let second = build(&[]);
    assert!(
        text(&second.stderr).contains("already built"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(text(&second.stdout).lines().next().unwrap(), image);
    let before = std::fs::read(&image).unwrap();
    let output = sandbox.run(
        &kernel,
        &[
            "--boot",
            "pvh",
            "--image",
            &image,
            "--append",
            "vmlane_test.action=exit:0",
        ],
        &["/bin/sh", "-c", "true"],
    );
    assert_code(&kernel, &output, 0);
    assert!(
        std::fs::read(&image).unwrap() == before,
        "the run changed the image"
    );
    // A Linux-only option is refused with a clear error.
    let linux = std::process::Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["image", "build", "--os", "linux", "--from"])
        .arg(&root)
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert_ne!(linux.status.code(), Some(0));
    assert!(
        text(&linux.stderr).contains("freebsd"),
        "{}",
        text(&linux.stderr)
    );
}
