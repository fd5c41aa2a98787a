//! x86 boot-protocol images (bzImage, vmlinuz): the setup header says what they are, where
//! their version string is and how long they are (Documentation/arch/x86/boot.rst).

use super::{read_up_to, release_word, RELEASE_MAX};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};

/// The setup header's magic, at this offset in every boot-protocol 2.x image.
const HDRS_AT: usize = 0x202;
/// The `kernel_version` field: a pointer to the version string, relative to 0x200.
const VERSION_POINTER_AT: usize = 0x20e;
/// `setup_sects`: 512-byte sectors of real-mode setup after the boot sector; 0 means 4.
const SETUP_SECTS_AT: usize = 0x1f1;
/// `syssize`: the protected-mode code's size in 16-byte units (boot protocol 2.04+).
const SYSSIZE_AT: usize = 0x1f4;
/// `version`: the boot protocol, e.g. 0x020f for 2.15.
const PROTOCOL_AT: usize = 0x206;
/// `payload_offset` and `payload_length`: the compressed kernel, relative to the start of the
/// protected-mode code (boot protocol 2.08+).
const PAYLOAD_OFFSET_AT: usize = 0x248;
const PAYLOAD_LENGTH_AT: usize = 0x24c;
/// The first protocols whose headers give the code's full size, and the payload's place.
const PROTOCOL_SYSSIZE: u16 = 0x0204;
const PROTOCOL_PAYLOAD: u16 = 0x0208;

/// Whether the head of a file carries the boot header.
pub fn is_bzimage(head: &[u8]) -> bool {
    head.get(HDRS_AT..HDRS_AT + 4) == Some(b"HdrS")
}

/// How many bytes the boot header in `head` says the image has: the setup sectors, then the
/// protected-mode code (`syssize`) with the compressed payload inside it. A header cut short
/// still describes at least the setup sectors, which are longer than `head` can be.
pub fn described_len(head: &[u8]) -> u64 {
    let setup_sects = match head.get(SETUP_SECTS_AT) {
        Some(0) | None => 4,
        Some(&sects) => u64::from(sects),
    };
    let code_start = (setup_sects + 1) * 512;
    let protocol = le16(head, PROTOCOL_AT).unwrap_or(0);
    let mut wanted = code_start;
    if protocol >= PROTOCOL_SYSSIZE {
        if let Some(syssize) = le32(head, SYSSIZE_AT) {
            wanted = wanted.max(code_start + syssize * 16);
        }
    }
    if protocol >= PROTOCOL_PAYLOAD {
        if let (Some(offset), Some(length)) =
            (le32(head, PAYLOAD_OFFSET_AT), le32(head, PAYLOAD_LENGTH_AT))
        {
            wanted = wanted.max(code_start + offset + length);
        }
    }
    wanted
}

/// The compressed kernel inside a whole image, where its header (protocol 2.08+) puts it.
pub fn payload(image: &[u8]) -> Option<&[u8]> {
    if !is_bzimage(image) || le16(image, PROTOCOL_AT)? < PROTOCOL_PAYLOAD {
        return None;
    }
    let setup_sects = match image.get(SETUP_SECTS_AT)? {
        0 => 4,
        &sects => u64::from(sects),
    };
    let start = (setup_sects + 1) * 512 + le32(image, PAYLOAD_OFFSET_AT)?;
    let end = start.checked_add(le32(image, PAYLOAD_LENGTH_AT)?)?;
    image.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

fn le16(head: &[u8], at: usize) -> Option<u16> {
    let bytes = head.get(at..at + 2)?.try_into().ok()?;
    Some(u16::from_le_bytes(bytes))
}

fn le32(head: &[u8], at: usize) -> Option<u64> {
    let bytes = head.get(at..at + 4)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(bytes)))
}

/// The release from the version string the header points at:
/// `6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP ...`.
pub fn release(file: &mut File, head: &[u8]) -> io::Result<Option<String>> {
    let Some(&[low, high]) = head.get(VERSION_POINTER_AT..VERSION_POINTER_AT + 2) else {
        return Ok(None);
    };
    let pointer = u64::from(u16::from_le_bytes([low, high]));
    if pointer == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(pointer + 0x200))?;
    let mut text = [0u8; RELEASE_MAX];
    let len = read_up_to(file, &mut text)?;
    Ok(release_word(&text[..len]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_bzimage, BZIMAGE_CODE_START, BZIMAGE_LEN};

    #[test]
    fn the_fake_bzimage_describes_its_own_length() {
        assert_eq!(described_len(&fake_bzimage("6.9.0")), BZIMAGE_LEN as u64);
    }

    #[test]
    fn zero_setup_sectors_mean_four() {
        let mut image = fake_bzimage("6.9.0");
        image[SETUP_SECTS_AT] = 0;
        assert_eq!(described_len(&image), BZIMAGE_LEN as u64);
        image[SETUP_SECTS_AT] = 20;
        assert_eq!(described_len(&image), BZIMAGE_LEN as u64 + 16 * 512);
    }

    #[test]
    fn protocols_before_2_08_have_no_payload_to_check() {
        let mut image = fake_bzimage("6.9.0");
        image[PAYLOAD_LENGTH_AT..PAYLOAD_LENGTH_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        image[PROTOCOL_AT..PROTOCOL_AT + 2].copy_from_slice(&0x0207u16.to_le_bytes());
        assert_eq!(described_len(&image), BZIMAGE_LEN as u64);
    }

    #[test]
    fn protocols_before_2_04_describe_only_the_setup_sectors() {
        let mut image = fake_bzimage("6.9.0");
        image[SYSSIZE_AT..SYSSIZE_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        image[PROTOCOL_AT..PROTOCOL_AT + 2].copy_from_slice(&0x0203u16.to_le_bytes());
        assert_eq!(described_len(&image), BZIMAGE_CODE_START as u64);
    }

    #[test]
    fn the_largest_header_values_do_not_overflow() {
        let mut image = fake_bzimage("6.9.0");
        image[SETUP_SECTS_AT] = u8::MAX;
        for at in [SYSSIZE_AT, PAYLOAD_OFFSET_AT, PAYLOAD_LENGTH_AT] {
            image[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        let code_start = 256 * 512;
        let syssize_end = code_start + u64::from(u32::MAX) * 16;
        assert_eq!(described_len(&image), syssize_end);
    }
}
