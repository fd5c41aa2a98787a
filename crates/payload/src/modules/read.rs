//! A module file's plain ELF bytes: distributions ship `.ko` files compressed with xz, zstd
//! or gzip, and the guest's loader gets them decompressed so it needs no decoder itself.

use crate::PayloadError;
use std::io::{BufReader, Read};
use std::path::Path;

/// How a module file is compressed, judged by its name as kmod does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// The module file name suffixes this crate recognises, plain first.
    pub(crate) const SUFFIXES: [(&'static str, Compression); 4] = [
        (".ko", Compression::None),
        (".ko.xz", Compression::Xz),
        (".ko.zst", Compression::Zstd),
        (".ko.gz", Compression::Gzip),
    ];

    pub(crate) fn of(path: &Path) -> Compression {
        let name = path.as_os_str().as_encoded_bytes();
        Compression::SUFFIXES
            .iter()
            .rev()
            .find(|(suffix, _)| name.ends_with(suffix.as_bytes()))
            .map_or(Compression::None, |&(_, kind)| kind)
    }

    fn format(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

/// Returns the module's ELF bytes, decompressing `.xz`, `.zst` and `.gz` files by extension.
pub fn read_module(path: &Path) -> Result<Vec<u8>, PayloadError> {
    let kind = Compression::of(path);
    let open = || std::fs::File::open(path).map_err(PayloadError::io("open module", path));
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| PayloadError::Decompress {
        format: kind.format(),
        path: path.to_path_buf(),
        source,
    };
    let mut elf = Vec::new();
    match kind {
        Compression::None => {
            return std::fs::read(path).map_err(PayloadError::io("read module", path));
        }
        Compression::Xz => {
            lzma_rs::xz_decompress(&mut BufReader::new(open()?), &mut elf)
                .map_err(|e| failed(e.into()))?;
        }
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(BufReader::new(open()?))
                .read_to_end(&mut elf)
                .map_err(|e| failed(e.into()))?;
        }
        Compression::Zstd => {
            let raw = std::fs::read(path).map_err(PayloadError::io("read module", path))?;
            let mut rest = raw.as_slice();
            // A file may hold several frames; their contents are concatenated.
            while !rest.is_empty() {
                ruzstd::decoding::StreamingDecoder::new(&mut rest)
                    .map_err(|e| failed(e.into()))?
                    .read_to_end(&mut elf)
                    .map_err(|e| failed(e.into()))?;
            }
        }
    }
    Ok(elf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::tests::{fake_module, write_compressed};

    #[test]
    fn every_compression_decompresses_to_the_same_elf() {
        let dir = tempfile::tempdir().unwrap();
        let elf = fake_module("a,b");
        for name in ["m.ko", "m.ko.xz", "m.ko.zst", "m.ko.gz"] {
            let path = dir.path().join(name);
            write_compressed(&path, &elf);
            assert_eq!(read_module(&path).unwrap(), elf, "{name}");
        }
    }

    #[test]
    fn corrupt_compressed_module_is_an_error_naming_format_and_file() {
        let dir = tempfile::tempdir().unwrap();
        for (name, format) in [("m.ko.xz", "xz"), ("m.ko.zst", "zstd"), ("m.ko.gz", "gzip")] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"definitely not compressed").unwrap();
            let error = read_module(&path).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(format) && message.contains(name),
                "{message}"
            );
            assert!(std::error::Error::source(&error).is_some(), "{message}");
        }
    }

    #[test]
    fn missing_module_file_is_an_io_error_naming_it() {
        let error = read_module(Path::new("/nonexistent/m.ko.xz")).unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/m.ko.xz"),
            "{error}"
        );
    }
}
