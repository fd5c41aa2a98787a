//! A writer for the "newc" cpio format, the one the kernel unpacks as its initramfs.
//!
//! Every entry is deterministic (mtime 0, owner root, inodes counting up) so the same inputs
//! always give the same bytes.

use std::io::{self, Write};

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

const TYPE_DIR: u32 = 0o040000;
const TYPE_FILE: u32 = 0o100000;
const TYPE_CHAR: u32 = 0o020000;
const TYPE_SYMLINK: u32 = 0o120000;
/// Permission bits only; the entry type comes from the method called.
const PERMISSIONS: u32 = 0o7777;

/// Writes a newc archive entry by entry; call [`CpioWriter::finish`] to end it.
pub struct CpioWriter<W: Write> {
    out: W,
    /// Bytes written so far, for padding to 4-byte boundaries.
    written: u64,
    next_inode: u32,
}

/// The fields of one entry's header that differ between entry kinds.
struct Entry<'a> {
    path: &'a str,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: &'a [u8],
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`, which should be at a 4-byte aligned offset.
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_inode: 1,
        }
    }

    /// Adds a directory; `path` is relative (no leading `/`), `mode` the permission bits.
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        checked_path(path)?;
        self.entry(Entry {
            path,
            mode: TYPE_DIR | (mode & PERMISSIONS),
            nlink: 2,
            rdev: (0, 0),
            data: &[],
        })
    }

    /// Adds a regular file holding `data`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        checked_path(path)?;
        self.entry(Entry {
            path,
            mode: TYPE_FILE | (mode & PERMISSIONS),
            nlink: 1,
            rdev: (0, 0),
            data,
        })
    }

    /// Adds a character device node, such as `dev/console` (5:1), which the kernel opens for
    /// init's stdio before any devtmpfs exists.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        checked_path(path)?;
        self.entry(Entry {
            path,
            mode: TYPE_CHAR | (mode & PERMISSIONS),
            nlink: 1,
            rdev: (major, minor),
            data: &[],
        })
    }

    /// Adds a symbolic link to `target`; newc stores the target as the entry's data.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        checked_path(path)?;
        self.entry(Entry {
            path,
            mode: TYPE_SYMLINK | 0o777,
            nlink: 1,
            rdev: (0, 0),
            data: target.as_bytes(),
        })
    }

    /// Writes the trailer, flushes, and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_inode = 0;
        self.entry(Entry {
            path: TRAILER,
            mode: 0,
            nlink: 1,
            rdev: (0, 0),
            data: &[],
        })?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(&mut self, entry: Entry<'_>) -> io::Result<()> {
        let size = u32::try_from(entry.data.len()).map_err(|_| {
            invalid(format!(
                "cpio entry {} is larger than the 4 GiB newc allows",
                entry.path
            ))
        })?;
        let name_len = u32::try_from(entry.path.len() + 1)
            .map_err(|_| invalid(format!("cpio entry name {} is too long", entry.path)))?;
        let inode = self.next_inode;
        self.next_inode = self.next_inode.wrapping_add(1);
        let fields = [
            inode,
            entry.mode,
            0, // uid
            0, // gid
            entry.nlink,
            0, // mtime
            size,
            0, // major of the device holding the file
            0, // minor of the device holding the file
            entry.rdev.0,
            entry.rdev.1,
            name_len,
            0, // checksum, unused by newc
        ];
        let mut header = [0u8; HEADER_LEN];
        header[..6].copy_from_slice(MAGIC);
        for (slot, field) in header[6..].chunks_exact_mut(8).zip(fields) {
            hex8(field, slot);
        }
        self.put(&header)?;
        self.put(entry.path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(entry.data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Pads with NULs to the next multiple of 4, which newc requires after names and data.
    fn pad(&mut self) -> io::Result<()> {
        let padding = self.written.wrapping_neg() % 4;
        self.put(&[0; 3][..padding as usize])
    }
}

/// Rejects paths the kernel's unpacker would mangle: empty, absolute, or holding a NUL.
fn checked_path(path: &str) -> io::Result<()> {
    if path.is_empty() || path.starts_with('/') || path.contains('\0') || path == TRAILER {
        return Err(invalid(format!(
            "cpio entry path {path:?} must be relative, non-empty and free of NULs"
        )));
    }
    Ok(())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Writes `value` as eight lowercase hex digits, the width of every newc field.
fn hex8(value: u32, slot: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in slot.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (28 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// One entry read back: name, mode, (rdev major, rdev minor), data.
    pub type Parsed = (String, u32, (u32, u32), Vec<u8>);

    /// Reads a newc archive back, checking alignment on the way; enough to test the writer.
    pub fn parse(bytes: &[u8]) -> Vec<Parsed> {
        let mut entries = Vec::new();
        let mut at = 0usize;
        loop {
            assert_eq!(at % 4, 0, "entry at {at} is not 4-aligned");
            let header = &bytes[at..at + HEADER_LEN];
            assert_eq!(&header[..6], MAGIC, "magic at {at}");
            let field = |i: usize| {
                let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(hex, 16).unwrap()
            };
            let (mode, size, rdev, name_len) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name_at = at + HEADER_LEN;
            assert_eq!(bytes[name_at + name_len - 1], 0, "name is NUL-terminated");
            let name = String::from_utf8(bytes[name_at..name_at + name_len - 1].to_vec()).unwrap();
            let data_at = (name_at + name_len).next_multiple_of(4);
            assert!(bytes[name_at + name_len..data_at].iter().all(|&b| b == 0));
            let data = bytes[data_at..data_at + size].to_vec();
            at = (data_at + size).next_multiple_of(4);
            if name == TRAILER {
                assert_eq!(at, bytes.len(), "nothing after the trailer");
                return entries;
            }
            entries.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn header_fields_have_the_exact_newc_bytes() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.file("init", 0o755, b"#!").unwrap();
        let bytes = writer.finish().unwrap();
        let expected_header = concat!(
            "070701",   // magic
            "00000001", // inode
            "000081ed", // regular file, 0755
            "00000000", // uid
            "00000000", // gid
            "00000001", // nlink
            "00000000", // mtime
            "00000002", // size
            "00000000", // dev major
            "00000000", // dev minor
            "00000000", // rdev major
            "00000000", // rdev minor
            "00000005", // name length with its NUL
            "00000000", // check
        );
        assert_eq!(std::str::from_utf8(&bytes[..110]).unwrap(), expected_header);
        // 110 + 5 = 115, padded to 116; then 2 data bytes padded to 120.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..120], b"#!\0\0");
        let trailer = std::str::from_utf8(&bytes[120..230]).unwrap();
        assert!(trailer.starts_with("07070100000000"), "trailer inode 0");
        assert_eq!(&trailer[94..102], "0000000b", "TRAILER!!! and its NUL");
        assert_eq!(&bytes[230..241], b"TRAILER!!!\0");
        assert_eq!(bytes.len(), 244);
    }

    #[test]
    fn kinds_have_their_type_bits_nlink_and_rdev() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.dir("dev", 0o755).unwrap();
        writer.char_device("dev/console", 0o600, 5, 1).unwrap();
        writer.symlink("sh", "bin/busybox").unwrap();
        let bytes = writer.finish().unwrap();
        let entries = parse(&bytes);
        assert_eq!(entries[0].1, 0o040755);
        assert_eq!((entries[1].1, entries[1].2), (0o020600, (5, 1)));
        assert_eq!(
            (entries[2].1, entries[2].3.as_slice()),
            (0o120777, &b"bin/busybox"[..])
        );
        let nlink = |at: usize| &bytes[at + 38..at + 46];
        assert_eq!(nlink(0), b"00000002", "directories have nlink 2");
        let second = (110 + 4usize).next_multiple_of(4);
        assert_eq!(nlink(second), b"00000001");
        assert_eq!(
            &bytes[second + 6..second + 14],
            b"00000002",
            "inodes count up"
        );
    }

    #[test]
    fn names_of_every_length_mod_4_stay_aligned() {
        let mut writer = CpioWriter::new(Vec::new());
        let names = [
            "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh",
        ];
        for (i, name) in names.iter().enumerate() {
            writer.file(name, 0o644, &vec![b'x'; i]).unwrap();
        }
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(entries.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(entries[i].0, *name);
            assert_eq!(entries[i].3, vec![b'x'; i], "{name}");
        }
    }

    #[test]
    fn bad_paths_are_errors_not_entries() {
        let mut writer = CpioWriter::new(Vec::new());
        for path in ["", "/init", "a\0b", "TRAILER!!!"] {
            let error = writer.file(path, 0o644, b"").unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{path:?}");
        }
        assert!(parse(&writer.finish().unwrap()).is_empty());
    }

    fn system_cpio(args: &[&str], dir: &std::path::Path, archive: &[u8]) -> String {
        let mut child = Command::new("cpio")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(archive).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "cpio {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn system_cpio_round_trip_or_skipped_when_not_installed() {
        match Command::new("cpio").arg("--version").output() {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                println!("skipped: cpio not installed");
                return;
            }
            probe => assert!(probe.unwrap().status.success()),
        }
        let mut writer = CpioWriter::new(Vec::new());
        writer.dir("d", 0o755).unwrap();
        writer.dir("d/sub", 0o700).unwrap();
        writer.file("d/sub/x", 0o644, b"1").unwrap();
        writer.file("d/ab", 0o755, b"#!/bin/sh\n").unwrap();
        writer.file("d/abc", 0o600, b"").unwrap();
        writer.symlink("d/link", "ab").unwrap();
        writer.char_device("console", 0o600, 5, 1).unwrap();
        let archive = writer.finish().unwrap();
        let scratch = tempfile::tempdir().unwrap();

        let listing = system_cpio(&["-t", "--quiet"], scratch.path(), &archive);
        let names: Vec<&str> = listing.lines().collect();
        assert_eq!(
            names,
            ["d", "d/sub", "d/sub/x", "d/ab", "d/abc", "d/link", "console"]
        );
        let verbose = system_cpio(&["-tv", "--quiet"], scratch.path(), &archive);
        let console = verbose.lines().last().unwrap();
        assert!(console.starts_with("crw-------"), "{console}");
        assert!(
            console.contains("5,") && console.ends_with(" console"),
            "{console}"
        );

        // Everything but the device node, which needs root to create.
        let mut writer = CpioWriter::new(Vec::new());
        writer.dir("d", 0o755).unwrap();
        writer.file("d/ab", 0o755, b"#!/bin/sh\n").unwrap();
        writer.file("d/abc", 0o640, b"abc").unwrap();
        writer.symlink("d/link", "ab").unwrap();
        let archive = writer.finish().unwrap();
        system_cpio(
            &["-i", "--quiet", "--make-directories"],
            scratch.path(),
            &archive,
        );
        let d = scratch.path().join("d");
        assert_eq!(std::fs::read(d.join("ab")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(std::fs::read(d.join("abc")).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_link(d.join("link")).unwrap(),
            std::path::Path::new("ab")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| d.join(name).metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ab"), 0o755);
        assert_eq!(mode("abc"), 0o640);
    }
}
