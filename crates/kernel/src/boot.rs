//! The host's `/boot`: the last resort, since distro kernels need their modules for virtio.

use crate::version;
use std::io;
use std::path::{Path, PathBuf};

/// The `vmlinuz-*` with the newest release; `None` when there is none or no such directory.
pub(crate) fn newest_image(boot: &Path) -> io::Result<Option<PathBuf>> {
    let listing = match std::fs::read_dir(boot) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(listing
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let release = e
                .file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")?
                .to_string();
            (!release.is_empty()).then(|| (release, e.path()))
        })
        .max_by(|a, b| version::compare(&a.0, &b.0))
        .map(|(_, path)| path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::fake_bzimage;

    #[test]
    fn the_newest_release_wins_by_number() {
        let dir = tempfile::tempdir().unwrap();
        for release in ["6.1.9-amd64", "6.1.10-amd64", "5.19.0-amd64"] {
            std::fs::write(
                dir.path().join(format!("vmlinuz-{release}")),
                fake_bzimage(release),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("config-7.0.0"), "").unwrap();
        assert_eq!(
            newest_image(dir.path()).unwrap(),
            Some(dir.path().join("vmlinuz-6.1.10-amd64"))
        );
        assert_eq!(newest_image(&dir.path().join("missing")).unwrap(), None);
    }
}
