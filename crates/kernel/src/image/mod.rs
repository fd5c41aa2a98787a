//! Telling kernel images apart by their headers, reading no more of a file than needed: a
//! distro vmlinux is 50-70 MB and may be identified on every run.

mod bzimage;
mod elf;
mod freebsd;
mod unknown;

pub(crate) use elf::{has_pvh_note, has_symbol_table};
#[cfg(test)]
pub(crate) use freebsd::{fake_kernel as fake_freebsd_kernel, Mark as FreeBsdMark};

use crate::error::KernelError;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The kinds of image vmlane boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// An x86 boot-protocol image (bzImage, vmlinuz).
    BzImage,
    /// An ELF vmlinux; QEMU boots it only through its PVH entry.
    Elf {
        /// Has the `XEN_ELFNOTE_PHYS32_ENTRY` note QEMU enters a PVH kernel by.
        pvh: bool,
    },
    /// A FreeBSD kernel (ELF). Identified so that nothing boots it as Linux; `vmlane run`
    /// refuses it for now.
    FreeBsd,
}

/// How much of a file's start is enough to tell what it is.
const HEAD: usize = 0x400;

/// Identifies an image and its release (`uname -r`).
///
/// A bzImage's release comes from its boot header and may be missing; an ELF vmlinux must carry
/// a `Linux version` banner, since that is what tells it from any other ELF file. A FreeBSD
/// kernel's release (`15.1-RELEASE-p1`) comes from its version string when it has one.
pub fn identify(path: &Path) -> Result<(ImageFormat, Option<String>), KernelError> {
    let (mut file, head) = open(path)?;
    let unreadable = |e| KernelError::unreadable(path, e);
    match classify(path, &head, &file)? {
        ImageFormat::BzImage => {
            let release = bzimage::release(&mut file, &head).map_err(unreadable)?;
            Ok((ImageFormat::BzImage, release))
        }
        ImageFormat::FreeBsd => {
            let release =
                elf::banner_release(&mut file, freebsd::FREEBSD_BANNER, freebsd::is_release)
                    .map_err(unreadable)?;
            Ok((ImageFormat::FreeBsd, release))
        }
        format @ ImageFormat::Elf { .. } => match elf::banner_release(&mut file, elf::LINUX_BANNER, |_| true)
            .map_err(unreadable)?
        {
            Some(release) => Ok((format, Some(release))),
            None => Err(KernelError::not_a_kernel(
                path,
                "an ELF file without a \"Linux version\" banner: a program or library, not a vmlinux",
            )),
        },
    }
}

/// The format alone, from the headers: for images whose release is already known, such as
/// cached kernels, so a large vmlinux is not scanned for its banner on every run.
pub(crate) fn format_of(path: &Path) -> Result<ImageFormat, KernelError> {
    let (file, head) = open(path)?;
    classify(path, &head, &file)
}

fn open(path: &Path) -> Result<(File, Vec<u8>), KernelError> {
    let unreadable = |e| KernelError::unreadable(path, e);
    let mut file = File::open(path).map_err(unreadable)?;
    if file.metadata().map_err(unreadable)?.is_dir() {
        return Err(KernelError::not_a_kernel(
            path,
            "a directory, not an image file",
        ));
    }
    let mut head = vec![0u8; HEAD];
    let len = read_up_to(&mut file, &mut head).map_err(unreadable)?;
    head.truncate(len);
    Ok((file, head))
}

fn classify(path: &Path, head: &[u8], file: &File) -> Result<ImageFormat, KernelError> {
    if bzimage::is_bzimage(head) {
        return Ok(ImageFormat::BzImage);
    }
    if elf::is_elf(head) {
        elf::check_header(head).map_err(|reason| KernelError::not_a_kernel(path, &reason))?;
        if freebsd::is_freebsd(head, file) {
            return Ok(ImageFormat::FreeBsd);
        }
        let pvh = elf::has_pvh_note(file).map_err(|e| {
            KernelError::not_a_kernel(path, &format!("an ELF file with broken headers ({e})"))
        })?;
        return Ok(ImageFormat::Elf { pvh });
    }
    Err(KernelError::not_a_kernel(path, &unknown::describe(head)))
}

/// Fills `buf` unless the file ends first; returns how much was read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The longest release read; real ones are under 65 bytes (`uname -r` is a 65-byte field).
const RELEASE_MAX: usize = 128;

