//! Warm starts end to end: a configuration's second run saves its ready guest, later runs
//! restore it, and a restored run behaves as a booted one. Each test gives its runs a kernel
//! word of its own, so its configuration, and its saved guest, are its alone.

mod common;

use common::{assert_code, kernels, text, Sandbox, TestKernel};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use vmlane_checks::golden::RESTORE_LINE;

/// vmlane's own kernel (9p on microvm) and Debian's cloud kernel (virtio-fs plugged in).
fn warm_kernels() -> Vec<TestKernel> {
    kernels()
        .into_iter()
        .filter(|k| k.label == "vmlane-built" || k.label == "debian-cloud")
        .collect()
}

/// vmlane's own kernel, the fastest to boot, for tests that need one kernel.
fn fastest_kernel() -> Option<TestKernel> {
    warm_kernels()
        .into_iter()
        .find(|k| k.label == "vmlane-built")
}

/// A kernel word no other test uses.
fn unique_word(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("vmlane_test.{test}={nanos}")
}

struct Runs<'a> {
    sandbox: Sandbox,
    kernel: &'a TestKernel,
    word: String,
    count: usize,
}

/// One run's output, and whether it was restored from a saved guest.
struct Ran {
    output: Output,
    warm: bool,
    console: String,
}

impl<'a> Runs<'a> {
    fn new(kernel: &'a TestKernel, test: &str) -> Runs<'a> {
        Runs {
            sandbox: Sandbox::new(),
            kernel,
            word: unique_word(test),
            count: 0,
        }
    }

    fn run(&mut self, extra: &[&str], argv: &[&str]) -> Ran {
        self.count += 1;
        let log = self.log_path();
        let mut args = vec!["--append", &self.word, "--log", log.to_str().unwrap()];
        args.extend_from_slice(extra);
        let output = self.sandbox.run(self.kernel, &args, argv);
        self.ran(output)
    }

    fn log_path(&self) -> PathBuf {
        self.sandbox
            .root
            .path()
            .join(format!("console-{}.log", self.count))
    }

    fn ran(&self, output: Output) -> Ran {
        let console = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        Ran {
            warm: console.contains(RESTORE_LINE),
            output,
            console,
        }
    }

    /// Runs until a run is warm: the first boots, the second boots and saves.
    fn warm_up(&mut self) {
        for _ in 0..2 {
            let ran = self.run(&[], &["true"]);
            assert_code(self.kernel, &ran.output, 0);
            assert!(
                !ran.warm,
                "[{}] warm before it was saved",
                self.kernel.label
            );
        }
    }

    /// The directory of this configuration's saved guest.
    fn saved(&self) -> PathBuf {
        let dir = vmlane_kernel::cache_dir().join("snapshots");
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::read_to_string(p.join("key")).is_ok_and(|k| k.contains(&self.word)))
            .unwrap_or_else(|| panic!("no saved guest for {} in {}", self.word, dir.display()))
    }
}

#[test]
fn warm_runs_give_what_cold_runs_give() {
    for kernel in warm_kernels() {
        let mut runs = Runs::new(&kernel, "same");
        let script = "echo out; echo err >&2; exit 3";
        let cold = runs.run(&[], &["sh", "-c", script]);
        assert!(!cold.warm);
        runs.run(&[], &["true"]);
        let warm = runs.run(&[], &["sh", "-c", script]);
        assert!(
            warm.warm,
            "[{}] not restored:\n{}",
            kernel.label, warm.console
        );
        assert_code(&kernel, &warm.output, 3);
        assert_eq!(warm.output.stdout, cold.output.stdout, "[{}]", kernel.label);
        assert_eq!(warm.output.stderr, cold.output.stderr, "[{}]", kernel.label);
        // The boot the guest saved heads the log.
        assert!(warm.console.contains("Linux version"), "[{}]", kernel.label);

        let signal = runs.run(&[], &["sh", "-c", "kill -USR1 $$"]);
        assert!(signal.warm);
        assert_code(&kernel, &signal.output, 138);
        let started = Instant::now();
        let timeout = runs.run(&["--timeout", "3"], &["sleep", "60"]);
        assert!(timeout.warm);
        assert_code(&kernel, &timeout.output, 124);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "[{}]",
            kernel.label
        );
    }
}

