//! vmlane's kernel cache: `kernels/<name>/boot/vmlinuz-<release>`, maybe `vmlinux-<release>`
//! and `config-<release>` beside it, and `kernels/<name>/lib/modules/<release>/`, as
//! scripts/setup unpacks Debian's packages and `vmlane kernel build` installs its builds;
//! FreeBSD kernels as `kernels/<name>/boot/kernel/kernel`, laid out as FreeBSD's `/boot` is.

use crate::error::KernelError;
use crate::image::{format_of, ImageFormat};
use crate::{version, Kernel, Origin};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use vmlane_spec::Arch;

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

/// A cached FreeBSD kernel's image, relative to its directory.
pub(crate) const FREEBSD_KERNEL: &str = "boot/kernel/kernel";
/// What `vmlane kernel build` writes into each kernel it stores: `key=value` lines saying how
/// it was built (a FreeBSD kernel's `release=` among them).
pub(crate) const BUILD_MARKER: &str = "vmlane-build";

/// Stores a kernel as `kernels/<name>`: `fill` writes it into a hidden staging directory that
/// is renamed into place, with `marker` as its [`BUILD_MARKER`] (a kernel vmlane built), only
/// once complete, so a half-written kernel is never found. A kernel of the same name is
/// replaced.
pub(crate) fn store(
    cache: &Path,
    name: &str,
    marker: Option<&str>,
    fill: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} cannot name a cached kernel"),
        ));
    }
    let kernels = kernels_dir(cache);
    let dir = kernels.join(name);
    let staging = kernels.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let filled = fill(&staging).and_then(|()| match marker {
        Some(marker) => std::fs::write(staging.join(BUILD_MARKER), marker),
        None => Ok(()),
    });
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir)?;
    Ok(dir)
}

/// One kernel in the cache.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    /// The directory's name, which `-k` accepts.
    pub name: String,
    pub dir: PathBuf,
    pub release: String,
    /// A FreeBSD kernel (`boot/kernel/kernel`) rather than a Linux one.
    pub freebsd: bool,
    /// The architecture its image runs on; `None` when the image cannot be read.
    pub arch: Option<Arch>,
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
        let (release, freebsd) = match linux_release(dir) {
            Some(release) => (release, false),
            None => (freebsd_release(dir, name)?, true),
        };
        let arch = if freebsd {
            Some(Arch::X86_64)
        } else {
            let vmlinuz = dir.join("boot").join(format!("vmlinuz-{release}"));
            format_of(&vmlinuz).ok().map(ImageFormat::arch)
        };
        Some(CacheEntry {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            release,
            freebsd,
            arch,
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
        if self.freebsd {
            // The layout says what it is: only `vmlane kernel build --freebsd` stores one.
            return Ok(Kernel {
                image: self.dir.join(FREEBSD_KERNEL),
                format: ImageFormat::FreeBsd,
                release: Some(self.release.clone()),
                modules: None,
                config: None,
                origin,
            });
        }
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

/// The newest `boot/vmlinuz-<release>`'s release.
fn linux_release(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir.join("boot"))
        .ok()?
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let file = e.file_name();
            let release = file.to_str()?.strip_prefix("vmlinuz-")?;
            (!release.is_empty()).then(|| release.to_string())
        })
        .max_by(|a, b| version::compare(a, b))
}

