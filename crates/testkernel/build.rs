//! Builds the test kernels with the system's clang and ld.lld: the PVH one from `pvh/`, the
//! native one from `native/`, both with `common/` and the FreeBSD init's framing
//! (`../guest-freebsd/init/frame.h`), so they send their results as the init does. Missing tools
//! do not fail the build: the kernel functions then say why, and the tests that need a kernel
//! skip.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: &[&str] = &[
    "common/common.c",
    "common/common.h",
    "pvh/kernel.c",
    "pvh/entry.S",
    "pvh/kernel.ld",
    "native/kernel.c",
    "native/entry.S",
    "native/kernel.ld",
    "../guest-freebsd/init/frame.h",
];

/// Flags for C in both kernels.
const CFLAGS: &[&str] = &[
    "-ffreestanding",
    "-nostdlib",
    "-nostdinc",
    "-fno-pic",
    "-fno-stack-protector",
    "-mno-sse",
    "-mno-mmx",
    "-O2",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-std=c11",
    "-Wall",
    "-Wextra",
];

/// The PVH kernel's code is 32-bit, as QEMU's PVH entry is: C compiled for i686.
const PVH_TARGET: &str = "--target=i686-unknown-none-elf";

/// The native kernel is 64-bit code linked at KERNBASE, as FreeBSD's amd64 kernel is. Frame
/// pointers and real calls keep its backtrace walkable.
const NATIVE_CFLAGS: &[&str] = &[
    "--target=x86_64-unknown-none-elf",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-fno-omit-frame-pointer",
    "-mno-omit-leaf-frame-pointer",
    "-fno-optimize-sibling-calls",
];

/// The objects are x86-64 ELF, as FreeBSD's amd64 kernel is: vmlane accepts no other kind of
/// kernel. The PVH kernel's 32-bit code goes in under `.code32`.
const OBJECT_TARGET: &str = "--target=x86_64-unknown-none-elf";

struct Tools {
    clang: PathBuf,
    lld: PathBuf,
    /// `-I` for `common.h`.
    include: PathBuf,
    /// `-I` for the init's `frame.h`.
    frame_include: PathBuf,
    src: PathBuf,
    out: PathBuf,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let found = match vmlane_clang_build::find_tools() {
        Ok(found) => found,
        Err(missing) => {
            println!(
                "cargo:rustc-env=VMLANE_TESTKERNEL_MISSING=the test kernels were not built: \
                 {missing}, then rebuild vmlane-testkernel"
            );
            return;
        }
    };

    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let tools = Tools {
        clang: found.clang,
        lld: found.lld,
        include: src.join("common"),
        frame_include: src.join("../guest-freebsd/init"),
        out: PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")),
        src,
    };
    build_pvh(&tools);
    build_native(&tools);
}

fn build_pvh(tools: &Tools) {
    let pvh = tools.src.join("pvh");
    let kernel_o = tools.out.join("pvh-kernel.o");
    compile_32(tools, &pvh.join("kernel.c"), &kernel_o);
    let common_o = tools.out.join("pvh-common.o");
    compile_32(tools, &tools.include.join("common.c"), &common_o);
    let entry_o = tools.out.join("pvh-entry.o");
    assemble(&tools.clang, &pvh.join("entry.S"), &entry_o);
    let linked = tools.out.join("pvh-kernel.elf");
    let objects = [entry_o, kernel_o, common_o];
    link(tools, &pvh.join("kernel.ld"), &objects, &linked);
    vmlane_clang_build::brand_freebsd(&linked, &tools.out.join("pvh-test-kernel"));
}

fn build_native(tools: &Tools) {
    let native = tools.src.join("native");
    let kernel_o = tools.out.join("native-kernel.o");
    compile_64(tools, &native.join("kernel.c"), &kernel_o);
    let common_o = tools.out.join("native-common.o");
    compile_64(tools, &tools.include.join("common.c"), &common_o);
    let entry_o = tools.out.join("native-entry.o");
    assemble(&tools.clang, &native.join("entry.S"), &entry_o);
    let linked = tools.out.join("native-kernel.elf");
    let objects = [entry_o, kernel_o, common_o];
    link(tools, &native.join("kernel.ld"), &objects, &linked);
    vmlane_clang_build::brand_freebsd(&linked, &tools.out.join("native-test-kernel"));
}

/// C -> i686 assembly -> an x86-64 object, the assembly unchanged under `.code32`.
fn compile_32(tools: &Tools, source: &Path, object: &Path) {
    let asm32 = object.with_extension("i686.s");
    vmlane_clang_build::run(
        Command::new(&tools.clang)
            .arg(PVH_TARGET)
            .args(CFLAGS)
            .arg("-I")
            .arg(&tools.include)
            .arg("-I")
            .arg(&tools.frame_include)
            .arg("-S")
            .arg(source)
            .arg("-o")
            .arg(&asm32),
    );
    let asm = fs::read_to_string(&asm32).expect("reading compiled C");
    let asm64 = object.with_extension("s");
    fs::write(&asm64, format!(".code32\n{asm}")).expect("writing the .code32 assembly");
    assemble(&tools.clang, &asm64, object);
}

fn compile_64(tools: &Tools, source: &Path, object: &Path) {
    vmlane_clang_build::run(
        Command::new(&tools.clang)
            .args(NATIVE_CFLAGS)
            .args(CFLAGS)
            .arg("-I")
            .arg(&tools.include)
            .arg("-I")
            .arg(&tools.frame_include)
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(object),
    );
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

/// Links with `script`, keeping the symbol table.
fn link(tools: &Tools, script: &Path, objects: &[PathBuf], output: &Path) {
    vmlane_clang_build::run(
        Command::new(&tools.lld)
            .args([
                "-nostdlib",
                "-static",
                "--build-id=none",
                "-z",
                "max-page-size=4096",
            ])
            .arg("-T")
            .arg(script)
            .args(objects)
            .arg("-o")
            .arg(output),
    );
}
