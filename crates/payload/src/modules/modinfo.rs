//! A module's dependencies, from the `depends=` field of its `.modinfo` ELF section.
//!
//! Only the ELF header, the section table, the section names and `.modinfo` itself are read,
//! so even a large plain `.ko` costs a few small reads.

use super::normalise;
use super::read::{read_module, Compression};
use crate::PayloadError;
use object::elf::{FileHeader32, FileHeader64};
use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, FileKind, ReadCache, ReadRef};
use std::path::Path;

/// The names of the modules `path` depends on, normalised, in the order the module lists them.
pub(crate) fn depends(path: &Path) -> Result<Vec<String>, PayloadError> {
    let modinfo = if Compression::of(path) == Compression::None {
        let file = std::fs::File::open(path).map_err(PayloadError::io("open module", path))?;
        modinfo_of(&ReadCache::new(file), path)?
    } else {
        modinfo_of(read_module(path)?.as_slice(), path)?
    };
    Ok(depends_field(&modinfo))
}

/// Copies out the raw `.modinfo` section: NUL-separated `key=value` strings.
fn modinfo_of<'d, R: ReadRef<'d>>(data: R, path: &Path) -> Result<Vec<u8>, PayloadError> {
    let bad = |source: Box<dyn std::error::Error + Send + Sync>| PayloadError::BadModule {
        path: path.to_path_buf(),
        source,
    };
    let section = match FileKind::parse(data).map_err(|e| bad(e.into()))? {
        FileKind::Elf64 => section::<FileHeader64<Endianness>, R>(data, b".modinfo"),
        FileKind::Elf32 => section::<FileHeader32<Endianness>, R>(data, b".modinfo"),
        _ => return Err(bad("not an ELF file".into())),
    };
    match section.map_err(|e| bad(e.into()))? {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(PayloadError::NoModinfo {
            path: path.to_path_buf(),
        }),
    }
}

/// The contents of the section called `name`, if the file has one.
fn section<'d, Elf, R>(data: R, name: &[u8]) -> object::Result<Option<&'d [u8]>>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'d>,
{
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    match sections.section_by_name(endian, name) {
        Some((_, section)) => section.data(endian, data).map(Some),
        None => Ok(None),
    }
}

/// Parses `depends=a,b` out of a `.modinfo` section; a module without one depends on nothing.
fn depends_field(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| list.split(|&b| b == b','))
        .filter(|name| !name.is_empty())
        .map(|name| normalise(&String::from_utf8_lossy(name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::tests::{fake_module, write_compressed};

    #[test]
    fn depends_come_from_the_modinfo_section_plain_or_compressed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["m.ko", "m.ko.xz", "m.ko.zst", "m.ko.gz"] {
            let path = dir.path().join(name);
            write_compressed(&path, &fake_module("virtio,virtio-ring"));
            assert_eq!(depends(&path).unwrap(), ["virtio", "virtio_ring"], "{name}");
        }
    }

    #[test]
    fn empty_depends_means_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ko");
        std::fs::write(&path, fake_module("")).unwrap();
        assert!(depends(&path).unwrap().is_empty());
    }

    #[test]
    fn depends_text_elsewhere_in_the_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ko");
        let mut elf = fake_module("a");
        elf.extend_from_slice(b"\0depends=decoy\0");
        std::fs::write(&path, elf).unwrap();
        assert_eq!(depends(&path).unwrap(), ["a"]);
    }

    #[test]
    fn garbage_and_truncated_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ko");
        let elf = fake_module("a");
        for cut in [0, 3, 20, 63, 64, 100, elf.len() - 1] {
            std::fs::write(&path, &elf[..cut]).unwrap();
            let error = depends(&path).unwrap_err().to_string();
            assert!(error.contains("m.ko"), "cut at {cut}: {error}");
        }
        std::fs::write(&path, b"not an elf at all").unwrap();
        assert!(matches!(
            depends(&path),
            Err(PayloadError::BadModule { .. })
        ));
    }

    #[test]
    fn elf_without_modinfo_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.ko");
        let mut elf = fake_module("a");
        // Rename the section: ".modinfo" becomes ".modinfX".
        let at = elf.windows(9).position(|w| w == b".modinfo\0").unwrap();
        elf[at + 7] = b'X';
        std::fs::write(&path, elf).unwrap();
        let error = depends(&path).unwrap_err();
        assert!(matches!(error, PayloadError::NoModinfo { .. }), "{error}");
    }
}
