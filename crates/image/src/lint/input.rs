//! What `vmlane image lint` is given: a root tree, a base.txz (unpacked into a scratch
//! directory first, as `vmlane image build` stages it) or a UFS image vmlane built.

use super::error::LintError;
use crate::stage::{self, XZ_MAGIC};
use crate::ufs_read::{Ufs, UfsError};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

pub(crate) enum Input {
    Dir(PathBuf),
    Txz(PathBuf),
    Ufs(Ufs),
}

impl Input {
    /// Tells the kinds apart by looking, not by the name.
    pub fn open(path: &Path) -> Result<Input, LintError> {
        let read_error = |cause| LintError::Read {
            path: path.to_path_buf(),
            cause,
        };
        let meta = fs::metadata(path).map_err(read_error)?;
        if meta.is_dir() {
            fs::read_dir(path).map_err(read_error)?;
            return Ok(Input::Dir(path.to_path_buf()));
        }
        let mut head = Vec::new();
        fs::File::open(path)
            .and_then(|f| f.take(XZ_MAGIC.len() as u64).read_to_end(&mut head))
            .map_err(read_error)?;
        if head == XZ_MAGIC {
            return Ok(Input::Txz(path.to_path_buf()));
        }
        match Ufs::read_image(path) {
            Ok(fs) => Ok(Input::Ufs(fs)),
            Err(UfsError::NoSuperblock) => Err(LintError::Kind {
                path: path.to_path_buf(),
            }),
            Err(UfsError::Io(cause)) => Err(read_error(cause)),
            Err(damaged) => Err(LintError::Ufs {
                path: path.to_path_buf(),
                reason: damaged.to_string(),
            }),
        }
    }
}

/// Unpacks `archive` into a new directory under `scratch`, removed when dropped.
pub(crate) fn unpack(archive: &Path, scratch: &Path) -> Result<tempfile::TempDir, LintError> {
    let write_error = |cause| LintError::Read {
        path: scratch.to_path_buf(),
        cause,
    };
    fs::create_dir_all(scratch).map_err(write_error)?;
    let dir = tempfile::Builder::new()
        .prefix(".lint-")
        .tempdir_in(scratch)
        .map_err(write_error)?;
    stage::extract(archive, dir.path())?;
    Ok(dir)
}
