//! Builds the guest init as a static binary so the host can embed it into every initramfs.
//!
//! The init needs `crt-static`, which cannot be set for one crate of a workspace without also
//! breaking proc-macros, so it gets its own cargo invocation and target directory.
//!
//! The inits of the other architectures (arm64 guests on an x86-64 host) are built as well when
//! their cross toolchain is installed: a rustc with the target's std, or with std's sources to
//! build one (`-Zbuild-std`, for targets Debian ships no std for), and `<triple>-gcc`
//! to link. Without one that init is left out and `init_for` says what to install.
//! `VMLANE_GUEST_ARCHES` (`arm64`, `none`, ...) names the foreign ones to build instead; then a
//! missing toolchain fails the build.

use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmlane_spec::Arch;

/// The Debian location of cross compilers and of its rustc; watched while one is missing.
const DEBIAN_BIN: &str = "/usr/bin";
/// Debian's rustc (packages rustc-web or rustc), whose std for other targets comes from
/// `libstd-rust-web-dev:<arch>` or `libstd-rust-dev:<arch>`.
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const GUEST_ARCHES: &str = "VMLANE_GUEST_ARCHES";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.join("../..");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target = env::var("TARGET").expect("set by cargo");
    let target_dir = out_dir.join("init-target");

    for watched in ["crates/init", "crates/proto", "crates/spec", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed={GUEST_ARCHES}");
    let wanted = Wanted::from_env();

    let status = init_build(&workspace, &target, &target_dir)
        .status()
        .expect("run cargo to build vmlane-init");
    assert!(status.success(), "building the static vmlane-init failed");

    let built = target_dir.join(&target).join("release/vmlane-init");
    fs::copy(&built, out_dir.join("vmlane-init")).expect("copy vmlane-init into OUT_DIR");

    let host = env::var("CARGO_CFG_TARGET_ARCH")
        .ok()
        .and_then(|name| name.parse::<Arch>().ok());
    let mut foreign = Vec::new();
    for arch in Arch::ALL.into_iter().filter(|&arch| Some(arch) != host) {
        let copied = out_dir.join(format!("vmlane-init-{}", arch.uname()));
        if copied.exists() {
            fs::remove_file(&copied).expect("remove the previous foreign vmlane-init");
        }
        let required = match &wanted {
            Wanted::Found => false,
            Wanted::Only(arches) if arches.contains(&arch) => true,
            Wanted::Only(_) => continue,
        };
        let toolchain = match Toolchain::find(arch) {
            Ok(toolchain) => toolchain,
            Err(missing) => {
                watch(&missing.watch);
                assert!(
                    !required,
                    "{GUEST_ARCHES} asks for the {arch} guest init, but {}",
                    missing.what
                );
                continue;
            }
        };
        watch(&toolchain.watch);
        let arch_dir = out_dir.join(format!("init-target-{}", arch.uname()));
        let status = toolchain
            .build(&workspace, arch, &arch_dir)
            .status()
            .unwrap_or_else(|error| panic!("run cargo to build the {arch} vmlane-init: {error}"));
        assert!(
            status.success(),
            "building the {arch} guest init ({}) with {} and {} failed; build without it with \
             {GUEST_ARCHES}=none",
            arch.rust_target(),
            toolchain.rustc.display(),
            toolchain.linker.display(),
        );
        let built = arch_dir
            .join(arch.rust_target())
            .join("release/vmlane-init");
        fs::copy(&built, &copied).expect("copy the foreign vmlane-init into OUT_DIR");
        foreign.push(arch);
    }
    write_foreign_list(&out_dir, &foreign);
}

/// `cargo build` of the static init for `target`, into `target_dir`, with none of the outer
/// build's flags, wrappers or target directory leaking in.
fn init_build(workspace: &Path, target: &str, target_dir: &Path) -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--package",
            "vmlane-init",
            "--bin",
            "vmlane-init",
        ])
        .arg("--target")
        .arg(target)
        .arg("--target-dir")
        .arg(target_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\x1f-Cstrip=symbols",
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    command
}

/// Which foreign inits to build, from `VMLANE_GUEST_ARCHES`.
enum Wanted {
    /// Unset: every one whose toolchain is installed.
    Found,
    /// Exactly these, each required; empty for `none`.
    Only(Vec<Arch>),
}

impl Wanted {
    fn from_env() -> Wanted {
        let Some(value) = env::var_os(GUEST_ARCHES) else {
            return Wanted::Found;
        };
        let value = value
            .into_string()
            .unwrap_or_else(|_| panic!("{GUEST_ARCHES} is not UTF-8"));
        let names = value
            .split([',', ' '])
            .filter(|name| !name.is_empty() && *name != "none");
        let arches = names.map(|name| {
            name.parse::<Arch>()
                .unwrap_or_else(|error| panic!("{GUEST_ARCHES}: {error}"))
        });
        Wanted::Only(arches.collect())
    }
}

/// A cross toolchain able to build a static init for one architecture.
struct Toolchain {
    rustc: PathBuf,
    linker: PathBuf,
    /// The rustc has no std for the target but std's sources, so the build compiles std too.
    build_std: bool,
    /// The files whose change or removal means the toolchain must be looked for again.
    watch: Vec<PathBuf>,
}

