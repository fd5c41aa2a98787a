//! FreeBSD kernels: x86-64 ELF files with a PVH note, like a vmlinux, so they are told apart
//! by what only FreeBSD puts in them; vmlane must never boot one as Linux.

use super::elf::any_note;
use object::elf;
use std::fs::File;

/// Offset of the OS ABI byte in `e_ident`.
const EI_OSABI: usize = 7;
/// `XEN_ELFNOTE_GUEST_OS`: the guest's name, `FreeBSD` in an amd64 kernel built with XENHVM.
const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// What a FreeBSD kernel's version string (`uname -v`) starts with. Sysctl descriptions such
/// as `FreeBSD 14 compatible ...` come earlier in the file; [`is_release`] tells them apart.
pub const FREEBSD_BANNER: &[u8] = b"FreeBSD ";

/// Whether an x86-64 ELF file (its `head` and the open `file`) is a FreeBSD kernel: FreeBSD's
/// linker brands what it links with the FreeBSD OS ABI (a Linux vmlinux has none), and its
/// kernels name FreeBSD in a note (Xen's guest-OS note, or a `FreeBSD` note), which survives
/// re-branding.
pub fn is_freebsd(head: &[u8], file: &File) -> bool {
    if head.get(EI_OSABI) == Some(&elf::ELFOSABI_FREEBSD) {
        return true;
    }
    // Unreadable notes are left for the PVH check to report.
    any_note(file, |name, n_type, desc| {
        name == b"FreeBSD"
            || (name == b"Xen"
                && n_type == XEN_ELFNOTE_GUEST_OS
                && desc.split(|&b| b == 0).next() == Some(b"FreeBSD"))
    })
    .unwrap_or(false)
}

/// Whether `word` is a FreeBSD release as `newvers.sh` composes it: `15.1-RELEASE-p1`,
/// `14.3-STABLE`, `16.0-CURRENT`.
pub fn is_release(word: &str) -> bool {
    let Some((number, branch)) = word.split_once('-') else {
        return false;
    };
    let Some((major, minor)) = number.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor) && branch.starts_with(|c: char| c.is_ascii_uppercase())
}

/// How a synthetic FreeBSD kernel says what it is.
#[cfg(test)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The FreeBSD OS ABI in `e_ident`, and a PVH note.
    OsAbi,
    /// No brand; Xen's guest-OS note says `FreeBSD`.
    XenGuestOs,
    /// No brand; a note named `FreeBSD` (NT_FREEBSD_ABI_TAG).
    FreeBsdNote,
}

/// A minimal x86-64 ELF executable shaped like a FreeBSD kernel: notes in one PT_NOTE segment,
/// then FreeBSD's version string. Synthetic, for tests.
#[cfg(test)]
pub fn fake_kernel(mark: Mark) -> Vec<u8> {
    use crate::fixtures::{elf_with_notes, encode_notes};
    let abi_tag = 1_501_000u32.to_le_bytes();
    let mut notes: Vec<(&[u8], u32, &[u8])> = vec![(b"Xen", 18, &[0, 0, 0x20, 0])];
    match mark {
        Mark::OsAbi => {}
        Mark::XenGuestOs => notes.push((b"Xen", XEN_ELFNOTE_GUEST_OS, b"FreeBSD\0")),
        Mark::FreeBsdNote => notes.push((b"FreeBSD", 1, &abi_tag)),
    }
    let os_abi = if mark == Mark::OsAbi {
        elf::ELFOSABI_FREEBSD
    } else {
        0
    };
    let mut elf = elf_with_notes(os_abi, 4, &encode_notes(&notes)); // PT_NOTE
    elf.extend_from_slice(&[0u8; 500]);
    // Other "FreeBSD " strings come first in a real kernel, sysctl descriptions among them.
    elf.extend_from_slice(b"The FreeBSD Project.\0FreeBSD\0FreeBSD 14 compatible\0FreeBSD 16.\0");
    elf.extend_from_slice(b"@(#)FreeBSD 15.1-RELEASE-p1 FIRECRACKER\0");
    elf.extend_from_slice(&[0u8; 300]);
    elf
}

#[cfg(test)]
mod tests {
    use super::super::{format_of, identify, ImageFormat};
    use super::{fake_kernel, Mark};
    use crate::fixtures::{fake_vmlinux, write_file, Note};

    #[test]
    fn an_elf_branded_freebsd_is_a_freebsd_kernel() {
        let (_dir, path) = write_file("kernel", &fake_kernel(Mark::OsAbi));
        assert_eq!(format_of(&path).unwrap(), ImageFormat::FreeBsd);
    }

    #[test]
    fn a_freebsd_guest_os_note_marks_a_freebsd_kernel_without_the_brand() {
        let (_dir, path) = write_file("kernel", &fake_kernel(Mark::XenGuestOs));
        assert_eq!(format_of(&path).unwrap(), ImageFormat::FreeBsd);
    }

    #[test]
    fn a_freebsd_note_marks_a_freebsd_kernel() {
        let (_dir, path) = write_file("kernel", &fake_kernel(Mark::FreeBsdNote));
        assert_eq!(format_of(&path).unwrap(), ImageFormat::FreeBsd);
    }

    #[test]
    fn the_release_comes_from_the_version_string() {
        let (_dir, path) = write_file("kernel", &fake_kernel(Mark::OsAbi));
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::FreeBsd, Some("15.1-RELEASE-p1".into()))
        );
    }

    #[test]
    fn releases_look_like_what_newvers_composes() {
        for release in [
            "15.1-RELEASE-p1",
            "14.3-STABLE",
            "16.0-CURRENT",
            "15.0-BETA2",
        ] {
            assert!(super::is_release(release), "{release}");
        }
        for other in [
            "14",
            "16.",
            "13.0",
            "6.1.0-56-amd64",
            "15.1-",
            "x.1-RELEASE",
        ] {
            assert!(!super::is_release(other), "{other}");
        }
    }

    #[test]
    fn a_truncated_freebsd_kernel_is_refused() {
        let mut kernel = fake_kernel(Mark::XenGuestOs);
        kernel.truncate(crate::fixtures::NOTE_OFFSET + 8);
        let (_dir, path) = write_file("kernel", &kernel);
        for error in [format_of(&path).unwrap_err(), identify(&path).unwrap_err()] {
            assert!(
                matches!(error, crate::KernelError::Truncated { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn a_linux_vmlinux_is_not_freebsd() {
        for note in [Note::Segment, Note::Section, Note::Other] {
            let (_dir, path) = write_file("vmlinux", &fake_vmlinux("6.9.0", note));
            assert_ne!(format_of(&path).unwrap(), ImageFormat::FreeBsd);
        }
    }
}
