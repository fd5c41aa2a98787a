//! What a dynamically linked ELF file asks of the system at run time: its interpreter
//! (`PT_INTERP`), the libraries it needs (`DT_NEEDED`) and where it says to look for them
//! (`DT_RUNPATH`, `DT_RPATH`). Read from the program headers, as the run-time linker reads
//! them, with every size checked against the file and bounded: files are untrusted.

use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{elf, Endianness, ReadCache, ReadCacheOps, ReadRef};

/// Largest `PT_INTERP` segment read (a path).
const MAX_INTERP: u64 = 4096;
/// Largest dynamic section or string table read.
const MAX_DYNAMIC: u64 = 1 << 20;
/// `e_phnum`'s escape to a count elsewhere; such files are left alone.
const PN_XNUM: u16 = 0xffff;
/// Where `e_ident` says 32 or 64 bits.
const EI_CLASS: usize = 4;

/// The run-time needs of one dynamically linked file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Needs {
    /// `PT_INTERP`: the run-time linker that loads a program.
    pub interpreter: Option<Vec<u8>>,
    /// `DT_NEEDED`, in order.
    pub libraries: Vec<Vec<u8>>,
    /// The directories of `DT_RUNPATH` (or `DT_RPATH`), searched before the system's.
    pub runpath: Vec<Vec<u8>>,
    /// A 32-bit object, whose libraries live in `/usr/lib32`.
    pub class32: bool,
}

/// `file`'s needs when it is a dynamically linked ELF file; `None` for anything else
/// (scripts, static programs, archives, damaged or hostile files).
pub(crate) fn needs<R: ReadCacheOps>(file: R, len: u64) -> Option<Needs> {
    let data = ReadCache::new(file);
    let ident = data.read_bytes_at(0, 16).ok()?;
    if !ident.starts_with(&elf::ELFMAG) {
        return None;
    }
    let needs = match ident[EI_CLASS] {
        elf::ELFCLASS64 => read::<elf::FileHeader64<Endianness>, _>(&data, len),
        elf::ELFCLASS32 => read::<elf::FileHeader32<Endianness>, _>(&data, len).map(|mut n| {
            n.class32 = true;
            n
        }),
        _ => None,
    }?;
    (needs.interpreter.is_some() || !needs.libraries.is_empty()).then_some(needs)
}

fn read<'a, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'a>>(
    data: R,
    len: u64,
) -> Option<Needs> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let phnum = header.e_phnum(endian);
    let table = u64::from(phnum) * u64::from(header.e_phentsize(endian));
    if phnum == PN_XNUM || !within(header.e_phoff(endian).into(), table, len) {
        return None;
    }
    let segments = header.program_headers(endian, data).ok()?;
    let mut needs = Needs::default();
    for segment in segments {
        let (offset, size) = (
            segment.p_offset(endian).into(),
            segment.p_filesz(endian).into(),
        );
        match segment.p_type(endian) {
            elf::PT_INTERP if size <= MAX_INTERP && within(offset, size, len) => {
                needs.interpreter = segment
                    .interpreter(endian, data)
                    .ok()
                    .flatten()
                    .filter(|p| !p.is_empty())
                    .map(<[u8]>::to_vec);
            }
            elf::PT_DYNAMIC if size <= MAX_DYNAMIC && within(offset, size, len) => {
                if let Ok(Some(entries)) = segment.dynamic(endian, data) {
                    dynamic::<Elf, R>(entries, segments, endian, data, len, &mut needs);
                }
            }
            _ => {}
        }
    }
    Some(needs)
}

