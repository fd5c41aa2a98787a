//! The staging directory an image is written from: a copy of the source (a FreeBSD root
//! tree, or a base.txz unpacked), which vmlane then adds its files to. The source itself is
//! only ever read.

use crate::error::ImageError;
use crate::key::Key;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// What a FreeBSD image is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A FreeBSD root tree.
    Dir(PathBuf),
    /// An xz-compressed tar of one: FreeBSD's base.txz.
    Txz(PathBuf),
}

/// xz's magic number, which every .txz starts with.
pub(crate) const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";

impl Source {
    /// Tells a directory from a .txz by looking, not by the name.
    pub fn of(path: &Path) -> Result<Source, ImageError> {
        let meta = fs::metadata(path).map_err(ImageError::read(path))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let mut head = [0u8; 6];
        let mut file = File::open(path).map_err(ImageError::read(path))?;
        match file.read_exact(&mut head) {
            Ok(()) if head == XZ_MAGIC => Ok(Source::Txz(path.to_path_buf())),
            Ok(()) => Err(ImageError::SourceKind {
                path: path.to_path_buf(),
            }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ImageError::SourceKind {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(ImageError::read(path)(e)),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(path) | Source::Txz(path) => path,
        }
    }

    /// Adds the source's contents to `key`: the archive's bytes, or every entry of the tree
    /// (path, type, mode, owner when staging keeps owners, contents, link target, which
    /// paths are hard links of which).
    pub fn add_to(&self, key: &mut Key, keep_owners: bool) -> Result<(), ImageError> {
        match self {
            Source::Txz(path) => {
                key.field("source", b"txz");
                key.file("source-bytes", path)
            }
            Source::Dir(root) => {
                key.field("source", b"dir");
                let mut links = HashMap::new();
                hash_dir(root, Path::new(""), key, keep_owners, &mut links)
            }
        }
    }

    /// Fills the empty directory `stage` with the source's files.
    pub fn stage(&self, stage: &Path, keep_owners: bool) -> Result<(), ImageError> {
        match self {
            Source::Txz(archive) => extract(archive, stage),
            Source::Dir(root) => {
                let mut links = HashMap::new();
                copy_dir(root, stage, keep_owners, &mut links)
            }
        }
    }
}

fn hash_dir(
    root: &Path,
    rel: &Path,
    key: &mut Key,
    keep_owners: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ImageError> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(ImageError::read(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(ImageError::read(&dir))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let child = rel.join(&name);
        let path = root.join(&child);
        let meta = path.symlink_metadata().map_err(ImageError::read(&path))?;
        key.field("path", child.as_os_str().as_bytes());
        key.field("mode", &meta.mode().to_le_bytes());
        if keep_owners {
            key.field("owner", format!("{}:{}", meta.uid(), meta.gid()).as_bytes());
        }
        let file_type = meta.file_type();
        if file_type.is_dir() {
            hash_dir(root, &child, key, keep_owners, links)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(ImageError::read(&path))?;
            key.field("link", target.as_os_str().as_bytes());
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    key.field("hardlink", first.as_os_str().as_bytes());
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), child.clone());
            }
            key.file("contents", &path)?;
        }
    }
    Ok(())
}

/// Copies the tree at `from` into `to` (which exists): files, directories, symlinks and hard
/// links, with their modes, and their owners when `keep_owners` (as root). Devices, fifos
/// and sockets are left out; FreeBSD makes those at boot.
fn copy_dir(
    from: &Path,
    to: &Path,
    keep_owners: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), ImageError> {
    for entry in fs::read_dir(from).map_err(ImageError::read(from))? {
        let entry = entry.map_err(ImageError::read(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = source
            .symlink_metadata()
            .map_err(ImageError::read(&source))?;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            fs::create_dir(&target).map_err(ImageError::write(&target))?;
            copy_dir(&source, &target, keep_owners, links)?;
        } else if file_type.is_symlink() {
            let link = fs::read_link(&source).map_err(ImageError::read(&source))?;
            std::os::unix::fs::symlink(&link, &target).map_err(ImageError::write(&target))?;
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    fs::hard_link(first, &target).map_err(ImageError::write(&target))?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), target.clone());
            }
            copy_file(&source, &target, &meta)?;
        } else {
            continue;
        }
        if keep_owners {
            std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))
                .map_err(ImageError::write(&target))?;
        }
        if !file_type.is_symlink() {
            // After the contents, so a read-only directory can still be filled.
            fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(ImageError::write(&target))?;
        }
    }
    Ok(())
}

