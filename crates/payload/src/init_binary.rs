//! The guest init, built static by `build.rs` and embedded so every vmlane binary carries the
//! init that speaks its own protocol version.

use crate::PayloadError;
use vmlane_spec::Arch;

/// The static `vmlane-init` executable, placed at `/init` in every initramfs.
pub static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vmlane-init"));

/// The inits `build.rs` built for other architectures: those whose cross toolchain it found.
static FOREIGN: &[(Arch, &[u8])] = include!(concat!(env!("OUT_DIR"), "/foreign_inits.rs"));

/// The static init for a guest of `arch`: [`INIT`] for the host's own architecture.
///
/// Another architecture's init exists only if its cross toolchain was installed when vmlane was
/// built; without it the error says what to install.
pub fn init_for(arch: Arch) -> Result<&'static [u8], PayloadError> {
    if arch == Arch::host() {
        return Ok(INIT);
    }
    FOREIGN
        .iter()
        .find(|(built, _)| *built == arch)
        .map(|(_, init)| *init)
        .ok_or(PayloadError::NoGuestInit { arch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::elf;

    /// Checks that `init` is a static ELF64 executable for `arch`, in its byte order. Read by
    /// hand: embedded bytes are not aligned as `object`'s header types need.
    fn assert_static_elf_for(init: &[u8], arch: Arch) {
        let (machine, order) = match arch {
            Arch::X86_64 => (elf::EM_X86_64, elf::ELFDATA2LSB),
            Arch::Aarch64 => (elf::EM_AARCH64, elf::ELFDATA2LSB),
            Arch::S390x => (elf::EM_S390, elf::ELFDATA2MSB),
            Arch::Riscv64 => (elf::EM_RISCV, elf::ELFDATA2LSB),
            Arch::Ppc64le => (elf::EM_PPC64, elf::ELFDATA2LSB),
            Arch::Ppc64 => (elf::EM_PPC64, elf::ELFDATA2MSB),
        };
        let big = order == elf::ELFDATA2MSB;
        let at = |at: usize, len: usize| {
            let mut bytes = init[at..at + len].to_vec();
            if big {
                bytes.reverse();
            }
            bytes.resize(8, 0);
            u64::from_le_bytes(bytes.try_into().unwrap())
        };
        let u16_at = |offset| at(offset, 2) as u16;
        let u32_at = |offset| at(offset, 4) as u32;
        let u64_at = |offset| at(offset, 8);
        assert_eq!(init[..4], elf::ELFMAG, "{arch}: an ELF file");
        assert_eq!(init[4], elf::ELFCLASS64, "{arch}: 64-bit");
        assert_eq!(init[5], order, "{arch}: its byte order");
        assert_eq!(u16_at(18), machine, "{arch}: e_machine");
        let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54), u16_at(56));
        assert_eq!(phentsize, 56, "{arch}: ELF64 program headers");
        let kinds: Vec<u32> = (0..usize::from(phnum))
            .map(|i| u32_at(phoff + i * 56))
            .collect();
        assert!(kinds.contains(&elf::PT_LOAD), "{arch}: something to load");
        assert!(
            !kinds.contains(&elf::PT_INTERP),
            "{arch}: static, no interpreter"
        );
    }

    #[test]
    fn the_host_gets_the_embedded_init() {
        let init = init_for(Arch::host()).unwrap();
        assert!(std::ptr::eq(init, INIT));
        assert_static_elf_for(init, Arch::host());
    }

    #[test]
    fn a_foreign_init_is_a_static_elf_for_its_arch_or_an_error_saying_what_to_install() {
        for arch in Arch::ALL.into_iter().filter(|&arch| arch != Arch::host()) {
            match init_for(arch) {
                Ok(init) => {
                    println!("{arch}: built, {} bytes", init.len());
                    assert_static_elf_for(init, arch);
                    assert_ne!(init, INIT);
                }
                Err(error) => {
                    println!("{arch}: not built: {error}");
                    assert!(matches!(error, PayloadError::NoGuestInit { arch: a } if a == arch));
                    let message = error.to_string();
                    for name in [
                        format!("gcc-{}", arch.gnu_triple().replace('_', "-")),
                        format!("libc6-dev-{}-cross", arch.debian()),
                        format!("rustup target add {}", arch.rust_target()),
                    ] {
                        assert!(message.contains(&name), "{name} in {message}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_missing_arm64_init_error_names_the_packages_and_the_setup() {
        let message = PayloadError::NoGuestInit {
            arch: Arch::Aarch64,
        }
        .to_string();
        assert_eq!(
            message,
            "this vmlane was built without the arm64 guest init: install gcc-aarch64-linux-gnu, \
             libc6-dev-arm64-cross and a Rust std for aarch64-unknown-linux-gnu (`rustup target \
             add aarch64-unknown-linux-gnu`, or Debian's rustc-web with \
             libstd-rust-web-dev:arm64 or rust-web-src to build one), then rebuild vmlane; \
             `scripts/setup --arch arm64` does all of it"
        );
    }

    #[test]
    fn the_missing_amd64_init_error_uses_debians_package_names() {
        let message = PayloadError::NoGuestInit { arch: Arch::X86_64 }.to_string();
        for name in [
            "gcc-x86-64-linux-gnu",
            "libc6-dev-amd64-cross",
            "rustup target add x86_64-unknown-linux-gnu",
            "libstd-rust-web-dev:amd64",
        ] {
            assert!(message.contains(name), "{name} in {message}");
        }
    }
}
