//! x86 boot-protocol images (bzImage, vmlinuz): the setup header says what they are and where
//! their version string is.

use super::{read_up_to, release_word, RELEASE_MAX};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};

/// The setup header's magic, at this offset in every boot-protocol 2.x image.
const HDRS_AT: usize = 0x202;
/// The `kernel_version` field: a pointer to the version string, relative to 0x200.
const VERSION_POINTER_AT: usize = 0x20e;

/// Whether the head of a file carries the boot header.
pub fn is_bzimage(head: &[u8]) -> bool {
    head.get(HDRS_AT..HDRS_AT + 4) == Some(b"HdrS")
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
