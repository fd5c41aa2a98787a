//! s390x boot images (`arch/s390/boot/bzImage`, Debian's s390x vmlinuz): QEMU's
//! s390-ccw-virtio loads them by their IPL header, and their parameter area points at the
//! release string, big-endian as everything on s390.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Where the IPL header's magic sits: the image is loaded at address 0, file offset 0.
const MAGIC_AT: u64 = 0x10008;
const MAGIC: &[u8; 6] = b"S390EP";
/// The parameter area's `VERSION_OFFSET` field: where in the image the release string is.
const VERSION_OFFSET_AT: u64 = 0x10428;
/// More than any release string with its build details.
const VERSION_MAX: usize = 256;

/// Whether `file` is an s390x boot image.
pub fn is_image(file: &File) -> bool {
    let mut magic = [0u8; MAGIC.len()];
    file.read_exact_at(&mut magic, MAGIC_AT).is_ok() && magic == *MAGIC
}

/// The release (`6.1.0-50-s390x`), from the string the parameter area points at:
/// `<release> (<builder>) #1 SMP ...`. `None` when the image has no such pointer (older kernels).
pub fn release(file: &File, len: u64) -> io::Result<Option<String>> {
    let mut offset = [0u8; 8];
    file.read_exact_at(&mut offset, VERSION_OFFSET_AT)?;
    let offset = u64::from_be_bytes(offset);
    if offset == 0 || offset >= len {
        return Ok(None);
    }
    let mut text = vec![0u8; VERSION_MAX.min((len - offset) as usize)];
    file.read_exact_at(&mut text, offset)?;
    let end = text
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(text.len());
    let release = &text[..end];
    let plausible = release.first().is_some_and(u8::is_ascii_digit)
        && release.iter().all(|b| b.is_ascii_graphic());
    Ok(plausible.then(|| String::from_utf8_lossy(release).into_owned()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An s390x image's first bytes: its IPL header magic, and a parameter area pointing at
    /// `version` placed after it (or at nothing).
    pub(crate) fn image(version: Option<&str>) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x11000];
        bytes[MAGIC_AT as usize..][..MAGIC.len()].copy_from_slice(MAGIC);
        if let Some(version) = version {
            let at = 0x10800u64;
            bytes[VERSION_OFFSET_AT as usize..][..8].copy_from_slice(&at.to_be_bytes());
            bytes[at as usize..][..version.len()].copy_from_slice(version.as_bytes());
        }
        bytes
    }

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        (file, bytes.len() as u64)
    }

    #[test]
    fn the_release_is_read_where_the_parameter_area_points() {
        let bytes = image(Some(
            "6.1.0-50-s390x (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.176-1",
        ));
        let (file, len) = file_of(&bytes);
        assert!(is_image(file.as_file()));
        assert_eq!(
            release(file.as_file(), len).unwrap().as_deref(),
            Some("6.1.0-50-s390x")
        );
    }

    #[test]
    fn no_pointer_or_a_pointer_past_the_end_gives_no_release() {
        let (file, len) = file_of(&image(None));
        assert_eq!(release(file.as_file(), len).unwrap(), None);
        let mut bytes = image(None);
        bytes[VERSION_OFFSET_AT as usize..][..8].copy_from_slice(&u64::MAX.to_be_bytes());
        let (file, len) = file_of(&bytes);
        assert_eq!(release(file.as_file(), len).unwrap(), None);
    }

    #[test]
    fn other_files_are_not_s390_images() {
        let (short, _) = file_of(b"S390EP");
        assert!(!is_image(short.as_file()));
        let (zeros, _) = file_of(&[0u8; 0x11000]);
        assert!(!is_image(zeros.as_file()));
    }
}
