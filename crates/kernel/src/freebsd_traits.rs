//! What a FreeBSD kernel was built with, read from its symbol table: whether it takes its
//! virtio-mmio devices from the command line and finds CPUs in an MP table (the
//! FIRECRACKER-style kernels that boot on microvm) or needs ACPI and PCI (GENERIC-style),
//! whether QEMU can enter it at a PVH entry, whether it can mount a 9p share, and whether it
//! drives a virtio network card.

use crate::image::has_pvh_note;
use object::{Object, ObjectSymbol};
use std::path::Path;

/// Symbols that only a kernel with `device virtio_mmio` and its command-line probe has.
const VIRTIO_MMIO_CMDLINE: &str = "vtmmio_cmdline_driver";
/// The MP-table CPU enumeration microvm without ACPI relies on.
const MPTABLE: &str = "mptable_probe";
/// FreeBSD's 9p client and its virtio transport (`device virtio_p9fs`, `options P9FS`).
const P9FS: [&str; 2] = ["vt9p_drv", "p9fs_vfsops"];
/// The virtio network driver (`device vtnet`), which `--net` gives a card for.
const VTNET: &str = "vtnet_driver";

/// What a FreeBSD kernel image has built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FreeBsdTraits {
    /// virtio-mmio devices from `virtio_mmio.device=` words.
    pub virtio_mmio_cmdline: bool,
    /// CPUs from an MP table (no ACPI needed).
    pub mptable: bool,
    /// A PVH entry note.
    pub pvh: bool,
    /// The 9p client with its virtio transport.
    pub p9fs: bool,
    /// The virtio network driver.
    pub vtnet: bool,
    /// A symbol table, which backtraces need to name functions.
    pub symbols: bool,
}

impl FreeBsdTraits {
    /// Whether the kernel boots on a machine without ACPI or PCI (QEMU's microvm).
    pub fn boots_without_acpi(&self) -> bool {
        self.virtio_mmio_cmdline && self.mptable
    }
}

/// Reads a FreeBSD kernel's traits. An unreadable symbol table reads as no symbols.
pub fn freebsd_traits(path: &Path) -> std::io::Result<FreeBsdTraits> {
    let bytes = std::fs::read(path)?;
    let pvh = std::fs::File::open(path)
        .ok()
        .and_then(|file| has_pvh_note(&file).ok())
        .unwrap_or(false);
    let mut traits = FreeBsdTraits {
        pvh,
        ..FreeBsdTraits::default()
    };
    let Ok(elf) = object::File::parse(bytes.as_slice()) else {
        return Ok(traits);
    };
    let mut p9fs = [false; 2];
    for symbol in elf.symbols() {
        traits.symbols = true;
        let Ok(name) = symbol.name() else { continue };
        match name {
            VIRTIO_MMIO_CMDLINE => traits.virtio_mmio_cmdline = true,
            MPTABLE => traits.mptable = true,
            VTNET => traits.vtnet = true,
            _ => {
                if let Some(i) = P9FS.iter().position(|p| *p == name) {
                    p9fs[i] = true;
                }
            }
        }
    }
    traits.p9fs = p9fs.iter().all(|&found| found);
    Ok(traits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_symbols_has_no_traits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kernel");
        std::fs::write(
            &path,
            crate::image::fake_freebsd_kernel(crate::image::FreeBsdMark::OsAbi),
        )
        .unwrap();
        let traits = freebsd_traits(&path).unwrap();
        assert!(traits.pvh);
        assert!(!traits.symbols);
        assert!(!traits.boots_without_acpi());
        assert!(!traits.p9fs);
        assert!(!traits.vtnet);
    }

    #[test]
    fn a_missing_file_is_an_error() {
        assert!(freebsd_traits(Path::new("/nonexistent/kernel")).is_err());
    }
}
