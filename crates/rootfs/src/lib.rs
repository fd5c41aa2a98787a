//! Root filesystems for `--root`: a minimal Debian root of the guest's architecture, made by
//! mmdebstrap (a foreign architecture's package scripts run under qemu-user through
//! binfmt_misc), cached under the key of what went into it and never left half-written.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use vmlane_spec::Arch;

/// What a root is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    /// Its architecture.
    pub arch: Arch,
    /// The Debian release (`bookworm`).
    pub suite: String,
    /// Packages beyond the essential ones (`minbase`).
    pub packages: Vec<String>,
}

/// Why a root could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// mmdebstrap is not installed.
    #[error("mmdebstrap is not installed: install it with `apt-get install mmdebstrap` (or run scripts/setup --arch {0})")]
    NoMmdebstrap(Arch),
    /// The host cannot run the architecture's programs, which the packages' scripts are.
    #[error("this host cannot run {arch} programs, which the packages' scripts are: install qemu-user-static and binfmt-support and make sure binfmt_misc is mounted (mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc), or run scripts/setup --arch {arch}")]
    NoEmulation {
        /// The root's architecture.
        arch: Arch,
    },
    /// Debian has no release of the architecture's userland.
    #[error("Debian has no {0} userland to make a root of: a {0} guest runs static programs from the host's files, without --root (build them with -static)")]
    NoUserland(Arch),
    /// A package name mmdebstrap would take for an option or a list.
    #[error("`{0}` is not a Debian package name")]
    BadPackage(String),
    /// mmdebstrap ran and failed.
    #[error("mmdebstrap failed ({status}); its messages are above")]
    Failed {
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The cache could not be written.
    #[error("cannot {action}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where cached roots live.
pub fn roots_dir(cache: &Path) -> PathBuf {
    cache.join("roots")
}

impl RootSpec {
    /// The cache directory's name: readable, and unique to the spec.
    pub fn name(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        let mut hash = Sha256::new();
        for part in [
            self.arch.debian(),
            &self.suite,
            "minbase",
            &packages.join(","),
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let key: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("debian-{}-{}-{key}", self.suite, self.arch.debian())
    }

    /// mmdebstrap's arguments to make this root in `target`.
    pub fn mmdebstrap_args(&self, target: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--variant=minbase".into(),
            format!("--arch={}", self.arch.debian()).into(),
        ];
        if !self.packages.is_empty() {
            args.push(format!("--include={}", self.packages.join(",")).into());
        }
        args.push(self.suite.clone().into());
        args.push(target.into());
        args
    }

    fn check(&self) -> Result<(), RootfsError> {
        if !self.arch.has_debian_userland() {
            return Err(RootfsError::NoUserland(self.arch));
        }
        let valid = |name: &str| {
            name.len() > 1
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.:".contains(c))
        };
        match self
            .packages
            .iter()
            .chain([&self.suite])
            .find(|p| !valid(p))
        {
            Some(bad) => Err(RootfsError::BadPackage(bad.clone())),
            None => Ok(()),
        }
    }
}

/// The root `spec` names, made now unless the cache has it.
pub fn build(cache: &Path, spec: &RootSpec) -> Result<PathBuf, RootfsError> {
    spec.check()?;
    let roots = roots_dir(cache);
    let dir = roots.join(spec.name());
    if dir.is_dir() {
        return Ok(dir);
    }
    let mmdebstrap = find_program("mmdebstrap").ok_or(RootfsError::NoMmdebstrap(spec.arch))?;
    if spec.arch != Arch::host() && !can_run(spec.arch, Path::new(BINFMT_MISC)) {
        return Err(RootfsError::NoEmulation { arch: spec.arch });
    }
    let io = |action: String| move |source| RootfsError::Io { action, source };
    std::fs::create_dir_all(&roots).map_err(io(format!("create {}", roots.display())))?;
    // mmdebstrap writes here; only a finished root is renamed into place.
    let staging = roots.join(format!(".{}.partial", spec.name()));
    let _ = std::fs::remove_dir_all(&staging);
    let status = Command::new(mmdebstrap)
        .args(spec.mmdebstrap_args(&staging))
        .status()
        .map_err(io("run mmdebstrap".into()))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(RootfsError::Failed { status });
    }
    std::fs::rename(&staging, &dir).map_err(io(format!("move the root to {}", dir.display())))?;
    Ok(dir)
}

