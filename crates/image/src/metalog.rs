//! A world installed without root (`installworld -DNO_ROOT`, as on any non-FreeBSD host)
//! records owners, modes (setuid bits included) and file flags in `METALOG`, an mtree file,
//! instead of on the files. An image built from such a tree takes them from there.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The file name `installworld -DNO_ROOT` writes at the top of the tree.
pub const METALOG: &str = "METALOG";

/// What METALOG says about one path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    pub uname: Option<String>,
    pub gname: Option<String>,
    /// Permission bits, setuid, setgid and sticky included.
    pub mode: Option<u32>,
    /// `schg`, `uchg,nodump`, ...
    pub flags: Option<String>,
}

/// The entries of a METALOG, by path relative to the tree's root.
#[derive(Debug, Default)]
pub(crate) struct Metalog {
    entries: HashMap<PathBuf, Attributes>,
}

impl Metalog {
    /// Parses METALOG text; a path listed again adds to (and overrides) what came before, as
    /// installworld lists directories once per install into them.
    pub fn parse(text: &str) -> Metalog {
        let mut metalog = Metalog::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('/') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(path) = words.next().and_then(relative) else {
                continue;
            };
            let entry = metalog.entries.entry(path).or_default();
            for word in words {
                let Some((key, value)) = word.split_once('=') else {
                    continue;
                };
                match key {
                    "uname" => entry.uname = Some(value.to_string()),
                    "gname" => entry.gname = Some(value.to_string()),
                    "mode" => entry.mode = u32::from_str_radix(value, 8).ok().map(|m| m & 0o7777),
                    "flags" if value != "none" => entry.flags = Some(value.to_string()),
                    _ => {}
                }
            }
        }
        metalog
    }

    /// What METALOG says about `path` (relative to the root), if it lists it.
    pub fn get(&self, path: &Path) -> Option<&Attributes> {
        self.entries.get(path)
    }
}

/// `./usr/bin/su` (mtree-escaped) as `usr/bin/su`; `.` is the root itself.
fn relative(word: &str) -> Option<PathBuf> {
    let unescaped = unescape(word)?;
    let rest = match unescaped.as_slice() {
        b"." => &[][..],
        bytes => bytes.strip_prefix(b"./")?,
    };
    if rest
        .split(|b| *b == b'/')
        .any(|part| part == b".." || part.is_empty())
        && !rest.is_empty()
    {
        return None;
    }
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(rest)))
}

/// mtree's `\ooo` escapes decoded; `None` for a malformed one.
fn unescape(word: &str) -> Option<Vec<u8>> {
    let bytes = word.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4)?;
            let text = std::str::from_utf8(digits).ok()?;
            out.push(u8::from_str_radix(text, 8).ok()?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// User and group names of the staged system, from its own `etc/master.passwd` (or
/// `etc/passwd`) and `etc/group`: METALOG names owners, and the image's ids are what count.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
}

impl Accounts {
    /// Reads the accounts under `root`; missing files give no names.
    pub fn read(root: &Path) -> Accounts {
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
        let passwd = match read("etc/master.passwd") {
            text if !text.is_empty() => text,
            _ => read("etc/passwd"),
        };
        Accounts {
            users: ids(&passwd),
            groups: ids(&read("etc/group")),
        }
    }

    /// The uid of `name`.
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.get(name).copied()
    }

    /// The gid of `name`.
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.get(name).copied()
    }
}

/// `name:x:ID:...` lines as name → ID.
fn ids(text: &str) -> HashMap<String, u32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const METALOG_TEXT: &str = "#mtree 2.0\n\
        . type=dir uname=root gname=wheel mode=0755\n\
        ./usr/bin/su type=file uname=root gname=wheel mode=04555 flags=schg size=19000\n\
        ./usr/bin/wall type=file uname=root gname=tty mode=02555\n\
        ./usr type=dir uname=root gname=wheel mode=0755\n\
        ./usr type=dir mode=0750\n\
        ./odd\\040name type=file mode=0644 flags=none\n\
        ./../escape type=file mode=04777\n\
        /set type=file\n";

    #[test]
    fn owners_modes_and_flags_come_from_each_path_and_later_lines_win() {
        let metalog = Metalog::parse(METALOG_TEXT);
        let su = metalog.get(Path::new("usr/bin/su")).unwrap();
        assert_eq!(su.mode, Some(0o4555));
        assert_eq!(su.flags.as_deref(), Some("schg"));
        assert_eq!(su.uname.as_deref(), Some("root"));
        let wall = metalog.get(Path::new("usr/bin/wall")).unwrap();
        assert_eq!(
            (wall.gname.as_deref(), wall.mode),
            (Some("tty"), Some(0o2555))
        );
        let usr = metalog.get(Path::new("usr")).unwrap();
        assert_eq!(
            (usr.mode, usr.gname.as_deref()),
            (Some(0o750), Some("wheel"))
        );
        assert_eq!(metalog.get(Path::new("")).unwrap().mode, Some(0o755));
        let odd = metalog.get(Path::new("odd name")).unwrap();
        assert_eq!(odd.flags, None);
        assert!(
            metalog.get(Path::new("../escape")).is_none(),
            "never outside the tree"
        );
    }

    #[test]
    fn names_resolve_through_the_images_own_accounts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/master.passwd"),
            "# comment\nroot:*:0:0::0:0:Charlie &:/root:/bin/sh\nsshd:*:22:22::0:0:sshd:/var/empty:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "wheel:*:0:root\ntty:*:4:\n").unwrap();
        let accounts = Accounts::read(dir.path());
        assert_eq!(accounts.uid("sshd"), Some(22));
        assert_eq!(accounts.gid("tty"), Some(4));
        assert_eq!(accounts.uid("nobody"), None);
    }
}
