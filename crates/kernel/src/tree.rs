//! Linux build trees: a kernel just built with `make`, booted with its modules and config
//! straight from the tree.

use crate::error::KernelError;
use crate::image::identify;
use crate::{Kernel, Origin};
use std::path::{Path, PathBuf};

/// Where `make` leaves the bootable image, relative to the tree (or its `O=` directory).
pub(crate) const BZIMAGE: &str = "arch/x86/boot/bzImage";
const RELEASE_FILE: &str = "include/config/kernel.release";

/// Whether `dir` is a tree with a built kernel.
pub(crate) fn is_build_tree(dir: &Path) -> bool {
    dir.join(BZIMAGE).is_file()
}

/// Whether `dir` holds kernel sources that have not been built, for a helpful error.
pub(crate) fn is_unbuilt_source(dir: &Path) -> bool {
    dir.join("Kconfig").is_file() && dir.join("arch/x86").is_dir()
}

/// The kernel of a built tree: its bzImage, with the tree as its modules directory.
pub(crate) fn kernel(tree: &Path, origin: Origin) -> Result<Kernel, KernelError> {
    let image = tree.join(BZIMAGE);
    let (format, header_release) = identify(&image)?;
    Ok(Kernel {
        release: release(tree).or(header_release),
        config: config(tree),
        modules: Some(tree.to_path_buf()),
        image,
        format,
        origin,
    })
}

/// The tree an image file was built in, when it is a tree's `vmlinux` or its
/// `arch/x86/boot/bzImage`, so `-k tree/vmlinux` still gets the tree's modules and config.
pub(crate) fn containing(image: &Path) -> Option<PathBuf> {
    let tree = if image.file_name()? == "vmlinux" {
        image.parent()?
    } else if image.ends_with(BZIMAGE) {
        image.ancestors().nth(4)?
    } else {
        return None;
    };
    tree.join(RELEASE_FILE)
        .is_file()
        .then(|| tree.to_path_buf())
}

/// The tree's release as kbuild wrote it.
pub(crate) fn release(tree: &Path) -> Option<String> {
    let text = std::fs::read_to_string(tree.join(RELEASE_FILE)).ok()?;
    let release = text.trim();
    (!release.is_empty()).then(|| release.to_string())
}

/// The tree's `.config`, if it has one.
pub(crate) fn config(tree: &Path) -> Option<PathBuf> {
    Some(tree.join(".config")).filter(|c| c.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::Host;
    use crate::ImageFormat;

    #[test]
    fn a_built_tree_boots_its_bzimage_with_its_modules_and_config() {
        let host = Host::new();
        let tree = host.build_tree("linux");
        let kernel = kernel(&tree, Origin::BuildTree).unwrap();
        assert_eq!(kernel.image, tree.join(BZIMAGE));
        assert_eq!(kernel.format, ImageFormat::BzImage);
        assert_eq!(kernel.release.as_deref(), Some("6.12.0-rc1-dirty"));
        assert_eq!(kernel.modules, Some(tree.clone()));
        assert_eq!(kernel.config, Some(tree.join(".config")));
    }

    #[test]
    fn images_inside_a_tree_know_their_tree() {
        let host = Host::new();
        let tree = host.build_tree("linux");
        assert_eq!(containing(&tree.join("vmlinux")), Some(tree.clone()));
        assert_eq!(containing(&tree.join(BZIMAGE)), Some(tree.clone()));
        assert_eq!(containing(&host.path("boot/vmlinuz-6.1")), None);
        assert_eq!(containing(&host.path("vmlinux")), None);
    }
}
