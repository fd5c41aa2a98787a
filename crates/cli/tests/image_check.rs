//! `vmlane image check` end to end on real QEMU: images built by `vmlane image build` from a
//! stand-in FreeBSD root, booted with vmlane's test kernel, which plays a deployed image's
//! boot as `vmlane_test.action=` says (rc to getty's prompt, rc falling back to single-user,
//! a kernel that never mounts root, a panic).

mod common;

use common::freebsd::{stand_in_root, test_kernel};
use common::{text, Sandbox, TestKernel};
use std::path::{Path, PathBuf};
use std::process::Output;

/// An image built from the least root vmlane's hook needs, with `rc_conf` as its rc.conf.
fn image(sandbox: &Sandbox, name: &str, rc_conf: &str) -> PathBuf {
    let root = sandbox.work().join(format!("{name}-root"));
    stand_in_root(&root);
    std::fs::write(root.join("etc/rc.conf"), rc_conf).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["image", "build", "--os", "freebsd", "--from"])
        .arg(&root)
        .args(["-o", &format!("{name}.img")])
        .current_dir(sandbox.work())
        .env("XDG_CACHE_HOME", sandbox.root.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    sandbox.work().join(format!("{name}.img"))
}

fn check(
    sandbox: &Sandbox,
    kernel: &TestKernel,
    image: &Path,
    action: &str,
    extra: &[&str],
) -> Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["image", "check"])
        .arg(image)
        .arg("-k")
        .arg(&kernel.dir)
        .args(["--boot", "pvh", "--accel", common::accel()])
        .args(["--append", &format!("vmlane_test.action={action}")])
        .args(extra)
        .current_dir(sandbox.work())
        .env("XDG_RUNTIME_DIR", sandbox.runtime())
        .env("XDG_CACHE_HOME", sandbox.root.path().join("cache"))
        .env_remove("VMLANE_KERNEL")
        .output()
        .unwrap();
    sandbox.assert_nothing_left(kernel);
    output
}

fn lines(output: &Output) -> Vec<String> {
    text(&output.stdout).lines().map(String::from).collect()
}

#[test]
fn an_image_that_reaches_login_passes_and_is_not_changed() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let image = image(&sandbox, "plain", "hostname=\"deploy\"\n");
    let before = std::fs::read(&image).unwrap();
    let log = sandbox.work().join("console.log");
    let output = check(
        &sandbox,
        &kernel,
        &image,
        "multiuser",
        &["--log", log.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines = lines(&output);
    assert!(
        lines[0].starts_with("multi-user: reached after "),
        "{lines:?}"
    );
    assert_eq!(lines[1], "rc's last step: Starting sshd.");
    assert_eq!(
        lines[2], "first failure on the console: mount: fdesc: Invalid fstype",
        "{lines:?}"
    );
    assert_eq!(
        lines.len(),
        3,
        "no sshd line for an image without sshd: {lines:?}"
    );
    assert!(
        std::fs::read(&image).unwrap() == before,
        "the check changed the image"
    );
    let console = std::fs::read_to_string(&log).unwrap();
    // Booted as deployed: a network device and no run disk or channel.
    let disks = console
        .lines()
        .filter(|l| l.contains("virtio_mmio:") && l.contains("device_id=2"))
        .count();
    assert_eq!(disks, 1, "the image alone:\n{console}");
    assert!(
        console
            .lines()
            .any(|l| l.contains("virtio_mmio:") && l.contains("device_id=1")),
        "a virtio-net device:\n{console}"
    );
    assert!(!console.contains("hint.uart.1"), "{console}");
}

#[test]
fn an_image_with_sshd_waits_for_its_banner_and_fails_without_one() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let image = image(&sandbox, "sshd", "sshd_enable=\"YES\"\n");
    let output = check(
        &sandbox,
        &kernel,
        &image,
        "multiuser",
        &["--timeout", "4", "--ssh-port", &free_port().to_string()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let lines = lines(&output);
    assert!(
        lines[0].starts_with("multi-user: reached after "),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("sshd: no banner on 127.0.0.1:")
                && l.ends_with("(rc.conf enables sshd)")),
        "{lines:?}"
    );
    assert!(
        text(&output.stderr).contains("console log: "),
        "kept on failure"
    );
}

#[test]
fn an_image_that_stops_says_how_far_rc_got_and_why() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let image = image(&sandbox, "plain", "");
    let single = check(
        &sandbox,
        &kernel,
        &image,
        "single-user",
        &["--timeout", "30"],
    );
    assert_eq!(single.status.code(), Some(1), "{}", text(&single.stderr));
    assert_eq!(
        lines(&single),
        [
            "multi-user: not reached; rc failed and init asks for a single-user shell",
            "rc's last step: Starting file system checks:",
            "first failure on the console: /dev/vtbd0: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.",
        ]
    );
    let hung = check(&sandbox, &kernel, &image, "hang", &["--timeout", "3"]);
    assert_eq!(hung.status.code(), Some(1), "{}", text(&hung.stderr));
    assert_eq!(
        lines(&hung),
        [
            "multi-user: not reached in 3 s",
            "rc's last step: rc never started (the kernel did not mount root)",
        ]
    );
    let panicked = check(
        &sandbox,
        &kernel,
        &image,
        "panic:no_root",
        &["--timeout", "30"],
    );
    assert_eq!(
        panicked.status.code(),
        Some(1),
        "{}",
        text(&panicked.stderr)
    );
    assert!(
        lines(&panicked)[0].starts_with("multi-user: not reached; ")
            && lines(&panicked)[0].contains("no root"),
        "{:?}",
        lines(&panicked)
    );
}

#[test]
fn a_check_of_something_that_is_not_an_image_is_refused_before_any_vm() {
    let Some(kernel) = test_kernel() else { return };
    let sandbox = Sandbox::new();
    let junk = sandbox.work().join("junk.img");
    std::fs::write(&junk, vec![7u8; 1 << 16]).unwrap();
    let output = check(&sandbox, &kernel, &junk, "multiuser", &[]);
    assert_eq!(output.status.code(), Some(125));
    assert!(
        text(&output.stderr).contains("junk.img"),
        "{}",
        text(&output.stderr)
    );
    // A kernel that is not there fails before any VM, and leaves no empty console log.
    let image = image(&sandbox, "plain", "");
    let cache = sandbox.root.path().join("cache");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["image", "check"])
        .arg(&image)
        .args(["-k", "/nonexistent/kernel"])
        .current_dir(sandbox.work())
        .env("XDG_RUNTIME_DIR", sandbox.runtime())
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("/nonexistent/kernel"),
        "{}",
        text(&output.stderr)
    );
    let logs: Vec<_> = std::fs::read_dir(cache.join("vmlane/logs"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(logs.is_empty(), "left behind: {logs:?}");
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
