//! Where kernels are looked for, in order: `-k`, `$VMLANE_KERNEL`, a build tree in the current
//! directory, vmlane's kernel cache, the host's `/boot`.

use crate::error::KernelError;
use crate::image::{identify, ImageFormat};
use crate::version;
use crate::{Kernel, Origin};
use std::path::{Path, PathBuf};

/// The places to look, with the host's defaults filled in by [`Search::new`].
#[derive(Debug, Clone)]
pub struct Search {
    /// `-k`.
    pub explicit: Option<PathBuf>,
    /// `--modules`.
    pub modules: Option<PathBuf>,
    /// `$VMLANE_KERNEL`.
    pub env_kernel: Option<PathBuf>,
    /// The current directory, checked for a build tree.
    pub cwd: PathBuf,
    /// vmlane's cache root; kernels live in its `kernels/`.
    pub cache_dir: PathBuf,
    /// Usually `/boot`.
    pub boot_dir: PathBuf,
    /// Usually `/lib/modules`.
    pub system_modules: PathBuf,
}

impl Search {
    /// A search with this host's defaults.
    pub fn new(explicit: Option<PathBuf>, modules: Option<PathBuf>, cwd: PathBuf) -> Search {
        Search {
            explicit,
            modules,
            env_kernel: std::env::var_os("VMLANE_KERNEL")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            cwd,
            cache_dir: cache_dir(),
            boot_dir: PathBuf::from("/boot"),
            system_modules: PathBuf::from("/lib/modules"),
        }
    }
}

/// vmlane's cache: `$VMLANE_CACHE_DIR`, else `$XDG_CACHE_HOME/vmlane`, else `~/.cache/vmlane`.
pub fn cache_dir() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("VMLANE_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("vmlane")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/vmlane")))
        .unwrap_or_else(|| PathBuf::from("/tmp/vmlane-cache"))
}

/// Where cached kernels live under a cache root.
pub fn kernels_dir(cache: &Path) -> PathBuf {
    cache.join("kernels")
}

/// Finds the kernel to boot.
pub fn find_kernel(search: &Search) -> Result<Kernel, KernelError> {
    let mut kernel = locate(search)?;
    if let Some(modules) = &search.modules {
        kernel.modules = Some(modules.clone());
    }
    Ok(kernel)
}

fn locate(search: &Search) -> Result<Kernel, KernelError> {
    if let Some(path) = &search.explicit {
        return named(path, search, Origin::Explicit);
    }
    let mut looked = Vec::new();
    match &search.env_kernel {
        Some(path) => return named(path, search, Origin::Environment),
        None => looked.push("$VMLANE_KERNEL: not set".to_string()),
    }
    if is_build_tree(&search.cwd) {
        return from_build_tree(&search.cwd, Origin::BuildTree);
    }
    looked.push(format!(
        "{}: not a kernel build tree (no arch/x86/boot/bzImage)",
        search.cwd.display()
    ));
    let cached = cached_kernels(&search.cache_dir);
    if let Some(newest) = cached.iter().max_by_key(|k| k.modified) {
        return from_cache_entry(newest);
    }
    looked.push(format!(
        "{}: no cached kernels",
        kernels_dir(&search.cache_dir).display()
    ));
    match newest_boot_image(&search.boot_dir) {
        Some(image) => return from_image(&image, search, Origin::Boot),
        None => looked.push(format!("{}: no vmlinuz-*", search.boot_dir.display())),
    }
    Err(KernelError::NotFound { looked })
}

/// `-k` or `$VMLANE_KERNEL`: a path to an image or build tree, or a cached kernel's name.
fn named(path: &Path, search: &Search, origin: Origin) -> Result<Kernel, KernelError> {
    if path.is_dir() {
        if is_build_tree(path) {
            return from_build_tree(path, origin);
        }
        if let Some(entry) = CacheEntry::read(path) {
            return from_cache_entry(&entry).map(|k| Kernel { origin, ..k });
        }
        return Err(KernelError::NotAKernel {
            path: path.to_path_buf(),
            reason: "a directory that is neither a kernel build tree (arch/x86/boot/bzImage) nor a cached kernel (boot/vmlinuz-*)".into(),
        });
    }
    if path.exists() {
        return from_image(path, search, origin);
    }
    let cached = cached_kernels(&search.cache_dir);
    let wanted = path.to_string_lossy();
    let exact = cached
        .iter()
        .find(|k| k.name == wanted || k.release == wanted);
    let by_prefix = || {
        cached
            .iter()
            .filter(|k| version::matches_prefix(&k.release, &wanted))
            .max_by(|a, b| version::compare(&a.release, &b.release))
    };
    match exact.or_else(by_prefix) {
        Some(entry) => from_cache_entry(entry).map(|k| Kernel { origin, ..k }),
        None => Err(KernelError::NoSuchKernel {
            path: path.to_path_buf(),
            cached: cached.iter().map(|k| k.name.clone()).collect(),
        }),
    }
}

