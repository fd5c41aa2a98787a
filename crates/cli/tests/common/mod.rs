//! Shared helpers for the end-to-end tests: real kernels, real QEMU.
// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

pub mod freebsd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Debian kernel unpacked into vmlane's cache by scripts/setup.
#[derive(Debug, Clone)]
pub struct TestKernel {
    pub label: &'static str,
    pub dir: PathBuf,
}

impl TestKernel {
    /// The cached kernel's compressed image (`boot/vmlinuz-*`).
    pub fn vmlinuz(&self) -> PathBuf {
        self.boot_file("vmlinuz-")
    }

    /// The cached kernel's file in `boot/` whose name starts with `prefix`.
    pub fn boot_file(&self, prefix: &str) -> PathBuf {
        std::fs::read_dir(self.dir.join("boot"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no boot/{prefix}* in the cached kernel"))
    }
}

/// The kernels every end-to-end test runs against. Without them the tests say so and skip,
/// unless `VMLANE_E2E_REQUIRED` is set (as in CI), where a missing kernel is a failure.
pub fn kernels() -> Vec<TestKernel> {
    let dir = vmlane_kernel::kernels_dir(&vmlane_kernel::cache_dir());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    // vmlane's x86 Linux builds: FreeBSD kernels in the cache have the marker but no vmlinuz,
    // and builds for other architectures name theirs in it.
    let built_by_vmlane = |name: &str| {
        let entry = dir.join(name);
        let marker = std::fs::read_to_string(entry.join("vmlane-build")).unwrap_or_default();
        let foreign = |line: &str| line.starts_with("arch=") && line != "arch=amd64";
        // A build with options of its own (`-e KUNIT_EXAMPLE_TEST`) is not what setup made.
        let variant = |line: &str| line.starts_with("extra=") && line != "extra=";
        if marker.lines().any(|line| foreign(line) || variant(line)) {
            return false;
        }
        let has_vmlinuz = std::fs::read_dir(entry.join("boot")).is_ok_and(|files| {
            files
                .flatten()
                .any(|f| f.file_name().to_string_lossy().starts_with("vmlinuz-"))
        });
        entry.join("vmlane-build").is_file() && has_vmlinuz
    };
    let pick = |label: &'static str, wanted: &dyn Fn(&str) -> bool| {
        // The newest of each kind, as `vmlane run` without -k would choose.
        let modified = |name: &String| dir.join(name).metadata().and_then(|m| m.modified()).ok();
        names
            .iter()
            .filter(|n| wanted(n))
            .max_by_key(|n| modified(n))
            .map(|name| TestKernel {
                label,
                dir: dir.join(name),
            })
    };
    let found: Vec<TestKernel> = [
        pick("debian-cloud", &|n| n.ends_with("-cloud-amd64")),
        pick("debian-generic", &|n| {
            n.ends_with("-amd64") && !n.ends_with("-cloud-amd64")
        }),
        pick("vmlane-built", &|n| built_by_vmlane(n)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if found.len() < 3 {
        let message = format!(
            "end-to-end tests need Debian's cloud and generic kernels and a vmlane-built kernel in {} (run scripts/setup); found {:?}",
            dir.display(),
            names
        );
        if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
    }
    if which("qemu-system-x86_64").is_none() {
        let message = "end-to-end tests need qemu-system-x86_64 (run scripts/setup)";
        if std::env::var_os("VMLANE_E2E_REQUIRED").is_some() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        return Vec::new();
    }
    found
}

/// Whether `program` is on PATH.
pub fn has_program(program: &str) -> bool {
    which(program).is_some()
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The accelerator the tests ask for explicitly, so no fallback notice lands on stderr.
pub fn accel() -> &'static str {
    match vmlane_qemu::HostKvm::probe(Path::new("/")) {
        vmlane_qemu::HostKvm::Hardware => "kvm",
        _ => "tcg",
    }
}

/// One test's private world: a working directory and a runtime dir for vmlane's run dirs, so
/// that leftovers (files, sockets, processes) can be attributed to this test alone.
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let root = tempfile::Builder::new()
            .prefix("e2e-")
            .tempdir_in(base)
            .expect("create sandbox");
        std::fs::create_dir(root.path().join("work")).unwrap();
        std::fs::create_dir(root.path().join("runtime")).unwrap();
        Sandbox { root }
    }

    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    pub fn runtime(&self) -> PathBuf {
        self.root.path().join("runtime")
    }

    /// `vmlane test SUITE --accel A [extra]`, in the sandbox's work dir with its runtime dir,
    /// so leftovers can be attributed.
    pub fn vmlane_test(&self, suite: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmlane"));
        command
            .arg("test")
            .arg(suite)
            .args(["--accel", accel()])
            .args(extra)
            .current_dir(self.work())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env_remove("VMLANE_KERNEL");
        command
    }

    /// `vmlane run -k KERNEL --accel A [extra] -- argv`, in the sandbox's work dir.
    pub fn command(&self, kernel: &TestKernel, extra: &[&str], argv: &[&str]) -> Command {
        self.command_for(&kernel.dir, extra, argv)
    }

    /// [`Sandbox::command`] for a kernel given as a file or directory, run to its end.
    pub fn command_with_kernel(&self, kernel: &Path, extra: &[&str], argv: &[&str]) -> Output {
        self.command_for(kernel, extra, argv)
            .output()
            .expect("start vmlane")
    }

    fn command_for(&self, kernel: &Path, extra: &[&str], argv: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmlane"));
        command
            .arg("run")
            .arg("-k")
            .arg(kernel)
            .args(["--accel", accel()])
            .args(extra)
            .arg("--")
            .args(argv)
            .current_dir(self.work())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env_remove("VMLANE_KERNEL");
        command
    }

    /// `vmlane run -k IMAGE -- true` for a kernel file that must be refused before any VM.
    pub fn run_image(&self, image: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmlane"))
            .arg("run")
            .arg("-k")
            .arg(image)
            .args(["--", "true"])
            .current_dir(self.work())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .output()
            .unwrap()
    }

    pub fn run(&self, kernel: &TestKernel, extra: &[&str], argv: &[&str]) -> Output {
        let output = self
            .command(kernel, extra, argv)
            .output()
            .expect("start vmlane");
        self.assert_nothing_left(kernel);
        output
    }

    /// No run dir, socket or temp file, and no process that was started for this sandbox.
    pub fn assert_nothing_left(&self, kernel: &TestKernel) {
        let left: Vec<_> = std::fs::read_dir(self.runtime())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            left.is_empty(),
            "[{}] left behind in the runtime dir: {left:?}",
            kernel.label
        );
        let marker = self.runtime();
        let marker = marker.to_string_lossy();
        let survivors = processes_mentioning(&marker);
        assert!(
            survivors.is_empty(),
            "[{}] processes left running: {survivors:?}",
            kernel.label
        );
    }
}

/// Command lines of live processes whose command line or environment mentions `needle`:
/// vmlane's helpers inherit the sandbox's `XDG_RUNTIME_DIR`, so even an orphaned virtiofsd
/// is attributed to the test that started it.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let is_pid = entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit());
        if !is_pid {
            continue;
        }
        let read = |name: &str| {
            std::fs::read(entry.path().join(name))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        };
        let (Ok(cmdline), Ok(environ)) = (read("cmdline"), read("environ")) else {
            continue;
        };
        if cmdline.contains(needle) || environ.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code and shows everything vmlane printed when it differs.
pub fn assert_code(kernel: &TestKernel, output: &Output, expected: i32) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "[{}] exit code\nstdout: {}\nstderr: {}",
        kernel.label,
        text(&output.stdout),
        text(&output.stderr)
    );
}
