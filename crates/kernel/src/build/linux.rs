//! `vmlane kernel build` for Linux: out of tree, tinyconfig plus vmlane's fragment, into the
//! cache under a key of source, config request, toolchain and architecture, so an unchanged
//! rebuild is a lookup. Another architecture than the host's is cross-compiled, with Debian's
//! GNU cross toolchain or with LLVM.

use super::fragment::{unmet, vmlane_fragment, Setting};
use super::kconfig;
use super::llvm::Llvm;
use super::lock::BuildLock;
use super::process::{command, run_logged, Progress};
use super::source::{canonical_bytes, hex, source_identity};
use super::target;
use super::BuildError;
use crate::cache::kernels_dir;
use sha2::{Digest, Sha256};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use vmlane_spec::Arch;

/// What to build.
#[derive(Debug, Clone)]
pub struct LinuxBuild {
    /// The source tree (never written to).
    pub source: PathBuf,
    /// Options on top of vmlane's fragment (`-e`, `-m`, `-d`, `--config`), applied last.
    pub extra: Vec<Setting>,
    /// Build with LLVM: the unversioned tools on `PATH`, else the newest `/usr/lib/llvm-N`.
    pub clang: bool,
    /// The architecture to build for; cross-compiled when it is not the host's.
    pub arch: Arch,
    /// Parallel jobs.
    pub jobs: u32,
}

/// A kernel in the cache.
#[derive(Debug, Clone)]
pub struct BuiltKernel {
    /// Its cache directory name, usable with `-k`.
    pub name: String,
    /// Its release.
    pub release: String,
    /// Its directory in the cache.
    pub dir: PathBuf,
    /// Whether it was already there.
    pub cached: bool,
}

/// `make` arguments for one step, built out of tree in `build_dir` for `arch` on this host.
pub fn make_args(
    source: &Path,
    build_dir: &Path,
    arch: Arch,
    llvm: Option<&Llvm>,
    jobs: u32,
    targets: &[&str],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-C".into(), source.into()];
    let mut out = OsString::from("O=");
    out.push(build_dir);
    args.push(out);
    args.extend(target::arch_args(arch, Arch::host(), llvm.is_some()));
    if let Some(llvm) = llvm {
        args.push(llvm.make_arg());
    }
    args.push(format!("-j{jobs}").into());
    args.extend(targets.iter().map(OsString::from));
    args
}

/// Builds (or finds in the cache) the kernel for this request.
pub fn build_linux(
    request: &LinuxBuild,
    cache: &Path,
    progress: &mut dyn Progress,
) -> Result<BuiltKernel, BuildError> {
    check_source(&request.source, request.arch)?;
    let known = kconfig::symbols(&request.source);
    let unknown: Vec<String> = request
        .extra
        .iter()
        .filter(|setting| !known.contains(&setting.name))
        .map(|setting| format!("CONFIG_{}", setting.name))
        .collect();
    if !unknown.is_empty() {
        return Err(BuildError::UnknownOptions {
            names: unknown,
            tree: request.source.clone(),
        });
    }
    let llvm = match request.clang {
        true => Some(
            Llvm::find(std::env::var_os("PATH").as_deref(), Path::new("/usr/lib"))
                .ok_or(BuildError::NoLlvm)?,
        ),
        false => None,
    };
    let mut wanted = vmlane_fragment(request.arch);
    wanted.extend(request.extra.iter().cloned());
    let objects_key = objects_key_of(request, &wanted, llvm.as_ref());
    let key = cache_key(&objects_key, &request.source)?;
    let short = &key[..12];
    if let Some(found) = find_cached(cache, short) {
        return Ok(found);
    }
    if llvm.is_none() && target::is_cross(request.arch, Arch::host()) {
        check_cross_compiler(request.arch, std::env::var_os("PATH").as_deref())?;
    }
    // Objects are kept per tree, config and toolchain, so an edited tree rebuilds
    // incrementally; the log goes with the cache key that `vmlane kernel rm` removes.
    let build_dir = objects_dir(cache, &objects_key);
    let _lock = BuildLock::take(&build_dir, "this kernel", progress)
        .map_err(BuildError::io(format!("lock {}", build_dir.display())))?;
    // The build waited for may have stored this very kernel.
    if let Some(found) = find_cached(cache, short) {
        return Ok(found);
    }
    let log_dir = cache.join("builds").join(short);
    std::fs::create_dir_all(&log_dir)
        .map_err(BuildError::io(format!("create {}", log_dir.display())))?;
    let log = log_dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    if !build_dir.exists() && !request.extra.is_empty() {
        let plain = LinuxBuild {
            extra: Vec::new(),
            ..request.clone()
        };
        let plain_wanted = vmlane_fragment(request.arch);
        let plain_dir = objects_dir(cache, &objects_key_of(&plain, &plain_wanted, llvm.as_ref()));
        if plain_dir.join(target::image_path(request.arch)).is_file() {
            seed_objects(&plain_dir, &build_dir, &log, progress)?;
        }
    }
    std::fs::create_dir_all(&build_dir)
        .map_err(BuildError::io(format!("create {}", build_dir.display())))?;
    let make = |targets: &[&str]| {
        let mut make = command("make");
        make.args(make_args(
            &request.source,
            &build_dir,
            request.arch,
            llvm.as_ref(),
            request.jobs,
            targets,
        ));
        make
    };

    run_logged("make tinyconfig", make(&["tinyconfig"]), &log, progress)?;
    let config = build_dir.join(".config");
    append_settings(&config, &wanted)?;
    run_logged("make olddefconfig", make(&["olddefconfig"]), &log, progress)?;
    let effective =
        std::fs::read_to_string(&config).map_err(BuildError::io("read the effective .config"))?;
    let missing = unmet(&wanted, &effective);
    if !missing.is_empty() {
        return Err(BuildError::ConfigUnmet {
            unmet: missing,
            config,
        });
    }
    let image = target::image_target(request.arch);
    run_logged(&format!("make {image}"), make(&[image]), &log, progress)?;
    install(request, cache, &build_dir, short)
}

