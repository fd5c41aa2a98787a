//! Which QEMU this is: part of what shapes a guest (and, later, what a saved guest can be
//! restored by). Asking QEMU costs a process start, so the answer is kept per binary.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// A QEMU release, as `--version` names it: it decides which machines' guests are saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuRelease {
    /// `10` of 10.0.2.
    pub major: u32,
    /// `0` of 10.0.2.
    pub minor: u32,
}

impl QemuRelease {
    /// The release in `--version`'s first line (`QEMU emulator version 10.0.2 (Debian ...)`).
    pub fn parse(version_line: &str) -> Option<QemuRelease> {
        let (_, rest) = version_line.split_once("version ")?;
        let mut numbers = rest.split(|c: char| !c.is_ascii_digit());
        Some(QemuRelease {
            major: numbers.next()?.parse().ok()?,
            minor: numbers.next()?.parse().ok()?,
        })
    }
}

impl std::fmt::Display for QemuRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first line `qemu --version` prints (`QEMU emulator version 7.2.19 (Debian ...)`),
/// remembered under `cache_dir`, one file per program, for as long as it is the same file.
pub fn qemu_version(qemu: &Path, cache_dir: &Path) -> Option<String> {
    let meta = qemu.metadata().ok()?;
    let identity = format!(
        "{} {} {} {}",
        qemu.display(),
        meta.ino(),
        meta.len(),
        meta.mtime()
    );
    let name = qemu.file_name()?.to_string_lossy();
    let cache = cache_dir.join("host").join(format!("{name}.version"));
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
        let text = std::fs::read_to_string(cache.join("host/qemu.version")).unwrap();
        assert!(text.ends_with("QEMU emulator version 9.9.9\n"), "{text}");
    }

    #[test]
    fn the_release_is_read_from_the_version_line() {
        let release = |line| QemuRelease::parse(line).map(|r| r.to_string());
        assert_eq!(
            release("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)").as_deref(),
            Some("7.2")
        );
        assert_eq!(
            release("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)")
                .as_deref(),
            Some("10.0")
        );
        assert_eq!(release("QEMU emulator version 9.1").as_deref(), Some("9.1"));
        assert_eq!(release("QEMU emulator version x"), None);
        assert_eq!(release("something else"), None);
        assert!(
            QemuRelease::parse("version 10.0").unwrap()
                > QemuRelease::parse("version 9.2").unwrap()
        );
    }
}
