//! Minimal images for vmlane's own FreeBSD init: no base system, just the init, the run
//! file, empty mount points and whatever else the run needs (the probe, ...). Written per
//! run, so it has to be quick: a few MB, no more than the files and some slack.

use crate::error::ImageError;
use crate::makefs::{Layout, Makefs};
use crate::stage;
use crate::tree::Tree;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// Where the init goes, and its mode.
pub const INIT_PATH: &str = "/vmlane/init";
/// Where the run file goes (read-only: mode 0444).
pub const RUN_PATH: &str = "/vmlane/run";
/// Mount points the init mounts devfs, a tmpfs and the host's share on; files cannot go
/// under them, since the mounts would hide them.
pub const MOUNT_POINTS: &[&str] = &["/dev", "/tmp", "/host"];

/// A little room for what the init writes before its mounts are up, and inodes for it.
const MIN_FREE: u64 = 1 << 20;
const FREE_FILES: u64 = 256;

/// Where an extra file's bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// This host file's contents.
    File(&'a Path),
}

/// One more file for a minimal image.
#[derive(Debug, Clone, Copy)]
pub struct ExtraFile<'a> {
    /// Absolute path in the image, such as `/vmlane/bin/probe`.
    pub path: &'a str,
    /// Its contents.
    pub content: Content<'a>,
    /// Its permission bits, such as 0o555.
    pub mode: u32,
}

/// Writes a minimal image to `out`: `/vmlane/init` (0555), `/vmlane/run` (0444), the empty
/// mount points `/dev`, `/tmp` and `/host`, and `files`; everything owned by root. `out`
/// appears whole or not at all.
pub fn minimal_image(
    init: &[u8],
    run_file: &[u8],
    files: &[ExtraFile<'_>],
    out: &Path,
) -> Result<(), ImageError> {
    minimal_image_with(shared_makefs()?, init, run_file, files, out)
}

/// The host's makefs, found and probed once per process: a test suite writes an image for
/// every run.
fn shared_makefs() -> Result<&'static Makefs, ImageError> {
    static MAKEFS: OnceLock<Makefs> = OnceLock::new();
    if let Some(makefs) = MAKEFS.get() {
        return Ok(makefs);
    }
    let makefs = Makefs::find()?;
    makefs.ufs_version()?;
    Ok(MAKEFS.get_or_init(|| makefs))
}

/// [`minimal_image`] with a given makefs.
pub fn minimal_image_with(
    makefs: &Makefs,
    init: &[u8],
    run_file: &[u8],
    files: &[ExtraFile<'_>],
    out: &Path,
) -> Result<(), ImageError> {
    let mut taken = vec![INIT_PATH, RUN_PATH];
    for file in files {
        check_guest_path(file.path, &taken)?;
        taken.push(file.path);
    }
    let scratch = tempfile::Builder::new()
        .prefix("vmlane-image-")
        .tempdir()
        .map_err(ImageError::write(&std::env::temp_dir()))?;
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).map_err(ImageError::write(&root))?;
    for dir in MOUNT_POINTS {
        stage::real_dir(&root, dir)?;
    }
    stage::put_file(&root, &INIT_PATH[1..], init, 0o555)?;
    stage::put_file(&root, &RUN_PATH[1..], run_file, 0o444)?;
    for file in files {
        let rel = &file.path[1..];
        match file.content {
            Content::Bytes(bytes) => {
                stage::put_file(&root, rel, bytes, file.mode)?;
            }
            Content::File(host) => {
                let bytes = std::fs::read(host).map_err(ImageError::read(host))?;
                stage::put_file(&root, rel, &bytes, file.mode)?;
            }
        }
    }

    let tree = Tree::walk(&root)?;
    let spec = scratch.path().join("spec");
    std::fs::write(&spec, tree.root_owned_spec(&root)?).map_err(ImageError::write(&spec))?;
    let layout = Layout::fitting(
        makefs.ufs_version()?,
        &tree,
        None,
        0.1,
        MIN_FREE,
        FREE_FILES,
    );

    // Written beside `out` and renamed over it, so no one sees half an image.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let image = tempfile::Builder::new()
        .prefix(".vmlane-image-")
        .tempfile_in(parent)
        .map_err(ImageError::write(out))?;
    makefs.write_growing(layout, true, Some(&spec), image.path(), &root)?;
    std::fs::set_permissions(image.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(ImageError::write(image.path()))?;
    image
        .persist(out)
        .map_err(|e| ImageError::write(out)(e.error))?;
    Ok(())
}

/// An extra file's path must be absolute, plain (no `.` or `..`), not a mount point or
/// under one, and not given twice.
fn check_guest_path(path: &str, taken: &[&str]) -> Result<(), ImageError> {
    let bad = |reason| {
        Err(ImageError::GuestPath {
            path: path.to_string(),
            reason,
        })
    };
    if !path.starts_with('/') {
        return bad("it must be absolute");
    }
    if path.contains('\0') {
        return bad("it has a NUL byte");
    }
    if path[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("it must name a file plainly, without `.`, `..` or empty parts");
    }
    if MOUNT_POINTS
        .iter()
        .any(|m| path == *m || path.starts_with(&format!("{m}/")))
    {
        return bad("it is under a mount point (/dev, /tmp, /host), which would hide it");
    }
    if taken.contains(&path) {
        return bad("it is already in the image");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_must_be_plain_absolute_and_free() {
        let taken = [INIT_PATH, RUN_PATH];
        check_guest_path("/vmlane/bin/probe", &taken).unwrap();
        check_guest_path("/etc/x", &taken).unwrap();
        for bad in [
            "relative",
            "/",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a/",
            "/tmp/x",
            "/dev",
            "/host/y",
            "/vmlane/init",
            "/vmlane/run",
        ] {
            let error = check_guest_path(bad, &taken).unwrap_err();
            assert!(
                matches!(error, ImageError::GuestPath { .. }),
                "{bad}: {error}"
            );
        }
    }
}