fn check_source(source: &Path, arch: Arch) -> Result<(), BuildError> {
    let arch_kconfig = format!("arch/{}/Kconfig", target::kernel_arch(arch));
    for needed in ["Makefile", "Kconfig", &arch_kconfig, "scripts/kconfig"] {
        if !source.join(needed).exists() {
            return Err(BuildError::NotASourceTree {
                path: source.to_path_buf(),
                what: "Linux",
                why: format!("no {needed}"),
            });
        }
    }
    Ok(())
}

/// The cross compiler a gcc build for `arch` needs, on `path` (a `PATH` value), or an error
/// that says which package has it.
fn check_cross_compiler(arch: Arch, path: Option<&OsStr>) -> Result<(), BuildError> {
    let compiler = format!("{}gcc", target::cross_prefix(arch));
    let found = path
        .is_some_and(|path| std::env::split_paths(path).any(|dir| dir.join(&compiler).is_file()));
    if found {
        return Ok(());
    }
    let setup = match arch {
        Arch::X86_64 => String::new(),
        other => format!(" (scripts/setup --arch {other} installs it too)"),
    };
    Err(BuildError::NoCrossCompiler {
        arch,
        host: Arch::host(),
        compiler,
        hint: format!(
            "apt-get install {}{setup}, or build with --clang",
            target::cross_package(arch)
        ),
    })
}

/// The tree, the settings asked for, the toolchain and the architecture: what the object
/// directory is kept by. x86 keys hash what they did before there were other architectures,
/// so x86 kernels already in the cache stay found.
fn objects_key_of(request: &LinuxBuild, wanted: &[Setting], llvm: Option<&Llvm>) -> String {
    let mut hash = Sha256::new();
    hash.update(b"vmlane-linux-build-v2\0");
    hash.update(canonical_bytes(&request.source));
    hash.update(b"\0");
    for setting in wanted {
        hash.update(setting.line().as_bytes());
        hash.update(b"\n");
    }
    match llvm {
        Some(llvm) => hash.update(llvm.make_arg().as_encoded_bytes()),
        None => hash.update(b"gcc"),
    }
    if request.arch != Arch::X86_64 {
        hash.update(b"\0arch=");
        hash.update(request.arch.debian().as_bytes());
    }
    hex(&hash.finalize())
}

/// Where the objects of one tree, config and toolchain are kept.
fn objects_dir(cache: &Path, objects_key: &str) -> PathBuf {
    cache
        .join("builds")
        .join(format!("obj-{}", &objects_key[..12]))
}

/// A build with options of its own (`-e KUNIT`) starts from a copy of the plain build's
/// objects, timestamps kept: fixdep recorded which options each object reads, so Kbuild then
/// recompiles only what the added options touch instead of the whole kernel.
fn seed_objects(
    plain: &Path,
    build_dir: &Path,
    log: &Path,
    progress: &mut dyn Progress,
) -> Result<(), BuildError> {
    let partial = build_dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let mut copy = command("cp");
    copy.arg("-a").arg(plain).arg(&partial);
    let step = format!("start from the objects of {}", plain.display());
    if let Err(error) = run_logged(&step, copy, log, progress) {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, build_dir)
        .map_err(BuildError::io(format!("store {}", build_dir.display())))
}