/// A FreeBSD kernel's release, as its build marker records it (else its directory's name).
fn freebsd_release(dir: &Path, name: &str) -> Option<String> {
    if !dir.join(FREEBSD_KERNEL).is_file() {
        return None;
    }
    let marker = std::fs::read_to_string(dir.join(BUILD_MARKER)).unwrap_or_default();
    let release = marker
        .lines()
        .find_map(|line| line.strip_prefix("release="))
        .filter(|r| !r.is_empty())
        .unwrap_or(name);
    Some(release.to_string())
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

/// The default cached kernel: the Linux kernel of `arch` added last (`vmlane run` boots only
/// Linux, so building a FreeBSD kernel does not change the default, nor does fetching a kernel
/// of another architecture).
pub(crate) fn newest(entries: &[CacheEntry], arch: Arch) -> Option<&CacheEntry> {
    entries
        .iter()
        .filter(|e| !e.freebsd && e.arch == Some(arch))
        .max_by_key(|e| e.modified)
}

/// The cached kernel `wanted` names: a directory name, a release, or a release prefix such as
/// `6.1` (the newest release under it wins; `6.1` does not match `6.10`).
/// Among releases that match, a kernel of `arch` wins over a newer one of another
/// (`-k 6.1` stays an x86 kernel when an arm64 6.1 build is cached too).
pub(crate) fn lookup<'a>(
    entries: &'a [CacheEntry],
    wanted: &str,
    arch: Arch,
) -> Option<&'a CacheEntry> {
    let newest_of = |matching: Vec<&'a CacheEntry>| {
        matching.into_iter().max_by(|a, b| {
            (a.arch == Some(arch))
                .cmp(&(b.arch == Some(arch)))
                .then(version::compare(&a.release, &b.release))
                .then(a.modified.cmp(&b.modified))
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
        let pick = |wanted| lookup(&entries, wanted, Arch::X86_64).map(|e| e.release.as_str());
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

    /// A FreeBSD kernel stored as `vmlane kernel build --freebsd` stores one.
    fn store_freebsd(cache: &Path, name: &str) -> PathBuf {
        store(
            cache,
            name,
            Some("os=freebsd\nrelease=15.1-RELEASE-p1\nkernconf=FIRECRACKER\n"),
            |dir| {
                std::fs::create_dir_all(dir.join("boot/kernel"))?;
                std::fs::write(
                    dir.join(FREEBSD_KERNEL),
                    crate::image::fake_freebsd_kernel(crate::image::FreeBsdMark::OsAbi),
                )
            },
        )
        .unwrap()
    }

    #[test]
    fn a_stored_kernel_appears_whole_with_its_marker() {
        let host = Host::new();
        let cache = host.path("cache");
        let dir = store_freebsd(&cache, "freebsd-15.1-RELEASE-p1-FIRECRACKER-0123456789ab");
        assert_eq!(
            dir,
            cache.join("kernels/freebsd-15.1-RELEASE-p1-FIRECRACKER-0123456789ab")
        );
        assert!(dir.join(FREEBSD_KERNEL).is_file());
        let marker = std::fs::read_to_string(dir.join(BUILD_MARKER)).unwrap();
        assert!(marker.contains("kernconf=FIRECRACKER"), "{marker}");
        let left: Vec<_> = std::fs::read_dir(kernels_dir(&cache))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "no staging directory is left: {left:?}");
    }

    #[test]
    fn a_failed_store_leaves_nothing_behind_and_keeps_the_old_kernel() {
        let host = Host::new();
        let cache = host.path("cache");
        let name = "freebsd-15.1-RELEASE-p1-FIRECRACKER-0123456789ab";
        let dir = store_freebsd(&cache, name);
        let error = store(&cache, name, Some(""), |staging| {
            std::fs::write(staging.join("half"), "x")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "disk full");
        assert!(dir.join(FREEBSD_KERNEL).is_file());
        assert!(!kernels_dir(&cache)
            .join(format!(".{name}.partial"))
            .exists());
        for bad in ["", ".hidden", "a/b"] {
            assert!(store(&cache, bad, Some(""), |_| Ok(())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cached_freebsd_kernel_is_found_by_name_but_never_the_default() {
        let host = Host::new();
        let cache = host.path("cache");
        host.cache_kernel("6.1.0-56-amd64", "6.1.0-56-amd64", false);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let name = "freebsd-15.1-RELEASE-p1-FIRECRACKER-0123456789ab";
        store_freebsd(&cache, name);
        let entries = entries(&cache).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            newest(&entries, Arch::X86_64).unwrap().name,
            "6.1.0-56-amd64"
        );
        let entry = lookup(&entries, name, Arch::X86_64).unwrap();
        assert_eq!(entry.release, "15.1-RELEASE-p1");
        assert_eq!(entry.label(), format!("{name} (15.1-RELEASE-p1)"));
        let kernel = entry.kernel(Origin::Explicit).unwrap();
        assert_eq!(kernel.format, ImageFormat::FreeBsd);
        assert!(kernel.image.ends_with(FREEBSD_KERNEL));
        assert_eq!((kernel.modules, kernel.config), (None, None));
        assert_eq!(lookup(&entries, "15.1", Arch::X86_64).unwrap().name, name);
    }

    #[test]
    fn the_default_kernel_is_the_newest_of_the_guests_architecture() {
        let host = Host::new();
        let cache = host.path("cache");
        host.cache_kernel("6.1.0-56-amd64", "6.1.0-56-amd64", false);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let boot = kernels_dir(&cache).join("6.1.0-57-arm64/boot");
        std::fs::create_dir_all(&boot).unwrap();
        let mut image = vec![0u8; 0x400];
        image[0x38..0x3c].copy_from_slice(b"ARMd");
        std::fs::write(boot.join("vmlinuz-6.1.0-57-arm64"), image).unwrap();
        let entries = entries(&cache).unwrap();
        assert_eq!(
            newest(&entries, Arch::X86_64).unwrap().name,
            "6.1.0-56-amd64"
        );
        assert_eq!(
            newest(&entries, Arch::Aarch64).unwrap().name,
            "6.1.0-57-arm64"
        );
        let arm64 = lookup(&entries, "6.1.0-57-arm64", Arch::X86_64).unwrap();
        assert_eq!(
            lookup(&entries, "6.1", Arch::X86_64).unwrap().name,
            "6.1.0-56-amd64"
        );
        assert_eq!(
            lookup(&entries, "6.1", Arch::Aarch64).unwrap().name,
            "6.1.0-57-arm64"
        );
        assert_eq!(
            arm64.kernel(Origin::Cache).unwrap().format,
            ImageFormat::Arm64Image
        );
    }
}
