//! Where built images are kept: `images/` under vmlane's cache (`vmlane_kernel::cache_dir()`:
//! `$VMLANE_CACHE_DIR`, else `$XDG_CACHE_HOME/vmlane`, else `~/.cache/vmlane`), one file per
//! cache key. Nothing writes a cached image after it is stored: a run attaches it behind a
//! snapshot it throws away.

use crate::error::ImageError;
use crate::lint::Finding;
use std::path::{Path, PathBuf};

/// Cached images under a cache root.
pub fn images_dir(cache: &Path) -> PathBuf {
    cache.join("images")
}

/// The cached image for a key, whether or not it exists yet.
pub(crate) fn image_path(cache: &Path, kind: &str, key: &str) -> PathBuf {
    images_dir(cache).join(format!("{kind}-{}.img", &key[..24.min(key.len())]))
}

/// A scratch directory beside the cache's images, so a staged tree and the image written
/// from it are on the cache's file system (a full system does not fit in a small /tmp, and
/// storing the image is then a rename). Removed when dropped.
pub(crate) fn scratch(cache: &Path) -> Result<tempfile::TempDir, ImageError> {
    let dir = images_dir(cache);
    std::fs::create_dir_all(&dir).map_err(ImageError::write(&dir))?;
    tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&dir)
        .map_err(ImageError::write(&dir))
}

/// Moves a finished image into place: no reader ever sees a half-written one.
pub(crate) fn store(image: &Path, path: &Path) -> Result<(), ImageError> {
    std::fs::rename(image, path).map_err(ImageError::write(path))
}

/// Where the lint findings of the cached image `image` are kept: beside it, one a line.
fn findings_path(image: &Path) -> PathBuf {
    image.with_extension("lint")
}

/// Keeps `findings` for the image about to be stored at `image`, written in `scratch` and
/// moved into place first, so a stored image always has its findings beside it.
pub(crate) fn store_findings(
    findings: &[Finding],
    scratch: &Path,
    image: &Path,
) -> Result<(), ImageError> {
    let text: String = findings.iter().map(|f| format!("{f}\n")).collect();
    let partial = scratch.join("lint");
    std::fs::write(&partial, text).map_err(ImageError::write(&partial))?;
    let path = findings_path(image);
    std::fs::rename(&partial, &path).map_err(ImageError::write(&path))
}

/// The findings kept for a cached image; `None` when the image, or they, are not there
/// (an image cached without them is built again).
pub(crate) fn stored_findings(image: &Path) -> Result<Option<Vec<Finding>>, ImageError> {
    if !image.is_file() {
        return Ok(None);
    }
    let path = findings_path(image);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.lines().filter_map(Finding::parse).collect())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ImageError::read(&path)(e)),
    }
}