/// The objects key plus the tree's contents: what a cached kernel is found by.
fn cache_key(objects_key: &str, source: &Path) -> Result<String, BuildError> {
    let mut hash = Sha256::new();
    hash.update(objects_key.as_bytes());
    hash.update(source_identity(source)?);
    Ok(hex(&hash.finalize()))
}

fn append_settings(config: &Path, settings: &[Setting]) -> Result<(), BuildError> {
    use std::io::Write;
    let mut file = std::fs::File::options()
        .append(true)
        .open(config)
        .map_err(BuildError::io(format!("open {}", config.display())))?;
    for setting in settings {
        writeln!(file, "{}", setting.line()).map_err(BuildError::io("write .config"))?;
    }
    Ok(())
}

/// A built kernel's cache directory is named `<release>-<key>`; the release of a kernel for
/// another architecture than x86 ends in its name (`6.1.192-arm64-<key>`).
fn find_cached(cache: &Path, key: &str) -> Option<BuiltKernel> {
    let suffix = format!("-{key}");
    std::fs::read_dir(kernels_dir(cache))
        .ok()?
        .flatten()
        .find_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let release = name.strip_suffix(&suffix)?.to_string();
            let dir = entry.path();
            dir.join("boot")
                .join(format!("vmlinuz-{release}"))
                .is_file()
                .then_some(BuiltKernel {
                    name,
                    release,
                    dir,
                    cached: true,
                })
        })
}

