//! A kernel given as an image file (with -k, `$VMLANE_KERNEL` or from `/boot`): its modules and
//! config are looked for beside it, in its build tree, or on the host.

use crate::error::KernelError;
use crate::image::{identify, ImageFormat};
use crate::{tree, Kernel, Origin};
use std::path::{Path, PathBuf};

/// The kernel in `image`; `system_modules` is usually `/lib/modules`.
pub(crate) fn kernel(
    image: &Path,
    system_modules: &Path,
    origin: Origin,
) -> Result<Kernel, KernelError> {
    let (format, release) = identify(image)?;
    if format == (ImageFormat::Elf { pvh: false }) {
        return Err(KernelError::not_a_kernel(
            image,
            "an ELF vmlinux without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY), which QEMU cannot boot; pass its bzImage instead, or build it with CONFIG_PVH=y",
        ));
    }
    if let Some(tree) = tree::containing(image) {
        return Ok(Kernel {
            image: image.to_path_buf(),
            format,
            release: release.or_else(|| tree::release(&tree)),
            config: tree::config(&tree),
            modules: Some(tree),
            origin,
        });
    }
    let modules = release
        .as_ref()
        .map(|r| system_modules.join(r))
        .filter(|dir| dir.is_dir());
    let config = release
        .as_ref()
        .and_then(|r| Some(image.parent()?.join(format!("config-{r}"))))
        .filter(|c| c.is_file())
        .or_else(|| modules.as_deref().and_then(modules_config));
    Ok(Kernel {
        image: image.to_path_buf(),
        format,
        release,
        modules,
        config,
        origin,
    })
}

/// `<modules>/build/.config`: a modules directory's link back to the tree it was built in.
pub(crate) fn modules_config(modules: &Path) -> Option<PathBuf> {
    Some(modules.join("build/.config")).filter(|c| c.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_bzimage, fake_vmlinux, Host, Note};
    use std::fs;

    #[test]
    fn a_bare_image_gets_the_hosts_modules_and_the_config_beside_it() {
        let host = Host::new();
        let image = host.path("boot/vmlinuz-6.1.0-9-amd64");
        fs::write(&image, fake_bzimage("6.1.0-9-amd64")).unwrap();
        let kernel = kernel(&image, &host.path("lib/modules"), Origin::Explicit).unwrap();
        assert_eq!(kernel.modules, None);
        assert_eq!(kernel.config, None);

        fs::create_dir_all(host.path("lib/modules/6.1.0-9-amd64/build")).unwrap();
        fs::write(host.path("lib/modules/6.1.0-9-amd64/build/.config"), "").unwrap();
        let found = super::kernel(&image, &host.path("lib/modules"), Origin::Explicit).unwrap();
        assert_eq!(found.modules, Some(host.path("lib/modules/6.1.0-9-amd64")));
        assert_eq!(
            found.config,
            Some(host.path("lib/modules/6.1.0-9-amd64/build/.config"))
        );

        fs::write(host.path("boot/config-6.1.0-9-amd64"), "").unwrap();
        let found = super::kernel(&image, &host.path("lib/modules"), Origin::Explicit).unwrap();
        assert_eq!(found.config, Some(host.path("boot/config-6.1.0-9-amd64")));
    }

    #[test]
    fn a_vmlinux_without_pvh_is_refused_with_the_way_out() {
        let host = Host::new();
        let image = host.path("vmlinux");
        fs::write(&image, fake_vmlinux("6.9.0", Note::Other)).unwrap();
        let error = kernel(&image, &host.path("lib/modules"), Origin::Explicit).unwrap_err();
        assert!(error.to_string().contains("PVH"), "{error}");
    }

    #[test]
    fn a_trees_vmlinux_gets_the_trees_modules_and_config() {
        let host = Host::new();
        let tree = host.build_tree("linux");
        fs::write(
            tree.join("vmlinux"),
            fake_vmlinux("6.12.0-rc1-dirty", Note::Segment),
        )
        .unwrap();
        let found = kernel(
            &tree.join("vmlinux"),
            &host.path("lib/modules"),
            Origin::Explicit,
        )
        .unwrap();
        assert_eq!(found.format, ImageFormat::Elf { pvh: true });
        assert_eq!(found.modules, Some(tree.clone()));
        assert_eq!(found.config, Some(tree.join(".config")));
    }
}
