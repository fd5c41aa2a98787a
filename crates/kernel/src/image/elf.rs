//! ELF kernel images: whether QEMU can enter them (the PVH note), which release they are (the
//! version banner in their read-only data), and the note walk both this and FreeBSD's check use.

use super::{read_up_to, release_word, RELEASE_MAX};
use memchr::memmem::Finder;
use object::read::elf::{FileHeader, NoteIterator, ProgramHeader, SectionHeader, SectionTable};
use object::{elf, Endianness, ReadCache};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::Path;

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit entry point QEMU uses to boot a vmlinux as PVH.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// What a Linux kernel's version string starts with.
pub const LINUX_BANNER: &[u8] = b"Linux version ";
/// Offsets in `e_ident`.
pub(super) const EI_CLASS: usize = 4;
pub(super) const EI_DATA: usize = 5;
/// How much of the file is read at a time while looking for the banner.
pub(super) const CHUNK: usize = 1 << 20;

/// Whether the head of a file is an ELF header.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(&elf::ELFMAG)
}

/// What vmlane boots, for refusals of what it does not.
const BOOTS: &str = "vmlane boots x86-64 and 64-bit POWER ELF kernels, and arm64, riscv64 and \
                     s390x boot images";

/// Rejects ELF files QEMU cannot boot as a kernel, saying why: an x86-64 one is `None`, a
/// 64-bit POWER one says whether it is big-endian.
pub fn check_header(head: &[u8]) -> Result<Option<bool>, String> {
    match head.get(EI_CLASS) {
        Some(&elf::ELFCLASS64) => {}
        Some(&elf::ELFCLASS32) => {
            return Err(match super::arch::of_elf(head) {
                Some(arch) => format!("a 32-bit ELF file for {arch}; {BOOTS}"),
                None => format!("a 32-bit ELF file; {BOOTS}"),
            })
        }
        _ => return Err("an ELF file of unknown class".into()),
    }
    let Some(machine) = super::arch::elf_machine(head) else {
        return Err("a truncated ELF file".into());
    };
    match machine {
        elf::EM_X86_64 => Ok(None),
        elf::EM_PPC64 => Ok(Some(head.get(EI_DATA) == Some(&elf::ELFDATA2MSB))),
        _ => Err(match super::arch::of_elf(head) {
            Some("aarch64") => "an arm64 ELF vmlinux; boot the arm64 Image beside it (arch/arm64/boot/Image) with --arch arm64".into(),
            Some("riscv64") => "a riscv64 ELF vmlinux; boot the RISC-V Image beside it (arch/riscv/boot/Image) with --arch riscv64".into(),
            Some("s390x") => "an s390x ELF vmlinux; boot the image beside it (arch/s390/boot/bzImage) with --arch s390x".into(),
            Some(arch) => format!("an ELF file for {arch}; {BOOTS}"),
            None => format!("an ELF file for another architecture (e_machine {machine}); {BOOTS}"),
        }),
    }
}

/// Why an ELF file's headers describe more than the file holds.
#[derive(Debug)]
pub enum Damage {
    /// The program header table or a segment ends at this offset, past the file's end.
    Short(u64),
    /// A header whose values add up past 2^64 bytes.
    Overflow(String),
    /// Headers the parser rejects.
    Broken(object::Error),
}

/// Checks that the program header table and every segment's bytes lie within the file's `len`
/// bytes, reading only the headers: a cut-off copy loads half a kernel. Header values are
/// untrusted, so every sum is checked.
pub fn check_extent(file: &File, len: u64) -> Result<(), Damage> {
    let data = ReadCache::new(file);
    let header = elf::FileHeader64::<Endianness>::parse(&data).map_err(Damage::Broken)?;
    let endian = header.endian().map_err(Damage::Broken)?;
    let count = header.phnum(endian, &data).map_err(Damage::Broken)? as u64;
    if count == 0 {
        return Ok(());
    }
    let table_end = header
        .e_phoff(endian)
        .checked_add(count * u64::from(header.e_phentsize(endian)))
        .ok_or_else(|| Damage::Overflow("its program header table ends past 2^64 bytes".into()))?;
    if table_end > len {
        return Err(Damage::Short(table_end));
    }
    let mut wanted = 0;
    let segments = header
        .program_headers(endian, &data)
        .map_err(Damage::Broken)?;
    for (index, segment) in segments.iter().enumerate() {
        let end = segment
            .p_offset(endian)
            .checked_add(segment.p_filesz(endian))
            .ok_or_else(|| {
                Damage::Overflow(format!("its program header {index} ends past 2^64 bytes"))
            })?;
        wanted = wanted.max(end);
    }
    match wanted > len {
        true => Err(Damage::Short(wanted)),
        false => Ok(()),
    }
}

