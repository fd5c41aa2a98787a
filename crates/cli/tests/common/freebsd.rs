//! vmlane's test kernel standing in for a FreeBSD kernel, and a probe for its runs.

use super::{Sandbox, TestKernel};
use std::path::{Path, PathBuf};

/// The test kernel, or `None` (having said why) where it cannot be built or QEMU is missing.
pub fn test_kernel() -> Option<TestKernel> {
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
    let makefs = super::has_program("makefs") || std::path::Path::new("/usr/sbin/makefs").exists();
    if !super::has_program("qemu-system-x86_64") || !makefs {
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
pub fn probe(sandbox: &Sandbox) -> PathBuf {
    let path = sandbox.work().join("probe");
    std::fs::write(&path, vmlane_guest_freebsd::init_binary().unwrap()).unwrap();
    path
}

/// The least a FreeBSD root needs for vmlane's hook, made at `root`: a shell (vmlane's own init
/// stands in; the test kernel never runs it) and rc.subr.
pub fn stand_in_root(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("bin/sh"),
        vmlane_guest_freebsd::init_binary().unwrap(),
    )
    .unwrap();
    std::fs::write(root.join("etc/rc.subr"), "# rc.subr\n").unwrap();
}
