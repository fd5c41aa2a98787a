//! Builds the test kernels with the system's clang and ld.lld: the PVH one from `pvh/`, the
//! native one from `native/`, both with `common/`. Missing tools do not fail the build: the
//! kernel functions then say why, and the tests that need a kernel skip.

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

/// `e_ident[EI_OSABI]`, and the FreeBSD brand FreeBSD's own linker puts there.
const EI_OSABI: usize = 7;
const ELFOSABI_FREEBSD: u8 = 9;

struct Tools {
    clang: &'static str,
    lld: &'static str,
    /// `-I` for `common.h`.
    include: PathBuf,
    src: PathBuf,
    out: PathBuf,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let clang = find_tool(&["clang-19", "clang"]);
    let lld = find_tool(&["ld.lld-19", "ld.lld"]);
    let (Some(clang), Some(lld)) = (clang, lld) else {
        let missing = match (clang, lld) {
            (None, None) => "clang and ld.lld",
            (None, Some(_)) => "clang",
            _ => "ld.lld",
        };
        // A path that does not exist makes cargo rerun this script on every build, so the
        // tools are picked up as soon as they are installed.
        for tool in ["/usr/bin/clang-19", "/usr/bin/ld.lld-19"] {
            println!("cargo:rerun-if-changed={tool}");
        }
        println!(
            "cargo:rustc-env=VMLANE_TESTKERNEL_MISSING=the test kernels were not built: no \
             {missing} found (install the Debian packages clang-19 lld-19, then rebuild \
             vmlane-testkernel)"
        );
        return;
    };

    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let tools = Tools {
        clang,
        lld,
        include: src.join("common"),
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
    assemble(tools.clang, &pvh.join("entry.S"), &entry_o);
    let linked = tools.out.join("pvh-kernel.elf");
    let objects = [entry_o, kernel_o, common_o];
    link(tools, &pvh.join("kernel.ld"), &objects, &linked);
    brand_freebsd(&linked, &tools.out.join("pvh-test-kernel"));
}

fn build_native(tools: &Tools) {
    let native = tools.src.join("native");
    let kernel_o = tools.out.join("native-kernel.o");
    compile_64(tools, &native.join("kernel.c"), &kernel_o);
    let common_o = tools.out.join("native-common.o");
    compile_64(tools, &tools.include.join("common.c"), &common_o);
    let entry_o = tools.out.join("native-entry.o");
    assemble(tools.clang, &native.join("entry.S"), &entry_o);
    let linked = tools.out.join("native-kernel.elf");
    let objects = [entry_o, kernel_o, common_o];
    link(tools, &native.join("kernel.ld"), &objects, &linked);
    brand_freebsd(&linked, &tools.out.join("native-test-kernel"));
}

/// C -> i686 assembly -> an x86-64 object, the assembly unchanged under `.code32`.
fn compile_32(tools: &Tools, source: &Path, object: &Path) {
    let asm32 = object.with_extension("i686.s");
    run(Command::new(tools.clang)
        .arg(PVH_TARGET)
        .args(CFLAGS)
        .arg("-I")
        .arg(&tools.include)
        .arg("-S")
        .arg(source)
        .arg("-o")
        .arg(&asm32));
    let asm = fs::read_to_string(&asm32).expect("reading compiled C");
    let asm64 = object.with_extension("s");
    fs::write(&asm64, format!(".code32\n{asm}")).expect("writing the .code32 assembly");
    assemble(tools.clang, &asm64, object);
}

fn compile_64(tools: &Tools, source: &Path, object: &Path) {
    run(Command::new(tools.clang)
        .args(NATIVE_CFLAGS)
        .args(CFLAGS)
        .arg("-I")
        .arg(&tools.include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object));
}

/// The first of `names` that runs.
fn find_tool(names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
    })
}

fn assemble(clang: &str, source: &Path, object: &Path) {
    run(Command::new(clang)
        .arg(OBJECT_TARGET)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object));
}

/// Links with `script`, keeping the symbol table.
fn link(tools: &Tools, script: &Path, objects: &[PathBuf], output: &Path) {
    run(Command::new(tools.lld)
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
        .arg(output));
}

/// Runs a build step; its failure fails the build, with what the tool said.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!("{command:?} failed ({}):\n{stderr}", output.status);
    }
    // Warnings are shown, not hidden: the kernels are small enough to keep free of them.
    for line in stderr.lines() {
        println!("cargo:warning={line}");
    }
}

/// Copies the kernel with the FreeBSD OS ABI in its ELF header, which ld.lld leaves as SysV.
fn brand_freebsd(linked: &Path, image: &Path) {
    let mut bytes = fs::read(linked).expect("reading the linked kernel");
    assert!(
        bytes.starts_with(b"\x7fELF") && bytes.len() > EI_OSABI,
        "ld.lld wrote something other than an ELF file"
    );
    bytes[EI_OSABI] = ELFOSABI_FREEBSD;
    fs::write(image, bytes).expect("writing the kernel");
}
