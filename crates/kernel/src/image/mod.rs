//! Telling kernel images apart by their headers, reading no more of a file than needed: a
//! distro vmlinux is 50-70 MB and may be identified on every run.

mod arch;
mod boot_image;
pub(crate) mod bzimage;
mod elf;
mod freebsd;
mod s390;
mod unknown;

pub(crate) use elf::{has_debug_info, has_pvh_note, has_symbol_table};
#[cfg(test)]
pub(crate) use freebsd::{fake_kernel as fake_freebsd_kernel, Mark as FreeBsdMark};

use crate::error::KernelError;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use vmlane_spec::Arch;

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
    /// An arm64 boot `Image`, as `make ARCH=arm64` and Debian's arm64 packages leave it.
    Arm64Image,
    /// An s390x boot image (`arch/s390/boot/bzImage`, Debian's s390x vmlinuz).
    S390Image,
    /// A RISC-V boot `Image` (`arch/riscv/boot/Image`; Debian's riscv64 package calls it
    /// `vmlinux`).
    RiscvImage,
    /// A 64-bit POWER ELF vmlinux, as `make ARCH=powerpc` and Debian's ppc64el packages leave
    /// it: QEMU's pseries firmware loads the ELF file itself.
    PowerElf {
        /// A ppc64 (big-endian) kernel, else a ppc64el one.
        big_endian: bool,
    },
}

impl ImageFormat {
    /// The CPU architecture the image runs on.
    pub fn arch(self) -> Arch {
        match self {
            ImageFormat::BzImage | ImageFormat::Elf { .. } | ImageFormat::FreeBsd => Arch::X86_64,
            ImageFormat::Arm64Image => Arch::Aarch64,
            ImageFormat::S390Image => Arch::S390x,
            ImageFormat::RiscvImage => Arch::Riscv64,
            ImageFormat::PowerElf { big_endian: false } => Arch::Ppc64le,
            ImageFormat::PowerElf { big_endian: true } => Arch::Ppc64,
        }
    }
}

/// How much of a file's start is enough to tell what it is.
const HEAD: usize = 0x400;

