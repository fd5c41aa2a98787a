//! An image built by vmlane, read in place: its UFS file system as a [`View`]. Directories
//! are read once and kept, since every lookup walks down from the root.

use super::view::{Kind, Node, ReadSeek, View};
use crate::ufs_read::{Inode, Ufs, UfsError, IFDIR, IFLNK, IFMT, IFREG, ROOT_INO};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

/// Directory entries kept in memory, at most, across all directories.
const MAX_CACHED_ENTRIES: usize = 1 << 20;

type Entries = Rc<Vec<(Vec<u8>, u32)>>;

pub(crate) struct UfsView {
    fs: Ufs,
    dirs: RefCell<HashMap<Vec<u8>, Entries>>,
    cached: RefCell<usize>,
}

fn io_error(error: UfsError) -> io::Error {
    match error {
        UfsError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

impl UfsView {
    pub fn new(fs: Ufs) -> UfsView {
        UfsView {
            fs,
            dirs: RefCell::new(HashMap::new()),
            cached: RefCell::new(0),
        }
    }

    /// The inode at a path relative to the root; `None` when there is none.
    fn inode_at(&self, path: &[u8]) -> io::Result<Option<Inode>> {
        if path.is_empty() {
            return self.fs.inode(ROOT_INO).map(Some).map_err(io_error);
        }
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let Some(entries) = self.entries(parent)? else {
            return Ok(None);
        };
        match entries.iter().find(|(n, _)| n == name) {
            Some(&(_, ino)) => self.fs.inode(ino).map(Some).map_err(io_error),
            None => Ok(None),
        }
    }

    /// A directory's entries, `.` and `..` left out; `None` when it is not a directory.
    fn entries(&self, dir: &[u8]) -> io::Result<Option<Entries>> {
        if let Some(entries) = self.dirs.borrow().get(dir) {
            return Ok(Some(entries.clone()));
        }
        let Some(inode) = self.inode_at(dir)? else {
            return Ok(None);
        };
        if inode.kind() != IFDIR {
            return Ok(None);
        }
        let entries: Entries = Rc::new(
            self.fs
                .dir_entries(&inode)
                .map_err(io_error)?
                .into_iter()
                .filter(|(n, _, _)| n != b"." && n != b"..")
                .map(|(n, ino, _)| (n, ino))
                .collect(),
        );
        let mut cached = self.cached.borrow_mut();
        if *cached + entries.len() <= MAX_CACHED_ENTRIES {
            *cached += entries.len();
            self.dirs.borrow_mut().insert(dir.to_vec(), entries.clone());
        }
        Ok(Some(entries))
    }

    fn existing(&self, path: &[u8]) -> io::Result<Inode> {
        self.inode_at(path)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

impl View for UfsView {
    fn node(&self, path: &[u8]) -> io::Result<Option<Node>> {
        Ok(self.inode_at(path)?.map(|inode| Node {
            kind: match inode.mode & IFMT {
                IFREG => Kind::File,
                IFDIR => Kind::Dir,
                IFLNK => Kind::Symlink,
                _ => Kind::Other,
            },
            size: inode.size,
        }))
    }

    fn read_link(&self, path: &[u8]) -> io::Result<Vec<u8>> {
        let inode = self.existing(path)?;
        self.fs.contents(&inode, 1024).map_err(io_error)
    }

    fn list(&self, path: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        Ok(self
            .entries(path)?
            .map(|e| e.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default())
    }

    fn open(&self, path: &[u8]) -> io::Result<Box<dyn ReadSeek + '_>> {
        let inode = self.existing(path)?;
        Ok(Box::new(self.fs.reader(inode)))
    }
}
