//! Which Debian package holds the kernel of an architecture, and where its image is inside:
//! pure decisions, one place for every architecture's names.

use vmlane_spec::Arch;

/// What `vmlane kernel fetch` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The guest architecture.
    pub arch: Arch,
    /// Debian's release to take it from (`bookworm`, `trixie`).
    pub suite: String,
    /// The flavour after the architecture's name (`cloud` for `linux-image-cloud-amd64`).
    pub flavour: Option<String>,
}

/// How a package's image becomes what vmlane boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// An x86 bzImage (`boot/vmlinuz-*`); its uncompressed vmlinux is extracted beside it.
    BzImage,
    /// An arm64 `Image` (`boot/vmlinuz-*`), gzip-compressed in some releases.
    Arm64Image,
    /// s390x's compressed image (`boot/vmlinuz-*`), booted as it is.
    S390Image,
    /// The file Debian calls `boot/vmlinux-*`: RISC-V's raw Image, POWER's ELF kernel.
    Vmlinux,
}

impl Wanted {
    /// Debian's metapackage that depends on the newest kernel of this flavour.
    pub fn metapackage(&self) -> Result<String, String> {
        let base = match self.arch {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "powerpc64le",
            Arch::Ppc64 => {
                return Err("Debian has no ppc64 (big-endian) kernel: build one with `vmlane kernel build --arch ppc64 --debian`".into())
            }
        };
        Ok(match &self.flavour {
            Some(flavour) => format!("linux-image-{flavour}-{base}"),
            None => format!("linux-image-{base}"),
        })
    }

    /// The image's kind in the package.
    pub fn image_kind(&self) -> ImageKind {
        match self.arch {
            Arch::X86_64 => ImageKind::BzImage,
            Arch::Aarch64 => ImageKind::Arm64Image,
            Arch::S390x => ImageKind::S390Image,
            Arch::Riscv64 | Arch::Ppc64le | Arch::Ppc64 => ImageKind::Vmlinux,
        }
    }

    /// The apt source lines of its own apt: the suite and, for its fixes, the suite's security
    /// archive.
    pub fn sources(&self, mirror: &str, security: &str) -> String {
        let arch = self.arch.debian();
        let suite = &self.suite;
        format!(
            "deb [arch={arch}] {mirror} {suite} main\n\
             deb [arch={arch}] {security} {suite}-security main\n"
        )
    }
}

impl ImageKind {
    /// The package's file for `release`, relative to the unpacked package.
    pub fn file_in_package(self, release: &str) -> String {
        match self {
            ImageKind::Vmlinux => format!("boot/vmlinux-{release}"),
            _ => format!("boot/vmlinuz-{release}"),
        }
    }
}

/// The kernel package a metapackage's `apt-cache depends` output names:
/// `  Depends: linux-image-6.1.0-57-amd64`.
pub fn kernel_package(depends: &str) -> Option<&str> {
    depends.lines().find_map(|line| {
        let name = line.trim().strip_prefix("Depends: ")?;
        let name = name.split(':').next()?.trim();
        let version = name.strip_prefix("linux-image-")?;
        version
            .starts_with(|c: char| c.is_ascii_digit())
            .then_some(name)
    })
}

/// The release a kernel package carries: `linux-image-6.1.0-57-amd64` → `6.1.0-57-amd64`.
pub fn release_of(package: &str) -> Option<&str> {
    package
        .strip_prefix("linux-image-")
        .filter(|release| !release.is_empty() && !release.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(arch: Arch, flavour: Option<&str>) -> Wanted {
        Wanted {
            arch,
            suite: arch.debian_suite().into(),
            flavour: flavour.map(Into::into),
        }
    }

    #[test]
    fn each_architecture_has_its_debian_metapackage_and_image() {
        for (arch, flavour, meta, kind, suite) in [
            (
                Arch::X86_64,
                None,
                "linux-image-amd64",
                ImageKind::BzImage,
                "bookworm",
            ),
            (
                Arch::X86_64,
                Some("cloud"),
                "linux-image-cloud-amd64",
                ImageKind::BzImage,
                "bookworm",
            ),
            (
                Arch::Aarch64,
                None,
                "linux-image-arm64",
                ImageKind::Arm64Image,
                "bookworm",
            ),
            (
                Arch::S390x,
                None,
                "linux-image-s390x",
                ImageKind::S390Image,
                "bookworm",
            ),
            (
                Arch::Riscv64,
                None,
                "linux-image-riscv64",
                ImageKind::Vmlinux,
                "trixie",
            ),
            (
                Arch::Ppc64le,
                None,
                "linux-image-powerpc64le",
                ImageKind::Vmlinux,
                "bookworm",
            ),
        ] {
            let wanted = wanted(arch, flavour);
            assert_eq!(wanted.metapackage().unwrap(), meta);
            assert_eq!(wanted.image_kind(), kind, "{arch:?}");
            assert_eq!(wanted.suite, suite, "{arch:?}");
        }
        assert_eq!(
            ImageKind::Vmlinux.file_in_package("6.12.117+deb13-riscv64"),
            "boot/vmlinux-6.12.117+deb13-riscv64"
        );
        assert_eq!(
            ImageKind::BzImage.file_in_package("6.1.0-57-amd64"),
            "boot/vmlinuz-6.1.0-57-amd64"
        );
    }

    #[test]
    fn big_endian_ppc64_is_refused_naming_the_build_that_makes_one() {
        let refusal = wanted(Arch::Ppc64, None).metapackage().unwrap_err();
        assert!(
            refusal.contains("vmlane kernel build --arch ppc64"),
            "{refusal}"
        );
    }

    #[test]
    fn the_own_apt_reads_the_suite_and_its_security_fixes_of_one_architecture() {
        let sources = wanted(Arch::Ppc64le, None).sources(
            "http://deb.debian.org/debian",
            "http://deb.debian.org/debian-security",
        );
        assert_eq!(
            sources,
            "deb [arch=ppc64el] http://deb.debian.org/debian bookworm main\n\
             deb [arch=ppc64el] http://deb.debian.org/debian-security bookworm-security main\n"
        );
    }

    #[test]
    fn the_kernel_package_is_the_versioned_dependency() {
        let depends = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n  Depends: apt\n";
        assert_eq!(kernel_package(depends), Some("linux-image-6.1.0-57-amd64"));
        let foreign = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-57-arm64:arm64\n";
        assert_eq!(kernel_package(foreign), Some("linux-image-6.1.0-57-arm64"));
        assert_eq!(
            kernel_package("linux-image-amd64\n  Depends: linux-image-cloud\n"),
            None
        );
        assert_eq!(
            release_of("linux-image-6.1.0-57-amd64"),
            Some("6.1.0-57-amd64")
        );
        assert_eq!(release_of("linux-image-"), None);
    }
}
