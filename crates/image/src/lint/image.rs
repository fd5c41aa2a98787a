//! Paths inside an image, resolved the way the image's own kernel would resolve them:
//! symlinks followed inside the tree only (an absolute target starts again at the image's
//! root, `..` stops at it), a bounded number of them, and files read up to a limit.

use super::view::{Kind, Node, ReadSeek, View};
use std::collections::VecDeque;
use std::io::Read;

/// Symlinks one lookup follows before giving up, as FreeBSD's `MAXSYMLINKS`.
const MAX_LINKS: usize = 32;
/// Longest symlink target followed (FreeBSD's `PATH_MAX`).
const MAX_LINK_LEN: u64 = 1024;
/// Path components one lookup walks, links included: a bound however the links nest.
const MAX_STEPS: usize = 4096;

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// An entry, at this resolved path (relative to the root).
    Found { path: Vec<u8>, node: Node },
    /// Nothing there, or a file where a directory should be.
    Missing,
    /// Too many symlinks: a loop.
    Loop,
    /// Something on the way could not be read; the checks then assume nothing.
    Unreadable,
}

/// An image's files, looked up by the paths its programs would use.
pub(crate) struct Image<'a> {
    view: &'a dyn View,
}

impl<'a> Image<'a> {
    pub fn new(view: &'a dyn View) -> Image<'a> {
        Image { view }
    }

    /// Whether `path` leads to a regular file. Unreadable counts as there: a check that
    /// cannot tell says nothing.
    pub fn has_file(&self, path: &[u8]) -> bool {
        match self.lookup(path) {
            Lookup::Found { node, .. } => node.kind == Kind::File,
            Lookup::Unreadable => true,
            Lookup::Missing | Lookup::Loop => false,
        }
    }

    /// Whether `path` leads to a directory (unreadable counts as one, as for files).
    pub fn has_dir(&self, path: &[u8]) -> bool {
        match self.lookup(path) {
            Lookup::Found { node, .. } => node.kind == Kind::Dir,
            Lookup::Unreadable => true,
            Lookup::Missing | Lookup::Loop => false,
        }
    }

    /// The first `limit` bytes of the regular file `path` leads to; `None` when there is
    /// none or it cannot be read.
    pub fn read(&self, path: &[u8], limit: u64) -> Option<Vec<u8>> {
        let Lookup::Found { path, node } = self.lookup(path) else {
            return None;
        };
        if node.kind != Kind::File {
            return None;
        }
        let mut bytes = Vec::new();
        self.view
            .open(&path)
            .ok()?
            .take(limit)
            .read_to_end(&mut bytes)
            .ok()?;
        Some(bytes)
    }

    /// A regular file at a resolved path (from [`Image::lookup`]), opened.
    pub fn open_resolved(&self, path: &[u8]) -> Option<Box<dyn ReadSeek + 'a>> {
        self.view.open(path).ok()
    }

    /// The names in the directory `path` leads to, sorted; empty when it is not one.
    pub fn list(&self, path: &[u8]) -> Vec<Vec<u8>> {
        let Lookup::Found { path, node } = self.lookup(path) else {
            return Vec::new();
        };
        if node.kind != Kind::Dir {
            return Vec::new();
        }
        let mut names = self.view.list(&path).unwrap_or_default();
        names.retain(|n| !n.is_empty() && n != b"." && n != b".." && !n.contains(&b'/'));
        names.sort();
        names
    }

    /// The entry at a resolved path, not following it.
    pub fn node(&self, path: &[u8]) -> Option<Node> {
        self.view.node(path).ok().flatten()
    }

    /// `path` (absolute or relative to the root), every symlink followed.
    pub fn lookup(&self, path: &[u8]) -> Lookup {
        let mut pending: VecDeque<Vec<u8>> = components(path).collect();
        let mut current: Vec<Vec<u8>> = Vec::new();
        let mut node = Node {
            kind: Kind::Dir,
            size: 0,
        };
        let (mut links, mut steps) = (0, 0);
        while let Some(name) = pending.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                return Lookup::Loop;
            }
            if name == b".." {
                current.pop();
                node.kind = Kind::Dir;
                continue;
            }
            current.push(name);
            let here = current.join(&b'/');
            node = match self.view.node(&here) {
                Ok(Some(node)) => node,
                Ok(None) => return Lookup::Missing,
                Err(_) => return Lookup::Unreadable,
            };
            match node.kind {
                Kind::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Lookup::Loop;
                    }
                    if node.size > MAX_LINK_LEN {
                        return Lookup::Missing;
                    }
                    let Ok(target) = self.view.read_link(&here) else {
                        return Lookup::Unreadable;
                    };
                    current.pop();
                    if target.starts_with(b"/") {
                        current.clear();
                    }
                    for component in components(&target).rev() {
                        pending.push_front(component);
                    }
                    node.kind = Kind::Dir;
                }
                Kind::Dir => {}
                _ if pending.is_empty() => {}
                _ => return Lookup::Missing,
            }
        }
        Lookup::Found {
            path: current.join(&b'/'),
            node,
        }
    }
}

/// A path's names, without empty ones and `.`.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}

/// A path inside the image for messages: `/etc/rc.conf`.
pub(crate) fn shown(path: &[u8]) -> String {
    let text = String::from_utf8_lossy(path);
    format!("/{}", text.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::view::DirView;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_tree_and_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "host file").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("lib/libc.so.7"), "libc").unwrap();
        symlink("../../lib/libc.so.7", root.join("usr/lib/rel")).unwrap();
        symlink("/lib/libc.so.7", root.join("usr/lib/abs")).unwrap();
        symlink("../../../../../lib/libc.so.7", root.join("usr/lib/up")).unwrap();
        symlink(&outside, root.join("usr/lib/out")).unwrap();
        symlink("loop-b", root.join("usr/lib/loop-a")).unwrap();
        symlink("loop-a", root.join("usr/lib/loop-b")).unwrap();
        symlink("/usr/lib", root.join("libdir")).unwrap();
        let view = DirView::new(&root);
        let image = Image::new(&view);
        for path in ["usr/lib/rel", "/usr/lib/abs", "usr/lib/up", "libdir/rel"] {
            match image.lookup(path.as_bytes()) {
                Lookup::Found { path: found, node } => {
                    assert_eq!(found, b"lib/libc.so.7", "{path}");
                    assert_eq!(node.kind, Kind::File);
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        assert_eq!(image.lookup(b"usr/lib/out"), Lookup::Missing);
        assert_eq!(image.read(b"usr/lib/out", 100), None);
        assert_eq!(image.lookup(b"usr/lib/loop-a"), Lookup::Loop);
        assert_eq!(image.lookup(b"lib/libc.so.7/x"), Lookup::Missing);
        assert_eq!(image.read(b"/libdir/abs", 2).unwrap(), b"li");
        assert_eq!(image.list(b"libdir").len(), 6);
    }
}
