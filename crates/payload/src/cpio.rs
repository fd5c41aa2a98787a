//! A writer for the newc cpio format the kernel unpacks as its initramfs.

use std::io::{self, Write};

const MODE_DIR: u32 = 0o040000;
const MODE_FILE: u32 = 0o100000;
const MODE_CHAR: u32 = 0o020000;
const MODE_SYMLINK: u32 = 0o120000;

/// Writes a deterministic newc archive: mtime 0, owner root, inodes counting up.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_inode: u32,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_inode: 1,
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.entry(path, MODE_DIR | mode, 2, (0, 0), &[])
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, MODE_FILE | mode, 1, (0, 0), data)
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, MODE_CHAR | mode, 1, (major, minor), &[])
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.entry(path, MODE_SYMLINK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_inode = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let name_len = path.len() + 1;
        let inode = self.next_inode;
        self.next_inode += 1;
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name_len as u32,
            0, // check
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(path.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..padding])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One parsed entry: name, mode, rdev, data.
    pub type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Reads an archive back; used to check what the writer produced.
    pub fn parse(mut bytes: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(&bytes[..6], b"070701", "magic at offset {offset}");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + i * 8..14 + i * 8]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, size, rdev, name_len) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name = String::from_utf8(bytes[110..110 + name_len - 1].to_vec()).unwrap();
            let data_start = (110 + name_len).div_ceil(4) * 4;
            let data = bytes[data_start..data_start + size].to_vec();
            let next = (data_start + size).div_ceil(4) * 4;
            offset += next;
            bytes = &bytes[next..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty());
                return entries;
            }
            entries.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn header_fields_are_eight_hex_digits() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.file("init", 0o755, b"#!").unwrap();
        let bytes = writer.finish().unwrap();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(&header[..6], "070701");
        assert_eq!(&header[6..14], "00000001", "inode");
        assert_eq!(&header[14..22], "000081ed", "regular file, 0755");
        assert_eq!(&header[54..62], "00000002", "size");
        assert_eq!(&header[94..102], "00000005", "name length with NUL");
    }

    #[test]
    fn names_of_every_length_stay_aligned() {
        let mut writer = CpioWriter::new(Vec::new());
        let names = ["a", "ab", "abc", "abcd", "abcde"];
        for (i, name) in names.iter().enumerate() {
            writer.file(name, 0o644, &vec![b'x'; i]).unwrap();
        }
        writer.dir("d", 0o755).unwrap();
        writer.char_device("dev/console", 0o600, 5, 1).unwrap();
        writer.symlink("link", "a").unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(entries.len(), 8);
        for (i, name) in names.iter().enumerate() {
            assert_eq!(entries[i].0, *name);
            assert_eq!(entries[i].3, vec![b'x'; i]);
        }
        assert_eq!(entries[5].1, MODE_DIR | 0o755);
        assert_eq!((entries[6].1, entries[6].2), (MODE_CHAR | 0o600, (5, 1)));
        assert_eq!(entries[7].3, b"a");
    }

    #[test]
    fn system_cpio_reads_the_archive() {
        let Ok(probe) = std::process::Command::new("cpio").arg("--version").output() else {
            eprintln!("skipped: cpio is not installed (apt-get install cpio)");
            return;
        };
        assert!(probe.status.success());
        let mut writer = CpioWriter::new(Vec::new());
        writer.dir("dir", 0o755).unwrap();
        writer.file("dir/file", 0o644, b"content\n").unwrap();
        let bytes = writer.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-i", "--quiet", "--make-directories"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(
            std::fs::read(dir.path().join("dir/file")).unwrap(),
            b"content\n"
        );
    }
}
