//! Builds the guest init as a static binary so the host can embed it into every initramfs.
//!
//! The init needs `crt-static`, which cannot be set for one crate of a workspace without also
//! breaking proc-macros, so it gets its own cargo invocation and target directory.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.join("../..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target = env::var("TARGET").expect("set by cargo");
    let target_dir = out_dir.join("init-target");

    for watched in ["crates/init", "crates/proto", "crates/spec", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--package",
            "vmlane-init",
            "--bin",
            "vmlane-init",
        ])
        .arg("--target")
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\x1f-Cstrip=symbols",
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("run cargo to build vmlane-init");
    assert!(status.success(), "building the static vmlane-init failed");

    let built = target_dir.join(&target).join("release/vmlane-init");
    std::fs::copy(&built, out_dir.join("vmlane-init")).expect("copy vmlane-init into OUT_DIR");
}
