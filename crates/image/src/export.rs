//! Images for deployment: the cached raw image (which runs attach) written out as raw,
//! qcow2 or a dynamic VHD with `qemu-img convert`, for hypervisors that import those.

use crate::error::ImageError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `qemu-img` comes in, and how to get it.
const QEMU_IMG: &str = "qemu-img";
const QEMU_IMG_HINT: &str = "install it with `apt-get install qemu-utils` (or run scripts/setup)";

/// Azure takes only VHDs whose virtual size is a whole number of MiB.
const VHD_ALIGN: u64 = 1 << 20;

/// A disk image format an image can be written out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskFormat {
    /// The bare file system, as cached and as runs attach it.
    #[default]
    Raw,
    /// QEMU's copy-on-write format: only written clusters take room.
    Qcow2,
    /// A dynamic VHD (QEMU's `vpc`), as XCP-ng and Azure import them.
    Vhd,
}

impl DiskFormat {
    /// The usual file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            DiskFormat::Raw => "img",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vhd",
        }
    }

    /// `qemu-img`'s name for it and the options it is created with.
    fn qemu_img_args(self) -> (&'static str, &'static str) {
        match self {
            DiskFormat::Raw => ("raw", ""),
            DiskFormat::Qcow2 => ("qcow2", ""),
            // force_size keeps the size asked for instead of rounding it to a CHS geometry.
            DiskFormat::Vhd => ("vpc", "subformat=dynamic,force_size=on"),
        }
    }

    /// The virtual size of an image of `raw_size` bytes in this format.
    pub fn virtual_size(self, raw_size: u64) -> u64 {
        match self {
            DiskFormat::Vhd => raw_size.next_multiple_of(VHD_ALIGN),
            DiskFormat::Raw | DiskFormat::Qcow2 => raw_size,
        }
    }
}

/// A `qemu-img` program.
#[derive(Debug, Clone)]
pub struct QemuImg {
    program: PathBuf,
}

impl QemuImg {
    /// `qemu-img` on `$PATH`.
    pub fn find() -> Result<QemuImg, ImageError> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(QEMU_IMG))
            .find(|candidate| is_executable(candidate))
            .map(QemuImg::at)
            .ok_or(ImageError::ProgramMissing {
                program: QEMU_IMG,
                hint: QEMU_IMG_HINT,
            })
    }

    /// The `qemu-img` at `program`.
    pub fn at(program: impl Into<PathBuf>) -> QemuImg {
        QemuImg {
            program: program.into(),
        }
    }

    /// Writes the raw image `raw` to `target` in `format`. The target is made at its full
    /// virtual size first and then filled (`-n`; it is new, so zeros need not be written),
    /// so a VHD gets its rounded-up size without a padded copy of the raw image.
    pub fn convert(&self, raw: &Path, format: DiskFormat, target: &Path) -> Result<(), ImageError> {
        let raw_size = std::fs::metadata(raw).map_err(ImageError::read(raw))?.len();
        let (name, options) = format.qemu_img_args();
        let mut create = Command::new(&self.program);
        create.args(["create", "-q", "-f", name]);
        if !options.is_empty() {
            create.args(["-o", options]);
        }
        create
            .arg(target)
            .arg(format.virtual_size(raw_size).to_string());
        self.run(create, target)?;
        let mut convert = Command::new(&self.program);
        convert
            .args(["convert", "-q", "-n", "--target-is-zero"])
            .args(["-f", "raw", "-O", name])
            .arg(raw)
            .arg(target);
        self.run(convert, target)
    }

    fn run(&self, mut command: Command, target: &Path) -> Result<(), ImageError> {
        let output = command.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::ProgramMissing {
                program: QEMU_IMG,
                hint: QEMU_IMG_HINT,
            },
            _ => ImageError::read(&self.program)(e),
        })?;
        if output.status.success() {
            return Ok(());
        }
        Err(ImageError::QemuImg {
            image: target.to_path_buf(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_string(),
        })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhds_are_whole_mebibytes_and_the_others_keep_their_size() {
        let odd = (5 << 20) + (64 << 10);
        assert_eq!(DiskFormat::Vhd.virtual_size(odd), 6 << 20);
        assert_eq!(DiskFormat::Vhd.virtual_size(6 << 20), 6 << 20);
        assert_eq!(DiskFormat::Qcow2.virtual_size(odd), odd);
        assert_eq!(DiskFormat::Raw.virtual_size(odd), odd);
        assert_eq!(DiskFormat::Vhd.qemu_img_args().0, "vpc");
        assert!(DiskFormat::Vhd
            .qemu_img_args()
            .1
            .contains("subformat=dynamic"));
    }

    #[test]
    fn a_missing_qemu_img_names_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [0u8; 512]).unwrap();
        let error = QemuImg::at("/nonexistent/qemu-img")
            .convert(&raw, DiskFormat::Qcow2, &dir.path().join("out"))
            .unwrap_err();
        assert!(
            error.to_string().contains("apt-get install qemu-utils"),
            "{error}"
        );
    }
}
