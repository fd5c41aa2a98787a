//! arm64 and RISC-V boot `Image`s: how much of the file the image says it holds, so a
//! truncated copy is refused before a VM. Kernels with the EFI stub (Debian's, `defconfig`)
//! carry a PE header whose section table ends where the file's data does.

/// Where the PE header's offset is kept (`Documentation/arch/arm64/booting.rst`,
/// `Documentation/arch/riscv/boot-image-header.rst`).
const PE_OFFSET_AT: usize = 0x3c;
/// One PE section header.
const SECTION_LEN: usize = 40;

/// The end of the last section's data in the file; `None` for an Image without the EFI stub
/// or a section table beyond the head read.
pub fn described_len(head: &[u8]) -> Option<u64> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(head.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?));
    if !head.starts_with(b"MZ") {
        return None;
    }
    let pe = usize::try_from(u32_at(PE_OFFSET_AT)?).ok()?;
    if head.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let sections = usize::from(u16_at(pe + 6)?);
    let table = pe + 24 + usize::from(u16_at(pe + 20)?);
    (0..sections)
        .map(|n| {
            let section = table + n * SECTION_LEN;
            let size = u64::from(u32_at(section + 16)?);
            let at = u64::from(u32_at(section + 20)?);
            Some(at + size)
        })
        .try_fold(0, |end, section_end: Option<u64>| {
            Some(end.max(section_end?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of an arm64 Image with the EFI stub and these (offset, size) sections.
    fn image_head(sections: &[(u32, u32)]) -> Vec<u8> {
        let mut head = vec![0u8; 0x400];
        head[..2].copy_from_slice(b"MZ");
        head[0x38..0x3c].copy_from_slice(b"ARMd");
        head[PE_OFFSET_AT..PE_OFFSET_AT + 4].copy_from_slice(&0x40u32.to_le_bytes());
        head[0x40..0x44].copy_from_slice(b"PE\0\0");
        head[0x46..0x48].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        head[0x54..0x56].copy_from_slice(&160u16.to_le_bytes());
        for (n, (at, size)) in sections.iter().enumerate() {
            let section = 0x40 + 24 + 160 + n * SECTION_LEN;
            head[section + 16..section + 20].copy_from_slice(&size.to_le_bytes());
            head[section + 20..section + 24].copy_from_slice(&at.to_le_bytes());
        }
        head
    }

    #[test]
    fn the_file_ends_where_the_last_section_does() {
        let head = image_head(&[(0x10000, 0x1730000), (0x1740000, 0x82da00)]);
        assert_eq!(described_len(&head), Some(32_954_880));
    }

    #[test]
    fn an_image_without_the_efi_stub_describes_no_length() {
        let mut head = image_head(&[(0x10000, 0x100)]);
        head[..2].copy_from_slice(b"\0\0");
        assert_eq!(described_len(&head), None);
        let mut no_pe = image_head(&[(0x10000, 0x100)]);
        no_pe[0x40..0x44].copy_from_slice(b"XXXX");
        assert_eq!(described_len(&no_pe), None);
    }
}
