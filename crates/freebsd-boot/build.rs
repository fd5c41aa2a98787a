//! Builds the boot stub from `stub/` with the system's clang and ld.lld. Missing tools do not
//! fail the build: `stub_binary()` then says why, and the tests that need the stub skip.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
mod layout {
    include!("src/layout.rs");
}

/// Every constant of `src/layout.rs`, for the C code and the linker script.
const LAYOUT: &[(&str, u64)] = &[
    ("STUB_BASE", layout::STUB_BASE),
    ("KERNEL_MIN", layout::KERNEL_MIN),
    ("MAPPED_LIMIT", layout::MAPPED_LIMIT),
    ("PAGE_SIZE", layout::PAGE_SIZE),
    ("CMDLINE_MAX", layout::CMDLINE_MAX),
    ("ENV_MAX", layout::ENV_MAX),
    ("METADATA_MAX", layout::METADATA_MAX),
    ("MEMMAP_MAX", layout::MEMMAP_MAX),
    ("SEGMENTS_MAX", layout::SEGMENTS_MAX),
    ("MODULES_MAX", layout::MODULES_MAX),
    ("CONTAINER_HEADER_SIZE", layout::CONTAINER_HEADER_SIZE),
    ("CONTAINER_ENTRY_SIZE", layout::CONTAINER_ENTRY_SIZE),
    ("CONTAINER_NAME_LEN", layout::CONTAINER_NAME_LEN),
    ("CONTAINER_TYPE_LEN", layout::CONTAINER_TYPE_LEN),
    ("TOP_RESERVE", layout::TOP_RESERVE),
];

const SOURCES: &[&str] = &[
    "stub/boot.c",
    "stub/entry.S",
    "stub/stub.ld",
    "src/layout.rs",
];

/// The C code is 32-bit, as QEMU's PVH entry is: compiled for i686, freestanding.
const CFLAGS: &[&str] = &[
    "--target=i686-unknown-none-elf",
    "-ffreestanding",
    "-nostdlib",
    "-nostdinc",
    "-fno-pic",
    "-fno-stack-protector",
    "-mno-sse",
    "-mno-mmx",
    "-mno-80387",
    "-Os",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
];

/// The objects are x86-64 ELF, so the 64-bit trampoline assembles in place; the 32-bit code
/// goes in under `.code32`.
const OBJECT_TARGET: &str = "--target=x86_64-unknown-none-elf";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let image = out.join("vmlane-freebsd-boot");
    let (clang, lld) = match vmlane_clang_build::find_tools() {
        Ok(tools) => (tools.clang, tools.lld),
        Err(missing) => {
            println!(
                "cargo:rustc-env=VMLANE_FREEBSD_BOOT_MISSING=the FreeBSD boot stub was not \
                 built: {missing}, then rebuild vmlane-freebsd-boot"
            );
            fs::write(&image, b"").expect("writing the placeholder stub");
            return;
        }
    };

    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let stub = src.join("stub");
    check_layout_is_complete(&src.join("src/layout.rs"));
    let mut header = String::from("/* Generated from src/layout.rs by build.rs. */\n");
    for (name, value) in LAYOUT {
        writeln!(header, "#define {name} {value:#x}ull").unwrap();
    }
    fs::write(out.join("layout.h"), header).expect("writing layout.h");

    // boot.c -> i686 assembly -> an x86-64 object, the assembly unchanged under `.code32`.
    let asm32 = out.join("boot-i686.s");
    vmlane_clang_build::run(
        Command::new(&clang)
            .args(CFLAGS)
            .arg("-I")
            .arg(&out)
            .arg("-S")
            .arg(stub.join("boot.c"))
            .arg("-o")
            .arg(&asm32),
    );
    let asm = fs::read_to_string(&asm32).expect("reading the compiled boot.c");
    let asm64 = out.join("boot.s");
    fs::write(&asm64, format!(".code32\n{asm}")).expect("writing boot.s");
    let boot_o = out.join("boot.o");
    assemble(&clang, &asm64, &boot_o);
    let entry_o = out.join("entry.o");
    assemble(&clang, &stub.join("entry.S"), &entry_o);

    let mut link = Command::new(&lld);
    link.args([
        "-nostdlib",
        "-static",
        "--build-id=none",
        "--strip-all",
        "-z",
        "max-page-size=4096",
        "-z",
        "noexecstack",
    ]);
    for name in ["STUB_BASE", "KERNEL_MIN"] {
        let value = LAYOUT.iter().find(|(n, _)| *n == name).unwrap().1;
        link.arg(format!("--defsym={name}={value:#x}"));
    }
    vmlane_clang_build::run(
        link.arg("-T")
            .arg(stub.join("stub.ld"))
            .arg(&entry_o)
            .arg(&boot_o)
            .arg("-o")
            .arg(&image),
    );
}

/// Fails the build when `src/layout.rs` has a constant that `LAYOUT` does not hand on.
fn check_layout_is_complete(path: &Path) {
    let text = fs::read_to_string(path).expect("reading src/layout.rs");
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else {
            continue;
        };
        let name = rest.split(':').next().unwrap_or_default().trim();
        assert!(
            LAYOUT.iter().any(|(n, _)| *n == name),
            "build.rs: add {name} from src/layout.rs to LAYOUT"
        );
    }
}

fn assemble(clang: &Path, source: &Path, object: &Path) {
    vmlane_clang_build::run(
        Command::new(clang)
            .arg(OBJECT_TARGET)
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(object),
    );
}
