//! Where kernels are looked for, in order: `-k`, `$VMLANE_KERNEL`, a build tree in the current
//! directory, vmlane's kernel cache, the host's `/boot`.

use crate::cache::{self, kernels_dir};
use crate::error::KernelError;
use crate::{bare, boot, tree, Kernel, Origin};
use std::io;
use std::path::{Path, PathBuf};
use vmlane_spec::Arch;

/// The places to look, with the host's defaults filled in by [`Search::new`]; tests and callers
/// may point any of them elsewhere.
#[derive(Debug, Clone)]
pub struct Search {
    /// `-k`: an image, a build tree, or a cached kernel's name, release or release prefix.
    pub explicit: Option<PathBuf>,
    /// `--modules`: overrides the modules directory found with the kernel.
    pub modules: Option<PathBuf>,
    /// `$VMLANE_KERNEL`, taking the same forms as `-k`.
    pub env_kernel: Option<PathBuf>,
    /// The current directory: checked for a build tree, and what relative paths are taken from.
    pub cwd: PathBuf,
    /// vmlane's cache root; kernels live in its `kernels/`.
    pub cache_dir: PathBuf,
    /// Usually `/boot`.
    pub boot_dir: PathBuf,
    /// Usually `/lib/modules`.
    pub system_modules: PathBuf,
    /// The guest's architecture: the cache's newest kernel of it is the default, and `/boot`
    /// only when it is the host's.
    pub arch: Arch,
}

impl Search {
    /// A search with this host's defaults: `$VMLANE_KERNEL`, [`cache_dir`](crate::cache_dir),
    /// `/boot` and `/lib/modules`.
    pub fn new(explicit: Option<PathBuf>, modules: Option<PathBuf>, cwd: PathBuf) -> Search {
        Search {
            explicit,
            modules,
            env_kernel: std::env::var_os("VMLANE_KERNEL")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            cwd,
            cache_dir: cache::cache_dir(),
            boot_dir: PathBuf::from("/boot"),
            system_modules: PathBuf::from("/lib/modules"),
            arch: Arch::host(),
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        self.cwd.join(path)
    }
}

/// Finds the kernel to boot, or says everywhere it looked.
pub fn find_kernel(search: &Search) -> Result<Kernel, KernelError> {
    let mut kernel = locate(search)?;
    if let Some(modules) = &search.modules {
        let modules = search.resolve(modules);
        if kernel.config.is_none() {
            kernel.config = bare::modules_config(&modules);
        }
        kernel.modules = Some(modules);
    }
    Ok(kernel)
}

fn locate(search: &Search) -> Result<Kernel, KernelError> {
    if let Some(wanted) = &search.explicit {
        return named(wanted, search, Origin::Explicit);
    }
    let mut looked = Vec::new();
    match &search.env_kernel {
        Some(wanted) => return named(wanted, search, Origin::Environment),
        None => looked.push("$VMLANE_KERNEL: not set".to_string()),
    }

    if tree::is_build_tree(&search.cwd) {
        return tree::kernel(&search.cwd, Origin::BuildTree);
    }
    looked.push(format!("{}: no {}", search.cwd.display(), tree::BZIMAGE));

    let kernels = kernels_dir(&search.cache_dir);
    match cache::entries(&search.cache_dir) {
        Ok(entries) => match cache::newest(&entries, search.arch) {
            Some(entry) => return entry.kernel(Origin::Cache),
            None if search.arch != Arch::host() => looked.push(format!(
                "{}: no {} kernel (scripts/setup --arch {} fetches Debian's)",
                kernels.display(),
                search.arch,
                search.arch
            )),
            None => looked.push(format!("{}: empty or missing", kernels.display())),
        },
        Err(e) => looked.push(format!("{}: cannot read it ({e})", kernels.display())),
    }

    if search.arch != Arch::host() {
        return Err(KernelError::NotFound { looked });
    }
    match boot::newest_image(&search.boot_dir) {
        Ok(Some(image)) => return bare::kernel(&image, &search.system_modules, Origin::Boot),
        Ok(None) => looked.push(format!("{}: no vmlinuz-*", search.boot_dir.display())),
        Err(e) => looked.push(format!(
            "{}: cannot read it ({e})",
            search.boot_dir.display()
        )),
    }
    Err(KernelError::NotFound { looked })
}

/// `-k` or `$VMLANE_KERNEL`: a path to an image or a build tree (relative to the search's
/// current directory), or else the name, release or release prefix of a cached kernel.
fn named(wanted: &Path, search: &Search, origin: Origin) -> Result<Kernel, KernelError> {
    let path = search.resolve(wanted);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => directory(&path, origin),
        Ok(_) => bare::kernel(&path, &search.system_modules, origin),
        Err(e) if e.kind() == io::ErrorKind::NotFound => cached(wanted, search, origin),
        Err(e) => Err(KernelError::unreadable(&path, e)),
    }
}