/// Where the kernel lists the interpreters it runs foreign programs with.
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Whether the kernel hands `arch`'s programs to an enabled qemu-user interpreter.
fn can_run(arch: Arch, binfmt_misc: &Path) -> bool {
    let entry = binfmt_misc.join(format!("qemu-{}", arch.uname()));
    std::fs::read_to_string(entry).is_ok_and(|text| text.lines().next() == Some("enabled"))
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(packages: &[&str]) -> RootSpec {
        RootSpec {
            arch: Arch::Aarch64,
            suite: Arch::Aarch64.debian_suite().into(),
            packages: packages.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_big_endian_ppc64_root_is_refused_before_mmdebstrap_saying_static_programs_run() {
        let spec = RootSpec {
            arch: Arch::Ppc64,
            suite: Arch::Ppc64.debian_suite().into(),
            packages: Vec::new(),
        };
        let error = build(Path::new("/nonexistent-cache"), &spec).unwrap_err();
        assert!(matches!(error, RootfsError::NoUserland(Arch::Ppc64)));
        assert!(error.to_string().contains("static programs"), "{error}");
    }

    #[test]
    fn mmdebstrap_makes_a_minbase_root_of_the_architecture_with_the_packages() {
        let args = spec(&["strace", "kmod"]).mmdebstrap_args(Path::new("/c/roots/x"));
        assert_eq!(
            args,
            [
                "--variant=minbase",
                "--arch=arm64",
                "--include=strace,kmod",
                "bookworm",
                "/c/roots/x"
            ]
            .map(OsString::from)
        );
        assert_eq!(spec(&[]).mmdebstrap_args(Path::new("/r")).len(), 4);
    }

    #[test]
    fn riscv64_roots_come_from_debian_13_which_has_riscv64() {
        assert_eq!(Arch::Riscv64.debian_suite(), "trixie");
        assert_eq!(Arch::S390x.debian_suite(), "bookworm");
    }

    #[test]
    fn the_name_follows_what_goes_in_but_not_the_packages_order() {
        let plain = spec(&[]).name();
        assert!(plain.starts_with("debian-bookworm-arm64-"), "{plain}");
        assert_eq!(spec(&["a1", "b2"]).name(), spec(&["b2", "a1", "a1"]).name());
        assert_ne!(spec(&["a1"]).name(), plain);
        let amd64 = RootSpec {
            arch: Arch::X86_64,
            ..spec(&[])
        };
        assert_ne!(amd64.name(), plain);
    }

    #[test]
    fn package_names_that_would_be_options_are_refused() {
        for bad in ["--hook-dir=/x", "a,b", "x y", "../x"] {
            let error = spec(&[bad]).check().unwrap_err().to_string();
            assert!(error.contains("not a Debian package name"), "{error}");
        }
        assert!(spec(&["libc6-dev", "g++", "python3.11"]).check().is_ok());
    }

    #[test]
    fn a_cached_root_is_returned_without_building() {
        let cache = tempfile::tempdir().unwrap();
        let wanted = spec(&[]);
        let dir = roots_dir(cache.path()).join(wanted.name());
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        assert_eq!(build(cache.path(), &wanted).unwrap(), dir);
    }

    #[test]
    fn emulation_is_known_from_binfmt_misc() {
        let binfmt = tempfile::tempdir().unwrap();
        assert!(!can_run(Arch::Aarch64, binfmt.path()));
        let entry = binfmt.path().join("qemu-aarch64");
        std::fs::write(
            &entry,
            "disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64\n",
        )
        .unwrap();
        assert!(!can_run(Arch::Aarch64, binfmt.path()));
        std::fs::write(
            &entry,
            "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64\n",
        )
        .unwrap();
        assert!(can_run(Arch::Aarch64, binfmt.path()));
    }
}
