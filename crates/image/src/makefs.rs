//! Running makefs: NetBSD's, which Debian packages (`apt-get install makefs`), or FreeBSD's
//! own; both take `-t ffs -B little -o version=N`.
//!
//! FreeBSD's makefs writes UFS2, FreeBSD's default. NetBSD's puts a UFS2 superblock at
//! 8192, where only UFS1 keeps it, and FreeBSD refuses that (`fs_sblockloc != SBLOCK_UFS2`:
//! no file system found); its UFS1 FreeBSD mounts. Which makefs it is shows in where a
//! probe image's superblock lands, so vmlane writes UFS2 where it can and UFS1 otherwise.
//!
//! NetBSD's makefs works out too small a size when left to itself, so vmlane always gives
//! one (`-s`), from its own estimate of what the files take plus room to write in.

use crate::error::ImageError;
use crate::tree::{Kind, Tree};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where makefs is looked for besides `$PATH`, which often lacks the sbin directories for
/// users other than root.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Where FreeBSD reads each version's superblock from, and the magic numbers it wants there.
const SBLOCK_UFS2: usize = 65536;
const SBLOCK_UFS1: usize = 8192;
const FS_UFS2_MAGIC: u32 = 0x1954_0119;
const FS_UFS1_MAGIC: u32 = 0x0001_1954;
/// `fs_magic`'s offset in the superblock.
const MAGIC_OFFSET: usize = 1372;

/// The on-disk format written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UfsVersion {
    /// 32-bit block pointers and times; what NetBSD's makefs writes FreeBSD can mount.
    Ufs1,
    /// FreeBSD's default.
    Ufs2,
}

impl UfsVersion {
    fn number(self) -> u8 {
        match self {
            UfsVersion::Ufs1 => 1,
            UfsVersion::Ufs2 => 2,
        }
    }

    fn inode_size(self) -> u64 {
        match self {
            UfsVersion::Ufs1 => 128,
            UfsVersion::Ufs2 => 256,
        }
    }

    /// A block pointer's size.
    fn pointer_size(self) -> u64 {
        match self {
            UfsVersion::Ufs1 => 4,
            UfsVersion::Ufs2 => 8,
        }
    }

    /// Where FreeBSD looks for this version's superblock, and its magic number.
    fn superblock(self) -> (usize, u32) {
        match self {
            UfsVersion::Ufs1 => (SBLOCK_UFS1, FS_UFS1_MAGIC),
            UfsVersion::Ufs2 => (SBLOCK_UFS2, FS_UFS2_MAGIC),
        }
    }
}

/// A makefs program.
#[derive(Debug, Clone)]
pub struct Makefs {
    program: PathBuf,
    version: OnceLock<UfsVersion>,
}

impl Makefs {
    /// The makefs on `$PATH` or in the usual sbin directories.
    pub fn find() -> Result<Makefs, ImageError> {
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        path_dirs
            .into_iter()
            .chain(SBIN_DIRS.iter().map(PathBuf::from))
            .map(|dir| dir.join("makefs"))
            .find(|candidate| is_executable(candidate))
            .map(Makefs::at)
            .ok_or(ImageError::MakefsMissing)
    }

    /// The makefs at `program`.
    pub fn at(program: impl Into<PathBuf>) -> Makefs {
        Makefs {
            program: program.into(),
            version: OnceLock::new(),
        }
    }

    /// The UFS version this makefs writes so that FreeBSD mounts it: UFS2 when a probe image
    /// has its superblock where FreeBSD looks for a UFS2 one, else UFS1. Probed once (a few
    /// milliseconds).
    pub fn ufs_version(&self) -> Result<UfsVersion, ImageError> {
        if let Some(version) = self.version.get() {
            return Ok(*version);
        }
        let scratch = tempfile::Builder::new()
            .prefix("vmlane-makefs-probe-")
            .tempdir()
            .map_err(ImageError::write(&std::env::temp_dir()))?;
        let root = scratch.path().join("root");
        std::fs::create_dir(&root).map_err(ImageError::write(&root))?;
        let image = scratch.path().join("probe.img");
        let layout = Layout {
            version: UfsVersion::Ufs2,
            size: 4 << 20,
            free_files: 16,
            blocks: None,
        };
        self.run(&layout, None, &image, &root)?;
        let version = if superblock_magic(&image, SBLOCK_UFS2)? == Some(FS_UFS2_MAGIC) {
            UfsVersion::Ufs2
        } else {
            UfsVersion::Ufs1
        };
        Ok(*self.version.get_or_init(|| version))
    }