/// Why an architecture has no toolchain, and where one would appear.
struct Missing {
    what: String,
    watch: Vec<PathBuf>,
}

impl Toolchain {
    /// Looks for a linker on PATH, then for a rustc with the target's std: cargo's own rustc
    /// first, then Debian's; failing both, for one with std's sources.
    fn find(arch: Arch) -> Result<Toolchain, Missing> {
        let target = arch.rust_target();
        let gcc = format!("{}-gcc", arch.gnu_triple());
        let Some(linker) = on_path(&gcc) else {
            return Err(Missing {
                what: format!(
                    "there is no {gcc} on PATH (Debian: gcc-{} and libc6-dev-{}-cross)",
                    arch.gnu_triple().replace('_', "-"),
                    arch.debian()
                ),
                watch: existing_dir(Path::new(DEBIAN_BIN)).into_iter().collect(),
            });
        };
        let mut candidates = vec![PathBuf::from(
            env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc")),
        )];
        if candidates[0] != Path::new(DEBIAN_RUSTC) {
            candidates.push(PathBuf::from(DEBIAN_RUSTC));
        }
        let mut watch = Vec::new();
        for rustc in &candidates {
            match std_of(rustc, target) {
                Probe::Std(libstd) => {
                    return Ok(Toolchain {
                        rustc: rustc.clone(),
                        watch: vec![linker.clone(), libstd],
                        linker,
                        build_std: false,
                    })
                }
                // A std would be added under `lib/rustlib`, changing that directory.
                Probe::NoStd(libdir) => {
                    let rustlib = libdir.parent().and_then(Path::parent);
                    watch.extend(rustlib.and_then(existing_dir));
                }
                // An absent rustc would be installed into its directory.
                Probe::NoRustc => {
                    watch.extend(rustc.parent().and_then(existing_dir));
                }
            }
        }
        // Still watching where a std would appear: a packaged one, once installed, is taken
        // over building one.
        let sources = candidates
            .iter()
            .find_map(|rustc| std_sources(rustc).map(|library| (rustc.clone(), library)));
        if let Some((rustc, library)) = sources {
            watch.extend([linker.clone(), library]);
            return Ok(Toolchain {
                rustc,
                watch,
                linker,
                build_std: true,
            });
        }
        let names: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        Err(Missing {
            what: format!(
                "none of {} has a std for {target} or std's sources (`rustup target add \
                 {target}`, or Debian's rustc-web with libstd-rust-web-dev:{} or rust-web-src)",
                names.join(", "),
                arch.debian()
            ),
            watch,
        })
    }

    fn build(&self, workspace: &Path, arch: Arch, target_dir: &Path) -> Command {
        let target = arch.rust_target();
        let linker_var = format!(
            "CARGO_TARGET_{}_LINKER",
            target.to_uppercase().replace('-', "_")
        );
        let mut command = init_build(workspace, target, target_dir);
        command
            .env("RUSTC", &self.rustc)
            .env(linker_var, &self.linker);
        if self.build_std {
            // build-std is unstable; the bootstrap switch lets a stable cargo use it.
            command
                .arg("-Zbuild-std=std,panic_abort")
                .env("RUSTC_BOOTSTRAP", "1");
        }
        command
    }
}

/// What one rustc has for a target.
enum Probe {
    /// The target's `libstd-*.rlib`.
    Std(PathBuf),
    /// The target's library directory, which holds no std.
    NoStd(PathBuf),
    /// The rustc does not run.
    NoRustc,
}

fn std_of(rustc: &Path, target: &str) -> Probe {
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        _ => return Probe::NoRustc,
    };
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let libstd = fs::read_dir(&libdir).ok().and_then(|entries| {
        entries.flatten().map(|entry| entry.path()).find(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libstd-") && name.ends_with(".rlib"))
        })
    });
    match libstd {
        Some(libstd) => Probe::Std(libstd),
        None => Probe::NoStd(libdir),
    }
}

/// The std sources in `rustc`'s sysroot (rustup's `rust-src`, Debian's `rust-web-src`), from
/// which `-Zbuild-std` builds a std for any target.
fn std_sources(rustc: &Path) -> Option<PathBuf> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let library = sysroot.join("lib/rustlib/src/rust/library");
    library.join("std/Cargo.toml").is_file().then_some(library)
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn existing_dir(dir: &Path) -> Option<PathBuf> {
    dir.is_dir().then(|| dir.to_path_buf())
}

/// Cargo reruns the script when a watched path changes, and on every build while one is
/// missing, so only existing paths are watched: a file found, or the directory one would
/// appear in (a directory's own mtime changes when an entry is added).
fn watch(paths: &[PathBuf]) {
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Writes `foreign_inits.rs`, the list of (arch, init) the library includes: only the inits
/// built here, so `include_bytes!` never names a missing file.
fn write_foreign_list(out_dir: &Path, built: &[Arch]) {
    let mut list = String::from("&[\n");
    for arch in built {
        writeln!(
            list,
            "    (vmlane_spec::Arch::{arch:?}, \
             include_bytes!(concat!(env!(\"OUT_DIR\"), \"/vmlane-init-{}\"))),",
            arch.uname()
        )
        .expect("write to a String");
    }
    list.push_str("]\n");
    fs::write(out_dir.join("foreign_inits.rs"), list).expect("write foreign_inits.rs");
}
