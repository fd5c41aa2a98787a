//! The request's disks: images checked to open before QEMU is asked to (its own message names
//! no fix), scratch disks made as sparse files in the run directory, so they go with it.

use super::error::StageError;
use std::io::ErrorKind;
use vmlane_backend::{Disk, RunDir};
use vmlane_spec::DiskSpec;

/// Checks every image opens for reading; images are absolute paths already (the plan).
pub(super) fn check(disks: &[DiskSpec]) -> Result<Vec<DiskSpec>, StageError> {
    for disk in disks {
        let DiskSpec::Image { path, .. } = disk else {
            continue;
        };
        match std::fs::File::open(path).and_then(|file| file.metadata()) {
            Ok(meta) if meta.is_dir() => return Err(StageError::DiskIsDirectory(path.clone())),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StageError::DiskMissing(path.clone()))
            }
            Err(source) => {
                return Err(StageError::Disk {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Ok(disks.to_vec())
}

/// The checked disks as the machine attaches them.
pub(super) fn attach(disks: Vec<DiskSpec>, run_dir: &RunDir) -> Result<Vec<Disk>, StageError> {
    let mut attached = Vec::with_capacity(disks.len());
    for (index, disk) in disks.into_iter().enumerate() {
        attached.push(match disk {
            DiskSpec::Image { path, read_only } => Disk {
                read_only,
                ..Disk::throwaway(path)
            },
            DiskSpec::Scratch { bytes } => {
                let path = run_dir.join(&format!("scratch{index}.img"));
                std::fs::File::create(&path)
                    .and_then(|file| file.set_len(bytes))
                    .map_err(|source| StageError::Disk {
                        path: path.clone(),
                        source,
                    })?;
                // Nothing else sees the file, so the guest's writes may land in it.
                Disk {
                    keep_writes: true,
                    ..Disk::throwaway(path)
                }
            }
        });
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_checked_then_scratch_disks_made_sparse_in_the_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.img");
        std::fs::write(&base, [0u8; 512]).unwrap();
        let mut disks = vec![
            DiskSpec::Scratch { bytes: 1 << 30 },
            DiskSpec::Image {
                path: base.clone(),
                read_only: true,
            },
        ];
        let checked = check(&disks).unwrap();
        let run_dir = RunDir::create_in(dir.path()).unwrap();
        let attached = attach(checked, &run_dir).unwrap();
        assert_eq!(attached.len(), 2);
        let scratch = std::fs::metadata(&attached[0].path).unwrap();
        assert!(attached[0].path.starts_with(run_dir.path()));
        assert_eq!(scratch.len(), 1 << 30);
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&scratch) < 64,
            "not sparse"
        );
        assert!(attached[0].keep_writes && !attached[0].read_only);
        assert_eq!(attached[1].path, base);
        assert!(attached[1].read_only);

        disks.push(DiskSpec::Image {
            path: dir.path().join("missing.img"),
            read_only: false,
        });
        let error = check(&disks).unwrap_err().to_string();
        assert!(error.contains("missing.img: it does not exist"), "{error}");
        let error = check(&[DiskSpec::Image {
            path: dir.path().to_path_buf(),
            read_only: false,
        }])
        .unwrap_err()
        .to_string();
        assert!(error.ends_with("it is a directory"), "{error}");
    }
}
