//! What a Linux build does differently for each architecture it targets: the kernel's name
//! for it, the image it makes, and the cross compiler it takes on a host of another.

use std::ffi::OsString;
use vmlane_spec::Arch;

/// The kernel's `ARCH=` value, also its directory under `arch/`.
pub fn kernel_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86",
        Arch::Aarch64 => "arm64",
        Arch::S390x => "s390",
        Arch::Riscv64 => "riscv",
        Arch::Ppc64le | Arch::Ppc64 => "powerpc",
    }
}

/// The make target that builds the image QEMU boots.
pub fn image_target(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "bzImage",
        // Uncompressed: QEMU's `virt` boots it directly, and it holds the banner vmlane
        // reads the release from.
        Arch::Aarch64 => "Image",
        // QEMU's s390-ccw-virtio loads it at its IPL entry, as it loads Debian's vmlinuz.
        Arch::S390x => "bzImage",
        // As arm64's: uncompressed, loaded by QEMU's `virt` behind OpenSBI.
        Arch::Riscv64 => "Image",
        // The ELF file itself: QEMU's pseries loads it through its firmware's ELF loader.
        Arch::Ppc64le | Arch::Ppc64 => "vmlinux",
    }
}

/// Where that image ends up in the object directory: powerpc's vmlinux is the top-level one.
pub fn image_path(arch: Arch) -> String {
    match arch {
        Arch::Ppc64le | Arch::Ppc64 => image_target(arch).to_string(),
        _ => format!("arch/{}/boot/{}", kernel_arch(arch), image_target(arch)),
    }
}

/// The `CROSS_COMPILE=` prefix of Debian's GNU cross toolchain for `arch`.
pub fn cross_prefix(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux-gnu-",
        Arch::Aarch64 => "aarch64-linux-gnu-",
        Arch::S390x => "s390x-linux-gnu-",
        Arch::Riscv64 => "riscv64-linux-gnu-",
        Arch::Ppc64le => "powerpc64le-linux-gnu-",
        Arch::Ppc64 => "powerpc64-linux-gnu-",
    }
}

/// The Debian package of that toolchain's compiler (it brings the binutils).
pub fn cross_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "gcc-x86-64-linux-gnu",
        Arch::Aarch64 => "gcc-aarch64-linux-gnu",
        Arch::S390x => "gcc-s390x-linux-gnu",
        Arch::Riscv64 => "gcc-riscv64-linux-gnu",
        Arch::Ppc64le => "gcc-powerpc64le-linux-gnu",
        Arch::Ppc64 => "gcc-powerpc64-linux-gnu",
    }
}

/// What the kernel's release gets appended (`LOCALVERSION`), so a build of one tree for two
/// architectures has two releases (`6.1.192` and `6.1.192-arm64`, as Debian names its arm64
/// kernels) and `-k 6.1.192` keeps naming the x86 one. x86 builds keep the plain release
/// their cached names already have.
pub fn release_suffix(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "",
        Arch::Aarch64 => "-arm64",
        Arch::S390x => "-s390x",
        Arch::Riscv64 => "-riscv64",
        Arch::Ppc64le => "-powerpc64le",
        Arch::Ppc64 => "-powerpc64",
    }
}

/// Whether building for `arch` on `host` takes a cross compiler.
pub fn is_cross(arch: Arch, host: Arch) -> bool {
    arch != host
}

/// The make variables that select the architecture: none for a native build of the host's,
/// `ARCH=` for another, with `CROSS_COMPILE=` unless LLVM builds it (clang targets every
/// architecture from `ARCH=` alone); then the release suffix.
pub fn arch_args(arch: Arch, host: Arch, llvm: bool) -> Vec<OsString> {
    let mut args = Vec::new();
    if is_cross(arch, host) {
        args.push(format!("ARCH={}", kernel_arch(arch)).into());
        if !llvm {
            args.push(format!("CROSS_COMPILE={}", cross_prefix(arch)).into());
        }
    }
    let suffix = release_suffix(arch);
    if !suffix.is_empty() {
        args.push(format!("LOCALVERSION={suffix}").into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_native_x86_build_passes_no_architecture() {
        assert!(arch_args(Arch::X86_64, Arch::X86_64, false).is_empty());
        assert!(arch_args(Arch::X86_64, Arch::X86_64, true).is_empty());
    }

    #[test]
    fn an_arm64_build_on_x86_cross_compiles_with_gcc_or_llvm() {
        assert_eq!(
            strings(arch_args(Arch::Aarch64, Arch::X86_64, false)),
            [
                "ARCH=arm64",
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "LOCALVERSION=-arm64"
            ]
        );
        assert_eq!(
            strings(arch_args(Arch::Aarch64, Arch::X86_64, true)),
            ["ARCH=arm64", "LOCALVERSION=-arm64"]
        );
    }

    #[test]
    fn native_arm64_keeps_its_suffix_and_x86_on_arm64_cross_compiles() {
        assert_eq!(
            strings(arch_args(Arch::Aarch64, Arch::Aarch64, false)),
            ["LOCALVERSION=-arm64"]
        );
        assert_eq!(
            strings(arch_args(Arch::X86_64, Arch::Aarch64, false)),
            ["ARCH=x86", "CROSS_COMPILE=x86_64-linux-gnu-"]
        );
    }

    #[test]
    fn each_architecture_installs_its_own_image() {
        assert_eq!(image_path(Arch::X86_64), "arch/x86/boot/bzImage");
        assert_eq!(image_path(Arch::Aarch64), "arch/arm64/boot/Image");
        assert_eq!(
            format!("{}gcc", cross_prefix(Arch::Aarch64)),
            "aarch64-linux-gnu-gcc"
        );
        assert_eq!(cross_package(Arch::Aarch64), "gcc-aarch64-linux-gnu");
    }
}
