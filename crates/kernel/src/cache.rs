//! vmlane's kernel cache: `kernels/<name>/boot/vmlinuz-<release>`, maybe `vmlinux-<release>`
//! and `config-<release>` beside it, and `kernels/<name>/lib/modules/<release>/`, as
//! scripts/setup unpacks Debian's packages and `vmlane kernel build` installs its builds.

use crate::error::KernelError;
use crate::image::{format_of, ImageFormat};
use crate::{version, Kernel, Origin};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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

/// One kernel in the cache.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    /// The directory's name, which `-k` accepts.
    pub name: String,
    pub dir: PathBuf,
    pub release: String,
    /// Newest is the default: the kernel most recently added.
    pub modified: SystemTime,
}

impl CacheEntry {
    /// Reads a directory laid out as a cached kernel; `None` if it is not one. Hidden
    /// directories are installs still in progress.
    pub fn read(dir: &Path) -> Option<CacheEntry> {
        let name = dir.file_name()?.to_str()?;
        if name.starts_with('.') {
            return None;
        }
        let release = std::fs::read_dir(dir.join("boot"))
            .ok()?
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| {
                let file = e.file_name();
                let release = file.to_str()?.strip_prefix("vmlinuz-")?;
                (!release.is_empty()).then(|| release.to_string())
            })
            .max_by(|a, b| version::compare(a, b))?;
        Some(CacheEntry {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            release,
            modified: dir.metadata().and_then(|m| m.modified()).ok()?,
        })
    }

    /// `name`, or `name (release)` when they differ, for listing.
    pub fn label(&self) -> String {
        if self.name == self.release {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.release)
        }
    }

    /// The kernel, preferring the extracted vmlinux when it has a PVH entry: QEMU boots it
    /// without running the bzImage's decompressor.
    pub fn kernel(&self, origin: Origin) -> Result<Kernel, KernelError> {
        let boot = self.dir.join("boot");
        let vmlinux = boot.join(format!("vmlinux-{}", self.release));
        let vmlinuz = boot.join(format!("vmlinuz-{}", self.release));
        let pvh = ImageFormat::Elf { pvh: true };
        let (image, format) = match format_of(&vmlinux) {
            Ok(format) if format == pvh => (vmlinux, format),
            _ => {
                let format = format_of(&vmlinuz)?;
                (vmlinuz, format)
            }
        };
        let modules = Some(self.dir.join("lib/modules").join(&self.release)).filter(|d| d.is_dir());
        let config = Some(boot.join(format!("config-{}", self.release))).filter(|c| c.is_file());
        Ok(Kernel {
            image,
            format,
            release: Some(self.release.clone()),
            modules,
            config,
            origin,
        })
    }
}

/// The kernels in the cache; a missing cache is an empty one.
pub(crate) fn entries(cache: &Path) -> io::Result<Vec<CacheEntry>> {
    let dir = kernels_dir(cache);
    let listing = match std::fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries: Vec<CacheEntry> = listing
        .flatten()
        .filter_map(|e| CacheEntry::read(&e.path()))
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// The default cached kernel: the one added last.
pub(crate) fn newest(entries: &[CacheEntry]) -> Option<&CacheEntry> {
    entries.iter().max_by_key(|e| e.modified)
}

/// The cached kernel `wanted` names: a directory name, a release, or a release prefix such as
/// `6.1` (the newest release under it wins; `6.1` does not match `6.10`).
pub(crate) fn lookup<'a>(entries: &'a [CacheEntry], wanted: &str) -> Option<&'a CacheEntry> {
    let newest_of = |matching: Vec<&'a CacheEntry>| {
        matching.into_iter().max_by(|a, b| {
            version::compare(&a.release, &b.release).then(a.modified.cmp(&b.modified))
        })
    };
    if wanted.is_empty() {
        return None;
    }
    entries
        .iter()
        .find(|e| e.name == wanted)
        .or_else(|| newest_of(entries.iter().filter(|e| e.release == wanted).collect()))
        .or_else(|| {
            newest_of(
                entries
                    .iter()
                    .filter(|e| version::matches_prefix(&e.release, wanted))
                    .collect(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::Host;

    #[test]
    fn a_prefix_picks_the_newest_release_numerically() {
        let host = Host::new();
        host.cache_kernel("a", "6.1.9", false);
        host.cache_kernel("b", "6.1.10", false);
        host.cache_kernel("c", "6.10.1", false);
        host.cache_kernel("d", "6.2.0", false);
        let entries = entries(&host.path("cache")).unwrap();
        let pick = |wanted| lookup(&entries, wanted).map(|e| e.release.as_str());
        assert_eq!(pick("6.1"), Some("6.1.10"));
        assert_eq!(pick("6"), Some("6.10.1"));
        assert_eq!(pick("6.1.9"), Some("6.1.9"));
        assert_eq!(pick("c"), Some("6.10.1"));
        assert_eq!(pick("6.3"), None);
        assert_eq!(pick(""), None);
    }

    #[test]
    fn a_pvh_vmlinux_is_preferred_and_one_without_pvh_is_not() {
        let host = Host::new();
        host.cache_kernel("pvh", "6.1.0-56-cloud-amd64", true);
        let entry = CacheEntry::read(&host.path("cache/kernels/pvh")).unwrap();
        let kernel = entry.kernel(Origin::Cache).unwrap();
        assert_eq!(kernel.format, ImageFormat::Elf { pvh: true });
        assert!(kernel.image.ends_with("boot/vmlinux-6.1.0-56-cloud-amd64"));
        assert!(kernel
            .modules
            .unwrap()
            .ends_with("pvh/lib/modules/6.1.0-56-cloud-amd64"));
        assert!(kernel
            .config
            .unwrap()
            .ends_with("pvh/boot/config-6.1.0-56-cloud-amd64"));

        host.cache_kernel("plain", "6.1.0", false);
        let vmlinux = host.path("cache/kernels/plain/boot/vmlinux-6.1.0");
        std::fs::write(
            &vmlinux,
            crate::fixtures::fake_vmlinux("6.1.0", crate::fixtures::Note::Other),
        )
        .unwrap();
        let entry = CacheEntry::read(&host.path("cache/kernels/plain")).unwrap();
        let kernel = entry.kernel(Origin::Cache).unwrap();
        assert_eq!(kernel.format, ImageFormat::BzImage);
        assert!(kernel.image.ends_with("boot/vmlinuz-6.1.0"));
    }

    #[test]
    fn installs_in_progress_and_stray_directories_are_not_kernels() {
        let host = Host::new();
        host.cache_kernel(".6.2.0-abc.partial", "6.2.0", false);
        std::fs::create_dir_all(host.path("cache/kernels/junk/boot")).unwrap();
        assert!(entries(&host.path("cache")).unwrap().is_empty());
    }

    #[test]
    fn a_missing_cache_is_empty() {
        assert!(entries(Path::new("/nonexistent/vmlane-cache"))
            .unwrap()
            .is_empty());
    }
}
