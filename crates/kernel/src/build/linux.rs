//! `vmlane kernel build` for Linux: out of tree, tinyconfig plus vmlane's fragment, into the
//! cache under a key of source, config request and toolchain, so an unchanged rebuild is a
//! lookup.

use super::fragment::{unmet, vmlane_fragment, Setting};
use super::kconfig;
use super::llvm::Llvm;
use super::process::{command, run_logged, Progress};
use super::source::{canonical_bytes, hex, source_identity};
use super::BuildError;
use crate::cache::kernels_dir;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What to build.
#[derive(Debug, Clone)]
pub struct LinuxBuild {
    /// The source tree (never written to).
    pub source: PathBuf,
    /// Options on top of vmlane's fragment (`-e`, `-m`, `-d`, `--config`), applied last.
    pub extra: Vec<Setting>,
    /// Build with LLVM: the unversioned tools on `PATH`, else the newest `/usr/lib/llvm-N`.
    pub clang: bool,
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

/// `make` arguments for one step, built out of tree in `build_dir`.
pub fn make_args(
    source: &Path,
    build_dir: &Path,
    llvm: Option<&Llvm>,
    jobs: u32,
    targets: &[&str],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["-C".into(), source.into()];
    let mut out = OsString::from("O=");
    out.push(build_dir);
    args.push(out);
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
    check_source(&request.source)?;
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
    let mut wanted = vmlane_fragment();
    wanted.extend(request.extra.iter().cloned());
    let objects_key = objects_key(request, &wanted, llvm.as_ref());
    let key = cache_key(&objects_key, &request.source)?;
    let short = &key[..12];
    if let Some(found) = find_cached(cache, short) {
        return Ok(found);
    }
    // Objects are kept per tree, config and toolchain, so an edited tree rebuilds
    // incrementally; the log goes with the cache key that `vmlane kernel rm` removes.
    let build_dir = cache
        .join("builds")
        .join(format!("obj-{}", &objects_key[..12]));
    let log_dir = cache.join("builds").join(short);
    for dir in [&build_dir, &log_dir] {
        std::fs::create_dir_all(dir)
            .map_err(BuildError::io(format!("create {}", dir.display())))?;
    }
    let log = log_dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    let make = |targets: &[&str]| {
        let mut make = command("make");
        make.args(make_args(
            &request.source,
            &build_dir,
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
    run_logged("make bzImage", make(&["bzImage"]), &log, progress)?;
    install(request, cache, &build_dir, short)
}

fn check_source(source: &Path) -> Result<(), BuildError> {
    for needed in ["Makefile", "Kconfig", "arch/x86/Kconfig", "scripts/kconfig"] {
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

/// The tree, the settings asked for and the toolchain: what the object directory is kept by.
fn objects_key(request: &LinuxBuild, wanted: &[Setting], llvm: Option<&Llvm>) -> String {
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
    hex(&hash.finalize())
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

/// A built kernel's cache directory is named `<release>-<key>`.
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
    for (from, to) in [
        ("arch/x86/boot/bzImage", format!("vmlinuz-{release}")),
        ("vmlinux", format!("vmlinux-{release}")),
        (".config", format!("config-{release}")),
    ] {
        std::fs::copy(build_dir.join(from), boot.join(&to))
            .map_err(BuildError::io(format!("install {from}")))?;
    }
    let info = format!(
        "source={}\nclang={}\nextra={}\n",
        request.source.display(),
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
        let gcc = make_args(Path::new("/s"), Path::new("/b"), None, 2, &["tinyconfig"]);
        assert!(!gcc.iter().any(|a| a.to_string_lossy().starts_with("LLVM=")));
    }

    #[test]
    fn a_directory_without_kbuild_is_not_a_source_tree() {
        let dir = tempfile::tempdir().unwrap();
        let error = check_source(dir.path()).unwrap_err().to_string();
        assert!(error.contains("not a Linux source tree"), "{error}");
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
            jobs: 2,
        };
        let wanted = vmlane_fragment();
        let objects = objects_key(&request, &wanted, None);
        assert_eq!(objects, objects_key(&request, &wanted, None), "stable");
        let llvm = Llvm::OnPath;
        assert_ne!(objects, objects_key(&request, &wanted, Some(&llvm)));
        let mut flipped = wanted.clone();
        flipped.push(Setting::new("KASAN", "y"));
        assert_ne!(objects, objects_key(&request, &flipped, None));

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
            objects_key(&request, &wanted, None),
            "in the same object directory"
        );
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
}
