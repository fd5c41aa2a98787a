//! Naming the architecture of a kernel image vmlane cannot boot, from its first bytes, so the
//! refusal says which machine the image was built for instead of only "not x86-64".

use object::elf;

use super::elf::{EI_CLASS, EI_DATA};

/// Where the ELF header keeps `e_machine`.
const E_MACHINE: usize = 18;
/// Where the arm64 and RISC-V boot `Image` headers keep their magic (`Documentation/arch/
/// arm64/booting.rst`, `Documentation/arch/riscv/boot-image-header.rst`).
const IMAGE_MAGIC: std::ops::Range<usize> = 0x38..0x3c;

/// The architecture of an ELF file's `e_machine`, as `uname -m` names it; `None` for x86-64 or
/// a machine vmlane has no name for.
pub fn of_elf(head: &[u8]) -> Option<&'static str> {
    let big_endian = head.get(EI_DATA) == Some(&elf::ELFDATA2MSB);
    let bits64 = head.get(EI_CLASS) == Some(&elf::ELFCLASS64);
    Some(match elf_machine(head)? {
        elf::EM_386 => "i386",
        elf::EM_AARCH64 => "aarch64",
        elf::EM_ARM => "arm",
        elf::EM_RISCV if bits64 => "riscv64",
        elf::EM_RISCV => "riscv32",
        elf::EM_S390 if bits64 => "s390x",
        elf::EM_PPC64 if big_endian => "ppc64",
        elf::EM_PPC64 => "ppc64le",
        elf::EM_PPC => "ppc",
        elf::EM_MIPS => "mips",
        elf::EM_LOONGARCH => "loongarch64",
        _ => return None,
    })
}

/// An ELF header's `e_machine`, in the header's own byte order; `None` if the head is too short.
pub fn elf_machine(head: &[u8]) -> Option<u16> {
    let &[a, b] = head.get(E_MACHINE..E_MACHINE + 2)? else {
        return None;
    };
    Some(match head.get(EI_DATA) {
        Some(&elf::ELFDATA2MSB) => u16::from_be_bytes([a, b]),
        _ => u16::from_le_bytes([a, b]),
    })
}

/// The architecture of a raw boot `Image` (arm64's and RISC-V's), by its header's magic.
pub fn of_boot_image(head: &[u8]) -> Option<&'static str> {
    match head.get(IMAGE_MAGIC)? {
        b"ARMd" => Some("aarch64"),
        b"RSC\x05" => Some("riscv64"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf_head(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut head = vec![0u8; 64];
        head[..4].copy_from_slice(&elf::ELFMAG);
        head[EI_CLASS] = class;
        head[EI_DATA] = data;
        let bytes = if data == elf::ELFDATA2MSB {
            machine.to_be_bytes()
        } else {
            machine.to_le_bytes()
        };
        head[E_MACHINE..E_MACHINE + 2].copy_from_slice(&bytes);
        head
    }

    #[test]
    fn elf_machines_are_named_as_uname_names_them() {
        let (c64, c32) = (elf::ELFCLASS64, elf::ELFCLASS32);
        let (le, be) = (elf::ELFDATA2LSB, elf::ELFDATA2MSB);
        for (class, data, machine, name) in [
            (c64, le, elf::EM_AARCH64, "aarch64"),
            (c64, le, elf::EM_RISCV, "riscv64"),
            (c64, be, elf::EM_S390, "s390x"),
            (c64, be, elf::EM_PPC64, "ppc64"),
            (c64, le, elf::EM_PPC64, "ppc64le"),
            (c32, le, elf::EM_386, "i386"),
        ] {
            assert_eq!(
                of_elf(&elf_head(class, data, machine)),
                Some(name),
                "{name}"
            );
        }
        assert_eq!(of_elf(&elf_head(c64, le, elf::EM_X86_64)), None);
        assert_eq!(of_elf(&[0x7f, b'E', b'L', b'F']), None, "too short to say");
    }

    #[test]
    fn boot_images_are_told_apart_by_their_magic() {
        let mut head = vec![0u8; 0x40];
        head[IMAGE_MAGIC].copy_from_slice(b"ARMd");
        assert_eq!(of_boot_image(&head), Some("aarch64"));
        head[IMAGE_MAGIC].copy_from_slice(b"RSC\x05");
        assert_eq!(of_boot_image(&head), Some("riscv64"));
        assert_eq!(of_boot_image(&head[..0x3a]), None);
        assert_eq!(of_boot_image(&[0u8; 0x40]), None);
    }
}