/// Copies a file's contents and modification time; its mode is set by the caller, after,
/// since a read-only copy could not be given its time.
fn copy_file(source: &Path, target: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
    let mut from = File::open(source).map_err(ImageError::read(source))?;
    let mut to = File::options()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(ImageError::write(target))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::read(source)(e)),
        };
        to.write_all(&buf[..n]).map_err(ImageError::write(target))?;
    }
    if let Ok(modified) = meta.modified() {
        to.set_modified(modified)
            .map_err(ImageError::write(target))?;
    }
    Ok(())
}

/// Unpacks `archive` into `stage` with the host's tar (GNU tar or bsdtar; both read xz and
/// `./`-prefixed names and make hard links as hard links). Numeric owners, since FreeBSD's
/// user and group names mean other ids on the host; modes as recorded.
pub(crate) fn extract(archive: &Path, stage: &Path) -> Result<(), ImageError> {
    let output = Command::new("tar")
        .arg("-x")
        .arg("-J")
        .arg("-p")
        .arg("--numeric-owner")
        .arg("-f")
        .arg(archive)
        .arg("-C")
        .arg(stage)
        .output()
        .map_err(|e| ImageError::Extract {
            path: archive.to_path_buf(),
            status: "not run".to_string(),
            stderr: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(ImageError::Extract {
            path: archive.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_string(),
        });
    }
    Ok(())
}

/// Checks that the staged tree has what the boot hook needs.
pub(crate) fn check_root_tree(stage: &Path, source: &Path) -> Result<(), ImageError> {
    for missing in ["bin/sh", "etc/rc.subr"] {
        if stage.join(missing).symlink_metadata().is_err() {
            return Err(ImageError::NotARootTree {
                path: source.to_path_buf(),
                missing,
            });
        }
    }
    Ok(())
}

/// The directory `rel` under `stage`, made if missing. A symlink on the way is refused:
/// following one could lead out of the staging directory, into the host's files.
pub(crate) fn real_dir(stage: &Path, rel: &str) -> Result<PathBuf, ImageError> {
    let mut dir = stage.to_path_buf();
    for component in Path::new(rel).components() {
        let Component::Normal(name) = component else {
            continue;
        };
        dir.push(name);
        match dir.symlink_metadata() {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ImageError::NotADirectory {
                    path: format!("/{}", dir.strip_prefix(stage).unwrap_or(&dir).display()),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(ImageError::write(&dir))?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(ImageError::write(&dir))?;
            }
            Err(e) => return Err(ImageError::read(&dir)(e)),
        }
    }
    Ok(dir)
}

/// Puts a new file at `rel` under `stage`, replacing whatever was there without writing
/// through it (it may be a symlink).
pub(crate) fn put_file(
    stage: &Path,
    rel: &str,
    contents: &[u8],
    mode: u32,
) -> Result<PathBuf, ImageError> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let path = real_dir(stage, parent)?.join(name);
    remove(&path)?;
    fs::write(&path, contents).map_err(ImageError::write(&path))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(ImageError::write(&path))?;
    Ok(path)
}

