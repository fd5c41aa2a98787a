//! Full FreeBSD images: a FreeBSD system (a root tree or a base.txz) with vmlane's fstab,
//! rc.conf settings, boot hook, vmlane-relay and, optionally, a custom kernel; cached by
//! content.

use crate::error::ImageError;
use crate::key::Key;
use crate::lint::{lint_tree, Finding};
use crate::makefs::{image_version, Layout, Makefs, UfsVersion};
use crate::metalog::{Metalog, METALOG};
use crate::stage::{self, Source};
use crate::tree::Tree;
use crate::{cache, fstab, hook, loader, rcconf, Deploy};
use std::path::{Path, PathBuf};
use vmlane_kernel::{identify, ImageFormat, KernelError};

/// Bumped whenever what vmlane puts in an image changes in a way its inputs do not show.
const FORMAT_VERSION: &[u8] = b"vmlane-freebsd-image-v1";

/// FreeBSD's own newfs defaults; makefs would pick 8K blocks, which for a whole system means
/// four times the block pointers and more indirect blocks.
const BLOCKS: (u32, u32) = (32768, 4096);

/// Room to write in the VM: a quarter of the system's size, at least 64 MiB, and inodes for
/// the files tests make.
const SLACK: f64 = 0.25;
const MIN_FREE: u64 = 64 << 20;
const FREE_FILES: u64 = 16384;

/// What to build.
#[derive(Debug, Clone)]
pub struct FreeBsdImage {
    /// A FreeBSD root tree, or FreeBSD's base.txz.
    pub source: PathBuf,
    /// A kernel to install beside the stock one and boot by default.
    pub kernel: Option<CustomKernel>,
    /// The image's size in bytes; vmlane works one out when `None`.
    pub size: Option<u64>,
    /// Refuse to build an image the lint finds problems in ([`crate::lint_tree`], run on the
    /// staged tree before makefs); otherwise they are only reported.
    pub strict: bool,
    /// Host name, keys, accounts, sshd and DHCP for an image to deploy.
    pub deploy: Deploy,
}

/// A kernel installed as `/boot/NAME/kernel`, without modules.
#[derive(Debug, Clone)]
pub struct CustomKernel {
    /// The kernel file.
    pub path: PathBuf,
    /// NAME: see [`crate::validate_kernel_name`].
    pub name: String,
}

/// A built (or already cached) image.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The image in the cache. Runs attach it behind a discarded snapshot; it is never
    /// written.
    pub path: PathBuf,
    /// Its format: UFS1 when written by NetBSD's makefs (see [`Makefs::ufs_version`]).
    pub version: UfsVersion,
    /// Its cache key.
    pub key: String,
    /// Found in the cache rather than written now.
    pub cached: bool,
    /// What the lint found in the staged tree (kept with the cached image, so a cache hit
    /// reports them too).
    pub findings: Vec<Finding>,
}

/// Builds the image `request` describes into `cache` (a vmlane cache root, such as
/// `vmlane_kernel::cache_dir()`), or finds it there: an image is rebuilt only when an input
/// changed (the source's contents, the kernel, what vmlane adds, makefs, the size).
pub fn build_freebsd_image(
    request: &FreeBsdImage,
    makefs: &Makefs,
    cache: &Path,
) -> Result<BuiltImage, ImageError> {
    build(request, makefs, cache, running_as_root())
}

