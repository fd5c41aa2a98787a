//! Telling kernel images apart by their headers, reading no more of the file than needed:
//! a distro vmlinux is 50-70 MB and is identified on every run.

use crate::error::KernelError;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadCache};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The kinds of image vmlane boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// An x86 boot-protocol image (bzImage, vmlinuz).
    BzImage,
    /// An ELF vmlinux; `pvh` tells whether it has the PVH entry note QEMU needs to boot it.
    Elf {
        /// Has `XEN_ELFNOTE_PHYS32_ENTRY`.
        pvh: bool,
    },
}

const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const BANNER: &[u8] = b"Linux version ";

/// Identifies an image and its release.
pub fn identify(path: &Path) -> Result<(ImageFormat, Option<String>), KernelError> {
    let unreadable = |e| KernelError::unreadable(path.to_path_buf(), e);
    let not_a_kernel = |reason: &str| KernelError::NotAKernel {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let mut head = [0u8; 0x400];
    let len = read_up_to(&mut file, &mut head).map_err(unreadable)?;
    let head = &head[..len];
    if head.len() >= 0x206 && &head[0x202..0x206] == b"HdrS" {
        let release = bzimage_release(&mut file, head).map_err(unreadable)?;
        return Ok((ImageFormat::BzImage, release));
    }
    if head.starts_with(b"\x7fELF") {
        if head.get(4) != Some(&2) {
            return Err(not_a_kernel(
                "a 32-bit ELF file; vmlane boots x86-64 kernels",
            ));
        }
        let pvh = has_pvh_note(&file)
            .map_err(|e| not_a_kernel(&format!("unreadable ELF headers ({e})")))?;
        let release = match release_from_file_name(path) {
            Some(release) => Some(release),
            None => scan_banner(&mut file).map_err(unreadable)?,
        };
        let Some(release) = release else {
            return Err(not_a_kernel(
                "an ELF file without a \"Linux version\" banner",
            ));
        };
        return Ok((ImageFormat::Elf { pvh }, Some(release)));
    }
    Err(not_a_kernel(
        "neither an x86 boot image (no \"HdrS\" header at 0x202) nor an ELF vmlinux",
    ))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The boot header points at a version string: `6.1.0-56-amd64 (builder@host) #1 SMP ...`.
fn bzimage_release(file: &mut File, head: &[u8]) -> std::io::Result<Option<String>> {
    if head.len() < 0x210 {
        return Ok(None);
    }
    let pointer = u16::from_le_bytes([head[0x20e], head[0x20f]]) as u64;
    if pointer == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(pointer + 0x200))?;
    let mut text = [0u8; 256];
    let len = read_up_to(file, &mut text)?;
    Ok(first_word(&text[..len]))
}

fn first_word(bytes: &[u8]) -> Option<String> {
    let end = bytes
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(bytes.len());
    let word = std::str::from_utf8(&bytes[..end]).ok()?;
    (!word.is_empty() && word.chars().all(|c| c.is_ascii_graphic())).then(|| word.to_string())
}

fn has_pvh_note(file: &File) -> Result<bool, object::Error> {
    // Program headers only: parsing sections and symbols would read much of the file.
    let cache = ReadCache::new(file);
    let header = object::elf::FileHeader64::<Endianness>::parse(&cache)?;
    let endian = header.endian()?;
    for segment in header.program_headers(endian, &cache)? {
        if let Some(mut notes) = segment.notes(endian, &cache)? {
            while let Some(note) = notes.next()? {
                if note.name() == b"Xen" && note.n_type(endian) == XEN_ELFNOTE_PHYS32_ENTRY {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// `vmlinux-6.1.0-56-amd64` names its release; trusting that avoids scanning 60 MB.
fn release_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let release = name
        .strip_prefix("vmlinux-")
        .or_else(|| name.strip_prefix("vmlinuz-"))?;
    (!release.is_empty()).then(|| release.to_string())
}

/// Finds `Linux version RELEASE ` anywhere in the file, reading it in chunks.
fn scan_banner(file: &mut File) -> std::io::Result<Option<String>> {
    file.seek(SeekFrom::Start(0))?;
    let mut carry: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = read_up_to(file, &mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        carry.extend_from_slice(&chunk[..n]);
        if let Some(at) = carry.windows(BANNER.len()).position(|w| w == BANNER) {
            let rest = &carry[at + BANNER.len()..];
            if rest.len() >= 128 || n < chunk.len() {
                return Ok(first_word(rest));
            }
        }
        let keep = carry.len().saturating_sub(BANNER.len() + 128);
        carry.drain(..keep);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file with a bzImage boot header whose version string names `release`.
    pub fn fake_bzimage(release: &str) -> Vec<u8> {
        let mut image = vec![0u8; 0x1000];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        let at = 0x400u16;
        image[0x20e..0x210].copy_from_slice(&(at - 0x200).to_le_bytes());
        let text = format!("{release} (dev@host) #1 SMP\0");
        image[at as usize..at as usize + text.len()].copy_from_slice(text.as_bytes());
        image
    }

    /// A minimal ELF64 with a PT_NOTE holding a Xen PVH entry note and a version banner.
    pub fn fake_vmlinux(release: &str, pvh: bool) -> Vec<u8> {
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&(if pvh { XEN_ELFNOTE_PHYS32_ENTRY } else { 1 }).to_le_bytes());
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&0x100_0000u32.to_le_bytes());
        let note_offset = 64 + 56;
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little endian
        elf[6] = 1;
        elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let mut phdr = vec![0u8; 56];
        phdr[..4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        phdr[8..16].copy_from_slice(&(note_offset as u64).to_le_bytes());
        phdr[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        phdr[40..48].copy_from_slice(&(note.len() as u64).to_le_bytes());
        phdr[48..56].copy_from_slice(&4u64.to_le_bytes());
        elf.extend_from_slice(&phdr);
        elf.extend_from_slice(&note);
        elf.extend_from_slice(&[0u8; 3000]);
        elf.extend_from_slice(
            format!("Linux version {release} (dev@host) (gcc) #1 SMP\n\0").as_bytes(),
        );
        elf.extend_from_slice(&[0u8; 300]);
        elf
    }

    fn write(bytes: &[u8], name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn bzimage_release_comes_from_the_boot_header() {
        let (_dir, path) = write(&fake_bzimage("6.9.0-test"), "bzImage");
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::BzImage, Some("6.9.0-test".into()))
        );
    }

    #[test]
    fn vmlinux_with_pvh_note_and_banner_is_recognised() {
        let (_dir, path) = write(&fake_vmlinux("6.9.0-test", true), "vmlinux");
        assert_eq!(
            identify(&path).unwrap(),
            (ImageFormat::Elf { pvh: true }, Some("6.9.0-test".into()))
        );
        let (_dir, path) = write(&fake_vmlinux("6.9.0-test", false), "vmlinux");
        assert_eq!(identify(&path).unwrap().0, ImageFormat::Elf { pvh: false });
    }

    #[test]
    fn text_file_is_not_a_kernel() {
        let (_dir, path) = write(b"hello, I am not a kernel\n", "bzImage");
        let error = identify(&path).unwrap_err().to_string();
        assert!(error.contains("is not a kernel"), "{error}");
        assert!(error.contains("bzImage"), "{error}");
    }

    #[test]
    fn elf_without_banner_is_not_a_kernel() {
        let mut elf = fake_vmlinux("x", true);
        let at = elf.windows(BANNER.len()).position(|w| w == BANNER).unwrap();
        elf[at] = b'X';
        let (_dir, path) = write(&elf, "vmlinux");
        assert!(matches!(
            identify(&path),
            Err(KernelError::NotAKernel { .. })
        ));
    }
}