    /// The program run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// What identifies this makefs in a cache key: a hash of the program itself (neither
    /// Debian's nor FreeBSD's makefs has a version option), so an upgrade rebuilds images.
    pub(crate) fn identity(&self) -> Result<String, ImageError> {
        let bytes = std::fs::read(&self.program).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::MakefsMissing,
            _ => ImageError::read(&self.program)(e),
        })?;
        Ok(crate::hex(&Sha256::digest(bytes)))
    }

    /// Writes `image` from the directory `root`, and checks that FreeBSD will find its
    /// superblock.
    pub(crate) fn write(
        &self,
        layout: &Layout,
        spec: Option<&Path>,
        image: &Path,
        root: &Path,
    ) -> Result<(), ImageError> {
        self.run(layout, spec, image, root)?;
        let (location, magic) = layout.version.superblock();
        if superblock_magic(image, location)? != Some(magic) {
            return Err(ImageError::Makefs {
                image: image.to_path_buf(),
                status: "exit status: 0".to_string(),
                stderr: format!(
                    "it wrote no UFS{} superblock at byte {location}, where FreeBSD looks for one",
                    layout.version.number()
                ),
            });
        }
        Ok(())
    }

    /// [`Makefs::write`], growing an `estimated` size that turns out too small.
    pub(crate) fn write_growing(
        &self,
        mut layout: Layout,
        estimated: bool,
        spec: Option<&Path>,
        image: &Path,
        root: &Path,
    ) -> Result<(), ImageError> {
        let mut tries = if estimated { 3 } else { 1 };
        loop {
            tries -= 1;
            match self.write(&layout, spec, image, root) {
                Err(ImageError::TooSmall { .. }) if tries > 0 => {
                    layout.size = (layout.size + layout.size / 2).next_multiple_of(64 * 1024);
                }
                result => return result,
            }
        }
    }

    fn run(
        &self,
        layout: &Layout,
        spec: Option<&Path>,
        image: &Path,
        root: &Path,
    ) -> Result<(), ImageError> {
        let mut command = Command::new(&self.program);
        command.args(layout.args());
        if let Some(spec) = spec {
            command.arg("-F").arg(spec);
        }
        command.arg(image).arg(root);
        let output = command.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::MakefsMissing,
            _ => ImageError::read(&self.program)(e),
        })?;
        if output.status.success() {
            return Ok(());
        }
        let mut said = String::from_utf8_lossy(&output.stderr).into_owned();
        said.push_str(&String::from_utf8_lossy(&output.stdout));
        if said.contains("No space left on device") || said.contains("larger than the maxsize") {
            return Err(ImageError::TooSmall { size: layout.size });
        }
        Err(ImageError::Makefs {
            image: image.to_path_buf(),
            status: output.status.to_string(),
            stderr: said.trim_end().to_string(),
        })
    }
}

/// The version of the file system in `image`, by where FreeBSD would find its superblock;
/// `None` if it would find none.
pub fn image_version(image: &Path) -> Result<Option<UfsVersion>, ImageError> {
    for version in [UfsVersion::Ufs2, UfsVersion::Ufs1] {
        let (location, magic) = version.superblock();
        if superblock_magic(image, location)? == Some(magic) {
            return Ok(Some(version));
        }
    }
    Ok(None)
}