/// As root, staging keeps the source's owners (tar's numeric ones for a base.txz); otherwise
/// (`keep_owners` false) everything is made root's with an mtree spec, and the few files
/// FreeBSD gives other owners (setgid tools such as wall(1)) end up root's too.
pub(crate) fn build(
    request: &FreeBsdImage,
    makefs: &Makefs,
    cache: &Path,
    keep_owners: bool,
) -> Result<BuiltImage, ImageError> {
    if let Some(kernel) = &request.kernel {
        loader::validate_kernel_name(&kernel.name)?;
        check_kernel(&kernel.path)?;
    }
    request.deploy.validate()?;
    let relay = relay()?;
    let source = Source::of(&request.source)?;
    let key = cache_key(request, &source, makefs, keep_owners, relay)?;
    let path = cache::image_path(cache, "freebsd", &key);
    if let Some(findings) = cache::stored_findings(&path)? {
        if let Some(version) = image_version(&path)? {
            refuse_when_strict(request, &findings)?;
            return Ok(BuiltImage {
                path,
                version,
                key,
                cached: true,
                findings,
            });
        }
    }

    let scratch = cache::scratch(cache)?;
    let root = scratch.path().join("root");
    std::fs::create_dir(&root).map_err(ImageError::write(&root))?;
    source.stage(&root, keep_owners)?;
    stage::check_root_tree(&root, source.path())?;
    let metalog = take_metalog(&root)?;
    customize(&root, request, relay)?;
    let findings = lint_tree(&root);
    refuse_when_strict(request, &findings)?;

    let tree = Tree::walk(&root)?;
    // As root the staged files have the source's owners; anyone else staged them as
    // themselves, and root must own the system. A METALOG says better than either.
    let spec = if keep_owners && metalog.is_none() {
        None
    } else {
        let spec = scratch.path().join("spec");
        let text = tree.spec(&root, metalog.as_ref())?;
        std::fs::write(&spec, text).map_err(ImageError::write(&spec))?;
        Some(spec)
    };
    let image = scratch.path().join("image");
    let version = makefs.ufs_version()?;
    let layout = layout(version, &tree, request.size);
    makefs.write_growing(
        layout,
        request.size.is_none(),
        spec.as_deref(),
        &image,
        &root,
    )?;
    cache::store_findings(&findings, scratch.path(), &path)?;
    cache::store(&image, &path)?;
    Ok(BuiltImage {
        path,
        version,
        key,
        cached: false,
        findings,
    })
}

/// A strict build stops at the first finding, before anything is written.
fn refuse_when_strict(request: &FreeBsdImage, findings: &[Finding]) -> Result<(), ImageError> {
    if request.strict && !findings.is_empty() {
        return Err(ImageError::Lint {
            findings: findings.to_vec(),
        });
    }
    Ok(())
}

fn layout(version: UfsVersion, tree: &Tree, size: Option<u64>) -> Layout {
    let mut layout = Layout::fitting(version, tree, Some(BLOCKS), SLACK, MIN_FREE, FREE_FILES);
    if let Some(size) = size {
        layout.size = size;
    }
    layout
}

/// The staged tree's METALOG (a world installed without root records owners, modes and
/// flags there), taken out of the tree: it describes the image and is not part of it.
fn take_metalog(root: &Path) -> Result<Option<Metalog>, ImageError> {
    let path = root.join(METALOG);
    if !path.symlink_metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let text = std::fs::read(&path).map_err(ImageError::read(&path))?;
    std::fs::remove_file(&path).map_err(ImageError::write(&path))?;
    Ok(Some(Metalog::parse(&String::from_utf8_lossy(&text))))
}

/// vmlane-relay, which the hook runs the command through on VMs with a channel.
fn relay() -> Result<&'static [u8], ImageError> {
    vmlane_guest_freebsd::relay_binary().map_err(|why| ImageError::NoRelay { why })
}

/// vmlane's additions to the staged system.
fn customize(root: &Path, request: &FreeBsdImage, relay: &[u8]) -> Result<(), ImageError> {
    let kernel = request.kernel.as_ref();
    stage::put_file(root, "etc/fstab", fstab::fstab().as_bytes(), 0o644)?;
    let mut rc_conf = rcconf::rc_conf(
        stage::regular_file(root, "etc/rc.conf")?.as_deref(),
        request.deploy.is_deployment(),
    );
    rc_conf.extend_from_slice(request.deploy.rc_conf_additions().as_bytes());
    stage::put_file(root, "etc/rc.conf", &rc_conf, 0o644)?;
    for (path, script) in hook::rc_scripts() {
        stage::put_file(root, path, script.as_bytes(), 0o555)?;
    }
    stage::put_file(root, hook::RELAY_PATH, relay, 0o555)?;
    let name = kernel.map(|k| k.name.as_str());
    let loader_conf = loader::loader_conf(
        stage::regular_file(root, "boot/loader.conf")?.as_deref(),
        name,
    );
    stage::put_file(root, "boot/loader.conf", &loader_conf, 0o644)?;
    if let Some(kernel) = kernel {
        // A fresh directory, as installkernel makes it: no modules, nothing left over.
        let dir = format!("boot/{}", kernel.name);
        stage::remove(&root.join(&dir))?;
        let contents = std::fs::read(&kernel.path).map_err(ImageError::read(&kernel.path))?;
        stage::put_file(root, &format!("{dir}/kernel"), &contents, 0o555)?;
    }
    request.deploy.stage(root)
}

