//! The read-only access the checks have to an image's files, whatever holds them: a
//! directory on the host, or a UFS image read in place. Paths are inside the image and
//! already resolved; nothing here follows a symlink.

use std::ffi::OsStr;
use std::io::{self, Read, Seek};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a directory entry is, as `lstat` would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// An entry's kind and size (a symlink's size is its target's length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub size: u64,
}

/// A file opened for reading: ELF headers are read piecemeal, so a large program is never
/// read whole.
pub(crate) trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// An image's files. `path` is relative to the image's root (`etc/rc.conf`, empty for the
/// root) and every directory on the way is a real directory, checked by the caller.
pub(crate) trait View {
    /// The entry at `path`, `None` when there is none.
    fn node(&self, path: &[u8]) -> io::Result<Option<Node>>;
    /// A symlink's target, as stored.
    fn read_link(&self, path: &[u8]) -> io::Result<Vec<u8>>;
    /// A directory's entry names, without `.` and `..`.
    fn list(&self, path: &[u8]) -> io::Result<Vec<Vec<u8>>>;
    /// A regular file, for reading.
    fn open(&self, path: &[u8]) -> io::Result<Box<dyn ReadSeek + '_>>;
}

/// A FreeBSD root tree in a host directory. Since the checks resolve every symlink
/// themselves and hand over paths of real directories only, the host never follows one out
/// of the tree.
pub(crate) struct DirView {
    root: PathBuf,
}

impl DirView {
    pub fn new(root: &Path) -> DirView {
        DirView {
            root: root.to_path_buf(),
        }
    }

    fn host(&self, path: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(path))
    }
}

impl View for DirView {
    fn node(&self, path: &[u8]) -> io::Result<Option<Node>> {
        let meta = match self.host(path).symlink_metadata() {
            Ok(meta) => meta,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let file_type = meta.file_type();
        let kind = if file_type.is_file() {
            Kind::File
        } else if file_type.is_dir() {
            Kind::Dir
        } else if file_type.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        Ok(Some(Node {
            kind,
            size: meta.size(),
        }))
    }

    fn read_link(&self, path: &[u8]) -> io::Result<Vec<u8>> {
        Ok(std::fs::read_link(self.host(path))?
            .into_os_string()
            .into_vec())
    }

    fn list(&self, path: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        std::fs::read_dir(self.host(path))?
            .map(|entry| entry.map(|e| e.file_name().into_vec()))
            .collect()
    }

    fn open(&self, path: &[u8]) -> io::Result<Box<dyn ReadSeek + '_>> {
        Ok(Box::new(std::fs::File::open(self.host(path))?))
    }
}
