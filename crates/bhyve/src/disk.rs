//! Private copies of disk images: bhyve has no copy-on-write overlay, and the guest must never
//! write into the caller's file. Copies stay sparse, so a mostly empty image costs little.

use crate::sys;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;

const CHUNK: usize = 1 << 20;

/// Copies `from` to a new file `to`, skipping the source's holes and any all-zero chunk.
pub fn sparse_copy(from: &Path, to: &Path) -> io::Result<()> {
    let mut input = File::open(from)?;
    let size = input.metadata()?.len();
    let mut output = OpenOptions::new().write(true).create_new(true).open(to)?;
    let mut at = 0;
    while at < size {
        let start = match sys::seek_data(input.as_fd(), at) {
            Ok(Some(start)) => start,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => at,
            Err(e) => return Err(e),
        };
        let end = match sys::seek_hole(input.as_fd(), start) {
            Ok(Some(end)) => end.min(size),
            Ok(None) => size,
            Err(e) if e.kind() == io::ErrorKind::Unsupported => size,
            Err(e) => return Err(e),
        };
        copy_segment(&mut input, &mut output, start, end)?;
        at = end;
    }
    output.set_len(size)?;
    Ok(())
}

/// Copies `[start, end)` in the kernel where it can, else by reading and writing.
fn copy_segment(input: &mut File, output: &mut File, start: u64, end: u64) -> io::Result<()> {
    let (mut from, mut to) = (start, start);
    while from < end {
        let len = end - from;
        match sys::copy_range(input.as_fd(), &mut from, output.as_fd(), &mut to, len) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EXDEV, ENOSYS, EINVAL, EOPNOTSUPP...: this pair of files cannot, so copy by hand.
            Err(_) => return copy_by_hand(input, output, from, end),
        }
    }
    Ok(())
}

/// Reads `[start, end)` and writes every chunk that is not all zeros.
fn copy_by_hand(input: &mut File, output: &mut File, start: u64, end: u64) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    input.seek(SeekFrom::Start(start))?;
    let mut at = start;
    while at < end {
        let want = (end - at).min(CHUNK as u64) as usize;
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            output.seek(SeekFrom::Start(at))?;
            output.write_all(&buf[..n])?;
        }
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn image(path: &Path) -> Vec<u8> {
        // 64 MiB with data at the start, in the middle and at the very end.
        let size = 64 << 20;
        let mut file = File::create(path).unwrap();
        file.set_len(size).unwrap();
        for (at, data) in [
            (0u64, b"boot".as_slice()),
            (20 << 20, b"middle"),
            (size - 3, b"end"),
        ] {
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(data).unwrap();
        }
        std::fs::read(path).unwrap()
    }

    #[test]
    fn the_copy_is_equal_and_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.img"), dir.path().join("b.img"));
        let original = image(&from);
        sparse_copy(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), original);
        let allocated = std::fs::metadata(&to).unwrap().blocks() * 512;
        assert!(allocated < 16 << 20, "{allocated} bytes allocated");
    }

    #[test]
    fn copying_by_hand_skips_zeros_too() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.img"), dir.path().join("b.img"));
        let original = image(&from);
        let mut input = File::open(&from).unwrap();
        let mut output = File::create(&to).unwrap();
        copy_by_hand(&mut input, &mut output, 0, original.len() as u64).unwrap();
        output.set_len(original.len() as u64).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), original);
        let allocated = std::fs::metadata(&to).unwrap().blocks() * 512;
        assert!(allocated < 16 << 20, "{allocated} bytes allocated");
    }

    #[test]
    fn an_existing_target_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.img"), dir.path().join("b.img"));
        std::fs::write(&from, b"new").unwrap();
        std::fs::write(&to, b"old").unwrap();
        assert!(sparse_copy(&from, &to).is_err());
        assert_eq!(std::fs::read(&to).unwrap(), b"old");
    }
}
