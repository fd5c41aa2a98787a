//! Guests of another architecture than the host's, end to end: Debian's arm64 kernel on
//! QEMU's `virt` under TCG, running a static arm64 program from the host's files.

mod common;

use common::{text, Sandbox, TestKernel};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Debian's arm64 kernel in the cache (`scripts/setup --arch arm64`) and a cross compiler for
/// the test program; without them the tests say so and skip, unless `VMLANE_E2E_REQUIRED`.
fn arm64() -> Option<(TestKernel, PathBuf)> {
    let dir = vmlane_kernel::kernels_dir(&vmlane_kernel::cache_dir());
    let kernel = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with("-arm64"))
        .max();
    let missing = match (&kernel, common::has_program(CC), common::has_program(QEMU)) {
        (None, _, _) => format!("Debian's arm64 kernel in {}", dir.display()),
        (_, false, _) => format!("{CC} (gcc-aarch64-linux-gnu)"),
        (_, _, false) => format!("{QEMU} (qemu-system-arm)"),
        (Some(kernel), true, true) => {
            let kernel = TestKernel {
                label: "debian-arm64",
                dir: kernel.clone(),
            };
            return Some((kernel, build_probe()));
        }
    };
    let message = format!("arm64 end-to-end tests need {missing}: run scripts/setup --arch arm64");
    if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

const CC: &str = "aarch64-linux-gnu-gcc";
const QEMU: &str = "qemu-system-aarch64";

/// The static arm64 test program, built once per test binary.
fn build_probe() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("arm64-probe");
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/arch/probe.c");
            let built = Command::new(CC)
                .args(["-static", "-O1", "-o"])
                .arg(&out)
                .arg(&source)
                .status()
                .expect("run the cross compiler");
            assert!(built.success(), "{CC} could not build {}", source.display());
            out
        })
        .clone()
}

fn run(sandbox: &Sandbox, kernel: &TestKernel, argv: &[&str]) -> Output {
    sandbox.command_with_kernel(&kernel.dir, &["--arch", "arm64"], argv)
}

fn assert_exit(output: &Output, expected: i32) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "exit code\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn a_static_arm64_program_runs_with_its_output_and_exit_codes() {
    let Some((kernel, probe)) = arm64() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
    let output = run(&sandbox, &kernel, &["./probe", "7"]);
    assert_exit(&output, 7);
    assert_eq!(text(&output.stdout), "machine=aarch64\n");
    assert!(
        text(&output.stderr).contains("to stderr"),
        "{}",
        text(&output.stderr)
    );
    // Cold, the host's files come over virtio-fs where a virtiofsd is installed.
    let cold = sandbox.command_with_kernel(
        &kernel.dir,
        &["--arch", "arm64", "--cold"],
        &["./probe", "4"],
    );
    assert_exit(&cold, 4);
    assert_eq!(text(&cold.stdout), "machine=aarch64\n");
    // Without --arch, the kernel's architecture is the guest's.
    let died = sandbox.command_with_kernel(&kernel.dir, &[], &["./probe", "segv"]);
    assert_exit(&died, 128 + 11);
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn a_kernel_of_another_architecture_than_arch_names_is_refused_before_any_vm() {
    let Some((kernel, _)) = arm64() else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = sandbox.command_with_kernel(&kernel.dir, &["--arch", "amd64"], &["true"]);
    assert_exit(&output, 125);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("is an arm64 kernel, but --arch amd64 was asked for"),
        "{stderr}"
    );
    sandbox.assert_nothing_left(&kernel);

    let name = kernel.dir.file_name().unwrap().to_str().unwrap();
    let listed = |arch: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .args(["kernel", "list", "--arch", arch])
            .output()
            .unwrap();
        assert_exit(&output, 0);
        text(&output.stdout)
    };
    let arm64 = listed("arm64");
    assert!(arm64.lines().any(|l| l.starts_with(name)), "{arm64}");
    assert!(!arm64.contains(" amd64 "), "{arm64}");
    assert!(!listed("amd64").contains(name));
}

#[test]
fn a_host_program_in_an_arm64_guest_is_refused_naming_its_architecture() {
    let Some((kernel, _)) = arm64() else {
        return;
    };
    let sandbox = Sandbox::new();
    let output = run(&sandbox, &kernel, &["true"]);
    assert_exit(&output, 126);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("a program for x86_64") && stderr.contains("--arch"),
        "{stderr}"
    );
}

#[test]
fn an_arm64_guest_is_saved_and_restored_runs_match_booted_ones_with_fresh_randomness_and_clock() {
    let Some((kernel, probe)) = arm64() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // A kernel word of its own: this test's configuration, and saved guest, are its alone.
    let word = format!("vmlane_test.arm64_warm={nanos}");
    let run_warm = |argv: &[&str]| -> (Output, bool) {
        let args = ["--arch", "arm64", "-v", "--append", &word];
        let output = sandbox.command_with_kernel(&kernel.dir, &args, argv);
        let warm = text(&output.stderr).contains("warm: restoring the ready guest");
        (output, warm)
    };
    // The first run of a configuration records it, the second saves its ready guest.
    let (booted, warm) = run_warm(&["./probe", "7"]);
    assert!(!warm);
    let (_, warm) = run_warm(&["./probe", "0"]);
    assert!(!warm);
    let (restored, warm) = run_warm(&["./probe", "7"]);
    assert!(warm, "{}", text(&restored.stderr));
    assert_exit(&restored, 7);
    assert_eq!(restored.stdout, booted.stdout);
    let fresh = |output: &Output| -> (String, u64) {
        let stdout = text(&output.stdout);
        let field = |name: &str| {
            let line = stdout.lines().find_map(|l| l.strip_prefix(name));
            line.unwrap_or_else(|| panic!("no {name} in {stdout}"))
                .to_string()
        };
        (field("uuid="), field("clock=").parse().unwrap())
    };
    let host_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = host_now();
    let (first, warm_first) = run_warm(&["./probe", "fresh"]);
    let (second, warm_second) = run_warm(&["./probe", "fresh"]);
    let after = host_now();
    assert!(warm_first && warm_second);
    let ((uuid1, clock1), (uuid2, clock2)) = (fresh(&first), fresh(&second));
    assert_ne!(
        uuid1, uuid2,
        "two restored guests drew the same random numbers"
    );
    for clock in [clock1, clock2] {
        // Whole seconds on both sides: within a second of the host's clock during the runs.
        assert!(
            (before - 1..=after + 1).contains(&clock),
            "guest clock {clock}, host {before}..{after}"
        );
    }
    sandbox.assert_nothing_left(&kernel);
}

