//! The vmlinux a debugger reads a kernel's symbols from.

use crate::image::{has_symbol_table, ImageFormat};
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

fn candidates(kernel: &Kernel, root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if matches!(kernel.format, ImageFormat::Elf { .. }) {
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
    use crate::fixtures::{fake_vmlinux, Host, Note};
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

    #[test]
    fn a_stripped_vmlinux_beside_the_image_does_not_count() {
        let host = Host::new();
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
        let beside = boot.join("vmlinux-6.1.0");
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
}