/// Identifies an image and its release (`uname -r`).
///
/// A bzImage's release comes from its boot header and may be missing; an ELF vmlinux must carry
/// a `Linux version` banner, since that is what tells it from any other ELF file. A FreeBSD
/// kernel's release (`15.1-RELEASE-p1`) comes from its version string when it has one.
pub fn identify(path: &Path) -> Result<(ImageFormat, Option<String>), KernelError> {
    let Opened {
        mut file,
        head,
        len,
    } = open(path)?;
    let unreadable = |e| KernelError::unreadable(path, e);
    match classify(path, &head, &file, len)? {
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
        // An uncompressed Image holds the banner as the vmlinux does.
        format @ (ImageFormat::Arm64Image | ImageFormat::RiscvImage) => {
            let release = elf::banner_release(&mut file, elf::LINUX_BANNER, |_| true)
                .map_err(unreadable)?;
            Ok((format, release))
        }
        ImageFormat::S390Image => {
            let release = s390::release(&file, len).map_err(unreadable)?;
            Ok((ImageFormat::S390Image, release))
        }
        format @ (ImageFormat::Elf { .. } | ImageFormat::PowerElf { .. }) => match elf::banner_release(&mut file, elf::LINUX_BANNER, |_| true)
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
    let Opened { file, head, len } = open(path)?;
    classify(path, &head, &file, len)
}

/// An image file, open, with its first [`HEAD`] bytes read and its length.
struct Opened {
    file: File,
    head: Vec<u8>,
    len: u64,
}

fn open(path: &Path) -> Result<Opened, KernelError> {
    let unreadable = |e| KernelError::unreadable(path, e);
    let mut file = File::open(path).map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    if metadata.is_dir() {
        return Err(KernelError::not_a_kernel(
            path,
            "a directory, not an image file",
        ));
    }
    let mut head = vec![0u8; HEAD];
    let read = read_up_to(&mut file, &mut head).map_err(unreadable)?;
    head.truncate(read);
    Ok(Opened {
        file,
        head,
        len: metadata.len(),
    })
}

/// The format, once the headers show an x86-64 kernel that the file holds all of (`len`
/// bytes): a truncated image is refused here, before a VM starts and never reports.
fn classify(path: &Path, head: &[u8], file: &File, len: u64) -> Result<ImageFormat, KernelError> {
    if bzimage::is_bzimage(head) {
        check_bzimage_len(path, head, len)?;
        return Ok(ImageFormat::BzImage);
    }
    if elf::is_elf(head) {
        let power =
            elf::check_header(head).map_err(|reason| KernelError::not_a_kernel(path, &reason))?;
        check_elf_extent(path, file, len)?;
        if let Some(big_endian) = power {
            return Ok(ImageFormat::PowerElf { big_endian });
        }
        if freebsd::is_freebsd(head, file) {
            return Ok(ImageFormat::FreeBsd);
        }
        let pvh = elf::has_pvh_note(file).map_err(|e| {
            KernelError::not_a_kernel(path, &format!("an ELF file with broken headers ({e})"))
        })?;
        return Ok(ImageFormat::Elf { pvh });
    }
    // Its compressed payload has no length in the header: a truncated copy fails in its
    // decompressor, on the console.
    if s390::is_image(file) {
        return Ok(ImageFormat::S390Image);
    }
    let boot_image = match arch::of_boot_image(head) {
        Some(name) if name == Arch::Aarch64.uname() => Some(ImageFormat::Arm64Image),
        Some(name) if name == Arch::Riscv64.uname() => Some(ImageFormat::RiscvImage),
        _ => None,
    };
    if let Some(format) = boot_image {
        if let Some(wanted) = boot_image::described_len(head).filter(|&wanted| wanted > len) {
            return Err(KernelError::Truncated {
                path: path.to_path_buf(),
                header: "PE section table",
                wanted,
                actual: len,
            });
        }
        return Ok(format);
    }
    Err(KernelError::not_a_kernel(path, &unknown::describe(head)))
}

fn check_bzimage_len(path: &Path, head: &[u8], len: u64) -> Result<(), KernelError> {
    let wanted = bzimage::described_len(head);
    if wanted <= len {
        return Ok(());
    }
    Err(KernelError::Truncated {
        path: path.to_path_buf(),
        header: "boot header",
        wanted,
        actual: len,
    })
}

fn check_elf_extent(path: &Path, file: &File, len: u64) -> Result<(), KernelError> {
    elf::check_extent(file, len).map_err(|damage| match damage {
        elf::Damage::Short(wanted) => KernelError::Truncated {
            path: path.to_path_buf(),
            header: "ELF program header table",
            wanted,
            actual: len,
        },
        elf::Damage::Overflow(reason) => KernelError::Corrupt {
            path: path.to_path_buf(),
            reason,
        },
        elf::Damage::Broken(e) => {
            KernelError::not_a_kernel(path, &format!("an ELF file with broken headers ({e})"))
        }
    })
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
    use crate::fixtures::{
        encode_notes, fake_bzimage, fake_vmlinux, write_file, Note, BZIMAGE_CODE_START,
        BZIMAGE_LEN, NOTE_OFFSET,
    };
    use crate::{cache_dir, kernels_dir};
    use std::path::PathBuf;

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

    /// Both entry points refuse `path` as truncated; returns the sizes the error gives.
    fn refused_as_truncated(path: &Path) -> (u64, u64) {
        let by_format = format_of(path).unwrap_err();
        assert!(
            matches!(by_format, KernelError::Truncated { .. }),
            "{by_format}"
        );
        let error = identify(path).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(" is truncated: ")
                && text.ends_with("copy it again or rebuild the kernel"),
            "{text}"
        );
        let KernelError::Truncated {
            path: named,
            wanted,
            actual,
            ..
        } = error
        else {
            panic!("{text}");
        };
        assert_eq!(named, path);
        (wanted, actual)
    }

    #[test]
    fn a_bzimage_shorter_than_its_boot_header_says_is_refused_as_truncated() {
        let mut image = fake_bzimage("6.9.0");
        image.truncate(0xc00);
        let (_dir, path) = write_file("bzImage", &image);
        assert_eq!(refused_as_truncated(&path), (BZIMAGE_LEN as u64, 0xc00));
    }

    #[test]
    fn a_bzimage_cut_inside_its_boot_header_is_refused_as_truncated() {
        let mut image = fake_bzimage("6.9.0");
        image.truncate(0x220);
        let (_dir, path) = write_file("bzImage", &image);
        assert_eq!(refused_as_truncated(&path), (BZIMAGE_LEN as u64, 0x220));
    }

    #[test]
    fn a_bzimage_whose_payload_runs_past_its_end_is_refused_as_truncated() {
        let mut image = fake_bzimage("6.9.0");
        image[0x24c..0x250].copy_from_slice(&0x1000u32.to_le_bytes());
        let (_dir, path) = write_file("bzImage", &image);
        let wanted = (BZIMAGE_CODE_START + 0x100 + 0x1000) as u64;
        assert_eq!(refused_as_truncated(&path), (wanted, BZIMAGE_LEN as u64));
    }

    #[test]
    fn a_bzimage_longer_than_its_header_says_is_accepted() {
        // Debian's signed kernels carry their signature after the described bytes.
        let mut image = fake_bzimage("6.9.0");
        image.extend_from_slice(&[0x5a; 0x600]);
        let (_dir, path) = write_file("bzImage", &image);
        assert_eq!(identify(&path).unwrap().0, ImageFormat::BzImage);
    }

    #[test]
    fn a_vmlinux_cut_inside_a_segment_is_refused_as_truncated() {
        let mut bytes = fake_vmlinux("6.9.0", Note::Segment);
        let note_len = encode_notes(&[(b"Xen", 18, &[0; 4])]).len();
        bytes.truncate(NOTE_OFFSET + 4);
        let (_dir, path) = write_file("vmlinux", &bytes);
        let wanted = (NOTE_OFFSET + note_len) as u64;
        assert_eq!(refused_as_truncated(&path), (wanted, bytes.len() as u64));
    }

    #[test]
    fn a_vmlinux_whose_program_headers_lie_past_its_end_is_refused_as_truncated() {
        let mut bytes = fake_vmlinux("6.9.0", Note::Segment);
        let len = bytes.len() as u64;
        bytes[32..40].copy_from_slice(&len.to_le_bytes()); // e_phoff
        let (_dir, path) = write_file("vmlinux", &bytes);
        assert_eq!(refused_as_truncated(&path), (len + 56, len));
    }

    #[test]
    fn a_segment_ending_past_2_64_bytes_is_refused_as_corrupt() {
        let mut bytes = fake_vmlinux("6.9.0", Note::Segment);
        bytes[64 + 8..64 + 16].copy_from_slice(&(u64::MAX - 8).to_le_bytes()); // p_offset
        let (_dir, path) = write_file("vmlinux", &bytes);
        for error in [identify(&path).unwrap_err(), format_of(&path).unwrap_err()] {
            assert!(matches!(error, KernelError::Corrupt { .. }), "{error}");
            assert!(
                error
                    .to_string()
                    .contains("is corrupt: its program header 0 ends past 2^64 bytes"),
                "{error}"
            );
        }
    }

    /// Kernels scripts/setup put in vmlane's cache: `kernels/*/boot/vmlinuz-*` and any
    /// `vmlinux-*` beside them, over 1 MiB.
    fn cached_real_kernels() -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(kernels_dir(&cache_dir())) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|entry| std::fs::read_dir(entry.path().join("boot")).ok())
            .flat_map(|boot| boot.flatten().map(|file| file.path()))
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                name.starts_with("vmlinuz-") || name.starts_with("vmlinux-")
            })
            .filter(|path| path.metadata().is_ok_and(|m| m.len() > 1 << 20))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_first_mib_of_a_real_kernel_is_refused_as_truncated_and_the_whole_accepted() {
        let kernels = cached_real_kernels();
        if !kernels
            .iter()
            .any(|k| k.to_string_lossy().contains("/vmlinuz-"))
        {
            let why = format!(
                "no kernel in {}/*/boot/vmlinuz-* (run scripts/setup)",
                kernels_dir(&cache_dir()).display()
            );
            let required = std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1");
            assert!(!required, "VMLANE_E2E_REQUIRED=1, but {why}");
            println!("skipped: {why}");
            return;
        }
        for kernel in kernels {
            let mut head = vec![0u8; 1 << 20];
            let mut file = File::open(&kernel).unwrap();
            file.read_exact(&mut head).unwrap();
            if arch::of_elf(&head).is_some() {
                // A foreign build's vmlinux, kept for its symbols; the image beside it boots.
                continue;
            }
            identify(&kernel).unwrap_or_else(|e| panic!("{}: {e}", kernel.display()));
            let name = kernel.file_name().unwrap().to_string_lossy();
            if arch::of_boot_image(&head).is_some() && boot_image::described_len(&head).is_none() {
                // An arm64 Image without the EFI stub (vmlane's own builds) says nothing of
                // its length: a cut copy is found only when it boots.
                println!("{}: no length in its header", kernel.display());
                continue;
            }
            if s390::is_image(&file) {
                // Nor does an s390x image: its decompressor finds a cut copy, on the console.
                println!(
                    "{}: an s390x image, no length in its header",
                    kernel.display()
                );
                continue;
            }
            let (_dir, cut) = write_file(&format!("first-mib-of-{name}"), &head);
            let (wanted, actual) = refused_as_truncated(&cut);
            assert_eq!(actual, 1 << 20, "{}", kernel.display());
            assert!(wanted > actual, "{}", kernel.display());
        }
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
    fn a_power_vmlinux_is_identified_in_either_byte_order_with_its_release() {
        let little = fake_vmlinux("6.1.0-50-powerpc64le", Note::Segment);
        let mut little = little;
        little[18..20].copy_from_slice(&21u16.to_le_bytes());
        let (_dir, path) = write_file("vmlinux", &little);
        let (format, release) = identify(&path).unwrap();
        assert_eq!(format, ImageFormat::PowerElf { big_endian: false });
        assert_eq!(format.arch(), Arch::Ppc64le);
        assert_eq!(release.as_deref(), Some("6.1.0-50-powerpc64le"));
        // A big-endian header: only e_ident's byte order and e_machine are read before the
        // extent check, which this little-endian body would fail, so ask the header alone.
        let mut head = little[..64].to_vec();
        head[5] = 2;
        head[18..20].copy_from_slice(&21u16.to_be_bytes());
        assert_eq!(elf::check_header(&head), Ok(Some(true)));
    }

    #[test]
    fn other_files_get_reasons_a_user_can_act_on() {
        let mut elf32 = fake_vmlinux("6.1", Note::Segment);
        elf32[4] = 1;
        let mut aarch64_elf = fake_vmlinux("6.1", Note::Segment);
        aarch64_elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        let mut mips_elf = fake_vmlinux("6.1", Note::Segment);
        mips_elf[18..20].copy_from_slice(&8u16.to_le_bytes());
        // Big-endian: e_machine is read in the header's own byte order.
        let mut s390x_elf = fake_vmlinux("6.1", Note::Segment);
        s390x_elf[5] = 2;
        s390x_elf[18..20].copy_from_slice(&22u16.to_be_bytes());
        for (bytes, expected) in [
            (&b""[..], "empty"),
            (&b"\x1f\x8b\x08\0\0\0\0\0\0\x03rest"[..], "gzip"),
            (&b"\xfd7zXZ\0\0\x04rest"[..], "xz"),
            (
                &b"!<arch>\ndebian-binary   1700000000"[..],
                "Debian package",
            ),
            (&mips_elf[..], "an ELF file for mips; vmlane boots"),
            (&elf32[..], "32-bit"),
            (
                &aarch64_elf[..],
                "an arm64 ELF vmlinux; boot the arm64 Image beside it",
            ),
            (
                &s390x_elf[..],
                "an s390x ELF vmlinux; boot the image beside it",
            ),
            (&[0xffu8, 0x00, 0x13, 0x37, 0x80, 0x81][..], "no \"HdrS\""),
        ] {
            let (_dir, path) = write_file("kernel", bytes);
            let error = identify(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn an_arm64_image_is_identified_with_its_banner_release() {
        let mut image = vec![0u8; 0x2000];
        image[0x38..0x3c].copy_from_slice(b"ARMd");
        let banner = b"Linux version 6.1.0-57-arm64 (debian-kernel@lists.debian.org)";
        image[0x1000..0x1000 + banner.len()].copy_from_slice(banner);
        let (_dir, path) = write_file("Image", &image);
        let (format, release) = identify(&path).unwrap();
        assert_eq!(format, ImageFormat::Arm64Image);
        assert_eq!(format.arch(), Arch::Aarch64);
        assert_eq!(release.as_deref(), Some("6.1.0-57-arm64"));
    }

    #[test]
    fn a_riscv64_image_is_identified_with_its_banner_release() {
        let mut image = vec![0u8; 0x2000];
        image[..2].copy_from_slice(b"MZ");
        image[0x30..0x38].copy_from_slice(b"RISCV\0\0\0");
        image[0x38..0x3c].copy_from_slice(b"RSC\x05");
        let banner = b"Linux version 6.12.117+deb13-riscv64 (debian-kernel@lists.debian.org)";
        image[0x1000..0x1000 + banner.len()].copy_from_slice(banner);
        let (_dir, path) = write_file("vmlinux", &image);
        let (format, release) = identify(&path).unwrap();
        assert_eq!(format, ImageFormat::RiscvImage);
        assert_eq!(format.arch(), Arch::Riscv64);
        assert_eq!(release.as_deref(), Some("6.12.117+deb13-riscv64"));
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
