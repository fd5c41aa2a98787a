//! The directory bhyveload's loader boots from (`-h`): the run's kernel at `/boot/kernel/kernel`
//! and the host's loader files beside it. Without `-d` the loader reads nothing from the guest's
//! disk, so the image's own loader.conf cannot replace the kernel vmlane was asked to boot.
//! Everything is a real file: since its security fix of February 2024, bhyveload resolves `-h`
//! paths beneath the directory and refuses symlinks that lead out of it.

use std::fs;
use std::io;
use std::path::Path;
use vmlane_backend::BackendError;

/// The serial console on com1 (what the loader's `boot_serial` needs the kernel to find) when
/// the host has no `/boot/device.hints` to copy.
const FALLBACK_HINTS: &str = "hint.uart.0.at=\"isa\"\nhint.uart.0.port=\"0x3F8\"\n\
    hint.uart.0.flags=\"0x10\"\nhint.uart.0.irq=\"4\"\n";

/// Fills `dir` from the host at `root`: `boot/lua` (the loader's scripts, matching the host's
/// `/boot/userboot.so`), `boot/defaults/loader.conf` (which names `device.hints` and the
/// kernel's place), `boot/device.hints`, and `kernel` as `boot/kernel/kernel`.
pub fn prepare(root: &Path, kernel: &Path, dir: &Path) -> Result<(), BackendError> {
    let boot = dir.join("boot");
    let host_boot = root.join("boot");
    for needed in ["lua/loader.lua", "defaults/loader.conf"] {
        if !host_boot.join(needed).is_file() {
            return Err(BackendError::MissingProgram {
                program: format!("/boot/{needed}"),
                hint: crate::programs::HOST_HINT.to_string(),
            });
        }
    }
    let io_err = |action: String| move |source| BackendError::Io { action, source };
    copy_tree(&host_boot.join("lua"), &boot.join("lua")).map_err(io_err(format!(
        "copy the loader scripts into {}",
        boot.display()
    )))?;
    fs::create_dir_all(boot.join("defaults"))
        .and_then(|()| {
            fs::copy(
                host_boot.join("defaults/loader.conf"),
                boot.join("defaults/loader.conf"),
            )
        })
        .map_err(io_err(format!("copy loader.conf into {}", boot.display())))?;
    let hints = host_boot.join("device.hints");
    let hints_copied = if hints.is_file() {
        fs::copy(&hints, boot.join("device.hints")).map(drop)
    } else {
        fs::write(boot.join("device.hints"), FALLBACK_HINTS)
    };
    hints_copied.map_err(io_err(format!("write {}/device.hints", boot.display())))?;
    fs::create_dir_all(boot.join("kernel"))
        .and_then(|()| link_or_copy(kernel, &boot.join("kernel/kernel")))
        .map_err(io_err(format!("stage the kernel {}", kernel.display())))?;
    Ok(())
}

/// A hard link when the kernel is on the same file system (no bytes copied), else a copy.
fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map(drop)
}

/// Copies a directory tree, following symlinks so the copy has only real files.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if fs::metadata(entry.path())?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(root: &Path, hints: bool) {
        fs::create_dir_all(root.join("boot/lua/gfx")).unwrap();
        fs::create_dir_all(root.join("boot/defaults")).unwrap();
        fs::write(root.join("boot/lua/loader.lua"), "-- loader").unwrap();
        fs::write(root.join("boot/lua/gfx/orb.lua"), "-- orb").unwrap();
        fs::write(
            root.join("boot/defaults/loader.conf"),
            "kernel=\"kernel\"\n",
        )
        .unwrap();
        if hints {
            fs::write(root.join("boot/device.hints"), "hint.uart.0.at=\"isa\"\n").unwrap();
        }
    }

    #[test]
    fn the_kernel_and_the_loader_files_are_staged() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        host(&root, true);
        std::os::unix::fs::symlink("loader.lua", root.join("boot/lua/link.lua")).unwrap();
        let kernel = tmp.path().join("my-kernel");
        fs::write(&kernel, b"\x7fELF kernel").unwrap();
        let dir = tmp.path().join("boot-dir");
        prepare(&root, &kernel, &dir).unwrap();

        assert_eq!(
            fs::read(dir.join("boot/kernel/kernel")).unwrap(),
            b"\x7fELF kernel"
        );
        assert_eq!(
            fs::read_to_string(dir.join("boot/lua/gfx/orb.lua")).unwrap(),
            "-- orb"
        );
        let link = dir.join("boot/lua/link.lua");
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_to_string(dir.join("boot/device.hints")).unwrap(),
            "hint.uart.0.at=\"isa\"\n"
        );
        assert!(dir.join("boot/defaults/loader.conf").is_file());
    }

    #[test]
    fn without_host_hints_the_serial_console_is_still_hinted() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        host(&root, false);
        let kernel = tmp.path().join("kernel");
        fs::write(&kernel, b"k").unwrap();
        prepare(&root, &kernel, &tmp.path().join("b")).unwrap();
        let hints = fs::read_to_string(tmp.path().join("b/boot/device.hints")).unwrap();
        assert!(hints.contains("hint.uart.0.flags=\"0x10\""));
    }

    #[test]
    fn missing_loader_scripts_or_kernel_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = tmp.path().join("kernel");
        match prepare(tmp.path(), &kernel, &tmp.path().join("b")) {
            Err(BackendError::MissingProgram { program, .. }) => {
                assert_eq!(program, "/boot/lua/loader.lua")
            }
            other => panic!("{other:?}"),
        }
        host(tmp.path(), true);
        match prepare(tmp.path(), &kernel, &tmp.path().join("b")) {
            Err(BackendError::Io { action, .. }) => assert!(action.contains("stage the kernel")),
            other => panic!("{other:?}"),
        }
    }
}
