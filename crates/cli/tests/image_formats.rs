//! `vmlane image build --format`: the cached raw image written out as qcow2 and as a dynamic
//! VHD with qemu-img, read back with `qemu-img info` and `qemu-img check`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small stand-in for a FreeBSD root tree: what vmlane's boot hook needs and little else.
fn fake_root(dir: &Path) -> PathBuf {
    let root = dir.join("freebsd-root");
    for (path, contents) in [
        ("bin/sh", "sh"),
        ("etc/rc.subr", "# rc.subr\n"),
        ("etc/rc.conf", "sshd_enable=\"NO\"\n"),
        ("boot/loader.conf", ""),
    ] {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// makefs and qemu-img, or `false` (and a note) when either is missing and not required.
fn has_tools() -> bool {
    let missing: Vec<&str> = ["makefs", "qemu-img"]
        .into_iter()
        .filter(|p| program(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1") {
        panic!("VMLANE_E2E_REQUIRED=1 but {missing:?} not installed (run scripts/setup)");
    }
    println!("skipped: {missing:?} not installed (run scripts/setup)");
    false
}

fn build(root: &Path, cache: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmlane"))
        .args(["image", "build", "--os", "freebsd", "--from"])
        .arg(root)
        .args(extra)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("VMLANE_CACHE_DIR")
        .output()
        .unwrap()
}

fn qemu_img(args: &[&str], image: &Path) -> Output {
    Command::new("qemu-img")
        .args(args)
        .arg(image)
        .output()
        .unwrap()
}

fn info(image: &Path) -> serde_json::Value {
    let output = qemu_img(&["info", "--output=json"], image);
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("image-formats-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// The VHD footer's disk type (the last 512 bytes, big-endian at offset 60): 2 fixed,
/// 3 dynamic. `qemu-img info` does not show it.
fn vhd_disk_type(image: &Path) -> u32 {
    let bytes = fs::read(image).unwrap();
    let footer = &bytes[bytes.len() - 512..];
    assert_eq!(&footer[..8], b"conectix", "no VHD footer");
    u32::from_be_bytes(footer[60..64].try_into().unwrap())
}

#[test]
fn qcow2_and_dynamic_vhd_copies_read_back_and_the_cache_stays_raw() {
    if !has_tools() {
        return;
    }
    let dir = scratch();
    let root = fake_root(dir.path());
    let cache = dir.path().join("cache");
    // An odd size, to see the VHD rounded up to whole MiB.
    let size = ((70 << 20) + (64 << 10)).to_string();

    let qcow2 = dir.path().join("out.qcow2");
    let built = build(
        &root,
        &cache,
        &[
            "--size",
            &size,
            "--format",
            "qcow2",
            "-o",
            qcow2.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert_eq!(built.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&built.stdout);
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), 2, "{stdout}");
    let cached = PathBuf::from(printed[0]);
    assert_eq!(PathBuf::from(printed[1]), qcow2);
    assert_eq!(info(&cached)["format"], "raw", "runs attach the raw image");
    let raw_size = fs::metadata(&cached).unwrap().len();
    assert_eq!(raw_size.to_string(), size);

    let qcow2_info = info(&qcow2);
    assert_eq!(qcow2_info["format"], "qcow2");
    assert_eq!(qcow2_info["virtual-size"], raw_size);
    assert!(qemu_img(&["check"], &qcow2).status.success());
    let same = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .args([&cached, &qcow2])
        .output()
        .unwrap();
    assert!(same.status.success(), "{same:?}");

    // A directory as -o: the file is named after the cached image, with .vhd.
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let built = build(
        &root,
        &cache,
        &[
            "--size",
            &size,
            "--format",
            "vhd",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert_eq!(built.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("already built"), "{stderr}");
    let vhd = out.join(cached.with_extension("vhd").file_name().unwrap());
    let vhd_info = info(&vhd);
    assert_eq!(vhd_info["format"], "vpc");
    assert_eq!(vhd_info["virtual-size"], 71 << 20, "whole MiB, rounded up");
    assert_eq!(vhd_disk_type(&vhd), 3, "a dynamic VHD");
    // qemu-img has no check for vpc; it says so rather than passing it.
    let check = qemu_img(&["check"], &vhd);
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success() || said.contains("does not support checks"),
        "{said}"
    );
    let same = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "vpc"])
        .args([&cached, &vhd])
        .output()
        .unwrap();
    assert!(same.status.success(), "{same:?}");
    // Dynamic: what the file holds is the written blocks, not the whole disk.
    assert!(fs::metadata(&vhd).unwrap().len() < raw_size);

    let refused = build(&root, &cache, &["--format", "vhd"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("-o PATH"), "{stderr}");
}
