//! Builds vmlane's FreeBSD init and relay from `init/` with the system's clang and lld.
//!
//! There is no FreeBSD sysroot on the hosts vmlane builds on, so both are freestanding C that
//! only needs a cross-capable clang. Hosts without clang/lld still build the crate: the
//! programs are then replaced by empty files and `init_binary()` and `relay_binary()` report
//! why.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs: their source in `init/` and the built file's name inside `OUT_DIR`, which
/// `src/lib.rs` includes.
const PROGRAMS: [(&str, &str); 2] = [
    ("init.c", "vmlane-freebsd-init"),
    ("relay.c", "vmlane-freebsd-relay"),
];

/// ELF `e_ident[EI_OSABI]` value the FreeBSD kernel brands as FreeBSD.
const ELFOSABI_FREEBSD: u8 = 9;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let init_dir = manifest_dir.join("init");

    println!("cargo:rerun-if-changed={}", init_dir.display());
    let (clang, lld) = match vmlane_clang_build::find_tools() {
        Ok(tools) => (tools.clang, tools.lld),
        Err(missing) => {
            // include_bytes! needs a file even when there is nothing to include.
            for (_, output) in PROGRAMS {
                fs::write(out_dir.join(output), b"").expect("write a placeholder program");
            }
            println!(
                "cargo:rustc-env=VMLANE_FREEBSD_INIT_MISSING=vmlane's FreeBSD init and relay \
                 were not built: {missing}"
            );
            return;
        }
    };
    for (source, output) in PROGRAMS {
        build(&clang, &lld, &init_dir.join(source), &out_dir.join(output));
    }
}

/// Compiles and links `source` into the static FreeBSD executable `output`.
fn build(clang: &Path, lld: &Path, source: &Path, output: &Path) {
    let staging = output.with_extension("tmp");
    let result = Command::new(clang)
        .args([
            "--target=x86_64-unknown-freebsd15.0",
            "-std=c11",
            "-ffreestanding",
            "-nostdlib",
            "-nostdinc",
            "-static",
            "-fno-stack-protector",
            "-fno-pic",
            "-O2",
            "-fomit-frame-pointer",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-ffunction-sections",
            "-fdata-sections",
            "-Wall",
            "-Wextra",
            "-fuse-ld=lld",
        ])
        .arg(arg_with("--ld-path=", lld))
        .args([
            "-Wl,--gc-sections",
            "-Wl,--build-id=none",
            "-Wl,-z,noexecstack",
            "-Wl,-z,max-page-size=4096",
            "-s",
        ])
        .arg("-o")
        .arg(&staging)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", clang.display()));
    let name = source.display();
    if !result.status.success() {
        panic!(
            "building {name} with {} failed ({}):\n{}{}",
            clang.display(),
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }

    // Warnings do not fail the build (a newer clang may add some), but they should be seen.
    for line in String::from_utf8_lossy(&result.stderr).lines() {
        println!("cargo:warning={name}: {line}");
    }

    let mut elf = fs::read(&staging).expect("read the built program");
    assert!(
        elf.len() > 16 && elf[..4] == *b"\x7fELF" && elf[4] == 2,
        "clang did not produce an ELF64 file"
    );
    // The FreeBSD kernel brands executables by EI_OSABI (byte 7); clang's FreeBSD target sets
    // it, but an unbranded binary would be rejected, so make sure.
    elf[7] = ELFOSABI_FREEBSD;
    fs::write(output, &elf).expect("write the built program");
    let _ = fs::remove_file(&staging);
}

/// `prefix` followed by `path`, without assuming the path is UTF-8.
fn arg_with(prefix: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(prefix);
    arg.push(path);
    arg
}
