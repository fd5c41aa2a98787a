//! The native test kernel's file: linked and branded as FreeBSD's amd64 kernel is, entered at
//! `btext`, its symbols kept. It only boots through a loader, so no boots here. Without clang or
//! lld these skip, unless `VMLANE_E2E_REQUIRED=1` says they must run.

use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{elf, Endianness, Object, ObjectSection, ObjectSymbol, SymbolKind};
use std::path::Path;

const KERNBASE: u64 = 0xffff_ffff_8000_0000;
const KERNLOAD: u64 = 0x20_0000;
/// The loader's page tables map the first 1 GB.
const MAPPED: u64 = 1 << 30;
/// What the kernel's panic backtrace names from the symbol table it is handed.
const BACKTRACE_FUNCTIONS: &[&str] = &[
    "btext",
    "kmain",
    "vmlane_act",
    "vmlane_test_panic",
    "vmlane_panic",
    "vmlane_backtrace",
];

fn skip(why: &str) {
    let required = std::env::var_os("VMLANE_E2E_REQUIRED").is_some_and(|v| v == "1");
    assert!(!required, "VMLANE_E2E_REQUIRED=1, but {why}");
    println!("skipped: {why}");
}

/// The kernel's bytes, or `None` once the test has been skipped.
fn kernel() -> Option<Vec<u8>> {
    let path: &Path = vmlane_testkernel::native_kernel().map_err(skip).ok()?;
    Some(std::fs::read(path).unwrap())
}

#[test]
fn it_is_an_x86_64_executable_branded_freebsd() {
    let Some(data) = kernel() else { return };
    let header = elf::FileHeader64::<Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    assert_eq!(endian, Endianness::Little);
    assert_eq!(header.e_ident().class, elf::ELFCLASS64);
    assert_eq!(header.e_ident().os_abi, elf::ELFOSABI_FREEBSD);
    assert_eq!(header.e_type(endian), elf::ET_EXEC);
    assert_eq!(header.e_machine(endian), elf::EM_X86_64);
}

#[test]
fn it_is_linked_at_kernbase_and_loaded_at_2_mib() {
    let Some(data) = kernel() else { return };
    let header = elf::FileHeader64::<Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    let loads: Vec<_> = header
        .program_headers(endian, &*data)
        .unwrap()
        .iter()
        .filter(|s| s.p_type(endian) == elf::PT_LOAD)
        .collect();
    assert_eq!(loads[0].p_vaddr(endian), KERNBASE + KERNLOAD);
    assert_eq!(loads[0].p_paddr(endian), KERNLOAD);
    // The ELF headers start the first segment, as in FreeBSD's kernel.
    assert_eq!(loads[0].p_offset(endian), 0);
    for segment in &loads {
        let (vaddr, paddr) = (segment.p_vaddr(endian), segment.p_paddr(endian));
        assert_eq!(vaddr.wrapping_sub(KERNBASE), paddr, "{vaddr:#x}");
        assert!(paddr + segment.p_memsz(endian) < MAPPED, "{paddr:#x}");
    }
    // A data segment with contents to copy and a bss to zero: what a loader must get right.
    let data_segment = loads
        .iter()
        .find(|s| s.p_flags(endian) & elf::PF_W != 0)
        .expect("no writable segment");
    assert!(data_segment.p_filesz(endian) > 0);
    assert!(data_segment.p_memsz(endian) > data_segment.p_filesz(endian));
}

#[test]
fn it_has_no_pvh_entry_and_no_notes() {
    let Some(data) = kernel() else { return };
    let header = elf::FileHeader64::<Endianness>::parse(&*data).unwrap();
    let endian = header.endian().unwrap();
    let segments = header.program_headers(endian, &*data).unwrap();
    assert!(segments.iter().all(|s| s.p_type(endian) != elf::PT_NOTE));
    let file = ElfFile64::<Endianness>::parse(&*data).unwrap();
    assert!(file
        .sections()
        .all(|s| s.elf_section_header().sh_type.get(endian) != elf::SHT_NOTE));
}

#[test]
fn the_entry_is_btext_and_the_symbols_are_kept() {
    let Some(data) = kernel() else { return };
    let file = ElfFile64::<Endianness>::parse(&*data).unwrap();
    assert!(file.section_by_name(".symtab").is_some(), "stripped");
    assert!(file.section_by_name(".strtab").is_some(), "stripped");
    let btext = file.symbol_by_name("btext").expect("no btext");
    assert_eq!(file.entry(), btext.address());
    let text = file.section_by_name(".text").unwrap();
    let text = text.address()..text.address() + text.size();
    for name in BACKTRACE_FUNCTIONS {
        let symbol = file
            .symbol_by_name(name)
            .unwrap_or_else(|| panic!("no symbol {name}"));
        assert_eq!(symbol.kind(), SymbolKind::Text, "{name}");
        assert!(symbol.size() > 0, "{name} has no size");
        assert!(text.contains(&symbol.address()), "{name} outside .text");
    }
}

#[test]
fn vmlane_takes_it_for_a_freebsd_kernel() {
    let Ok(path) = vmlane_testkernel::native_kernel().map_err(skip) else {
        return;
    };
    assert_eq!(
        vmlane_kernel::identify(path).unwrap(),
        (
            vmlane_kernel::ImageFormat::FreeBsd,
            Some("15.0-VMLANE".into())
        )
    );
}