/// Looks for the PVH entry note in the note segments, then in the note sections (some linkers
/// leave notes out of the segments). Reads only headers and notes, never the whole file.
pub fn has_pvh_note(file: &File) -> Result<bool, object::Error> {
    any_note(file, |name, n_type, _| {
        name == b"Xen" && n_type == XEN_ELFNOTE_PHYS32_ENTRY
    })
}

/// Whether `wanted(name, type, descriptor)` holds for a note in a note segment, else in a note
/// section. Broken segments are an error; broken sections are not, since the segments are
/// what QEMU reads, so a damaged section table is no reason to refuse the file.
pub(super) fn any_note(
    file: &File,
    mut wanted: impl FnMut(&[u8], u32, &[u8]) -> bool,
) -> Result<bool, object::Error> {
    let data = ReadCache::new(file);
    let header = elf::FileHeader64::<Endianness>::parse(&data)?;
    let endian = header.endian()?;
    for segment in header.program_headers(endian, &data)? {
        if let Some(notes) = segment.notes(endian, &data)? {
            if holds(notes, endian, &mut wanted)? {
                return Ok(true);
            }
        }
    }
    let Ok(sections) = header.sections(endian, &data) else {
        return Ok(false);
    };
    for section in sections.iter() {
        if let Ok(Some(notes)) = section.notes(endian, &data) {
            if holds(notes, endian, &mut wanted).unwrap_or(false) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether the file is an ELF file with a non-empty symbol table, reading only its headers.
pub fn has_symbol_table(path: &Path) -> bool {
    with_sections(path, |sections, endian| {
        sections
            .iter()
            .any(|s| s.sh_type(endian) == elf::SHT_SYMTAB && s.sh_size(endian) > 0)
    })
}

/// Whether the file is an ELF file with DWARF (a non-empty `.debug_info`, maybe compressed
/// as `.zdebug_info`), reading only its headers: a `kernel.debug` keeps it, a stripped file
/// and a kernel built without CONFIG_DEBUG_INFO have none.
pub fn has_debug_info(path: &Path) -> bool {
    with_sections(path, |sections, endian| {
        [&b".debug_info"[..], b".zdebug_info"].iter().any(|name| {
            sections
                .section_by_name(endian, name)
                .is_some_and(|(_, s)| s.sh_type(endian) != elf::SHT_NOBITS && s.sh_size(endian) > 0)
        })
    })
}

/// Asks `check` about a 64-bit ELF file's section table; false for anything else.
fn with_sections(
    path: &Path,
    check: impl FnOnce(
        &SectionTable<'_, elf::FileHeader64<Endianness>, &ReadCache<&File>>,
        Endianness,
    ) -> bool,
) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let data = ReadCache::new(&file);
    let Ok(header) = elf::FileHeader64::<Endianness>::parse(&data) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    header
        .sections(endian, &data)
        .is_ok_and(|sections| check(&sections, endian))
}

fn holds(
    mut notes: NoteIterator<'_, elf::FileHeader64<Endianness>>,
    endian: Endianness,
    wanted: &mut impl FnMut(&[u8], u32, &[u8]) -> bool,
) -> Result<bool, object::Error> {
    while let Some(note) = notes.next()? {
        if wanted(note.name(), note.n_type(endian), note.desc()) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The release from the first `<banner>RELEASE ` (`Linux version 6.1.0 `) whose release looks
/// like one and passes `accept`, reading the file a chunk at a time (the banner sits some 20 MB
/// into a distro vmlinux).
pub fn banner_release(
    file: &mut File,
    banner: &[u8],
    accept: impl Fn(&str) -> bool,
) -> io::Result<Option<String>> {
    let finder = Finder::new(banner);
    // Enough of the previous chunk to hold a banner cut by the chunk boundary.
    let keep = banner.len() + RELEASE_MAX;
    file.seek(SeekFrom::Start(0))?;
    let mut chunk = vec![0u8; CHUNK];
    let mut window: Vec<u8> = Vec::with_capacity(CHUNK + keep);
    loop {
        let n = read_up_to(file, &mut chunk)?;
        let at_end = n < chunk.len();
        window.extend_from_slice(&chunk[..n]);
        let mut from = 0;
        while let Some(found) = finder.find(&window[from..]) {
            let start = from + found + banner.len();
            let rest = &window[start..];
            if rest.len() < RELEASE_MAX && !at_end {
                // Cut off: the kept tail holds it, and the next round looks again.
                break;
            }
            if let Some(release) = release_word(rest).filter(|r| accept(r)) {
                return Ok(Some(release));
            }
            from = start;
        }
        if at_end {
            return Ok(None);
        }
        let drop = window.len().saturating_sub(keep);
        window.drain(..drop);
    }
}
