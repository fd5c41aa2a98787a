//! `--rwdir`: a host directory the guest writes to, over 9p (Debian's generic kernel, vmlane's
//! own) and virtio-fs (Debian's cloud kernel), cold and restored from a saved guest, from
//! `vmlane run`, `vmlane shell` and a suite; and nothing else of the host is written.

mod common;

use common::{assert_code, kernels, text, Sandbox, TestKernel};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use vmlane_checks::golden::RESTORE_LINE;

/// A file the guest writes outside every writable directory; the host's must stay as it was.
const PROBE: &str = "/etc/vmlane-rw-probe";

/// The kernels with these labels; a missing one is a failure under `VMLANE_E2E_REQUIRED`.
fn kernels_labelled(labels: &[&str]) -> Vec<TestKernel> {
    let found: Vec<TestKernel> = kernels()
        .into_iter()
        .filter(|k| labels.contains(&k.label))
        .collect();
    if found.len() < labels.len() {
        let message = format!("--rwdir tests need the kernels {labels:?}; found {found:?}");
        if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped in part: {message}");
    }
    found
}

/// 9p on microvm, 9p on q35 with modules, virtio-fs on q35.
const ALL: &[&str] = &["vmlane-built", "debian-generic", "debian-cloud"];

/// `path` on the host as it is now: absent, or its content.
fn host_file(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Every path under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_guests_writes_reach_the_writable_directory_and_nowhere_else_on_the_host() {
    let probe_before = host_file(Path::new(PROBE));
    for kernel in kernels_labelled(ALL) {
        let sandbox = Sandbox::new();
        let work = sandbox.work();
        let out = work.join("out");
        let elsewhere = sandbox.root.path().join("elsewhere");
        std::fs::create_dir_all(out.join("old")).unwrap();
        std::fs::write(out.join("old/kept"), "from the host\n").unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        let script = format!(
            "set -e; cat {out}/old/kept; echo hi > {out}/f; mkdir {out}/sub; echo deep > {out}/sub/g; \
             rm {out}/old/kept; echo x > {PROBE}; cat {PROBE}; echo sibling > {work}/sibling; \
             echo moved > /mnt/results/r; stat -c %u {out}/f",
            out = out.display(),
            work = work.display(),
        );
        let mount_elsewhere = format!("{}=/mnt/results", elsewhere.display());
        let output = sandbox.run(
            &kernel,
            &["--cold", "--rwdir", "out", "--rwdir", &mount_elsewhere],
            &["sh", "-c", &script],
        );
        assert_code(&kernel, &output, 0);
        assert_eq!(
            text(&output.stdout),
            "from the host\nx\n0\n",
            "[{}] {}",
            kernel.label,
            text(&output.stderr)
        );
        assert_eq!(host_file(&out.join("f")).as_deref(), Some(&b"hi\n"[..]));
        assert_eq!(
            host_file(&out.join("sub/g")).as_deref(),
            Some(&b"deep\n"[..])
        );
        assert_eq!(
            host_file(&elsewhere.join("r")).as_deref(),
            Some(&b"moved\n"[..]),
            "[{}] HOST=GUEST",
            kernel.label
        );
        assert_eq!(
            tree(&work),
            ["out", "out/f", "out/old", "out/sub", "out/sub/g"].map(PathBuf::from),
            "[{}] the deletion reached the host, the sibling did not",
            kernel.label
        );
        // The guest's root writes as the user who ran vmlane (who made the sandbox).
        let uid = work.metadata().unwrap().uid();
        assert_eq!(out.join("f").metadata().unwrap().uid(), uid);
        assert_eq!(
            host_file(Path::new(PROBE)),
            probe_before,
            "[{}] {PROBE} changed on the host",
            kernel.label
        );
    }
}

#[test]
fn a_missing_or_unusable_writable_directory_is_refused_before_any_vm() {
    let Some(kernel) = kernels_labelled(&["vmlane-built"]).pop() else {
        return;
    };
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("file"), "").unwrap();
    let missing = sandbox.work().join("missing");
    for (rwdir, said) in [
        (
            "missing",
            format!(
                "it does not exist; create it first (mkdir -p {})",
                missing.display()
            ),
        ),
        ("file", "it is not a directory".to_string()),
        (
            "out=relative",
            "the guest path `relative` must be absolute".into(),
        ),
        ("out=/", "mount the directory elsewhere".into()),
    ] {
        let started = std::time::Instant::now();
        let output = sandbox.run(&kernel, &["--rwdir", rwdir], &["true"]);
        assert_code(&kernel, &output, 125);
        let stderr = text(&output.stderr);
        assert!(stderr.contains(&said), "{rwdir}: {stderr}");
        assert!(!missing.exists());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{rwdir}: a VM was started"
        );
    }
}