/// The release at the start of `bytes` (`6.1.0-56-amd64 (builder@host) ...`), if it looks like
/// one: a word starting with a digit.
fn release_word(bytes: &[u8]) -> Option<String> {
    let bytes = &bytes[..bytes.len().min(RELEASE_MAX)];
    let end = bytes.iter().position(|&b| !b.is_ascii_graphic())?;
    let word = std::str::from_utf8(&bytes[..end]).ok()?;
    word.starts_with(|c: char| c.is_ascii_digit())
        .then(|| word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_bzimage, fake_vmlinux, write_file, Note};

    #[test]
    fn bzimage_release_comes_from_the_boot_header() {
        let (_dir, path) = write_file("bzImage", &fake_bzimage("6.9.0-test"));
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::BzImage, Some("6.9.0-test".into()))
        );
        assert_eq!(format_of(&path).unwrap(), ImageFormat::BzImage);
    }

    #[test]
    fn bzimage_without_a_version_pointer_has_no_release() {
        let mut image = fake_bzimage("6.9.0");
        image[0x20e..0x210].copy_from_slice(&[0, 0]);
        let (_dir, path) = write_file("bzImage", &image);
        assert_eq!(identify(&path).unwrap(), (ImageFormat::BzImage, None));
    }

    #[test]
    fn vmlinux_with_a_pvh_note_in_a_segment_is_recognised() {
        let (_dir, path) = write_file("vmlinux", &fake_vmlinux("6.9.0-test", Note::Segment));
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::Elf { pvh: true }, Some("6.9.0-test".into()))
        );
    }

    #[test]
    fn vmlinux_with_a_pvh_note_only_in_a_section_is_recognised() {
        let (_dir, path) = write_file("vmlinux", &fake_vmlinux("6.9.0-test", Note::Section));
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::Elf { pvh: true }, Some("6.9.0-test".into()))
        );
    }

    #[test]
    fn vmlinux_without_a_pvh_note_says_so() {
        let (_dir, path) = write_file("vmlinux", &fake_vmlinux("6.9.0-test", Note::Other));
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::Elf { pvh: false }, Some("6.9.0-test".into()))
        );
    }

    #[test]
    fn the_release_comes_from_the_banner_not_the_file_name() {
        let (_dir, path) = write_file("vmlinux-9.9.9", &fake_vmlinux("6.9.0", Note::Segment));
        assert_eq!(identify(&path).unwrap().1.as_deref(), Some("6.9.0"));
    }

    #[test]
    fn a_banner_across_a_chunk_boundary_is_found() {
        for pad in [
            elf::CHUNK - 20,
            elf::CHUNK - 5,
            elf::CHUNK + 3,
            2 * elf::CHUNK - 40,
        ] {
            let mut bytes = fake_vmlinux("x", Note::Segment);
            let banner = bytes
                .windows(14)
                .position(|w| w == b"Linux version ")
                .unwrap();
            bytes.truncate(banner);
            bytes[40..48].fill(0); // no section table: it followed the banner
            bytes[60..64].fill(0);
            bytes.resize(pad, 0);
            bytes.extend_from_slice(b"Linux version %s\0Linux version 6.12.3-rc1+ (a@b) #2\0");
            let (_dir, path) = write_file("vmlinux", &bytes);
            assert_eq!(
                identify(&path).unwrap().1.as_deref(),
                Some("6.12.3-rc1+"),
                "pad {pad}"
            );
        }
    }

    #[test]
    fn elf_without_a_banner_is_not_a_kernel() {
        let mut bytes = fake_vmlinux("6.9.0", Note::Segment);
        let at = bytes
            .windows(14)
            .position(|w| w == b"Linux version ")
            .unwrap();
        bytes[at] = b'X';
        let (_dir, path) = write_file("vmlinux", &bytes);
        let error = identify(&path).unwrap_err();
        assert!(matches!(error, KernelError::NotAKernel { .. }), "{error}");
        assert!(error.to_string().contains("banner"), "{error}");
        // The cache trusts its file names, so only the headers are checked there.
        assert_eq!(format_of(&path).unwrap(), ImageFormat::Elf { pvh: true });
    }

    #[test]
    fn text_file_is_not_a_kernel() {
        let (_dir, path) = write_file("bzImage", b"hello, I am not a kernel\n");
        let error = identify(&path).unwrap_err();
        let KernelError::NotAKernel {
            path: named,
            reason,
        } = &error
        else {
            panic!("{error}");
        };
        assert_eq!(named, &path);
        assert!(reason.contains("text file"), "{reason}");
        assert!(error.to_string().contains("bzImage"), "{error}");
    }

    #[test]
    fn other_files_get_reasons_a_user_can_act_on() {
        let mut arm64 = vec![0u8; 0x100];
        arm64[0x38..0x3c].copy_from_slice(b"ARMd");
        let mut elf32 = fake_vmlinux("6.1", Note::Segment);
        elf32[4] = 1;
        let mut aarch64_elf = fake_vmlinux("6.1", Note::Segment);
        aarch64_elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        for (bytes, expected) in [
            (&b""[..], "empty"),
            (&b"\x1f\x8b\x08\0\0\0\0\0\0\x03rest"[..], "gzip"),
            (&b"\xfd7zXZ\0\0\x04rest"[..], "xz"),
            (
                &b"!<arch>\ndebian-binary   1700000000"[..],
                "Debian package",
            ),
            (&arm64[..], "arm64"),
            (&elf32[..], "32-bit"),
            (&aarch64_elf[..], "x86-64"),
            (&[0xffu8, 0x00, 0x13, 0x37, 0x80, 0x81][..], "no \"HdrS\""),
        ] {
            let (_dir, path) = write_file("kernel", bytes);
            let error = identify(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn a_directory_is_not_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let error = identify(dir.path()).unwrap_err();
        assert!(matches!(error, KernelError::NotAKernel { .. }), "{error}");
    }

    #[test]
    fn a_missing_file_is_unreadable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinuz-1");
        let error = identify(&path).unwrap_err();
        assert!(matches!(error, KernelError::Unreadable { .. }), "{error}");
        assert!(error.to_string().contains("vmlinuz-1"), "{error}");
    }
}
