//! Why the lint could not run at all, as opposed to what it found.

use crate::error::ImageError;
use std::io;
use std::path::PathBuf;

/// Why an input could not be linted at all (`vmlane image lint` exits 125). What the checks
/// cannot read inside an image is not an error: they say nothing about it.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The input could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The input.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// The input is not something an image is made from or made of.
    #[error("{path} is neither a directory (a FreeBSD root tree), a FreeBSD base.txz, nor a UFS image written by `vmlane image build` (partitioned disks and qcow2 images are not read: lint the tree or base.txz they were made from)")]
    Kind {
        /// The input.
        path: PathBuf,
    },
    /// The input looked like a UFS image but could not be read as one.
    #[error("{path} cannot be read as a UFS image ({reason}); lint the directory or base.txz it was built from instead")]
    Ufs {
        /// The image.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A base.txz could not be unpacked to be linted.
    #[error(transparent)]
    Unpack(#[from] ImageError),
}