/// vmlane's Debian arm64 root (`vmlane rootfs build --arch arm64`, which scripts/setup runs).
fn arm64_root() -> Option<PathBuf> {
    let output = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["rootfs", "build", "--arch", "arm64"])
        .output()
        .expect("start vmlane");
    if output.status.success() {
        return Some(PathBuf::from(text(&output.stdout).trim()));
    }
    let message = format!(
        "the --root tests need a Debian arm64 root (run scripts/setup --arch arm64): {}",
        text(&output.stderr)
    );
    if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

#[test]
fn an_arm64_root_runs_its_own_programs_in_the_hosts_directory_and_keeps_no_writes() {
    let Some((kernel, _)) = arm64() else {
        return;
    };
    let Some(root) = arm64_root() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("input.txt"), "from the host\n").unwrap();
    let root_arg = root.to_str().unwrap();
    let run = |argv: &[&str]| {
        sandbox.command_with_kernel(&kernel.dir, &["--arch", "arm64", "--root", root_arg], argv)
    };
    let machine = run(&["uname", "-m"]);
    assert_exit(&machine, 0);
    assert_eq!(text(&machine.stdout), "aarch64\n");
    let script = "cat input.txt; cat /etc/debian_version >/dev/null; touch /etc/vmlane-was-here; \
                  echo scratch > /tmp/t && cat /tmp/t; touch here 2>/dev/null || echo read-only; exit 3";
    let output = run(&["sh", "-c", script]);
    assert_exit(&output, 3);
    assert_eq!(text(&output.stdout), "from the host\nscratch\nread-only\n");
    assert!(!root.join("etc/vmlane-was-here").exists());
    assert!(!sandbox.work().join("here").exists());
    assert_exit(&run(&["sh", "-c", "kill -SEGV $$"]), 128 + 11);
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn a_suite_on_an_arm64_kernel_judges_its_cases_and_its_results_name_the_architecture() {
    let Some((kernel, probe)) = arm64() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
    let suite = sandbox.work().join("suite.toml");
    std::fs::write(
        &suite,
        "[[test]]\nname = \"exits\"\ncommand = [\"./probe\", \"5\"]\nexpect.exit = 5\n\
         expect.stdout = [\"machine=aarch64\"]\n\n\
         [[test]]\nname = \"fails\"\ncommand = [\"./probe\", \"1\"]\n",
    )
    .unwrap();
    let results = sandbox.work().join("results");
    let output = sandbox
        .vmlane_test(&suite, &["-k", kernel.dir.to_str().unwrap(), "-j", "1"])
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    let shown = text(&output.stdout) + &text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("PASS  exits") && shown.contains("FAIL  fails"),
        "{shown}"
    );
    let records = std::fs::read_to_string(results.join("results.jsonl")).unwrap();
    let architectures: Vec<&str> = records
        .lines()
        .filter(|line| line.contains("\"kernel_info\""))
        .map(|line| {
            let at = line.find("\"architecture\":\"").expect("architecture") + 16;
            &line[at..at + line[at..].find('"').unwrap()]
        })
        .collect();
    assert_eq!(architectures, ["aarch64", "aarch64"], "{records}");
}

/// vmlane's own arm64 build (`vmlane kernel build --arch arm64 --debian`, which scripts/setup
/// runs): its build marker says `arch=arm64`.
fn vmlane_arm64_kernel() -> Option<TestKernel> {
    let dir = vmlane_kernel::kernels_dir(&vmlane_kernel::cache_dir());
    let built = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_to_string(p.join("vmlane-build"))
                .is_ok_and(|marker| marker.lines().any(|l| l == "arch=arm64"))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    if built.is_none() {
        let message = format!(
            "no arm64 kernel built by vmlane in {} (scripts/setup --arch arm64 builds one)",
            dir.display()
        );
        if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    built.map(|dir| TestKernel {
        label: "vmlane-built-arm64",
        dir,
    })
}

#[test]
fn vmlanes_own_arm64_kernel_boots_its_programs_and_a_debian_root() {
    let (Some((_, probe)), Some(kernel)) = (arm64(), vmlane_arm64_kernel()) else {
        return;
    };
    let Some(root) = arm64_root() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
    // The kernel's own architecture, without --arch.
    let output = sandbox.command_with_kernel(&kernel.dir, &["--cold"], &["./probe", "6"]);
    assert_exit(&output, 6);
    assert_eq!(text(&output.stdout), "machine=aarch64\n");
    let release = sandbox.command_with_kernel(
        &kernel.dir,
        &["--root", root.to_str().unwrap()],
        &["uname", "-r"],
    );
    assert_exit(&release, 0);
    assert!(
        text(&release.stdout).trim_end().ends_with("-arm64"),
        "{}",
        text(&release.stdout)
    );
    sandbox.assert_nothing_left(&kernel);
}
