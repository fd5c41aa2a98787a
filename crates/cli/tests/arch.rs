//! Guests of another architecture than the host's, end to end: Debian's arm64 and riscv64
//! kernels on QEMU's `virt`, its s390x kernel on `s390-ccw-virtio` and its ppc64el kernel on
//! `pseries`, under TCG, running static programs
//! of their architecture from the host's files. Each test runs on every architecture this
//! machine has set up, and says which it skipped.

mod common;

use common::{text, Sandbox, TestKernel};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What one foreign architecture's tests need, in its own names.
struct Guest {
    /// Debian's name and `--arch`'s value.
    debian: &'static str,
    /// The suffix of Debian's kernel releases and of vmlane's builds for it.
    release_suffix: &'static str,
    /// `uname -m` in the guest.
    uname: &'static str,
    /// The cross compiler of the test program, and its package.
    cc: &'static str,
    cc_package: &'static str,
    /// The QEMU of the architecture, and its package.
    qemu: &'static str,
    qemu_package: &'static str,
    /// Whether `VMLANE_E2E_REQUIRED` makes a missing set-up a failure: CI sets up every
    /// architecture but ppc64el, which `scripts/setup --arch ppc64el` adds on demand.
    in_ci: bool,
}

const GUESTS: [Guest; 4] = [
    Guest {
        debian: "arm64",
        release_suffix: "-arm64",
        uname: "aarch64",
        cc: "aarch64-linux-gnu-gcc",
        cc_package: "gcc-aarch64-linux-gnu",
        qemu: "qemu-system-aarch64",
        qemu_package: "qemu-system-arm",
        in_ci: true,
    },
    Guest {
        debian: "s390x",
        release_suffix: "-s390x",
        uname: "s390x",
        cc: "s390x-linux-gnu-gcc",
        cc_package: "gcc-s390x-linux-gnu",
        qemu: "qemu-system-s390x",
        qemu_package: "qemu-system-misc",
        in_ci: true,
    },
    Guest {
        debian: "riscv64",
        release_suffix: "-riscv64",
        uname: "riscv64",
        cc: "riscv64-linux-gnu-gcc",
        cc_package: "gcc-riscv64-linux-gnu",
        qemu: "qemu-system-riscv64",
        qemu_package: "qemu-system-misc",
        in_ci: true,
    },
    Guest {
        debian: "ppc64el",
        release_suffix: "-powerpc64le",
        uname: "ppc64le",
        cc: "powerpc64le-linux-gnu-gcc",
        cc_package: "gcc-powerpc64le-linux-gnu",
        qemu: "qemu-system-ppc64",
        qemu_package: "qemu-system-ppc",
        in_ci: false,
    },
];

/// Says why a test skips an architecture, or fails if `VMLANE_E2E_REQUIRED` is set and CI
/// sets the architecture up.
fn skip(guest: &Guest, message: String) {
    if guest.in_ci && std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
}

impl Guest {
    /// Debian's kernel of this architecture in the cache (`scripts/setup --arch ...`) and the
    /// test program, built with the cross compiler; `None`, said, when either is missing.
    fn ready(&self) -> Option<(TestKernel, PathBuf)> {
        let dir = vmlane_kernel::kernels_dir(&vmlane_kernel::cache_dir());
        let suffix = self.release_suffix;
        let kernel = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                // Debian's release ends with the architecture; vmlane's builds have a key after it.
                name.ends_with(suffix) && !p.join("vmlane-build").exists()
            })
            .max();
        let missing = match (
            &kernel,
            common::has_program(self.cc),
            common::has_program(self.qemu),
        ) {
            (None, _, _) => format!("Debian's {} kernel in {}", self.debian, dir.display()),
            (_, false, _) => format!("{} ({})", self.cc, self.cc_package),
            (_, _, false) => format!("{} ({})", self.qemu, self.qemu_package),
            (Some(kernel), true, true) => {
                let kernel = TestKernel {
                    label: "debian-foreign",
                    dir: kernel.clone(),
                };
                return Some((kernel, self.probe()));
            }
        };
        skip(
            self,
            format!(
                "{} end-to-end tests need {missing}: run scripts/setup --arch {}",
                self.debian, self.debian
            ),
        );
        None
    }

    /// The static test program, built once per architecture and test binary.
    fn probe(&self) -> PathBuf {
        static BUILT: std::sync::Mutex<Vec<&str>> = std::sync::Mutex::new(Vec::new());
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-probe", self.debian));
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if !built.contains(&self.debian) {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/arch/probe.c");
            let status = Command::new(self.cc)
                .args(["-static", "-O1", "-o"])
                .arg(&out)
                .arg(&source)
                .status()
                .expect("run the cross compiler");
            assert!(
                status.success(),
                "{} could not build {}",
                self.cc,
                source.display()
            );
            built.push(self.debian);
        }
        out
    }

    /// Every set-up guest architecture with its kernel and test program.
    fn all_ready() -> impl Iterator<Item = (&'static Guest, TestKernel, PathBuf)> {
        GUESTS
            .iter()
            .filter_map(|guest| guest.ready().map(|(kernel, probe)| (guest, kernel, probe)))
    }
}