/// Refuses anything but a FreeBSD kernel, which is all the loader can boot.
fn check_kernel(path: &Path) -> Result<(), ImageError> {
    let not_freebsd = |reason: String| ImageError::NotFreeBsdKernel {
        path: path.to_path_buf(),
        reason,
    };
    match identify(path) {
        Ok((ImageFormat::FreeBsd, _)) => Ok(()),
        Ok((format, release)) => Err(not_freebsd(match release {
            Some(release) => format!("a Linux kernel ({format:?}, {release})"),
            None => format!("a Linux kernel ({format:?})"),
        })),
        // vmlane_kernel explains an unbranded ELF file as a Linux kernel would be expected.
        Err(KernelError::NotAKernel { .. }) if is_elf(path) => Err(not_freebsd(
            "an ELF file without FreeBSD's brand or notes: a program, a library or another system's kernel"
                .to_string(),
        )),
        Err(KernelError::NotAKernel { reason, .. }) => Err(not_freebsd(reason)),
        Err(KernelError::Unreadable { source, .. }) => Err(ImageError::read(path)(source)),
        Err(other) => Err(not_freebsd(other.to_string())),
    }
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Every input, so equal keys mean equal images.
fn cache_key(
    request: &FreeBsdImage,
    source: &Source,
    makefs: &Makefs,
    keep_owners: bool,
    relay: &[u8],
) -> Result<String, ImageError> {
    let mut key = Key::new();
    key.field("format", FORMAT_VERSION);
    key.field("owners", if keep_owners { b"staged" } else { b"root" });
    source.add_to(&mut key, keep_owners)?;
    if let Some(kernel) = &request.kernel {
        key.field("kernel-name", kernel.name.as_bytes());
        key.file("kernel", &kernel.path)?;
    }
    key.field("fstab", fstab::fstab().as_bytes());
    key.field(
        "rc.conf",
        rcconf::rc_conf_additions(request.deploy.is_deployment()).as_bytes(),
    );
    for (path, script) in hook::rc_scripts() {
        key.field(path, script.as_bytes());
    }
    key.field(hook::RELAY_PATH, relay);
    request.deploy.add_to(&mut key);
    let name = request.kernel.as_ref().map(|k| k.name.as_str());
    key.field(
        "loader.conf",
        loader::loader_conf_additions(name).as_bytes(),
    );
    // The UFS version follows from which makefs this is.
    key.field("makefs", makefs.identity()?.as_bytes());
    let options = format!(
        "blocks={BLOCKS:?} slack={SLACK} min-free={MIN_FREE} free-files={FREE_FILES} size={:?}",
        request.size
    );
    key.field("makefs-options", options.as_bytes());
    Ok(key.finish())
}

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_relay_is_a_new_image() {
        let dir = tempfile::tempdir().unwrap();
        let makefs = dir.path().join("makefs");
        std::fs::write(&makefs, "a makefs").unwrap();
        let makefs = Makefs::at(&makefs);
        let request = FreeBsdImage {
            source: dir.path().to_path_buf(),
            kernel: None,
            size: None,
            strict: false,
            deploy: Deploy::default(),
        };
        let source = Source::of(dir.path()).unwrap();
        let key = |relay: &[u8]| cache_key(&request, &source, &makefs, false, relay).unwrap();
        assert_eq!(key(b"relay"), key(b"relay"));
        assert_ne!(key(b"relay"), key(b"relay, rebuilt"));
    }
}