/// The magic number of a superblock at `location` in `image`, if the image reaches that far.
fn superblock_magic(image: &Path, location: usize) -> Result<Option<u32>, ImageError> {
    let mut head = Vec::new();
    std::fs::File::open(image)
        .and_then(|f| {
            f.take((location + MAGIC_OFFSET + 4) as u64)
                .read_to_end(&mut head)
        })
        .map_err(ImageError::read(image))?;
    Ok(head
        .get(location + MAGIC_OFFSET..location + MAGIC_OFFSET + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The file system's shape: what makefs is told besides where the files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The format.
    pub version: UfsVersion,
    /// The image's size in bytes.
    pub size: u64,
    /// Free inodes to leave, for files written in the VM.
    pub free_files: u64,
    /// Block and fragment size; makefs's defaults when `None`.
    pub blocks: Option<(u32, u32)>,
}

impl Layout {
    /// makefs's options, in the order Debian's makefs needs (`-t` before `-o`).
    pub fn args(&self) -> Vec<OsString> {
        let mut options = format!("version={}", self.version.number());
        if let Some((bsize, fsize)) = self.blocks {
            options.push_str(&format!(",bsize={bsize},fsize={fsize}"));
        }
        [
            "-t".to_string(),
            "ffs".to_string(),
            "-B".to_string(),
            "little".to_string(),
            "-o".to_string(),
            options,
            "-s".to_string(),
            self.size.to_string(),
            "-f".to_string(),
            self.free_files.to_string(),
        ]
        .map(OsString::from)
        .to_vec()
    }

    /// A layout for `tree` with `slack` (a fraction of the files' size, at least
    /// `min_free` bytes) left free.
    pub fn fitting(
        version: UfsVersion,
        tree: &Tree,
        blocks: Option<(u32, u32)>,
        slack: f64,
        min_free: u64,
        free_files: u64,
    ) -> Layout {
        let (bsize, fsize) = blocks.unwrap_or((8192, 1024));
        let used = estimate(version, tree, bsize as u64, fsize as u64, free_files);
        let free = ((used as f64 * slack) as u64).max(min_free);
        // UFS keeps minfree (8%) for root alone; the VM runs as root, but makefs counts it.
        let size = ((used + free) as f64 / 0.92) as u64;
        Layout {
            version,
            size: size.next_multiple_of(64 * 1024),
            free_files,
            blocks,
        }
    }
}

/// Bytes a UFS file system needs for `tree`: data rounded to blocks and fragments, indirect
/// blocks, directories, long symlinks, inodes, and the superblock and cylinder group headers.
fn estimate(version: UfsVersion, tree: &Tree, bsize: u64, fsize: u64, free_files: u64) -> u64 {
    const DIRECT: u64 = 12;
    let nindir = bsize / version.pointer_size();
    // Symlinks shorter than the inode's block pointers are kept in them.
    let inline_symlink = 15 * version.pointer_size();
    let mut data = 0;
    for entry in &tree.entries {
        data += match entry.kind {
            Kind::File { size, first_link } if first_link => {
                let blocks = size.div_ceil(bsize);
                if blocks <= DIRECT {
                    size.next_multiple_of(fsize)
                } else {
                    let rest = blocks - DIRECT;
                    let single = 1;
                    let double = if rest > nindir {
                        1 + (rest - nindir).div_ceil(nindir)
                    } else {
                        0
                    };
                    (blocks + single + double) * bsize
                }
            }
            Kind::File { .. } => 0,
            Kind::Dir { entry_bytes } => entry_bytes.next_multiple_of(512).next_multiple_of(fsize),
            Kind::Symlink { len } if len >= inline_symlink => len.next_multiple_of(fsize),
            Kind::Symlink { .. } | Kind::Other => 0,
        };
    }
    let inodes = (tree.entries.len() as u64 + free_files) * version.inode_size();
    // Boot area and superblock, then per cylinder group a superblock copy, its header and
    // its maps; a group spans at most a few hundred MB.
    let groups = (data / (64 << 20)) + 1;
    let overhead = 128 * 1024 + groups * 4 * bsize;
    data + inodes + inodes / 4 + overhead + data / 50
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_put_the_type_first_and_ask_for_little_endian_ufs2() {
        let layout = Layout {
            version: UfsVersion::Ufs2,
            size: 1 << 20,
            free_files: 64,
            blocks: Some((32768, 4096)),
        };
        let args: Vec<String> = layout
            .args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "-t",
                "ffs",
                "-B",
                "little",
                "-o",
                "version=2,bsize=32768,fsize=4096",
                "-s",
                "1048576",
                "-f",
                "64"
            ]
        );
    }

    #[test]
    fn a_missing_program_says_how_to_install_makefs() {
        let error = Makefs::at("/nonexistent/makefs").ufs_version().unwrap_err();
        assert!(
            error.to_string().contains("apt-get install makefs"),
            "{error}"
        );
        let makefs = Makefs::at("/nonexistent/makefs");
        let error = makefs.identity().unwrap_err();
        assert!(
            error.to_string().contains("apt-get install makefs"),
            "{error}"
        );
    }
}