fn is_build_tree(dir: &Path) -> bool {
    dir.join("arch/x86/boot/bzImage").is_file()
}

fn from_build_tree(tree: &Path, origin: Origin) -> Result<Kernel, KernelError> {
    let image = tree.join("arch/x86/boot/bzImage");
    let (format, header_release) = identify(&image)?;
    let release = std::fs::read_to_string(tree.join("include/config/kernel.release"))
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .or(header_release);
    let config = Some(tree.join(".config")).filter(|c| c.is_file());
    Ok(Kernel {
        image,
        format,
        release,
        modules: Some(tree.to_path_buf()),
        config,
        origin,
    })
}

fn from_image(image: &Path, search: &Search, origin: Origin) -> Result<Kernel, KernelError> {
    let (format, release) = identify(image)?;
    if format == (ImageFormat::Elf { pvh: false }) {
        return Err(KernelError::NotAKernel {
            path: image.to_path_buf(),
            reason:
                "an ELF vmlinux without a PVH entry note, which QEMU cannot boot; use the bzImage"
                    .into(),
        });
    }
    let beside = |prefix: &str| {
        let release = release.as_ref()?;
        Some(image.parent()?.join(format!("{prefix}{release}"))).filter(|p| p.exists())
    };
    let modules = release
        .as_ref()
        .map(|r| search.system_modules.join(r))
        .filter(|dir| dir.is_dir());
    Ok(Kernel {
        image: image.to_path_buf(),
        format,
        config: beside("config-"),
        release,
        modules,
        origin,
    })
}

/// One kernel in the cache: `<name>/boot/vmlinuz-<release>`, maybe `vmlinux-<release>` and
/// `config-<release>`, and `<name>/lib/modules/<release>/`.
#[derive(Debug, Clone)]
struct CacheEntry {
    name: String,
    dir: PathBuf,
    release: String,
    modified: std::time::SystemTime,
}

impl CacheEntry {
    fn read(dir: &Path) -> Option<CacheEntry> {
        let boot = std::fs::read_dir(dir.join("boot")).ok()?;
        let release = boot
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("vmlinuz-")
                    .map(str::to_string)
            })
            .max_by(|a, b| version::compare(a, b))?;
        Some(CacheEntry {
            name: dir.file_name()?.to_string_lossy().into_owned(),
            dir: dir.to_path_buf(),
            release,
            modified: dir.metadata().and_then(|m| m.modified()).ok()?,
        })
    }
}

fn cached_kernels(cache: &Path) -> Vec<CacheEntry> {
    let Ok(entries) = std::fs::read_dir(kernels_dir(cache)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| CacheEntry::read(&e.path()))
        .collect()
}

/// Prefers the extracted vmlinux: it boots at its PVH entry without decompressing.
fn from_cache_entry(entry: &CacheEntry) -> Result<Kernel, KernelError> {
    let boot = entry.dir.join("boot");
    let vmlinux = boot.join(format!("vmlinux-{}", entry.release));
    let vmlinuz = boot.join(format!("vmlinuz-{}", entry.release));
    let image = if vmlinux.is_file() { vmlinux } else { vmlinuz };
    let (format, _) = identify(&image)?;
    let modules = Some(entry.dir.join("lib/modules").join(&entry.release)).filter(|d| d.is_dir());
    let config = Some(boot.join(format!("config-{}", entry.release))).filter(|c| c.is_file());
    Ok(Kernel {
        image,
        format,
        release: Some(entry.release.clone()),
        modules,
        config,
        origin: Origin::Cache,
    })
}

