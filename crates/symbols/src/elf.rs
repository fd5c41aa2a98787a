//! Reading an ELF file's text symbols and the DWARF sections line lookups need. Only those
//! sections are read (never the location lists, which are a large part of a vmlinux), each
//! into its own buffer, and compressed ones (`SHF_COMPRESSED`, `.zdebug_*`) are inflated.

use crate::error::SymbolsError;
use gimli::{EndianArcSlice, RunTimeEndian, SectionId};
use object::{
    CompressionFormat, Object, ObjectSection, ObjectSymbol, SectionFlags, SectionKind, SymbolKind,
};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The reader the DWARF is parsed with: owned, shareable buffers.
pub(crate) type Reader = EndianArcSlice<RunTimeEndian>;

/// No section is inflated past this, whatever its header claims.
const MAX_SECTION: u64 = 4 << 30;

/// One text symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol {
    /// Its address.
    pub address: u64,
    /// Its ELF size.
    pub size: u64,
    /// How far the next text symbol is: the size the kernel's kallsyms prints.
    pub span: u64,
}

/// Text symbols by name; a name may have several (static functions in different files).
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    by_name: HashMap<Box<str>, Vec<Symbol>>,
}

impl Symbols {
    /// The address of `name` whose size is `size` (as a backtrace prints it), when one
    /// symbol fits; a name shared by several symbols needs the size to choose.
    pub fn resolve(&self, name: &str, size: Option<u64>) -> Option<u64> {
        let candidates = self.by_name.get(name)?;
        if let [only] = candidates.as_slice() {
            return Some(only.address);
        }
        let size = size?;
        let mut fitting = candidates
            .iter()
            .filter(|s| s.size == size || s.span == size);
        match (fitting.next(), fitting.next()) {
            (Some(symbol), None) => Some(symbol.address),
            _ => None,
        }
    }
}

/// What a symbolizer is built from.
pub(crate) struct Loaded {
    pub symbols: Symbols,
    pub dwarf: gimli::Dwarf<Reader>,
}

/// Reads `path`'s text symbols and DWARF sections.
pub(crate) fn load(path: &Path) -> Result<Loaded, SymbolsError> {
    let read_error = |source| SymbolsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let not_elf = |source| SymbolsError::NotElf {
        path: path.to_path_buf(),
        source,
    };
    // The symbol and string tables are read whole, so that the names are not read one
    // system call each.
    let tables = {
        let cache = object::ReadCache::new(file.try_clone().map_err(read_error)?);
        let elf = object::File::parse(&cache).map_err(not_elf)?;
        symbol_tables(&file, len, &elf)
    };
    let data = Preloaded {
        file: object::ReadCache::new(file.try_clone().map_err(read_error)?),
        tables,
    };
    let elf = object::File::parse(&data).map_err(not_elf)?;
    let symbols = symbols(&elf);
    if symbols.by_name.is_empty() {
        return Err(SymbolsError::NoSymbols {
            path: path.to_path_buf(),
        });
    }
    let has = |name: &str| {
        debug_section(&elf, name).is_some_and(|s| s.kind() != SectionKind::UninitializedData)
    };
    if !has(".debug_info") || !has(".debug_line") {
        return Err(SymbolsError::NoDebugInfo {
            path: path.to_path_buf(),
        });
    }
    let endian = if elf.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let empty = EndianArcSlice::new(Arc::from(&[][..]), endian);
    let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, SymbolsError> {
        if !NEEDED.contains(&id) {
            return Ok(empty.clone());
        }
        let Some(section) =
            debug_section(&elf, id.name()).filter(|s| s.kind() != SectionKind::UninitializedData)
        else {
            return Ok(empty.clone());
        };
        let bytes =
            section_bytes(&file, len, &section).map_err(|source| SymbolsError::Decompress {
                path: path.to_path_buf(),
                section: id.name().to_string(),
                source,
            })?;
        Ok(EndianArcSlice::new(Arc::from(bytes), endian))
    })?;
    Ok(Loaded { symbols, dwarf })
}

