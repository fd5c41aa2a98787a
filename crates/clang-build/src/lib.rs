//! What vmlane's build scripts share when they build freestanding code (the FreeBSD init,
//! the boot stub, the test kernels) with the system's clang and lld.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler and linker.
#[derive(Debug, Clone)]
pub struct Tools {
    /// clang, which cross-compiles for every target it knows.
    pub clang: PathBuf,
    /// ld.lld.
    pub lld: PathBuf,
}

/// Debian's versioned names first: they are what `apt-get install clang-19 lld-19` gives.
const CLANG: &[&str] = &["clang-19", "clang"];
const LLD: &[&str] = &["ld.lld-19", "ld.lld"];

/// Finds clang and ld.lld on `PATH`. Without them it tells cargo to rerun the build script
/// once they are installed, and returns what is missing, for the crate to say when used.
pub fn find_tools() -> Result<Tools, String> {
    println!("cargo:rerun-if-env-changed=PATH");
    match (find_tool(CLANG), find_tool(LLD)) {
        (Some(clang), Some(lld)) => {
            // A changed compiler or linker may produce different code.
            println!("cargo:rerun-if-changed={}", clang.display());
            println!("cargo:rerun-if-changed={}", lld.display());
            Ok(Tools { clang, lld })
        }
        (clang, lld) => {
            // A path that does not exist makes cargo rerun the script on every build.
            for tool in ["/usr/bin/clang-19", "/usr/bin/ld.lld-19"] {
                println!("cargo:rerun-if-changed={tool}");
            }
            let missing = match (clang, lld) {
                (None, None) => "clang and ld.lld",
                (None, Some(_)) => "clang",
                _ => "ld.lld",
            };
            Err(format!(
                "no {missing} found on PATH (install the Debian packages clang-19 and lld-19)"
            ))
        }
    }
}

/// The first of `names` found as a file in a `PATH` directory.
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs a build step; its failure fails the build with what the tool said, and its warnings
/// are shown as cargo warnings rather than hidden.
pub fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!("{command:?} failed ({}):\n{stderr}", output.status);
    }
    for line in stderr.lines() {
        println!("cargo:warning={line}");
    }
}

/// `e_ident[EI_OSABI]`, where FreeBSD's kernel looks for its brand.
const EI_OSABI: usize = 7;
const ELFOSABI_FREEBSD: u8 = 9;

/// Copies the ELF file `from` to `to` with the FreeBSD OS ABI in its header, which ld.lld
/// leaves as SysV: FreeBSD's kernel brands executables by it, and vmlane tells FreeBSD
/// kernels by it.
pub fn brand_freebsd(from: &Path, to: &Path) {
    let mut bytes =
        std::fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    assert!(
        bytes.starts_with(b"\x7fELF") && bytes.len() > EI_OSABI,
        "{} is not an ELF file",
        from.display()
    );
    bytes[EI_OSABI] = ELFOSABI_FREEBSD;
    std::fs::write(to, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branding_sets_only_the_os_abi_byte() {
        let dir = std::env::temp_dir().join(format!("vmlane-brand-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (from, to) = (dir.join("a"), dir.join("b"));
        let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
        elf.extend_from_slice(&[0xaa; 8]);
        std::fs::write(&from, &elf).unwrap();
        brand_freebsd(&from, &to);
        let branded = std::fs::read(&to).unwrap();
        assert_eq!(branded[EI_OSABI], ELFOSABI_FREEBSD);
        elf[EI_OSABI] = ELFOSABI_FREEBSD;
        assert_eq!(branded, elf);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tools_are_found_on_path_only() {
        assert!(find_tool(&["vmlane-no-such-tool"]).is_none());
        assert!(find_tool(&["sh"]).is_some());
    }
}