fn newest_boot_image(boot: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(boot).ok()?;
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            name.strip_prefix("vmlinuz-")
                .map(|r| (r.to_string(), e.path()))
        })
        .max_by(|a, b| version::compare(&a.0, &b.0))
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::{fake_bzimage, fake_vmlinux};
    use std::fs;

    struct Host {
        root: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Host {
            let host = Host {
                root: tempfile::tempdir().unwrap(),
            };
            for dir in ["cwd", "cache", "boot", "lib/modules"] {
                fs::create_dir_all(host.path(dir)).unwrap();
            }
            host
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.root.path().join(rel)
        }

        fn search(&self) -> Search {
            Search {
                explicit: None,
                modules: None,
                env_kernel: None,
                cwd: self.path("cwd"),
                cache_dir: self.path("cache"),
                boot_dir: self.path("boot"),
                system_modules: self.path("lib/modules"),
            }
        }

        fn cache_kernel(&self, name: &str, release: &str, with_vmlinux: bool) {
            let dir = self.path(&format!("cache/kernels/{name}"));
            fs::create_dir_all(dir.join("boot")).unwrap();
            fs::create_dir_all(dir.join("lib/modules").join(release)).unwrap();
            fs::write(
                dir.join(format!("boot/vmlinuz-{release}")),
                fake_bzimage(release),
            )
            .unwrap();
            fs::write(
                dir.join(format!("boot/config-{release}")),
                "CONFIG_9P_FS=m\n",
            )
            .unwrap();
            if with_vmlinux {
                fs::write(
                    dir.join(format!("boot/vmlinux-{release}")),
                    fake_vmlinux(release, true),
                )
                .unwrap();
            }
        }

        fn build_tree(&self, dir: &str) {
            let tree = self.path(dir);
            fs::create_dir_all(tree.join("arch/x86/boot")).unwrap();
            fs::create_dir_all(tree.join("include/config")).unwrap();
            fs::write(
                tree.join("arch/x86/boot/bzImage"),
                fake_bzimage("6.12.0-rc1"),
            )
            .unwrap();
            fs::write(
                tree.join("include/config/kernel.release"),
                "6.12.0-rc1-dirty\n",
            )
            .unwrap();
        }
    }

    #[test]
    fn nothing_found_lists_every_place_and_how_to_get_a_kernel() {
        let host = Host::new();
        let error = find_kernel(&host.search()).unwrap_err().to_string();
        for expected in [
            "$VMLANE_KERNEL: not set",
            "no arch/x86/boot/bzImage",
            "no cached kernels",
            "no vmlinuz-*",
            "scripts/setup",
            "-k PATH",
        ] {
            assert!(
                error.contains(expected),
                "missing {expected:?} in:\n{error}"
            );
        }
    }

    #[test]
    fn search_order_is_env_then_build_tree_then_cache_then_boot() {
        let host = Host::new();
        fs::write(
            host.path("boot/vmlinuz-5.10.0-1-amd64"),
            fake_bzimage("5.10.0-1-amd64"),
        )
        .unwrap();
        fs::create_dir_all(host.path("lib/modules/5.10.0-1-amd64")).unwrap();
        let found = find_kernel(&host.search()).unwrap();
        assert_eq!(found.origin, Origin::Boot);
        assert_eq!(found.modules, Some(host.path("lib/modules/5.10.0-1-amd64")));

        host.cache_kernel("6.1.0-56-amd64", "6.1.0-56-amd64", false);
        assert_eq!(find_kernel(&host.search()).unwrap().origin, Origin::Cache);

        host.build_tree("cwd");
        let found = find_kernel(&host.search()).unwrap();
        assert_eq!(found.origin, Origin::BuildTree);
        assert_eq!(found.release.as_deref(), Some("6.12.0-rc1-dirty"));
        assert_eq!(found.modules, Some(host.path("cwd")));

        let mut search = host.search();
        search.env_kernel = Some(host.path("boot/vmlinuz-5.10.0-1-amd64"));
        assert_eq!(find_kernel(&search).unwrap().origin, Origin::Environment);
    }

    #[test]
    fn cached_kernel_prefers_its_vmlinux_and_knows_its_modules_and_config() {
        let host = Host::new();
        host.cache_kernel("6.1.0-56-cloud-amd64", "6.1.0-56-cloud-amd64", true);
        let found = find_kernel(&host.search()).unwrap();
        assert_eq!(found.format, ImageFormat::Elf { pvh: true });
        assert!(found.image.ends_with("boot/vmlinux-6.1.0-56-cloud-amd64"));
        assert!(found
            .modules
            .as_ref()
            .unwrap()
            .ends_with("lib/modules/6.1.0-56-cloud-amd64"));
        assert_eq!(found.config_option("9P_FS"), Some(crate::Tristate::Module));
    }

    #[test]
    fn explicit_name_or_release_prefix_picks_a_cached_kernel() {
        let host = Host::new();
        host.cache_kernel("a", "6.1.9", false);
        host.cache_kernel("b", "6.1.10", false);
        host.cache_kernel("c", "6.10.1", false);
        let mut search = host.search();
        search.explicit = Some("6.1".into());
        assert_eq!(
            find_kernel(&search).unwrap().release.as_deref(),
            Some("6.1.10")
        );
        search.explicit = Some("a".into());
        assert_eq!(
            find_kernel(&search).unwrap().release.as_deref(),
            Some("6.1.9")
        );
        search.explicit = Some(host.path("cache/kernels/c"));
        assert_eq!(
            find_kernel(&search).unwrap().release.as_deref(),
            Some("6.10.1")
        );
    }

    #[test]
    fn explicit_missing_path_names_it_and_the_cached_kernels() {
        let host = Host::new();
        host.cache_kernel("6.1.0-56-amd64", "6.1.0-56-amd64", false);
        let mut search = host.search();
        search.explicit = Some("/nonexistent/bzImage".into());
        let error = find_kernel(&search).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/bzImage"), "{error}");
        assert!(error.contains("6.1.0-56-amd64"), "{error}");
    }

    #[test]
    fn explicit_modules_dir_wins() {
        let host = Host::new();
        host.cache_kernel("k", "6.1.1", false);
        let mut search = host.search();
        search.modules = Some(host.path("mods"));
        assert_eq!(
            find_kernel(&search).unwrap().modules,
            Some(host.path("mods"))
        );
    }
}