fn run(sandbox: &Sandbox, guest: &Guest, kernel: &TestKernel, argv: &[&str]) -> Output {
    sandbox.command_with_kernel(&kernel.dir, &["--arch", guest.debian], argv)
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
fn a_static_program_of_the_guests_architecture_runs_with_its_output_and_exit_codes() {
    for (guest, kernel, probe) in Guest::all_ready() {
        let sandbox = Sandbox::new();
        std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
        let output = run(&sandbox, guest, &kernel, &["./probe", "7"]);
        assert_exit(&output, 7);
        assert_eq!(text(&output.stdout), format!("machine={}\n", guest.uname));
        assert!(
            text(&output.stderr).contains("to stderr"),
            "{}",
            text(&output.stderr)
        );
        // Cold, the host's files come over virtio-fs where a virtiofsd is installed.
        let cold = sandbox.command_with_kernel(
            &kernel.dir,
            &["--arch", guest.debian, "--cold"],
            &["./probe", "4"],
        );
        assert_exit(&cold, 4);
        assert_eq!(text(&cold.stdout), format!("machine={}\n", guest.uname));
        // Without --arch, the kernel's architecture is the guest's.
        let died = sandbox.command_with_kernel(&kernel.dir, &[], &["./probe", "segv"]);
        assert_exit(&died, 128 + 11);
        sandbox.assert_nothing_left(&kernel);
    }
}

#[test]
fn a_kernel_of_another_architecture_than_arch_names_is_refused_before_any_vm() {
    for (guest, kernel, _) in Guest::all_ready() {
        let sandbox = Sandbox::new();
        let output = sandbox.command_with_kernel(&kernel.dir, &["--arch", "amd64"], &["true"]);
        assert_exit(&output, 125);
        let stderr = text(&output.stderr);
        let said = format!(
            "is a kernel for {}, but --arch amd64 was asked for",
            guest.debian
        );
        assert!(stderr.contains(&said), "{stderr}");
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
        let own = listed(guest.debian);
        assert!(own.lines().any(|l| l.starts_with(name)), "{own}");
        assert!(!own.contains(" amd64 "), "{own}");
        assert!(!listed("amd64").contains(name));
    }
}

#[test]
fn a_host_program_in_a_foreign_guest_is_refused_naming_its_architecture() {
    for (guest, kernel, _) in Guest::all_ready() {
        let sandbox = Sandbox::new();
        let output = run(&sandbox, guest, &kernel, &["true"]);
        assert_exit(&output, 126);
        let stderr = text(&output.stderr);
        let said = format!("a program for x86_64, and this guest is {}", guest.uname);
        assert!(
            stderr.contains(&said) && stderr.contains("--arch"),
            "{stderr}"
        );
    }
}

#[test]
fn a_foreign_guest_is_saved_and_restored_runs_match_booted_ones_with_fresh_randomness_and_clock() {
    for (guest, kernel, probe) in Guest::all_ready() {
        saved_and_restored(guest, &kernel, &probe);
    }
}

fn saved_and_restored(guest: &Guest, kernel: &TestKernel, probe: &Path) {
    let sandbox = Sandbox::new();
    std::fs::copy(probe, sandbox.work().join("probe")).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // A kernel word of its own: this test's configuration, and saved guest, are its alone.
    let word = format!("vmlane_test.foreign_warm={nanos}");
    let run_warm = |argv: &[&str]| -> (Output, bool) {
        // A guest whose timer never fires would sleep forever.
        let args = [
            "--arch",
            guest.debian,
            "-v",
            "--append",
            &word,
            "--timeout",
            "120",
        ];
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
    assert!(warm, "{}: {}", guest.debian, text(&restored.stderr));
    assert_exit(&restored, 7);
    assert_eq!(restored.stdout, booted.stdout);
    // A restored guest's timers fire: it wakes from a sleep.
    let (slept, warm) = run_warm(&["./probe", "sleep"]);
    assert!(warm, "{}: {}", guest.debian, text(&slept.stderr));
    assert_exit(&slept, 0);
    assert!(
        text(&slept.stdout).contains("slept\n"),
        "{}",
        text(&slept.stdout)
    );
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
        "{}: two restored guests drew the same random numbers",
        guest.debian
    );
    for clock in [clock1, clock2] {
        // Whole seconds on both sides: within a second of the host's clock during the runs.
        assert!(
            (before - 1..=after + 1).contains(&clock),
            "{}: guest clock {clock}, host {before}..{after}",
            guest.debian
        );
    }
    sandbox.assert_nothing_left(kernel);
}

/// vmlane's Debian root of the guest's architecture (`vmlane rootfs build --arch ...`, which
/// scripts/setup runs).
fn root_of(guest: &Guest) -> Option<PathBuf> {
    let output = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["rootfs", "build", "--arch", guest.debian])
        .output()
        .expect("start vmlane");
    if output.status.success() {
        return Some(PathBuf::from(text(&output.stdout).trim()));
    }
    skip(
        guest,
        format!(
            "the --root tests need a Debian {} root (run scripts/setup --arch {}): {}",
            guest.debian,
            guest.debian,
            text(&output.stderr)
        ),
    );
    None
}

