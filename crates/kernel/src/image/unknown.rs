//! Naming what a file that is not a kernel image probably is, so the error says more than
//! "not a kernel" and hints at the fix.

/// A reason, in a user's words, why `head` (the start of a file) is not a bootable image.
pub fn describe(head: &[u8]) -> String {
    let reason = if head.is_empty() {
        "an empty file"
    } else if head.starts_with(b"\x1f\x8b") {
        "gzip-compressed data; decompress it, or pass the bzImage it came from"
    } else if head.starts_with(b"\xfd7zXZ\0") {
        "xz-compressed data; decompress it, or pass the bzImage it came from"
    } else if head.starts_with(b"\x28\xb5\x2f\xfd") {
        "zstd-compressed data; decompress it, or pass the bzImage it came from"
    } else if head.starts_with(b"!<arch>\ndebian-binary") {
        "a Debian package; unpack it with `dpkg -x` and pass its boot/vmlinuz-*, or run scripts/setup"
    } else if let Some(arch) = super::arch::of_boot_image(head) {
        return format!("a kernel Image for {arch}; vmlane boots x86-64 kernels and arm64 Images");
    } else if head.starts_with(b"MZ") {
        "a PE executable without the x86 Linux boot header (no \"HdrS\" at offset 0x202)"
    } else if looks_like_text(head) {
        "a text file"
    } else {
        "neither an x86 boot image (no \"HdrS\" header at offset 0x202) nor an ELF vmlinux"
    };
    reason.to_string()
}

fn looks_like_text(head: &[u8]) -> bool {
    match std::str::from_utf8(head) {
        Ok(text) => !text.contains('\0'),
        // A multi-byte character cut off at the end of the head is still text.
        Err(e) => e.error_len().is_none() && !head[..e.valid_up_to()].contains(&0),
    }
}