/// One configuration's runs, each writing to a host directory of its own.
struct WarmRuns<'a> {
    sandbox: Sandbox,
    kernel: &'a TestKernel,
    word: String,
    count: usize,
}

impl WarmRuns<'_> {
    /// A run writing its number into a new directory `dir-N`; whether it was restored.
    fn run(&mut self) -> (PathBuf, bool) {
        self.count += 1;
        let dir = self.sandbox.root.path().join(format!("dir-{}", self.count));
        std::fs::create_dir(&dir).unwrap();
        let log = self
            .sandbox
            .root
            .path()
            .join(format!("console-{}.log", self.count));
        let rwdir = format!("{}=/mnt/out", dir.display());
        let script = format!("echo {} > /mnt/out/run", self.count);
        let output = self.sandbox.run(
            self.kernel,
            &[
                "--append",
                &self.word,
                "--log",
                log.to_str().unwrap(),
                "--rwdir",
                &rwdir,
            ],
            &["sh", "-c", &script],
        );
        assert_code(self.kernel, &output, 0);
        let console = std::fs::read_to_string(&log).unwrap_or_default();
        (dir, console.contains(RESTORE_LINE))
    }
}

#[test]
fn a_restored_guest_writes_to_its_own_runs_directory() {
    for kernel in kernels_labelled(&["vmlane-built", "debian-cloud"]) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut runs = WarmRuns {
            sandbox: Sandbox::new(),
            kernel: &kernel,
            word: format!("vmlane_test.rwdir={nanos}"),
            count: 0,
        };
        // The first run records the configuration, the second saves its ready guest; later
        // runs restore it, whichever directory they write to.
        let mut dirs = Vec::new();
        for expect_warm in [false, false, true, true] {
            let (dir, warm) = runs.run();
            assert_eq!(warm, expect_warm, "[{}] run {}", kernel.label, runs.count);
            dirs.push(dir);
        }
        for (n, dir) in dirs.iter().enumerate() {
            assert_eq!(
                tree(dir),
                [PathBuf::from("run")],
                "[{}] {}",
                kernel.label,
                dir.display()
            );
            assert_eq!(
                host_file(&dir.join("run")),
                Some(format!("{}\n", n + 1).into_bytes()),
                "[{}] {}",
                kernel.label,
                dir.display()
            );
        }
    }
}

#[test]
fn the_shell_takes_writable_directories_too() {
    let Some(kernel) = kernels_labelled(&["vmlane-built"]).pop() else {
        return;
    };
    let sandbox = Sandbox::new();
    let out = sandbox.work().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .arg("shell")
        .arg("-k")
        .arg(&kernel.dir)
        .args(["--accel", common::accel(), "--cold", "--rwdir", "out"])
        .current_dir(sandbox.work())
        .env("XDG_RUNTIME_DIR", sandbox.runtime())
        .env("SHELL", "/bin/sh")
        .env_remove("VMLANE_KERNEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo from the shell > out/s\n")
        .unwrap();
    let output: Output = child.wait_with_output().unwrap();
    assert_code(&kernel, &output, 0);
    assert_eq!(
        host_file(&out.join("s")).as_deref(),
        Some(&b"from the shell\n"[..])
    );
    sandbox.assert_nothing_left(&kernel);
}

#[test]
fn a_suites_writable_directories_come_from_its_defaults_and_its_tests() {
    let Some(kernel) = kernels_labelled(&["vmlane-built"]).pop() else {
        return;
    };
    let sandbox = Sandbox::new();
    let suite_dir = sandbox.root.path().join("suite");
    let shared = sandbox.root.path().join("shared");
    for dir in [suite_dir.join("results"), shared.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let suite = suite_dir.join("suite.toml");
    std::fs::write(
        &suite,
        format!(
            r#"
[defaults]
rwdirs = ["results"]

[[test]]
name = "writes"
command = "echo a > {results}/a && echo b > /mnt/shared/b && echo c > /etc/vmlane-rw-probe"
rwdirs = ["{shared}=/mnt/shared"]
cold = true
"#,
            results = suite_dir.join("results").display(),
            shared = shared.display()
        ),
    )
    .unwrap();
    let probe_before = host_file(Path::new(PROBE));
    let output = sandbox
        .vmlane_test(&suite, &["-k", kernel.dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_code(&kernel, &output, 0);
    assert_eq!(
        host_file(&suite_dir.join("results/a")).as_deref(),
        Some(&b"a\n"[..]),
        "relative to the suite file: {}",
        text(&output.stderr)
    );
    assert_eq!(host_file(&shared.join("b")).as_deref(), Some(&b"b\n"[..]));
    assert_eq!(host_file(Path::new(PROBE)), probe_before);
    sandbox.assert_nothing_left(&kernel);
}
