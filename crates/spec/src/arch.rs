//! The guest's CPU architecture, named as `uname -m` names it.

use std::fmt;
use std::str::FromStr;

/// A CPU architecture vmlane boots guests of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// x86-64 (`amd64` to Debian).
    X86_64,
    /// 64-bit Arm (`arm64` to Debian and the kernel's `ARCH=`).
    Aarch64,
    /// IBM Z (`s390x` to Debian, `s390` to the kernel's `ARCH=`): the big-endian guest.
    S390x,
    /// 64-bit RISC-V (`riscv64` to Debian, `riscv` to the kernel's `ARCH=`).
    Riscv64,
    /// Little-endian 64-bit POWER (`ppc64el` to Debian, `powerpc` to the kernel's `ARCH=`).
    Ppc64le,
    /// Big-endian 64-bit POWER (`ppc64`): no Debian release has its userland, so its guests
    /// run static programs only.
    Ppc64,
}

impl Arch {
    /// Every architecture, in the order help texts list them.
    pub const ALL: [Arch; 6] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Ppc64,
        Arch::Ppc64le,
        Arch::Riscv64,
        Arch::S390x,
    ];

    /// The architecture vmlane itself was built for: the default guest's.
    pub const fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The name `uname -m` prints in a guest of this architecture.
    pub const fn uname(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::Ppc64 => "ppc64",
        }
    }

    /// Debian's name, which is also the kernel's `ARCH=` for arm64.
    pub const fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390x",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64el",
            Arch::Ppc64 => "ppc64",
        }
    }

    /// The Debian release vmlane takes this architecture's kernels and roots from: bookworm,
    /// or Debian 13 for riscv64, which bookworm does not have.
    pub const fn debian_suite(self) -> &'static str {
        match self {
            Arch::Riscv64 => "trixie",
            _ => "bookworm",
        }
    }

    /// Rust's target triple for a static Linux program of this architecture.
    pub const fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
            Arch::S390x => "s390x-unknown-linux-gnu",
            Arch::Riscv64 => "riscv64gc-unknown-linux-gnu",
            Arch::Ppc64le => "powerpc64le-unknown-linux-gnu",
            Arch::Ppc64 => "powerpc64-unknown-linux-gnu",
        }
    }

    /// The GNU triple of Debian's cross toolchain for it (`<triple>-gcc`, `/usr/<triple>`).
    pub const fn gnu_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
            Arch::S390x => "s390x-linux-gnu",
            Arch::Riscv64 => "riscv64-linux-gnu",
            Arch::Ppc64le => "powerpc64le-linux-gnu",
            Arch::Ppc64 => "powerpc64-linux-gnu",
        }
    }

    /// Whether the architecture stores integers most significant byte first.
    pub const fn big_endian(self) -> bool {
        matches!(self, Arch::S390x | Arch::Ppc64)
    }

    /// Whether Debian has a userland of this architecture, for `--root` and `rootfs build`.
    pub const fn has_debian_userland(self) -> bool {
        !matches!(self, Arch::Ppc64)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.debian())
    }
}

/// An architecture name vmlane does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownArch(pub String);

impl fmt::Display for UnknownArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = Arch::ALL.iter().map(|arch| arch.debian()).collect();
        write!(
            f,
            "unknown architecture `{}`: vmlane boots {}",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownArch {}

impl FromStr for Arch {
    type Err = UnknownArch;

    /// Debian's, `uname -m`'s and the kernel's names alike.
    fn from_str(name: &str) -> Result<Arch, UnknownArch> {
        match name {
            "x86_64" | "x86-64" | "amd64" | "x86" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            "s390x" | "s390" => Ok(Arch::S390x),
            "riscv64" | "riscv" => Ok(Arch::Riscv64),
            "ppc64le" | "ppc64el" | "powerpc64le" => Ok(Arch::Ppc64le),
            "ppc64" | "powerpc64" => Ok(Arch::Ppc64),
            other => Err(UnknownArch(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_an_architecture_parses_to_it() {
        for arch in Arch::ALL {
            assert_eq!(arch.uname().parse::<Arch>(), Ok(arch));
            assert_eq!(arch.debian().parse::<Arch>(), Ok(arch));
            assert_eq!(arch.to_string().parse::<Arch>(), Ok(arch));
        }
        assert_eq!("x86".parse::<Arch>(), Ok(Arch::X86_64));
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_known_ones() {
        let error = "sparc64".parse::<Arch>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown architecture `sparc64`: vmlane boots amd64, arm64, ppc64, ppc64el, riscv64, s390x"
        );
    }

    #[test]
    fn the_host_is_the_architecture_vmlane_was_built_for() {
        assert_eq!(Arch::host().uname(), std::env::consts::ARCH);
    }
}