#[test]
fn a_foreign_root_runs_its_own_programs_in_the_hosts_directory_and_keeps_no_writes() {
    for (guest, kernel, _) in Guest::all_ready() {
        let Some(root) = root_of(guest) else {
            continue;
        };
        let sandbox = Sandbox::new();
        std::fs::write(sandbox.work().join("input.txt"), "from the host\n").unwrap();
        let root_arg = root.to_str().unwrap();
        let run = |argv: &[&str]| {
            let args = ["--arch", guest.debian, "--root", root_arg];
            sandbox.command_with_kernel(&kernel.dir, &args, argv)
        };
        let machine = run(&["uname", "-m"]);
        assert_exit(&machine, 0);
        assert_eq!(text(&machine.stdout), format!("{}\n", guest.uname));
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
}

#[test]
fn a_suite_on_a_foreign_kernel_judges_its_cases_and_its_results_name_the_architecture() {
    for (guest, kernel, probe) in Guest::all_ready() {
        let sandbox = Sandbox::new();
        std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
        let suite = sandbox.work().join("suite.toml");
        std::fs::write(
            &suite,
            format!(
                "[[test]]\nname = \"exits\"\ncommand = [\"./probe\", \"5\"]\nexpect.exit = 5\n\
                 expect.stdout = [\"machine={}\"]\n\n\
                 [[test]]\nname = \"fails\"\ncommand = [\"./probe\", \"1\"]\n",
                guest.uname
            ),
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
        assert_eq!(architectures, [guest.uname, guest.uname], "{records}");
    }
}

/// vmlane's own build for the guest's architecture (`vmlane kernel build --arch ... --debian`,
/// which scripts/setup runs): its build marker names the architecture.
fn vmlane_kernel_of(guest: &Guest) -> Option<TestKernel> {
    let dir = vmlane_kernel::kernels_dir(&vmlane_kernel::cache_dir());
    let marker_line = format!("arch={}", guest.debian);
    let built = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            // The plain build: one with options of its own (KUnit's) is not what setup made.
            std::fs::read_to_string(p.join("vmlane-build")).is_ok_and(|marker| {
                marker.lines().any(|l| l == marker_line) && marker.lines().any(|l| l == "extra=")
            })
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    if built.is_none() {
        skip(
            guest,
            format!(
                "no {} kernel built by vmlane in {} (scripts/setup --arch {} builds one)",
                guest.debian,
                dir.display(),
                guest.debian
            ),
        );
    }
    built.map(|dir| TestKernel {
        label: "vmlane-built-foreign",
        dir,
    })
}

#[test]
fn vmlanes_own_foreign_kernel_boots_its_programs_and_a_debian_root() {
    for (guest, _, probe) in Guest::all_ready() {
        let Some(kernel) = vmlane_kernel_of(guest) else {
            continue;
        };
        let sandbox = Sandbox::new();
        std::fs::copy(&probe, sandbox.work().join("probe")).unwrap();
        // The kernel's own architecture, without --arch.
        let output = sandbox.command_with_kernel(&kernel.dir, &["--cold"], &["./probe", "6"]);
        assert_exit(&output, 6);
        assert_eq!(text(&output.stdout), format!("machine={}\n", guest.uname));
        // Its guests are saved too (riscv64's and pseries' because the fragment has
        // high-resolution timers, which the init's re-arm needs), and restored ones wake from
        // their sleeps.
        saved_and_restored(guest, &kernel, &probe);
        let Some(root) = root_of(guest) else {
            continue;
        };
        let release = sandbox.command_with_kernel(
            &kernel.dir,
            &["--root", root.to_str().unwrap()],
            &["uname", "-r"],
        );
        assert_exit(&release, 0);
        assert!(
            text(&release.stdout)
                .trim_end()
                .ends_with(guest.release_suffix),
            "{}",
            text(&release.stdout)
        );
        sandbox.assert_nothing_left(&kernel);
    }
}

/// Big-endian ppc64: no Debian kernel or userland, so vmlane's own build
/// (`vmlane kernel build --arch ppc64`) and static programs only.
const PPC64: Guest = Guest {
    debian: "ppc64",
    release_suffix: "-powerpc64",
    uname: "ppc64",
    cc: "powerpc64-linux-gnu-gcc",
    cc_package: "gcc-powerpc64-linux-gnu",
    qemu: "qemu-system-ppc64",
    qemu_package: "qemu-system-ppc",
    in_ci: true,
};

#[test]
fn a_big_endian_ppc64_guest_runs_static_programs_and_refuses_a_root() {
    let guest = &PPC64;
    if !common::has_program(guest.cc) || !common::has_program(guest.qemu) {
        skip(
            guest,
            format!(
                "the ppc64 test needs {} ({}) and {} ({})",
                guest.cc, guest.cc_package, guest.qemu, guest.qemu_package
            ),
        );
        return;
    }
    let Some(kernel) = vmlane_kernel_of(guest) else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::copy(guest.probe(), sandbox.work().join("probe")).unwrap();
    let output = run(&sandbox, guest, &kernel, &["./probe", "7"]);
    assert_exit(&output, 7);
    assert_eq!(text(&output.stdout), "machine=ppc64\n");
    let died = run(&sandbox, guest, &kernel, &["./probe", "segv"]);
    assert_exit(&died, 128 + 11);
    // Saved, and restored runs wake from their sleeps (on QEMU 7.2 because the kernel has
    // high-resolution timers, with which the init re-arms the decrementer).
    let verbose = |argv: &[&str]| {
        let args = ["--arch", guest.debian, "-v", "--timeout", "120"];
        sandbox.command_with_kernel(&kernel.dir, &args, argv)
    };
    let runs: Vec<Output> = (0..3).map(|_| verbose(&["./probe", "sleep"])).collect();
    for output in &runs {
        assert_exit(output, 0);
    }
    let last = text(&runs[2].stderr);
    assert!(last.contains("warm: restoring the ready guest"), "{last}");
    assert!(text(&runs[2].stdout).contains("slept\n"), "{last}");
    let host = run(&sandbox, guest, &kernel, &["true"]);
    assert_exit(&host, 126);
    assert!(
        text(&host.stderr).contains("a program for x86_64, and this guest is ppc64:"),
        "{}",
        text(&host.stderr)
    );
    let root = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["rootfs", "build", "--arch", "ppc64"])
        .output()
        .unwrap();
    assert_exit(&root, 125);
    assert!(
        text(&root.stderr).contains("Debian has no ppc64 userland"),
        "{}",
        text(&root.stderr)
    );
    sandbox.assert_nothing_left(&kernel);
}

/// KUnit built into vmlane's own kernel of each architecture reports through `vmlane test` as
/// `kunit.py run --arch` shows it: every subtest a result, `kunit.filter_glob` choosing them.
/// The KUnit kernel is the user's command, a variant that starts from the plain build's objects.
#[test]
fn kunit_built_into_each_architectures_kernel_reports_its_subtests_through_vmlane_test() {
    for guest in GUESTS.iter().chain([&PPC64]) {
        if !common::has_program(guest.cc) || !common::has_program(guest.qemu) {
            skip(
                guest,
                format!(
                    "KUnit on {} needs {} ({}) and {} ({})",
                    guest.debian, guest.cc, guest.cc_package, guest.qemu, guest.qemu_package
                ),
            );
            continue;
        }
        if vmlane_kernel_of(guest).is_none() {
            continue;
        }
        let build = Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .args(["kernel", "build", "--arch", guest.debian, "--debian"])
            .args(["-e", "KUNIT", "-e", "KUNIT_EXAMPLE_TEST"])
            .output()
            .unwrap();
        assert_exit(&build, 0);
        let kernel = vmlane_kernel::kernels_dir(&vmlane_kernel::cache_dir())
            .join(text(&build.stdout).trim());

        let sandbox = Sandbox::new();
        std::fs::copy(guest.probe(), sandbox.work().join("probe")).unwrap();
        let suite = sandbox.work().join("kunit.toml");
        std::fs::write(
            &suite,
            "[[test]]\nname = \"kunit\"\ncommand = [\"./probe\", \"0\"]\nexpect.ktap = \"console\"\n\n\
             [[test]]\nname = \"kunit-one\"\ncommand = [\"./probe\", \"0\"]\n\
             append = [\"kunit.filter_glob=example.example_simple_test\"]\nexpect.ktap = \"console\"\n",
        )
        .unwrap();
        let results = sandbox.work().join("results");
        let output = sandbox
            .vmlane_test(&suite, &["-k", kernel.to_str().unwrap(), "-j", "1"])
            .arg("--results")
            .arg(&results)
            .output()
            .unwrap();
        let shown = text(&output.stdout) + &text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{} {shown}", guest.debian);
        let report = vmlane_report::read_run(&results.join("results.jsonl")).unwrap();
        let subtests = |test: &str| -> Vec<(String, String)> {
            let case = report.results.iter().find(|r| r.test == test).unwrap();
            case.subtests
                .iter()
                .map(|s| (s.name.clone(), format!("{:?}", s.status)))
                .collect()
        };
        let all = subtests("kunit");
        for (name, status) in [
            ("example.example_simple_test", "Ok"),
            ("example.example_skip_test", "Skip"),
            ("example", "Ok"),
        ] {
            assert!(
                all.contains(&(name.to_string(), status.to_string())),
                "{}: {name} {status} in {all:?}",
                guest.debian
            );
        }
        assert_eq!(
            subtests("kunit-one"),
            [
                ("example.example_simple_test".to_string(), "Ok".to_string()),
                ("example".to_string(), "Ok".to_string())
            ],
            "{}",
            guest.debian
        );
        sandbox.assert_nothing_left(&TestKernel {
            label: "vmlane-kunit",
            dir: kernel,
        });
    }
}
