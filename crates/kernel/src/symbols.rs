//! The vmlinux a debugger reads a kernel's symbols from, and the file with its DWARF that
//! backtraces are given source lines from.

use crate::image::{has_debug_info, has_symbol_table, ImageFormat};
use crate::{tree, Kernel};
use std::path::{Path, PathBuf};

/// The file with `kernel`'s symbols: the image itself when it is an ELF vmlinux, its build
/// tree's `vmlinux`, the `vmlinux-<release>` beside it (vmlane's cache), or a distribution's
/// debug vmlinux (Debian's `linux-image-<release>-dbg`). Only a file with a symbol table
/// counts: the vmlinux unpacked from a Debian package is stripped.
pub fn symbols_file(kernel: &Kernel) -> Option<PathBuf> {
    candidates(kernel, Path::new("/"))
        .into_iter()
        .find(|path| has_symbol_table(path))
}

/// The file with `kernel`'s symbols and DWARF debug info, for source lines in backtraces.
/// Linux: the places [`symbols_file`] looks (a build tree's `vmlinux` has DWARF when it was
/// built with CONFIG_DEBUG_INFO). FreeBSD: the image itself, or the `kernel.full` or
/// `kernel.debug` beside it, or its file under `/usr/lib/debug`. Only headers are read.
pub fn debug_info_file(kernel: &Kernel) -> Option<PathBuf> {
    let found = match kernel.format {
        ImageFormat::FreeBsd => freebsd_candidates(kernel, Path::new("/")),
        ImageFormat::BzImage
        | ImageFormat::Elf { .. }
        | ImageFormat::PowerElf { .. }
        | ImageFormat::Arm64Image
        | ImageFormat::RiscvImage
        | ImageFormat::S390Image => candidates(kernel, Path::new("/")),
    };
    found
        .into_iter()
        .find(|path| has_symbol_table(path) && has_debug_info(path))
}

fn freebsd_candidates(kernel: &Kernel, root: &Path) -> Vec<PathBuf> {
    let image = &kernel.image;
    let mut found = vec![image.clone()];
    if let Some(name) = image.file_name() {
        for suffix in [".full", ".debug"] {
            let mut beside = name.to_os_string();
            beside.push(suffix);
            found.push(image.with_file_name(beside));
        }
    }
    if let Some(dir) = image.parent() {
        found.push(dir.join("kernel.full"));
        found.push(dir.join("kernel.debug"));
    }
    if let Ok(absolute) = std::path::absolute(image) {
        let mut debug = root.join("usr/lib/debug").into_os_string();
        debug.push(absolute.as_os_str());
        debug.push(".debug");
        found.push(debug.into());
    }
    let mut seen = Vec::new();
    found.retain(|path| {
        let new = !seen.contains(path);
        seen.push(path.clone());
        new
    });
    found
}

