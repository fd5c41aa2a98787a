//! Writable directories: each must be an existing host directory before any VM starts, where
//! QEMU or virtiofsd would otherwise fail with a message that names no fix.

use super::error::StageError;
use std::io::ErrorKind;
use vmlane_backend::Share;

/// Checks every writable directory is a directory (paths are absolute already: the plan).
pub(super) fn check(rwdirs: &[Share]) -> Result<(), StageError> {
    for share in rwdirs {
        let path = &share.host_dir;
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(StageError::RwDirNotDirectory(path.clone())),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StageError::RwDirMissing(path.clone()))
            }
            Err(source) => {
                return Err(StageError::RwDir {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Checks the root the guest runs from (`--root`; the host's own `/` always is one).
pub(super) fn check_root(share: Option<&Share>) -> Result<(), StageError> {
    let Some(root) = share.map(|share| &share.host_dir) else {
        return Ok(());
    };
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StageError::RootNotDirectory(root.clone())),
        Err(source) => Err(StageError::Root {
            path: root.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmlane_backend::ShareTransport;

    fn share(path: &std::path::Path) -> Share {
        Share {
            host_dir: path.to_path_buf(),
            tag: "vmlane-rw0".into(),
            transport: ShareTransport::NineP,
            writable: true,
            plugged_later: false,
        }
    }

    #[test]
    fn a_writable_directory_must_exist_and_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(&[share(dir.path())]).is_ok());
        let missing = dir.path().join("out");
        let error = check(&[share(dir.path()), share(&missing)])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("mkdir -p {}", missing.display())),
            "{error}"
        );
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let error = check(&[share(&file)]).unwrap_err().to_string();
        assert!(error.contains("is not a directory"), "{error}");
    }
}