/// The sections addr2line reads for lines and inlined frames.
const NEEDED: [SectionId; 10] = [
    SectionId::DebugAbbrev,
    SectionId::DebugAddr,
    SectionId::DebugAranges,
    SectionId::DebugInfo,
    SectionId::DebugLine,
    SectionId::DebugLineStr,
    SectionId::DebugRanges,
    SectionId::DebugRngLists,
    SectionId::DebugStr,
    SectionId::DebugStrOffsets,
];

/// The section `.debug_x`, or its GNU-compressed twin `.zdebug_x`.
fn debug_section<'f, 'd>(
    elf: &'f object::File<'d, &'d Preloaded>,
    name: &str,
) -> Option<object::Section<'d, 'f, &'d Preloaded>> {
    elf.section_by_name(name).or_else(|| {
        let rest = name.strip_prefix(".debug_")?;
        elf.section_by_name(&format!(".zdebug_{rest}"))
    })
}

/// A section's bytes, inflated when compressed; every size is checked against the file.
fn section_bytes<'d, S: ObjectSection<'d>>(
    file: &File,
    len: u64,
    section: &S,
) -> std::io::Result<Vec<u8>> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let range = section
        .compressed_file_range()
        .map_err(|e| invalid(&e.to_string()))?;
    let end = range.offset.checked_add(range.compressed_size);
    if end.is_none_or(|end| end > len) {
        return Err(invalid("the section lies past the end of the file"));
    }
    if range.uncompressed_size > MAX_SECTION {
        return Err(invalid("the section claims to be larger than 4 GiB"));
    }
    let mut raw = vec![0; range.compressed_size as usize];
    file.read_exact_at(&mut raw, range.offset)?;
    if range.format == CompressionFormat::None {
        return Ok(raw);
    }
    let mut out = Vec::new();
    out.try_reserve_exact(range.uncompressed_size as usize)
        .map_err(|_| invalid("not enough memory for the section"))?;
    let limit = range.uncompressed_size;
    match range.format {
        CompressionFormat::Zlib => {
            flate2::read::ZlibDecoder::new(&raw[..])
                .take(limit)
                .read_to_end(&mut out)?;
        }
        CompressionFormat::Zstandard => {
            let mut input = &raw[..];
            let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
                .map_err(|e| invalid(&e.to_string()))?;
            decoder.take(limit).read_to_end(&mut out)?;
        }
        _ => return Err(invalid("an unknown compression format")),
    }
    if out.len() as u64 != limit {
        return Err(invalid(
            "the section inflates to another size than it claims",
        ));
    }
    Ok(out)
}

/// Every defined text symbol: functions, and untyped symbols in executable sections (the
/// kernel's assembly entry points), with the distance to the next one.
fn symbols<'d, O: Object<'d>>(elf: &O) -> Symbols {
    let text_sections: HashSet<_> = elf
        .sections()
        .filter(|s| match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0,
            _ => s.kind() == SectionKind::Text,
        })
        .map(|s| s.index())
        .collect();
    let mut found: Vec<(&str, u64, u64)> = elf
        .symbols()
        .filter(|s| match s.kind() {
            SymbolKind::Text => true,
            SymbolKind::Unknown => s
                .section_index()
                .is_some_and(|i| text_sections.contains(&i)),
            _ => false,
        })
        .filter(|s| s.section_index().is_some() && !s.is_undefined())
        .filter_map(|s| Some((s.name().ok()?, s.address(), s.size())))
        .filter(|(name, _, _)| !name.is_empty())
        .collect();
    let mut addresses: Vec<u64> = found.iter().map(|s| s.1).collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut by_name: HashMap<Box<str>, Vec<Symbol>> = HashMap::new();
    for (name, address, size) in found.drain(..) {
        let next = addresses.partition_point(|&a| a <= address);
        let span = addresses.get(next).map_or(size, |n| n - address);
        let symbol = Symbol {
            address,
            size,
            span,
        };
        let list = by_name.entry(name.into()).or_default();
        if !list.contains(&symbol) {
            list.push(symbol);
        }
    }
    Symbols { by_name }
}