#[test]
fn each_warm_run_sees_the_hosts_files_clock_and_its_own_random_numbers() {
    for kernel in warm_kernels() {
        let mut runs = Runs::new(&kernel, "fresh");
        runs.warm_up();
        let file = runs.sandbox.work().join("note");
        let script = "cat note; cat /proc/sys/kernel/random/uuid; date +%s";
        let mut seen = Vec::new();
        for content in ["first", "second"] {
            std::fs::write(&file, format!("{content}\n")).unwrap();
            let ran = runs.run(&[], &["sh", "-c", script]);
            assert!(ran.warm, "[{}]", kernel.label);
            assert_code(&kernel, &ran.output, 0);
            let stdout = text(&ran.output.stdout);
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines[0], content, "[{}] {stdout}", kernel.label);
            let host = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let guest: f64 = lines[2].parse().unwrap();
            assert!(
                (host - guest).abs() <= 2.0,
                "[{}] guest clock {guest}, host {host}",
                kernel.label
            );
            seen.push(lines[1].to_string());
        }
        assert_ne!(
            seen[0], seen[1],
            "[{}] the same random numbers twice",
            kernel.label
        );
    }
}

#[test]
fn another_configuration_boots_cold() {
    let Some(kernel) = fastest_kernel() else {
        return;
    };
    let mut runs = Runs::new(&kernel, "changes");
    runs.warm_up();
    assert!(runs.run(&[], &["true"]).warm);
    for change in [
        &["--append", "loglevel=6"][..],
        &["-m", "640M"],
        &["--cpus", "2"],
    ] {
        let ran = runs.run(change, &["true"]);
        assert_code(&kernel, &ran.output, 0);
        assert!(!ran.warm, "{change:?} restored a guest saved without it");
    }
    // The same kernel in another file is another kernel.
    let copy = runs.sandbox.work().join("vmlinux");
    let image = kernel.boot_file("vmlinux-");
    std::fs::copy(image, &copy).unwrap();
    let log = runs.sandbox.root.path().join("copy.log");
    let output = runs.sandbox.command_with_kernel(
        &copy,
        &["--append", &runs.word, "--log", log.to_str().unwrap()],
        &["true"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(!std::fs::read_to_string(&log)
        .unwrap()
        .contains(RESTORE_LINE));
}

#[test]
fn a_saved_guest_that_cannot_be_restored_is_replaced_by_a_cold_boot() {
    for kernel in warm_kernels() {
        let mut runs = Runs::new(&kernel, "corrupt");
        runs.warm_up();
        // The device state, and where a guest's RAM is a file of its own, that file.
        for part in ["state", "ram"] {
            let file = runs.saved().join(part);
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(meta.len() / 3)
                .unwrap();
            let ran = runs.run(&[], &["sh", "-c", "echo still here"]);
            assert_code(&kernel, &ran.output, 0);
            assert_eq!(
                text(&ran.output.stdout),
                "still here\n",
                "[{}] {part}",
                kernel.label
            );
            assert!(!ran.warm, "[{}] {part}", kernel.label);
            let stderr = text(&ran.output.stderr);
            assert!(
                stderr.contains("could not be restored") && !stderr.contains("virtiofsd:"),
                "[{}] {part}, QEMU's words quoted: {stderr}",
                kernel.label
            );
            assert_eq!(
                stderr.lines().count(),
                1,
                "[{}] one line: {stderr}",
                kernel.label
            );
            assert!(
                runs.run(&[], &["true"]).warm,
                "[{}] {part} not replaced",
                kernel.label
            );
        }
    }
}

#[test]
fn warm_runs_in_parallel_restore_one_saved_guest() {
    let Some(kernel) = fastest_kernel() else {
        return;
    };
    let mut runs = Runs::new(&kernel, "parallel");
    runs.warm_up();
    let children: Vec<_> = (0..3)
        .map(|i| {
            runs.sandbox
                .command(
                    &kernel,
                    &["--append", &runs.word],
                    &["sh", "-c", &format!("echo run {i}")],
                )
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), format!("run {i}\n"));
    }
    runs.sandbox.assert_nothing_left(&kernel);
}

#[test]
fn ctrl_c_while_a_guest_is_restored_leaves_nothing_behind() {
    let Some(kernel) = fastest_kernel() else {
        return;
    };
    let mut runs = Runs::new(&kernel, "interrupt");
    runs.warm_up();
    for delay in [30, 150] {
        let child = runs
            .sandbox
            .command(&kernel, &["--append", &runs.word], &["sleep", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::INT,
        )
        .unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(130), "after {delay} ms");
        runs.sandbox.assert_nothing_left(&kernel);
    }
}

#[test]
fn a_suite_checking_boot_lines_passes_warm() {
    let Some(kernel) = fastest_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let word = unique_word("suite");
    let mut suite = String::new();
    for n in 0..4 {
        suite.push_str(&format!(
            "[[test]]\nname = \"boot-{n}\"\ncommand = [\"true\"]\nappend = [\"{word}\"]\nexpect.console = [\"Linux version\", \"Run /init as init process\"]\n\n"
        ));
    }
    let path = sandbox.work().join("suite.toml");
    std::fs::write(&path, suite).unwrap();
    let results = sandbox.root.path().join("results");
    let output = sandbox
        .vmlane_test(&path, &["-j", "1", "--format", "json", "-k"])
        .arg(&kernel.dir)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    // The first test boots and saves its guest; the others restore it.
    let warm = (0..4)
        .filter(|n| {
            let log = logs_of(&results, &format!("boot-{n}"));
            std::fs::read_to_string(log).unwrap().contains(RESTORE_LINE)
        })
        .count();
    assert_eq!(warm, 3);
}

fn logs_of(results: &Path, test: &str) -> PathBuf {
    let dir = results.join(test);
    let kernel = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    kernel.join("console.log")
}

/// Each case's command notes any other command running beside it, and how many VMs are up
/// (run directories with a console socket) half-way through.
const TURN_CASE: &str = r#"n=$1
for f in out/*.running; do [ -e "$f" ] && echo "$f" >> "out/$n.overlap"; done
touch "out/$n.running"
sleep 1
find "$RUNTIME" -name console.sock | wc -l > "out/$n.vms"
rm "out/$n.running"
"#;

#[test]
fn a_suite_readies_its_next_case_ahead_but_runs_one_command_at_a_time() {
    let Some(kernel) = fastest_kernel() else {
        return;
    };
    let sandbox = Sandbox::new();
    let word = unique_word("ahead");
    std::fs::write(sandbox.work().join("case.sh"), TURN_CASE).unwrap();
    std::fs::create_dir(sandbox.work().join("out")).unwrap();
    let runtime = sandbox.runtime();
    let mut suite = format!(
        "[defaults]\nrwdirs = [\"out\"]\nenv = {{ RUNTIME = \"{}\" }}\n\n",
        runtime.display()
    );
    for n in 0..4 {
        suite.push_str(&format!(
            "[[test]]\nname = \"case-{n}\"\ncommand = [\"sh\", \"case.sh\", \"{n}\"]\n\n"
        ));
    }
    let path = sandbox.work().join("suite.toml");
    std::fs::write(&path, suite).unwrap();
    let results = sandbox.root.path().join("results");
    let output = sandbox
        .vmlane_test(&path, &["-j", "1", "--append", &word, "-k"])
        .arg(&kernel.dir)
        .arg("--results")
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let out = sandbox.work().join("out");
    let vms: Vec<String> = (0..4)
        .map(|n| {
            assert!(
                !out.join(format!("{n}.overlap")).exists(),
                "case {n} ran beside another"
            );
            std::fs::read_to_string(out.join(format!("{n}.vms")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    // The first case boots and saves: the second waits to restore it. From then on the next
    // case's guest is restored while a command runs, and the last one has none after it.
    assert_eq!(vms, ["1", "2", "2", "1"], "VMs up during each case");
    sandbox.assert_nothing_left(&kernel);
}
