//! A staged directory tree as makefs will see it: what sizes the image, and the mtree spec
//! that makes root own everything when the tree was staged by another user.

use crate::error::ImageError;
use crate::metalog::{Accounts, Metalog};
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One file, directory or link under the root.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Relative to the root; empty for the root itself.
    pub path: PathBuf,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file; only the first of its hard links takes space.
    File { size: u64, first_link: bool },
    /// A directory, with the bytes its entries take.
    Dir { entry_bytes: u64 },
    /// A symlink, with its target's length (UFS2 keeps short ones in the inode).
    Symlink { len: u64 },
    /// A device, fifo or socket.
    Other,
}

#[derive(Debug, Default)]
pub(crate) struct Tree {
    /// Parents before children, names in byte order.
    pub entries: Vec<Entry>,
}

impl Tree {
    /// Walks the tree under `root` without following symlinks.
    pub fn walk(root: &Path) -> Result<Tree, ImageError> {
        let mut tree = Tree::default();
        let mut seen = HashSet::new();
        walk_dir(root, Path::new(""), &mut tree, &mut seen)?;
        Ok(tree)
    }

    /// An mtree spec listing every entry as owned by root (uid and gid 0); makefs takes
    /// everything else (modes, link targets, contents) from the files.
    pub fn root_owned_spec(&self, root: &Path) -> Result<Vec<u8>, ImageError> {
        self.spec(root, None)
    }

    /// An mtree spec giving each entry the owner, mode and flags `metalog` records for it
    /// (names resolved through the staged system's own accounts), and root as the owner of
    /// the rest; makefs takes everything not given (contents, link targets) from the files.
    pub fn spec(&self, root: &Path, metalog: Option<&Metalog>) -> Result<Vec<u8>, ImageError> {
        let accounts = Accounts::read(root);
        let mut spec = b"#mtree\n".to_vec();
        for entry in &self.entries {
            let kind = match entry.kind {
                Kind::File { .. } => "file",
                Kind::Dir { .. } => "dir",
                Kind::Symlink { .. } => "link",
                Kind::Other => continue,
            };
            spec.extend_from_slice(b".");
            if !entry.path.as_os_str().is_empty() {
                spec.push(b'/');
                spec.extend_from_slice(&escape(entry.path.as_os_str().as_bytes()));
            }
            let recorded = metalog.and_then(|m| m.get(&entry.path));
            let id = |name: Option<&String>, lookup: &dyn Fn(&str) -> Option<u32>| {
                name.and_then(|n| lookup(n)).unwrap_or(0)
            };
            let uid = id(recorded.and_then(|r| r.uname.as_ref()), &|n| {
                accounts.uid(n)
            });
            let gid = id(recorded.and_then(|r| r.gname.as_ref()), &|n| {
                accounts.gid(n)
            });
            spec.extend_from_slice(format!(" type={kind} uid={uid} gid={gid}").as_bytes());
            if let Some(mode) = recorded.and_then(|r| r.mode).filter(|_| kind != "link") {
                spec.extend_from_slice(format!(" mode={mode:04o}").as_bytes());
            }
            if let Some(flags) = recorded.and_then(|r| r.flags.as_deref()) {
                spec.extend_from_slice(format!(" flags={flags}").as_bytes());
            }
            if let Kind::Symlink { .. } = entry.kind {
                let path = root.join(&entry.path);
                let target = std::fs::read_link(&path).map_err(ImageError::read(&path))?;
                spec.extend_from_slice(b" link=");
                spec.extend_from_slice(&escape(target.as_os_str().as_bytes()));
            }
            spec.push(b'\n');
        }
        Ok(spec)
    }
}

fn walk_dir(
    root: &Path,
    rel: &Path,
    tree: &mut Tree,
    seen: &mut HashSet<(u64, u64)>,
) -> Result<(), ImageError> {
    let dir = root.join(rel);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map_err(ImageError::read(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(ImageError::read(&dir))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    // `.` and `..`, then each entry: 8 bytes of header and the name, NUL-ended, in 4s.
    let entry_bytes = 24
        + names
            .iter()
            .map(|n| 8 + (n.len() as u64 + 1).next_multiple_of(4))
            .sum::<u64>();
    tree.entries.push(Entry {
        path: rel.to_path_buf(),
        kind: Kind::Dir { entry_bytes },
    });
    for name in names {
        let child = rel.join(&name);
        let path = root.join(&child);
        let meta = path.symlink_metadata().map_err(ImageError::read(&path))?;
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            walk_dir(root, &child, tree, seen)?;
            continue;
        } else if file_type.is_file() {
            let first_link = meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino()));
            Kind::File {
                size: meta.len(),
                first_link,
            }
        } else if file_type.is_symlink() {
            Kind::Symlink { len: meta.len() }
        } else {
            Kind::Other
        };
        tree.entries.push(Entry { path: child, kind });
    }
    Ok(())
}

/// mtree's encoding of a name: anything but plain characters as a backslash and three octal
/// digits, so spaces, `#`, `=` and the rest cannot break the spec's words.
fn escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"._-+/,:@~%^".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("\\{b:03o}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_break_a_spec_are_escaped() {
        assert_eq!(escape(b"bin/cat"), b"bin/cat");
        assert_eq!(escape(b"a b#c=d"), b"a\\040b\\043c\\075d");
        assert_eq!(escape(b"[\\\xff"), b"\\133\\134\\377");
    }

    #[test]
    fn the_walk_counts_hard_links_once_and_lists_parents_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("b/c/f"), vec![1u8; 5000]).unwrap();
        std::fs::hard_link(root.join("b/c/f"), root.join("a")).unwrap();
        std::os::unix::fs::symlink("c/f", root.join("b/l")).unwrap();
        let tree = Tree::walk(root).unwrap();
        let paths: Vec<_> = tree.entries.iter().map(|e| e.path.clone()).collect();
        let expected: Vec<PathBuf> = ["", "a", "b", "b/c", "b/c/f", "b/l"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(paths, expected);
        let sized = tree
            .entries
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    Kind::File {
                        first_link: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(sized, 1);
        let spec = String::from_utf8(tree.root_owned_spec(root).unwrap()).unwrap();
        assert!(spec.contains("\n. type=dir uid=0 gid=0\n"), "{spec}");
        assert!(
            spec.contains("\n./b/l type=link uid=0 gid=0 link=c/f\n"),
            "{spec}"
        );
    }
}