/// Copies the images and config into `kernels/<release>-<key>/boot`, named as Debian names
/// them so discovery treats both alike.
fn install(
    request: &LinuxBuild,
    cache: &Path,
    build_dir: &Path,
    key: &str,
) -> Result<BuiltKernel, BuildError> {
    let release = std::fs::read_to_string(build_dir.join("include/config/kernel.release"))
        .map_err(BuildError::io("read the built kernel's release"))?
        .trim()
        .to_string();
    let name = format!("{release}-{key}");
    let dir = kernels_dir(cache).join(&name);
    let staging = kernels_dir(cache).join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    let boot = staging.join("boot");
    std::fs::create_dir_all(&boot).map_err(BuildError::io(format!("create {}", boot.display())))?;
    // An arm64 vmlinux is kept for its symbols; the cache boots a vmlinux only when it has an
    // x86 PVH entry, so the Image is what runs.
    for (from, to) in [
        (
            target::image_path(request.arch),
            format!("vmlinuz-{release}"),
        ),
        ("vmlinux".to_string(), format!("vmlinux-{release}")),
        (".config".to_string(), format!("config-{release}")),
    ] {
        std::fs::copy(build_dir.join(&from), boot.join(&to))
            .map_err(BuildError::io(format!("install {from}")))?;
    }
    let info = format!(
        "source={}\narch={}\nclang={}\nextra={}\n",
        request.source.display(),
        request.arch.debian(),
        request.clang,
        request
            .extra
            .iter()
            .map(Setting::line)
            .collect::<Vec<_>>()
            .join(" "),
    );
    std::fs::write(staging.join("vmlane-build"), info)
        .map_err(BuildError::io("write build info"))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir).map_err(BuildError::io(format!("store {}", dir.display())))?;
    Ok(BuiltKernel {
        name,
        release,
        dir,
        cached: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_runs_out_of_tree_with_the_chosen_toolchain() {
        let llvm = Llvm::Dir(PathBuf::from("/usr/lib/llvm-19/bin"));
        let args = make_args(
            Path::new("/src/linux"),
            Path::new("/cache/builds/k"),
            Arch::host(),
            Some(&llvm),
            4,
            &["bzImage"],
        );
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-C",
                "/src/linux",
                "O=/cache/builds/k",
                "LLVM=/usr/lib/llvm-19/bin/",
                "-j4",
                "bzImage"
            ]
        );
        let gcc = make_args(
            Path::new("/s"),
            Path::new("/b"),
            Arch::host(),
            None,
            2,
            &["tinyconfig"],
        );
        assert!(!gcc.iter().any(|a| a.to_string_lossy().starts_with("LLVM=")));
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn an_arm64_build_on_x86_cross_compiles_its_image() {
        let gcc = make_args(
            Path::new("/src/linux"),
            Path::new("/b"),
            Arch::Aarch64,
            None,
            2,
            &[target::image_target(Arch::Aarch64)],
        );
        assert_eq!(
            strings(gcc),
            [
                "-C",
                "/src/linux",
                "O=/b",
                "ARCH=arm64",
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "LOCALVERSION=-arm64",
                "-j2",
                "Image"
            ]
        );
        let llvm = make_args(
            Path::new("/src/linux"),
            Path::new("/b"),
            Arch::Aarch64,
            Some(&Llvm::OnPath),
            2,
            &["Image"],
        );
        assert_eq!(
            strings(llvm),
            [
                "-C",
                "/src/linux",
                "O=/b",
                "ARCH=arm64",
                "LOCALVERSION=-arm64",
                "LLVM=1",
                "-j2",
                "Image"
            ]
        );
        let x86 = make_args(
            Path::new("/src/linux"),
            Path::new("/b"),
            Arch::X86_64,
            None,
            2,
            &["bzImage"],
        );
        assert_eq!(
            strings(x86),
            ["-C", "/src/linux", "O=/b", "-j2", "bzImage"],
            "an x86 build on x86 is as before"
        );
    }

    #[test]
    fn a_missing_cross_compiler_names_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().as_os_str();
        let error = check_cross_compiler(Arch::Aarch64, Some(path))
            .unwrap_err()
            .to_string();
        assert!(error.contains("aarch64-linux-gnu-gcc"), "{error}");
        assert!(
            error.contains("apt-get install gcc-aarch64-linux-gnu"),
            "{error}"
        );
        assert!(error.contains("scripts/setup --arch arm64"), "{error}");
        assert!(check_cross_compiler(Arch::Aarch64, None).is_err());
        std::fs::write(dir.path().join("aarch64-linux-gnu-gcc"), "").unwrap();
        check_cross_compiler(Arch::Aarch64, Some(path)).unwrap();
    }

    #[test]
    fn a_directory_without_kbuild_is_not_a_source_tree() {
        let dir = tempfile::tempdir().unwrap();
        let error = check_source(dir.path(), Arch::X86_64)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a Linux source tree"), "{error}");
    }

    #[test]
    fn a_tree_without_the_architecture_is_not_a_source_tree_for_it() {
        let source = fake_source();
        check_source(source.path(), Arch::X86_64).unwrap();
        let error = check_source(source.path(), Arch::Aarch64)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no arch/arm64/Kconfig"), "{error}");
    }

    fn fake_source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "Makefile",
            "Kconfig",
            "arch/x86/Kconfig",
            "scripts/kconfig/Makefile",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        dir
    }

    #[test]
    fn objects_follow_tree_settings_and_toolchain_and_the_cache_also_contents() {
        let source = fake_source();
        let request = LinuxBuild {
            source: source.path().to_path_buf(),
            extra: vec![],
            clang: false,
            arch: Arch::X86_64,
            jobs: 2,
        };
        let wanted = vmlane_fragment(Arch::X86_64);
        let objects = objects_key_of(&request, &wanted, None);
        assert_eq!(objects, objects_key_of(&request, &wanted, None), "stable");
        let llvm = Llvm::OnPath;
        assert_ne!(objects, objects_key_of(&request, &wanted, Some(&llvm)));
        let mut flipped = wanted.clone();
        flipped.push(Setting::new("KASAN", "y"));
        assert_ne!(objects, objects_key_of(&request, &flipped, None));

        let key = cache_key(&objects, source.path()).unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let edited = source.path().join("arch/x86/Kconfig");
        std::fs::File::options()
            .write(true)
            .open(&edited)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_ne!(
            key,
            cache_key(&objects, source.path()).unwrap(),
            "an edited tree rebuilds"
        );
        assert_eq!(
            objects,
            objects_key_of(&request, &wanted, None),
            "in the same object directory"
        );
    }

    /// What `objects_key` hashed before it knew architectures, for an x86 gcc build.
    fn key_before_architectures(request: &LinuxBuild, wanted: &[Setting]) -> String {
        let mut hash = Sha256::new();
        hash.update(b"vmlane-linux-build-v2\0");
        hash.update(canonical_bytes(&request.source));
        hash.update(b"\0");
        for setting in wanted {
            hash.update(setting.line().as_bytes());
            hash.update(b"\n");
        }
        hash.update(b"gcc");
        hex(&hash.finalize())
    }

    #[test]
    fn the_architecture_is_in_the_key_and_x86_keys_are_unchanged() {
        let source = fake_source();
        let x86 = LinuxBuild {
            source: source.path().to_path_buf(),
            extra: vec![],
            clang: false,
            arch: Arch::X86_64,
            jobs: 2,
        };
        let arm = LinuxBuild {
            arch: Arch::Aarch64,
            ..x86.clone()
        };
        let x86_wanted = vmlane_fragment(Arch::X86_64);
        let x86_key = objects_key_of(&x86, &x86_wanted, None);
        assert_eq!(x86_key, key_before_architectures(&x86, &x86_wanted));
        // Even with the same settings, the architecture alone separates the builds.
        assert_ne!(x86_key, objects_key_of(&arm, &x86_wanted, None));
        let arm_key = objects_key_of(&arm, &vmlane_fragment(Arch::Aarch64), None);
        assert_ne!(x86_key, arm_key);
        assert_ne!(
            cache_key(&x86_key, source.path()).unwrap(),
            cache_key(&arm_key, source.path()).unwrap()
        );
        let llvm = Llvm::OnPath;
        assert_ne!(
            objects_key_of(&arm, &vmlane_fragment(Arch::Aarch64), Some(&llvm)),
            arm_key
        );
    }

    #[test]
    fn an_arm64_build_is_found_by_its_key_under_its_arm64_release() {
        let cache = tempfile::tempdir().unwrap();
        let boot = kernels_dir(cache.path()).join("6.1.192-arm64-abcdef123456/boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.192-arm64"), "k").unwrap();
        let found = find_cached(cache.path(), "abcdef123456").unwrap();
        assert_eq!(found.name, "6.1.192-arm64-abcdef123456");
        assert_eq!(found.release, "6.1.192-arm64");
    }

    #[test]
    fn an_arm64_build_installs_its_image_as_vmlinuz_and_says_its_architecture() {
        let cache = tempfile::tempdir().unwrap();
        let objects = tempfile::tempdir().unwrap();
        for (file, text) in [
            ("include/config/kernel.release", "6.1.192-arm64\n"),
            ("arch/arm64/boot/Image", "image"),
            ("arch/x86/boot/bzImage", "wrong"),
            ("vmlinux", "elf"),
            (".config", "CONFIG_ARM64=y\n"),
        ] {
            let path = objects.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let request = LinuxBuild {
            source: PathBuf::from("/src/linux"),
            extra: vec![],
            clang: false,
            arch: Arch::Aarch64,
            jobs: 2,
        };
        let built = install(&request, cache.path(), objects.path(), "abcdef123456").unwrap();
        assert_eq!(built.name, "6.1.192-arm64-abcdef123456");
        let boot = built.dir.join("boot");
        let read = |file: &str| std::fs::read_to_string(boot.join(file)).unwrap();
        assert_eq!(read("vmlinuz-6.1.192-arm64"), "image");
        assert_eq!(read("vmlinux-6.1.192-arm64"), "elf");
        assert_eq!(read("config-6.1.192-arm64"), "CONFIG_ARM64=y\n");
        let marker = std::fs::read_to_string(built.dir.join("vmlane-build")).unwrap();
        assert!(marker.lines().any(|l| l == "arch=arm64"), "{marker}");
        let again = find_cached(cache.path(), "abcdef123456").unwrap();
        assert_eq!(again.name, built.name);
    }

    #[test]
    fn a_cached_build_is_found_by_its_key() {
        let cache = tempfile::tempdir().unwrap();
        let boot = kernels_dir(cache.path()).join("6.1.192-abcdef123456/boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.192"), "k").unwrap();
        let found = find_cached(cache.path(), "abcdef123456").unwrap();
        assert_eq!((found.release.as_str(), found.cached), ("6.1.192", true));
        assert!(find_cached(cache.path(), "000000000000").is_none());
    }

    struct Quiet;

    impl Progress for Quiet {
        fn line(&mut self, _step: &str, _line: &str) {}
    }

    #[test]
    fn a_variant_starts_from_the_plain_builds_objects_with_their_times() {
        let cache = tempfile::tempdir().unwrap();
        let plain = cache.path().join("builds/obj-plain");
        std::fs::create_dir_all(plain.join("kernel")).unwrap();
        let object = plain.join("kernel/fork.o");
        std::fs::write(&object, "object").unwrap();
        let built_at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        std::fs::File::options()
            .write(true)
            .open(&object)
            .unwrap()
            .set_modified(built_at)
            .unwrap();
        let variant = cache.path().join("builds/obj-variant");
        let log = cache.path().join("build.log");
        seed_objects(&plain, &variant, &log, &mut Quiet).unwrap();
        let copied = variant.join("kernel/fork.o");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "object");
        assert_eq!(
            copied.metadata().unwrap().modified().unwrap(),
            built_at,
            "make must see the objects as old as their sources"
        );
        assert!(object.is_file(), "the plain build keeps its objects");
        assert!(!variant.with_extension("partial").exists());
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(logged.contains("start from the objects of"), "{logged}");
    }
}
