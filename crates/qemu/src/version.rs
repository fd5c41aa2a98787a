//! Which QEMU this is: part of what shapes a guest (and, later, what a saved guest can be
//! restored by). Asking QEMU costs a process start, so the answer is kept per binary.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The first line `qemu --version` prints (`QEMU emulator version 7.2.19 (Debian ...)`),
/// remembered under `cache_dir` for as long as the binary is the same file.
pub fn qemu_version(qemu: &Path, cache_dir: &Path) -> Option<String> {
    let meta = qemu.metadata().ok()?;
    let identity = format!(
        "{} {} {} {}",
        qemu.display(),
        meta.ino(),
        meta.len(),
        meta.mtime()
    );
    let cache = cache_dir.join("host").join("qemu-version");
    if let Some(version) = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|text| cached(&text, &identity))
    {
        return Some(version);
    }
    let output = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()?
        .trim()
        .to_string();
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(&cache, format!("{identity}\n{version}\n"));
    }
    Some(version)
}

fn cached(text: &str, identity: &str) -> Option<String> {
    let (first, rest) = text.split_once('\n')?;
    let version = rest.trim();
    (first == identity && !version.is_empty()).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_version_counts_only_for_the_same_binary() {
        assert_eq!(
            cached("/q 1 2 3\nQEMU emulator version 7.2.19\n", "/q 1 2 3").as_deref(),
            Some("QEMU emulator version 7.2.19")
        );
        assert_eq!(cached("/q 1 2 3\nQEMU 7.2\n", "/q 1 2 4"), None);
        assert_eq!(cached("garbage", "/q 1 2 3"), None);
    }

    #[test]
    fn a_program_that_prints_a_version_is_asked_once() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu");
        std::fs::write(&fake, "#!/bin/sh\necho 'QEMU emulator version 9.9.9'\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cache = dir.path().join("cache");
        let version = qemu_version(&fake, &cache);
        assert_eq!(version.as_deref(), Some("QEMU emulator version 9.9.9"));
        let text = std::fs::read_to_string(cache.join("host/qemu-version")).unwrap();
        assert!(text.ends_with("QEMU emulator version 9.9.9\n"), "{text}");
    }
}
