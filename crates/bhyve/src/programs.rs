//! Finding bhyve's three programs, and whether this host can run them at all.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use vmlane_backend::BackendError;

/// What a FreeBSD host needs, for every "missing" message.
pub const HOST_HINT: &str = "bhyve needs a FreeBSD host: bhyve, bhyveload and bhyvectl come with \
    the base system in /usr/sbin (no package to install); load the hypervisor with `kldload vmm` \
    (or vmm_load=\"YES\" in /boot/loader.conf) and run vmlane as root";

/// Where the programs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programs {
    /// Runs the VM.
    pub bhyve: PathBuf,
    /// Creates the VM and loads the FreeBSD kernel into it.
    pub bhyveload: PathBuf,
    /// Destroys the VM's kernel instance afterwards.
    pub bhyvectl: PathBuf,
}

impl Programs {
    /// Looks in `path` (a `PATH` value), then in `<root>/usr/sbin`, where FreeBSD installs
    /// them and which a non-root `PATH` often lacks.
    pub fn find(path: Option<&OsStr>, root: &Path) -> Result<Programs, BackendError> {
        let sbin = root.join("usr/sbin");
        let find = |name: &str| {
            let dirs: Vec<PathBuf> = path
                .map(|p| std::env::split_paths(p).collect())
                .unwrap_or_default();
            dirs.iter()
                .chain(std::iter::once(&sbin))
                .map(|dir| dir.join(name))
                .find(|candidate| is_executable(candidate))
                .ok_or_else(|| missing(name))
        };
        Ok(Programs {
            bhyve: find("bhyve")?,
            bhyveload: find("bhyveload")?,
            bhyvectl: find("bhyvectl")?,
        })
    }
}

/// Checks that `root` is a FreeBSD host that can create VMs: the vmm device is there (the
/// module is loaded), or the module can be loaded (bhyveload's library loads it on demand), and
/// the loader bhyveload runs is installed.
pub fn check_host(root: &Path) -> Result<(), BackendError> {
    let vmm = ["dev/vmmctl", "dev/vmm", "boot/kernel/vmm.ko"]
        .iter()
        .any(|p| root.join(p).exists());
    if !vmm {
        return Err(missing("vmm.ko"));
    }
    for file in ["boot/userboot.so", "boot/lua/loader.lua"] {
        if !root.join(file).is_file() {
            return Err(missing(&format!("/{file}")));
        }
    }
    Ok(())
}

fn missing(program: &str) -> BackendError {
    BackendError::MissingProgram {
        program: program.to_string(),
        hint: HOST_HINT.to_string(),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn touch(path: &Path, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn found_on_path_before_sbin() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        for name in ["bhyve", "bhyveload", "bhyvectl"] {
            touch(&bin.join(name), 0o755);
            touch(&dir.path().join("usr/sbin").join(name), 0o755);
        }
        let programs = Programs::find(Some(bin.as_os_str()), dir.path()).unwrap();
        assert_eq!(programs.bhyve, bin.join("bhyve"));
        assert_eq!(programs.bhyvectl, bin.join("bhyvectl"));
    }

    #[test]
    fn sbin_is_searched_when_path_lacks_it() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["bhyve", "bhyveload", "bhyvectl"] {
            touch(&dir.path().join("usr/sbin").join(name), 0o755);
        }
        let programs = Programs::find(None, dir.path()).unwrap();
        assert_eq!(programs.bhyveload, dir.path().join("usr/sbin/bhyveload"));
    }

    #[test]
    fn a_missing_or_non_executable_program_names_itself_and_says_what_the_host_needs() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("usr/sbin/bhyve"), 0o755);
        touch(&dir.path().join("usr/sbin/bhyveload"), 0o644);
        match Programs::find(None, dir.path()) {
            Err(BackendError::MissingProgram { program, hint }) => {
                assert_eq!(program, "bhyveload");
                assert!(hint.contains("kldload vmm"));
                assert!(hint.contains("root"));
                assert!(hint.contains("base system"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_host_needs_vmm_and_the_loader() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let program = |r: Result<(), BackendError>| match r {
            Err(BackendError::MissingProgram { program, .. }) => program,
            other => panic!("{other:?}"),
        };
        assert_eq!(program(check_host(root)), "vmm.ko");
        touch(&root.join("boot/kernel/vmm.ko"), 0o644);
        assert_eq!(program(check_host(root)), "/boot/userboot.so");
        touch(&root.join("boot/userboot.so"), 0o644);
        assert_eq!(program(check_host(root)), "/boot/lua/loader.lua");
        touch(&root.join("boot/lua/loader.lua"), 0o644);
        check_host(root).unwrap();

        fs::remove_file(root.join("boot/kernel/vmm.ko")).unwrap();
        fs::create_dir_all(root.join("dev/vmm")).unwrap();
        check_host(root).unwrap();
    }
}