/// The strings the dynamic section names, from its string table (found by address, through
/// the loadable segments, as the run-time linker finds it).
fn dynamic<'a, Elf: FileHeader<Endian = Endianness>, R: ReadRef<'a>>(
    entries: &[Elf::Dyn],
    segments: &[Elf::ProgramHeader],
    endian: Endianness,
    data: R,
    len: u64,
    needs: &mut Needs,
) {
    let value = |tag: u32| {
        entries
            .iter()
            .find(|d| d.tag32(endian) == Some(tag))
            .map(|d| d.d_val(endian).into())
    };
    let (Some(address), Some(size)) = (value(elf::DT_STRTAB), value(elf::DT_STRSZ)) else {
        return;
    };
    let Some(offset) = file_offset::<Elf>(segments, endian, address) else {
        return;
    };
    if size > MAX_DYNAMIC || !within(offset, size, len) {
        return;
    }
    let Ok(strings) = data.read_bytes_at(offset, size) else {
        return;
    };
    let string = |d: &Elf::Dyn| {
        let start = usize::try_from(d.d_val(endian).into()).ok()?;
        let rest = strings.get(start..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(rest[..end].to_vec())
    };
    let mut runpath = None;
    let mut rpath = None;
    for entry in entries {
        match entry.tag32(endian) {
            Some(elf::DT_NULL) => break,
            Some(elf::DT_NEEDED) => needs.libraries.extend(string(entry)),
            Some(elf::DT_RUNPATH) => runpath = string(entry),
            Some(elf::DT_RPATH) => rpath = string(entry),
            _ => {}
        }
    }
    // As ld-elf.so.1: DT_RUNPATH, when there is one, replaces DT_RPATH.
    if let Some(path) = runpath.or(rpath) {
        needs.runpath = path
            .split(|&b| b == b':')
            .filter(|d| !d.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
    }
}

/// Where the byte at virtual `address` is in the file, by the `PT_LOAD` segment holding it.
fn file_offset<Elf: FileHeader<Endian = Endianness>>(
    segments: &[Elf::ProgramHeader],
    endian: Endianness,
    address: u64,
) -> Option<u64> {
    segments
        .iter()
        .filter(|s| s.p_type(endian) == elf::PT_LOAD)
        .find_map(|s| {
            let start: u64 = s.p_vaddr(endian).into();
            let inside = address.checked_sub(start)?;
            (inside < s.p_filesz(endian).into()).then_some(())?;
            Into::<u64>::into(s.p_offset(endian)).checked_add(inside)
        })
}

/// Whether `size` bytes at `offset` lie inside a file of `len` bytes.
fn within(offset: u64, size: u64, len: u64) -> bool {
    offset.checked_add(size).is_some_and(|end| end <= len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn files_that_are_not_dynamic_elf_have_no_needs() {
        for bytes in [
            &b""[..],
            b"#!/bin/sh\n",
            b"\x7fELF",
            b"\x7fELF\x02\x01\x01\x09\0\0\0\0\0\0\0\0",
            b"\x7fELF\x07\x01\x01\x09\0\0\0\0\0\0\0\0rest",
        ] {
            assert_eq!(needs(Cursor::new(bytes), bytes.len() as u64), None);
        }
    }

    /// Every truncation and many corruptions of a 64-bit header with program headers that
    /// point everywhere: never a panic, never a huge allocation.
    #[test]
    fn hostile_headers_are_refused_without_panics() {
        let mut elf = vec![0u8; 64 + 3 * 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[6] = 1;
        elf[16] = 3; // ET_DYN
        elf[18] = 62;
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[56..58].copy_from_slice(&3u16.to_le_bytes()); // e_phnum
        for (i, kind) in [elf::PT_INTERP, elf::PT_DYNAMIC, elf::PT_LOAD]
            .iter()
            .enumerate()
        {
            let at = 64 + i * 56;
            elf[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            elf[at + 8..at + 16].copy_from_slice(&u64::MAX.to_le_bytes()); // p_offset
            elf[at + 32..at + 40].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
            // p_filesz
        }
        for cut in 0..elf.len() {
            let _ = needs(Cursor::new(&elf[..cut]), cut as u64);
        }
        for at in 0..elf.len() {
            for value in [0u8, 0x7f, 0xff] {
                let mut bent = elf.clone();
                bent[at] = value;
                let _ = needs(Cursor::new(&bent), bent.len() as u64);
                let _ = needs(Cursor::new(&bent), u64::MAX);
            }
        }
    }
}