/// The file, with some of its ranges already in memory.
struct Preloaded {
    file: object::ReadCache<File>,
    /// `(offset, bytes)` of each range read in advance.
    tables: Vec<(u64, Vec<u8>)>,
}

impl Preloaded {
    /// The preloaded bytes from `offset` to the end of the range holding it.
    fn from(&self, offset: u64) -> Option<&[u8]> {
        self.tables.iter().find_map(|(start, bytes)| {
            let skip = usize::try_from(offset.checked_sub(*start)?).ok()?;
            bytes.get(skip..)
        })
    }
}

impl<'a> object::ReadRef<'a> for &'a Preloaded {
    fn len(self) -> Result<u64, ()> {
        (&self.file).len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        let size_here = usize::try_from(size).map_err(|_| ())?;
        match self.from(offset).and_then(|rest| rest.get(..size_here)) {
            Some(bytes) => Ok(bytes),
            None => (&self.file).read_bytes_at(offset, size),
        }
    }

    fn read_bytes_at_until(
        self,
        range: std::ops::Range<u64>,
        delimiter: u8,
    ) -> Result<&'a [u8], ()> {
        let Some(rest) = self.from(range.start) else {
            return (&self.file).read_bytes_at_until(range, delimiter);
        };
        let limit = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX);
        let rest = &rest[..rest.len().min(limit)];
        let end = rest.iter().position(|&b| b == delimiter).ok_or(())?;
        Ok(&rest[..end])
    }
}

/// The bytes of every symbol table and the string table it names.
fn symbol_tables<'d, O: Object<'d>>(file: &File, len: u64, elf: &O) -> Vec<(u64, Vec<u8>)> {
    let mut tables = Vec::new();
    for section in elf.sections() {
        let Ok(name) = section.name() else { continue };
        if name != ".symtab" && name != ".strtab" {
            continue;
        }
        let Some((offset, size)) = section.file_range() else {
            continue;
        };
        if offset.checked_add(size).is_none_or(|end| end > len) {
            continue;
        }
        let mut bytes = Vec::new();
        if bytes.try_reserve_exact(size as usize).is_err() {
            continue;
        }
        bytes.resize(size as usize, 0);
        if file.read_exact_at(&mut bytes, offset).is_ok() {
            tables.push((offset, bytes));
        }
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_shared_by_static_functions_is_told_apart_by_the_printed_size() {
        let symbol = |address, size, span| Symbol {
            address,
            size,
            span,
        };
        let mut symbols = Symbols::default();
        symbols
            .by_name
            .insert("only".into(), vec![symbol(0x1000, 0x10, 0x10)]);
        symbols.by_name.insert(
            "init_once".into(),
            vec![symbol(0x2000, 0x2a, 0x30), symbol(0x3000, 0x40, 0x40)],
        );
        assert_eq!(symbols.resolve("only", None), Some(0x1000));
        assert_eq!(symbols.resolve("only", Some(0x99)), Some(0x1000));
        assert_eq!(
            symbols.resolve("init_once", Some(0x30)),
            Some(0x2000),
            "kallsyms' size"
        );
        assert_eq!(
            symbols.resolve("init_once", Some(0x2a)),
            Some(0x2000),
            "ELF size"
        );
        assert_eq!(symbols.resolve("init_once", Some(0x40)), Some(0x3000));
        assert_eq!(
            symbols.resolve("init_once", None),
            None,
            "FreeBSD prints no size"
        );
        assert_eq!(symbols.resolve("init_once", Some(0x50)), None);
        assert_eq!(symbols.resolve("missing", Some(0x10)), None);
    }
}