fn candidates(kernel: &Kernel, root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if matches!(
        kernel.format,
        ImageFormat::Elf { .. } | ImageFormat::PowerElf { .. }
    ) {
        found.push(kernel.image.clone());
    }
    if let Some(tree) = tree::containing(&kernel.image) {
        found.push(tree.join("vmlinux"));
    }
    if let Some(release) = &kernel.release {
        if let Some(dir) = kernel.image.parent() {
            found.push(dir.join(format!("vmlinux-{release}")));
        }
        for debug in [
            format!("usr/lib/debug/boot/vmlinux-{release}"),
            format!("usr/lib/debug/lib/modules/{release}/vmlinux"),
            format!("lib/modules/{release}/build/vmlinux"),
        ] {
            found.push(root.join(debug));
        }
    }
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{elf_with_sections, fake_vmlinux, Host, Note};
    use crate::Origin;

    /// A fake vmlinux whose first section is a symbol table, or none.
    fn vmlinux(symbols: bool) -> Vec<u8> {
        let mut elf = fake_vmlinux("6.1.0", Note::Segment);
        if symbols {
            let shoff = u64::from_le_bytes(elf[40..48].try_into().unwrap()) as usize;
            let sh_type = shoff + 64 + 4;
            elf[sh_type..sh_type + 4].copy_from_slice(&2u32.to_le_bytes()); // SHT_SYMTAB
        }
        elf
    }

    /// A cached kernel and where its vmlinux would be.
    fn cached_kernel(host: &Host) -> (Kernel, std::path::PathBuf) {
        host.cache_kernel("k", "6.1.0", false);
        let boot = host.path("cache/kernels/k/boot");
        let kernel = Kernel {
            image: boot.join("vmlinuz-6.1.0"),
            format: ImageFormat::BzImage,
            release: Some("6.1.0".into()),
            modules: None,
            config: None,
            origin: Origin::Cache,
        };
        (kernel, boot.join("vmlinux-6.1.0"))
    }

    #[test]
    fn a_stripped_vmlinux_beside_the_image_does_not_count() {
        let host = Host::new();
        let (kernel, beside) = cached_kernel(&host);
        assert!(candidates(&kernel, &host.path("")).contains(&beside));
        std::fs::write(&beside, vmlinux(false)).unwrap();
        assert_eq!(symbols_file(&kernel), None);
        std::fs::write(&beside, vmlinux(true)).unwrap();
        assert_eq!(symbols_file(&kernel), Some(beside));
    }

    #[test]
    fn a_build_tree_offers_its_vmlinux_and_distributions_their_debug_file() {
        let host = Host::new();
        let tree = host.build_tree("linux");
        let kernel = crate::tree::kernel(&tree, Origin::BuildTree).unwrap();
        let root = host.path("");
        let found = candidates(&kernel, &root);
        assert_eq!(found[0], tree.join("vmlinux"));
        assert!(found.contains(&root.join("usr/lib/debug/boot/vmlinux-6.12.0-rc1-dirty")));
        std::fs::write(tree.join("vmlinux"), vmlinux(true)).unwrap();
        assert_eq!(symbols_file(&kernel), Some(tree.join("vmlinux")));
    }

    const SHT_PROGBITS: u32 = 1;
    const SHT_SYMTAB: u32 = 2;
    const SHT_NOBITS: u32 = 8;

    #[test]
    fn debug_info_needs_dwarf_and_a_symbol_table() {
        let host = Host::new();
        let tree = host.build_tree("linux");
        let kernel = crate::tree::kernel(&tree, Origin::BuildTree).unwrap();
        let vmlinux = tree.join("vmlinux");
        std::fs::write(&vmlinux, elf_with_sections(&[(".symtab", SHT_SYMTAB)])).unwrap();
        assert_eq!(symbols_file(&kernel), Some(vmlinux.clone()));
        assert_eq!(debug_info_file(&kernel), None, "no CONFIG_DEBUG_INFO");
        let with_dwarf = [(".symtab", SHT_SYMTAB), (".debug_info", SHT_PROGBITS)];
        std::fs::write(&vmlinux, elf_with_sections(&with_dwarf)).unwrap();
        assert_eq!(debug_info_file(&kernel), Some(vmlinux.clone()));
        let compressed = [(".symtab", SHT_SYMTAB), (".zdebug_info", SHT_PROGBITS)];
        std::fs::write(&vmlinux, elf_with_sections(&compressed)).unwrap();
        assert_eq!(debug_info_file(&kernel), Some(vmlinux.clone()));
        std::fs::write(
            &vmlinux,
            elf_with_sections(&[(".debug_info", SHT_PROGBITS)]),
        )
        .unwrap();
        assert_eq!(debug_info_file(&kernel), None, "stripped of its symbols");
    }

    #[test]
    fn a_cached_kernel_has_debug_info_in_the_vmlinux_beside_it() {
        let host = Host::new();
        let (kernel, beside) = cached_kernel(&host);
        let with_dwarf = [(".symtab", SHT_SYMTAB), (".debug_info", SHT_PROGBITS)];
        std::fs::write(&beside, elf_with_sections(&with_dwarf)).unwrap();
        assert_eq!(debug_info_file(&kernel), Some(beside));
    }

    #[test]
    fn a_freebsd_kernel_has_its_debug_info_in_kernel_full_or_kernel_debug() {
        let host = Host::new();
        let dir = host.path("obj/GENERIC");
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("kernel");
        let kernel = Kernel {
            image: image.clone(),
            format: ImageFormat::FreeBsd,
            release: None,
            modules: None,
            config: None,
            origin: Origin::Explicit,
        };
        let root = host.path("");
        let found = freebsd_candidates(&kernel, &root);
        assert_eq!(
            found[..3],
            [
                image.clone(),
                dir.join("kernel.full"),
                dir.join("kernel.debug")
            ]
        );
        let mut under_debug = root.join("usr/lib/debug").into_os_string();
        under_debug.push(image.as_os_str());
        under_debug.push(".debug");
        assert_eq!(found.last(), Some(&PathBuf::from(under_debug)));

        // The booted image is stripped; kernel.debug keeps DWARF and symbols, with its
        // code sections left empty (objcopy --only-keep-debug).
        std::fs::write(&image, elf_with_sections(&[(".text", SHT_PROGBITS)])).unwrap();
        assert_eq!(debug_info_file(&kernel), None);
        let debug = [
            (".text", SHT_NOBITS),
            (".symtab", SHT_SYMTAB),
            (".debug_info", SHT_PROGBITS),
        ];
        std::fs::write(dir.join("kernel.debug"), elf_with_sections(&debug)).unwrap();
        assert_eq!(debug_info_file(&kernel), Some(dir.join("kernel.debug")));
        std::fs::write(dir.join("kernel.full"), elf_with_sections(&debug)).unwrap();
        assert_eq!(debug_info_file(&kernel), Some(dir.join("kernel.full")));
        let nobits = [(".symtab", SHT_SYMTAB), (".debug_info", SHT_NOBITS)];
        std::fs::write(dir.join("kernel.full"), elf_with_sections(&nobits)).unwrap();
        assert_eq!(debug_info_file(&kernel), Some(dir.join("kernel.debug")));
    }
}