fn directory(dir: &Path, origin: Origin) -> Result<Kernel, KernelError> {
    if tree::is_build_tree(dir) {
        return tree::kernel(dir, origin);
    }
    if let Some(entry) = cache::CacheEntry::read(dir) {
        return entry.kernel(origin);
    }
    let reason = if tree::is_unbuilt_source(dir) {
        "a kernel source tree with no arch/x86/boot/bzImage; build it first (make, or vmlane kernel build)"
    } else {
        "a directory that is neither a kernel build tree (no arch/x86/boot/bzImage) nor a cached kernel (no boot/vmlinuz-*)"
    };
    Err(KernelError::not_a_kernel(dir, reason))
}

fn cached(wanted: &Path, search: &Search, origin: Origin) -> Result<Kernel, KernelError> {
    let entries = cache::entries(&search.cache_dir).unwrap_or_default();
    let name = wanted.to_string_lossy();
    // A name never has a slash; anything with one was meant as a path.
    let found = (!name.contains('/'))
        .then(|| cache::lookup(&entries, &name, search.arch))
        .flatten();
    match found {
        Some(entry) => entry.kernel(origin),
        None => Err(KernelError::NoSuchKernel {
            path: wanted.to_path_buf(),
            origin,
            kernels_dir: kernels_dir(&search.cache_dir),
            cached: entries.iter().map(cache::CacheEntry::label).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fake_bzimage, Host};
    use crate::{ImageFormat, Tristate};
    use std::fs;

    #[test]
    fn nothing_found_lists_every_place_and_how_to_get_a_kernel() {
        let host = Host::new();
        let error = find_kernel(&host.search()).unwrap_err();
        assert!(matches!(error, KernelError::NotFound { .. }));
        let text = error.to_string();
        let expected = [
            "no kernel found; looked at:".to_string(),
            "  $VMLANE_KERNEL: not set".to_string(),
            format!("  {}: no arch/x86/boot/bzImage", host.path("cwd").display()),
            format!("  {}: empty or missing", host.path("cache/kernels").display()),
            format!("  {}: no vmlinuz-*", host.path("boot").display()),
            "run scripts/setup to fetch Debian's kernel into the cache, or pass -k PATH to a bzImage, vmlinux or kernel build tree".to_string(),
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
    }

    #[test]
    fn search_order_is_env_then_build_tree_then_cache_then_boot() {
        let host = Host::new();
        host.boot_kernel("5.10.0-1-amd64");
        let found = find_kernel(&host.search()).unwrap();
        assert_eq!(found.origin, Origin::Boot);
        assert_eq!(found.image, host.path("boot/vmlinuz-5.10.0-1-amd64"));

        host.cache_kernel("6.1.0-56-amd64", "6.1.0-56-amd64", false);
        assert_eq!(find_kernel(&host.search()).unwrap().origin, Origin::Cache);

        host.build_tree("cwd");
        let found = find_kernel(&host.search()).unwrap();
        assert_eq!(found.origin, Origin::BuildTree);
        assert_eq!(found.release.as_deref(), Some("6.12.0-rc1-dirty"));

        let mut search = host.search();
        search.env_kernel = Some(host.path("boot/vmlinuz-5.10.0-1-amd64"));
        let found = find_kernel(&search).unwrap();
        assert_eq!(found.origin, Origin::Environment);
        assert_eq!(found.release.as_deref(), Some("5.10.0-1-amd64"));

        search.explicit = Some("6.1.0-56-amd64".into());
        let found = find_kernel(&search).unwrap();
        assert_eq!(found.origin, Origin::Explicit);
        assert_eq!(found.release.as_deref(), Some("6.1.0-56-amd64"));
    }

    #[test]
    fn modules_follow_where_the_kernel_came_from() {
        let host = Host::new();
        host.boot_kernel("5.10.0-1-amd64");
        fs::create_dir_all(host.path("lib/modules/5.10.0-1-amd64")).unwrap();
        let boot = find_kernel(&host.search()).unwrap();
        assert_eq!(boot.origin, Origin::Boot);
        assert_eq!(boot.modules, Some(host.path("lib/modules/5.10.0-1-amd64")));
        assert_eq!(boot.config, Some(host.path("boot/config-5.10.0-1-amd64")));

        // An image elsewhere, named by -k or $VMLANE_KERNEL, uses the host's modules too.
        let image = host.path("elsewhere/bzImage");
        fs::create_dir_all(image.parent().unwrap()).unwrap();
        fs::write(&image, fake_bzimage("5.10.0-1-amd64")).unwrap();
        let mut search = host.search();
        search.env_kernel = Some(image.clone());
        let env = find_kernel(&search).unwrap();
        assert_eq!(env.modules, Some(host.path("lib/modules/5.10.0-1-amd64")));
        assert_eq!(env.config, None);
        fs::write(&image, fake_bzimage("6.0.0-unknown")).unwrap();
        assert_eq!(find_kernel(&search).unwrap().modules, None);

        host.cache_kernel("deb", "6.1.0-56-cloud-amd64", false);
        let cache = find_kernel(&host.search()).unwrap();
        assert_eq!(
            cache.modules,
            Some(host.path("cache/kernels/deb/lib/modules/6.1.0-56-cloud-amd64"))
        );
        assert_eq!(cache.config_option("9P_FS"), Some(Tristate::Module));

        let tree = host.build_tree("cwd");
        let built = find_kernel(&host.search()).unwrap();
        assert_eq!(built.modules, Some(tree.clone()));
        assert_eq!(built.config, Some(tree.join(".config")));
        assert_eq!(built.config_option("VIRTIO_MMIO"), Some(Tristate::Yes));

        let mut search = host.search();
        search.explicit = Some("deb".into());
        search.modules = Some("mods".into());
        let overridden = find_kernel(&search).unwrap();
        assert_eq!(overridden.modules, Some(host.path("cwd/mods")));
        assert!(overridden.config.is_some());
    }

    #[test]
    fn without_choice_the_most_recently_added_cached_kernel_wins() {
        let host = Host::new();
        host.cache_kernel("newer-release", "6.12.0", false);
        host.cache_kernel("older-release", "6.1.0", false);
        let set_age = |name: &str, seconds_ago: u64| {
            let dir = fs::File::open(host.path(&format!("cache/kernels/{name}"))).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds_ago);
            dir.set_modified(when).unwrap();
        };
        set_age("newer-release", 3600);
        set_age("older-release", 60);
        let found = find_kernel(&host.search()).unwrap();
        assert_eq!(found.release.as_deref(), Some("6.1.0"));
    }

    #[test]
    fn explicit_name_release_prefix_or_directory_picks_a_cached_kernel() {
        let host = Host::new();
        host.cache_kernel("a", "6.1.9", false);
        host.cache_kernel("b", "6.1.10", false);
        host.cache_kernel("c", "6.10.1", false);
        let mut search = host.search();
        let mut pick = |wanted: PathBuf| {
            search.explicit = Some(wanted);
            find_kernel(&search).unwrap().release.unwrap()
        };
        assert_eq!(pick("6.1".into()), "6.1.10");
        assert_eq!(pick("a".into()), "6.1.9");
        assert_eq!(pick(host.path("cache/kernels/c")), "6.10.1");
    }

    #[test]
    fn explicit_paths_are_taken_from_the_current_directory() {
        let host = Host::new();
        fs::write(host.path("cwd/bzImage"), fake_bzimage("6.6.6")).unwrap();
        let mut search = host.search();
        search.explicit = Some("bzImage".into());
        let found = find_kernel(&search).unwrap();
        assert_eq!(found.image, host.path("cwd/bzImage"));
        assert_eq!(found.format, ImageFormat::BzImage);

        let tree = host.build_tree("src/linux");
        search.explicit = Some("../src/linux".into());
        let found = find_kernel(&search).unwrap();
        assert_eq!(
            found.modules.as_deref(),
            Some(host.path("cwd/../src/linux").as_path())
        );
        assert!(found.image.ends_with("arch/x86/boot/bzImage"));
        assert!(tree.is_dir());
    }

    #[test]
    fn explicit_missing_path_names_it_and_the_cached_kernels() {
        let host = Host::new();
        host.cache_kernel("debian", "6.1.0-56-amd64", false);
        let mut search = host.search();
        search.explicit = Some("/nonexistent/bzImage".into());
        let error = find_kernel(&search).unwrap_err();
        assert!(matches!(error, KernelError::NoSuchKernel { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("/nonexistent/bzImage"), "{text}");
        assert!(text.contains("debian (6.1.0-56-amd64)"), "{text}");

        let mut search = Host::new().search();
        search.env_kernel = Some("5.4".into());
        let text = find_kernel(&search).unwrap_err().to_string();
        assert!(text.contains("$VMLANE_KERNEL"), "{text}");
        assert!(text.contains("no kernels are cached"), "{text}");
    }

    #[test]
    fn directories_that_are_not_kernels_say_what_is_missing() {
        let host = Host::new();
        let mut search = host.search();
        search.explicit = Some(host.path("boot"));
        let text = find_kernel(&search).unwrap_err().to_string();
        assert!(text.contains("neither a kernel build tree"), "{text}");

        fs::create_dir_all(host.path("src/arch/x86")).unwrap();
        fs::write(host.path("src/Kconfig"), "").unwrap();
        search.explicit = Some(host.path("src"));
        let text = find_kernel(&search).unwrap_err().to_string();
        assert!(text.contains("build it first"), "{text}");
    }

    #[test]
    fn a_text_file_given_with_k_is_not_a_kernel() {
        let host = Host::new();
        fs::write(
            host.path("cwd/bzImage"),
            "this is a text file, not a kernel\n",
        )
        .unwrap();
        let mut search = host.search();
        search.explicit = Some("bzImage".into());
        let error = find_kernel(&search).unwrap_err();
        assert!(matches!(error, KernelError::NotAKernel { .. }), "{error}");
    }
}
