//! Why a kernel's debug info cannot be used, each saying what would fix it.

use std::path::PathBuf;

/// Why a file cannot symbolise backtraces.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ELF file, or its headers are broken.
    #[error("{path} is not a readable ELF file")]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: object::Error,
    },
    /// The file has no symbol table, so `func+0x1a` cannot be turned into an address.
    #[error(
        "{path} has no symbol table (it was stripped): give the unstripped vmlinux of the build \
         tree, or FreeBSD's kernel.full or kernel.debug"
    )]
    NoSymbols {
        /// The file.
        path: PathBuf,
    },
    /// The file has no DWARF line information.
    #[error(
        "{path} has no DWARF debug info: build the kernel with CONFIG_DEBUG_INFO \
         (e.g. CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y; FreeBSD: makeoptions DEBUG=-g)"
    )]
    NoDebugInfo {
        /// The file.
        path: PathBuf,
    },
    /// A debug section is compressed in a form that cannot be read.
    #[error("{path}: cannot decompress its {section} section")]
    Decompress {
        /// The file.
        path: PathBuf,
        /// The section's name.
        section: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The DWARF data is malformed.
    #[error("{path}: its DWARF debug info is malformed")]
    Dwarf {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        #[source]
        source: gimli::Error,
    },
}