/// The contents of `rel` under `stage` if it is a regular file (a symlinked one is not
/// followed: it could point at the host's own file).
pub(crate) fn regular_file(stage: &Path, rel: &str) -> Result<Option<Vec<u8>>, ImageError> {
    let path = stage.join(rel);
    match path.symlink_metadata() {
        Ok(meta) if meta.is_file() => fs::read(&path).map(Some).map_err(ImageError::read(&path)),
        _ => Ok(None),
    }
}

/// Removes whatever is at `path`, if anything.
pub(crate) fn remove(path: &Path) -> Result<(), ImageError> {
    let result = match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    result.map_err(ImageError::write(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_by_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let txz = dir.path().join("base.tar");
        fs::write(&txz, b"\xfd7zXZ\0rest").unwrap();
        assert_eq!(Source::of(&txz).unwrap(), Source::Txz(txz.clone()));
        assert_eq!(
            Source::of(dir.path()).unwrap(),
            Source::Dir(dir.path().to_path_buf())
        );
        for (name, bytes) in [("base.txz", &b"not xz at all"[..]), ("empty.txz", b"")] {
            let path = dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            let error = Source::of(&path).unwrap_err();
            assert!(matches!(error, ImageError::SourceKind { .. }), "{error}");
            assert!(error.to_string().contains("neither a directory"), "{error}");
        }
        let missing = dir.path().join("missing");
        let error = Source::of(&missing).unwrap_err();
        assert!(
            error.to_string().contains(&*missing.to_string_lossy()),
            "{error}"
        );
    }

    #[test]
    fn a_copied_tree_keeps_modes_symlinks_and_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/test"), "t").unwrap();
        fs::set_permissions(src.join("bin/test"), fs::Permissions::from_mode(0o4555)).unwrap();
        fs::hard_link(src.join("bin/test"), src.join("bin/[")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("bin/abs")).unwrap();
        fs::set_permissions(src.join("bin"), fs::Permissions::from_mode(0o555)).unwrap();
        let stage = dir.path().join("stage");
        fs::create_dir(&stage).unwrap();
        Source::Dir(src.clone()).stage(&stage, false).unwrap();
        let test = stage.join("bin/test").symlink_metadata().unwrap();
        assert_eq!(test.mode() & 0o7777, 0o4555);
        assert_eq!(test.ino(), stage.join("bin/[").metadata().unwrap().ino());
        assert_eq!(
            fs::read_link(stage.join("bin/abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(stage.join("bin").metadata().unwrap().mode() & 0o7777, 0o555);
        fs::set_permissions(stage.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(src.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_tree_key_changes_with_contents_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        fs::write(src.join("a"), "1").unwrap();
        let key = || {
            let mut key = Key::new();
            Source::Dir(src.to_path_buf())
                .add_to(&mut key, false)
                .unwrap();
            key.finish()
        };
        let first = key();
        assert_eq!(first, key());
        fs::write(src.join("a"), "2").unwrap();
        let second = key();
        assert_ne!(first, second);
        fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o600)).unwrap();
        let third = key();
        assert_ne!(second, third);
        fs::hard_link(src.join("a"), src.join("b")).unwrap();
        assert_ne!(third, key());
    }

    #[test]
    fn vmlane_never_writes_through_a_symlink_in_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "host file").unwrap();
        let stage = dir.path().join("stage");
        fs::create_dir_all(stage.join("etc")).unwrap();
        std::os::unix::fs::symlink(&outside, stage.join("etc/fstab")).unwrap();
        assert_eq!(regular_file(&stage, "etc/fstab").unwrap(), None);
        put_file(&stage, "etc/fstab", b"new", 0o644).unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"host file");
        assert_eq!(fs::read(stage.join("etc/fstab")).unwrap(), b"new");

        std::os::unix::fs::symlink(dir.path(), stage.join("boot")).unwrap();
        let error = put_file(&stage, "boot/x/kernel", b"k", 0o555).unwrap_err();
        assert!(matches!(error, ImageError::NotADirectory { .. }), "{error}");
        assert!(!dir.path().join("x").exists());
    }
}
