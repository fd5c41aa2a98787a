//! `vmlane kernel build --freebsd`: FreeBSD's own build system, out of tree (`kernel-toolchain`,
//! then `buildkernel`; through `tools/build/make.py` with the host's clang and lld on Linux
//! hosts), and the kernel stored in the cache under a key of source, config and toolchain, so an
//! unchanged rebuild is a lookup.

use super::linux::BuiltKernel;
use super::lock::BuildLock;
use super::process::{command, run_logged, Progress};
use super::source::{canonical_bytes, hex, source_identity};
use super::BuildError;
use crate::cache::{self, kernels_dir, FREEBSD_KERNEL};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where kernel configs live in a FreeBSD tree (vmlane builds amd64 kernels).
const CONF_DIR: &str = "sys/amd64/conf";
/// The script that says which release a FreeBSD tree is.
const NEWVERS: &str = "sys/conf/newvers.sh";
/// Leaves clang, lld and LLVM's binutils out of the world the toolchain bootstrap prepares for:
/// the host's LLVM builds the kernel, and without this the bootstrap builds LLVM's tablegen,
/// which takes longer than the kernel itself.
const WORLD_OPTIONS: &[&str] = &["-DWITHOUT_TOOLCHAIN"];
/// Where make.py's first run in an object directory runs bmake's unit tests, which create
/// (and remove) files in it: the one place FreeBSD's build writes into the source tree.
const BMAKE_TESTS: &str = "contrib/bmake/unit-tests";

/// The host the build runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreeBsdHost {
    /// A FreeBSD host: its own make and toolchain.
    FreeBsd,
    /// A Linux host: FreeBSD's make.py bootstraps bmake and the build tools, and uses the
    /// LLVM tools in this directory (Debian: `/usr/lib/llvm-19/bin`).
    Linux {
        /// Where clang, ld.lld and the other LLVM tools are.
        llvm_bin: PathBuf,
    },
}

/// What to build.
#[derive(Debug, Clone)]
pub struct FreeBsdBuild {
    /// The FreeBSD source tree (never written to).
    pub source: PathBuf,
    /// The kernel config in `sys/amd64/conf`, e.g. `FIRECRACKER` or `GENERIC`.
    pub kernconf: String,
    /// Parallel jobs.
    pub jobs: u32,
}

/// One command of the build: program, arguments, environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCommand {
    /// What it is called in progress lines and errors, e.g. `make.py buildkernel`.
    pub step: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment.
    pub env: Vec<(OsString, OsString)>,
}

/// Builds (or finds in the cache) the kernel for this request: objects under
/// `<cache>/freebsd-obj` (kept for incremental rebuilds), the log in `<cache>/builds/<key>/`,
/// the kernel in `<cache>/kernels/freebsd-<release>-<KERNCONF>-<key>/boot/kernel/kernel`.
pub fn build_freebsd(
    request: &FreeBsdBuild,
    host: &FreeBsdHost,
    cache: &Path,
    progress: &mut dyn Progress,
) -> Result<BuiltKernel, BuildError> {
    check_source(&request.source, &request.kernconf)?;
    // bmake names object directories after the physical path of the tree it runs in.
    let source = request
        .source
        .canonicalize()
        .map_err(BuildError::io(format!(
            "resolve {}",
            request.source.display()
        )))?;
    let request = &FreeBsdBuild {
        source,
        ..request.clone()
    };
    let release = source_release(&request.source)?;
    let key = cache_key(request, host, &release)?;
    let short = &key[..12];
    let name = cache_name(&release, &request.kernconf, short);
    let dir = kernels_dir(cache).join(&name);
    let cached = || {
        dir.join(FREEBSD_KERNEL).is_file().then(|| BuiltKernel {
            name: name.clone(),
            release: release.clone(),
            dir: dir.clone(),
            cached: true,
        })
    };
    if let Some(found) = cached() {
        return Ok(found);
    }
    let objdir = cache.join("freebsd-obj");
    // Every FreeBSD build shares the one object directory.
    let _lock = BuildLock::take(&objdir, "a FreeBSD kernel", progress)
        .map_err(BuildError::io(format!("lock {}", objdir.display())))?;
    // The build waited for may have stored this very kernel.
    if let Some(found) = cached() {
        return Ok(found);
    }
    let log_dir = cache.join("builds").join(short);
    for needed in [&objdir, &log_dir] {
        std::fs::create_dir_all(needed)
            .map_err(BuildError::io(format!("create {}", needed.display())))?;
    }
    let objdir = objdir
        .canonicalize()
        .map_err(BuildError::io(format!("resolve {}", objdir.display())))?;
    if matches!(host, FreeBsdHost::Linux { .. }) {
        check_bmake_tests_writable(&request.source, &objdir)?;
    }
    let log = log_dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    for step in freebsd_build_commands(request, host, &objdir) {
        let mut make = command(&step.program);
        make.args(&step.args).envs(step.env.iter().cloned());
        run_logged(&step.step, make, &log, progress)?;
    }
    let built = kernel_path(&request.source, &request.kernconf, &objdir);
    let dir = cache::store(
        cache,
        &name,
        Some(&marker(request, host, &release)),
        |staging| {
            let image = staging.join(FREEBSD_KERNEL);
            std::fs::create_dir_all(image.parent().unwrap_or(staging))?;
            std::fs::copy(&built, &image).map(drop)
        },
    )
    .map_err(BuildError::io(format!(
        "store {} in the cache as {name}",
        built.display()
    )))?;
    Ok(BuiltKernel {
        name,
        release,
        dir,
        cached: false,
    })
}

/// The commands that build the kernel, in order: the toolchain bootstrap FreeBSD's build needs
/// before a kernel (`kernel-toolchain`), then the kernel without modules. Incremental: both
/// reuse what an earlier build left in `objdir` (`MAKEOBJDIRPREFIX`).
pub fn freebsd_build_commands(
    build: &FreeBsdBuild,
    host: &FreeBsdHost,
    objdir: &Path,
) -> Vec<BuildCommand> {
    let env = vec![("MAKEOBJDIRPREFIX".into(), objdir.as_os_str().to_owned())];
    let (program, tool, prefix): (PathBuf, &str, Vec<OsString>) = match host {
        FreeBsdHost::FreeBsd => (
            "make".into(),
            "make",
            vec!["-C".into(), build.source.clone().into_os_string()],
        ),
        FreeBsdHost::Linux { llvm_bin } => {
            let mut cross = OsString::from("--cross-bindir=");
            cross.push(llvm_bin);
            (
                build.source.join("tools/build/make.py"),
                "make.py",
                vec![cross, "TARGET=amd64".into(), "TARGET_ARCH=amd64".into()],
            )
        }
    };
    let step = |target: &str, tail: &[String]| {
        let mut args = prefix.clone();
        args.push(format!("-j{}", build.jobs).into());
        args.push(target.into());
        args.extend(WORLD_OPTIONS.iter().map(OsString::from));
        args.extend(tail.iter().map(OsString::from));
        BuildCommand {
            step: format!("{tool} {target}"),
            program: program.clone(),
            args,
            env: env.clone(),
        }
    };
    vec![
        step("kernel-toolchain", &[]),
        step(
            "buildkernel",
            &[
                format!("KERNCONF={}", build.kernconf),
                "NO_MODULES=yes".into(),
            ],
        ),
    ]
}

/// `$MAKEOBJDIRPREFIX/<source>/amd64.amd64/sys/<KERNCONF>/kernel`.
fn kernel_path(source: &Path, kernconf: &str, objdir: &Path) -> PathBuf {
    let source = source.strip_prefix("/").unwrap_or(source);
    objdir
        .join(source)
        .join("amd64.amd64/sys")
        .join(kernconf)
        .join("kernel")
}

/// Checks that `source` looks like a FreeBSD tree with this kernel config before minutes of
/// bootstrap start.
fn check_source(source: &Path, kernconf: &str) -> Result<(), BuildError> {
    for needed in [CONF_DIR, "tools/build/make.py", "Makefile.inc1", NEWVERS] {
        if !source.join(needed).exists() {
            return Err(BuildError::NotASourceTree {
                path: source.to_path_buf(),
                what: "FreeBSD",
                why: format!("no {needed}"),
            });
        }
    }
    let conf_dir = source.join(CONF_DIR);
    let plain = !kernconf.is_empty()
        && !kernconf.starts_with('.')
        && kernconf
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if plain && conf_dir.join(kernconf).is_file() {
        return Ok(());
    }
    let mut available: Vec<String> = std::fs::read_dir(&conf_dir)
        .map_err(BuildError::io(format!("list {}", conf_dir.display())))?
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "-_".contains(c))
        })
        .collect();
    available.sort();
    Err(BuildError::NoKernelConfig {
        conf: kernconf.to_string(),
        dir: conf_dir,
        available,
    })
}

/// On a read-only tree make.py's bmake bootstrap fails a minute in with pages of test diffs,
/// so say why up front. Once bmake is bootstrapped in `objdir`, make.py reuses it and the tree
/// may be read-only.
fn check_bmake_tests_writable(source: &Path, objdir: &Path) -> Result<(), BuildError> {
    let tests = source.join(BMAKE_TESTS);
    if objdir.join("bmake-install/bin/bmake").is_file() || !tests.is_dir() || writable(&tests) {
        return Ok(());
    }
    Err(BuildError::NotWritable { dir: tests })
}

/// Whether this process may write in `dir`, by the permissions the kernel checks (a read-only
/// mount included), not by reading the mode bits.
fn writable(dir: &Path) -> bool {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
}

/// The tree's release, `15.1-RELEASE-p1`, as `newvers.sh` composes it from REVISION and BRANCH.
fn source_release(source: &Path) -> Result<String, BuildError> {
    let path = source.join(NEWVERS);
    let text = std::fs::read_to_string(&path)
        .map_err(BuildError::io(format!("read {}", path.display())))?;
    parse_release(&text).ok_or_else(|| BuildError::NotASourceTree {
        path: source.to_path_buf(),
        what: "FreeBSD",
        why: format!("no REVISION= and BRANCH= in {NEWVERS}"),
    })
}

fn parse_release(newvers: &str) -> Option<String> {
    let value = |name: &str| {
        newvers.lines().find_map(|line| {
            let value = line.trim().strip_prefix(name)?.strip_prefix('=')?;
            let value = value.trim().trim_matches('"');
            let plain = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            plain.then(|| value.to_string())
        })
    };
    Some(format!("{}-{}", value("REVISION")?, value("BRANCH")?))
}

/// `freebsd-<release>-<KERNCONF>-<key>`: a FreeBSD kernel in the cache, never mistaken for a
/// Linux release, with the key `vmlane kernel rm` also removes the build log by.
fn cache_name(release: &str, kernconf: &str, key: &str) -> String {
    format!("freebsd-{release}-{kernconf}-{key}")
}

/// The source's identity and release, the config and the toolchain.
fn cache_key(
    request: &FreeBsdBuild,
    host: &FreeBsdHost,
    release: &str,
) -> Result<String, BuildError> {
    let mut hash = Sha256::new();
    hash.update(b"vmlane-freebsd-build-v1\0");
    hash.update(canonical_bytes(&request.source));
    hash.update(b"\0");
    hash.update(source_identity(&request.source)?);
    for part in [release, request.kernconf.as_str()] {
        hash.update(part.as_bytes());
        hash.update(b"\0");
    }
    for option in WORLD_OPTIONS {
        hash.update(option.as_bytes());
        hash.update(b"\0");
    }
    match host {
        FreeBsdHost::FreeBsd => hash.update(b"freebsd-host"),
        FreeBsdHost::Linux { llvm_bin } => hash.update(llvm_bin.as_os_str().as_encoded_bytes()),
    }
    Ok(hex(&hash.finalize()))
}

/// The cache entry's build marker: what `vmlane kernel list` shows and the cache reads the
/// release from.
fn marker(request: &FreeBsdBuild, host: &FreeBsdHost, release: &str) -> String {
    let toolchain = match host {
        FreeBsdHost::FreeBsd => "host".to_string(),
        FreeBsdHost::Linux { llvm_bin } => llvm_bin.display().to_string(),
    };
    format!(
        "os=freebsd\nsource={}\nrelease={release}\nkernconf={}\ntoolchain={toolchain}\n",
        request.source.display(),
        request.kernconf,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> FreeBsdBuild {
        FreeBsdBuild {
            source: "/src/freebsd".into(),
            kernconf: "FIRECRACKER".into(),
            jobs: 2,
        }
    }

    fn linux() -> FreeBsdHost {
        FreeBsdHost::Linux {
            llvm_bin: "/usr/lib/llvm-19/bin".into(),
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn freebsd_hosts_use_make_for_the_toolchain_then_the_kernel_without_modules() {
        let commands =
            freebsd_build_commands(&build(), &FreeBsdHost::FreeBsd, "/cache/obj".as_ref());
        assert_eq!(commands.len(), 2);
        assert!(commands.iter().all(|c| c.program == Path::new("make")));
        assert_eq!(
            strings(&commands[0].args),
            [
                "-C",
                "/src/freebsd",
                "-j2",
                "kernel-toolchain",
                "-DWITHOUT_TOOLCHAIN"
            ]
        );
        assert_eq!(
            strings(&commands[1].args),
            [
                "-C",
                "/src/freebsd",
                "-j2",
                "buildkernel",
                "-DWITHOUT_TOOLCHAIN",
                "KERNCONF=FIRECRACKER",
                "NO_MODULES=yes"
            ]
        );
        assert_eq!(commands[1].step, "make buildkernel");
        assert_eq!(
            commands[0].env,
            [("MAKEOBJDIRPREFIX".into(), "/cache/obj".into())]
        );
    }

    #[test]
    fn linux_hosts_bootstrap_the_toolchain_then_build_with_make_py() {
        let commands = freebsd_build_commands(&build(), &linux(), "/cache/obj".as_ref());
        assert_eq!(commands.len(), 2);
        for command in &commands {
            assert_eq!(
                command.program,
                PathBuf::from("/src/freebsd/tools/build/make.py")
            );
            let args = strings(&command.args);
            assert_eq!(
                &args[..3],
                [
                    "--cross-bindir=/usr/lib/llvm-19/bin",
                    "TARGET=amd64",
                    "TARGET_ARCH=amd64"
                ]
            );
        }
        assert_eq!(commands[0].step, "make.py kernel-toolchain");
        assert_eq!(
            strings(&commands[0].args)[3..],
            ["-j2", "kernel-toolchain", "-DWITHOUT_TOOLCHAIN"]
        );
        assert_eq!(
            strings(&commands[1].args)[3..],
            [
                "-j2",
                "buildkernel",
                "-DWITHOUT_TOOLCHAIN",
                "KERNCONF=FIRECRACKER",
                "NO_MODULES=yes"
            ]
        );
    }

    #[test]
    fn the_kernel_is_found_under_the_object_prefix() {
        assert_eq!(
            kernel_path(
                "/src/freebsd".as_ref(),
                "FIRECRACKER",
                "/cache/freebsd-obj".as_ref()
            ),
            PathBuf::from("/cache/freebsd-obj/src/freebsd/amd64.amd64/sys/FIRECRACKER/kernel")
        );
    }

    /// The files vmlane checks for, with newvers.sh as FreeBSD 15.1 has it.
    fn fake_source() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (file, text) in [
            ("sys/amd64/conf/FIRECRACKER", "ident FIRECRACKER\n"),
            ("sys/amd64/conf/GENERIC", "ident GENERIC\n"),
            ("sys/amd64/conf/GENERIC.hints", ""),
            ("tools/build/make.py", ""),
            ("Makefile.inc1", ""),
            (
                NEWVERS,
                "TYPE=\"FreeBSD\"\nREVISION=\"15.1\"\nBRANCH=\"RELEASE-p1\"\nif [ -n \"${BRANCH_OVERRIDE}\" ]; then\n\tBRANCH=${BRANCH_OVERRIDE}\nfi\n",
            ),
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn a_tree_without_make_py_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = check_source(dir.path(), "FIRECRACKER")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not a FreeBSD source tree (no sys/amd64/conf)"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_kernel_config_is_refused_with_the_ones_there() {
        let source = fake_source();
        check_source(source.path(), "FIRECRACKER").unwrap();
        for wanted in ["FIRECRAKER", "../../../etc/passwd", ".", ""] {
            let error = check_source(source.path(), wanted).unwrap_err().to_string();
            assert!(
                error.ends_with("; there: FIRECRACKER, GENERIC"),
                "{wanted}: {error}"
            );
        }
    }

    #[test]
    fn bmake_tests_need_a_writable_directory_only_until_bmake_is_bootstrapped() {
        let source = fake_source();
        let objdir = tempfile::tempdir().unwrap();
        check_bmake_tests_writable(source.path(), objdir.path()).unwrap();
        let tests = source.path().join(BMAKE_TESTS);
        std::fs::create_dir_all(&tests).unwrap();
        assert!(writable(&tests));
        check_bmake_tests_writable(source.path(), objdir.path()).unwrap();
        assert!(!writable(&source.path().join("no-such-dir")));
        let bmake = objdir.path().join("bmake-install/bin/bmake");
        std::fs::create_dir_all(bmake.parent().unwrap()).unwrap();
        std::fs::write(&bmake, "").unwrap();
        check_bmake_tests_writable(source.path(), objdir.path()).unwrap();
        let error = BuildError::NotWritable { dir: tests }.to_string();
        assert!(
            error.contains("contrib/bmake/unit-tests is not writable"),
            "{error}"
        );
    }

    #[test]
    fn the_release_comes_from_newvers() {
        let source = fake_source();
        assert_eq!(source_release(source.path()).unwrap(), "15.1-RELEASE-p1");
        assert_eq!(
            parse_release("REVISION=\"14.3\"\nBRANCH=\"STABLE\"\n").as_deref(),
            Some("14.3-STABLE")
        );
        assert_eq!(parse_release("REVISION=\"15.0\"\n"), None);
        assert_eq!(parse_release("REVISION=\"1/5\"\nBRANCH=\"X\"\n"), None);
    }

    #[test]
    fn the_cache_name_says_freebsd_release_config_and_key() {
        assert_eq!(
            cache_name("15.1-RELEASE-p1", "FIRECRACKER", "0123456789ab"),
            "freebsd-15.1-RELEASE-p1-FIRECRACKER-0123456789ab"
        );
    }

    #[test]
    fn the_key_follows_source_config_and_toolchain() {
        let source = fake_source();
        let request = FreeBsdBuild {
            source: source.path().to_path_buf(),
            ..build()
        };
        let key = cache_key(&request, &linux(), "15.1-RELEASE-p1").unwrap();
        assert_eq!(
            key,
            cache_key(&request, &linux(), "15.1-RELEASE-p1").unwrap()
        );
        let jobs = FreeBsdBuild {
            jobs: 8,
            ..request.clone()
        };
        assert_eq!(
            key,
            cache_key(&jobs, &linux(), "15.1-RELEASE-p1").unwrap(),
            "jobs do not count"
        );
        let generic = FreeBsdBuild {
            kernconf: "GENERIC".into(),
            ..request.clone()
        };
        assert_ne!(
            key,
            cache_key(&generic, &linux(), "15.1-RELEASE-p1").unwrap()
        );
        let llvm18 = FreeBsdHost::Linux {
            llvm_bin: "/usr/lib/llvm-18/bin".into(),
        };
        assert_ne!(
            key,
            cache_key(&request, &llvm18, "15.1-RELEASE-p1").unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(source.path().join("sys/amd64/conf/FIRECRACKER"), "edited").unwrap();
        assert_ne!(
            key,
            cache_key(&request, &linux(), "15.1-RELEASE-p1").unwrap(),
            "an edited tree rebuilds"
        );
    }

    struct Quiet;

    impl Progress for Quiet {
        fn line(&mut self, _step: &str, _line: &str) {}
    }

    #[test]
    fn a_cached_build_is_found_without_building() {
        let source = fake_source();
        let cache = tempfile::tempdir().unwrap();
        let request = FreeBsdBuild {
            source: source.path().to_path_buf(),
            ..build()
        };
        let release = "15.1-RELEASE-p1";
        let key = cache_key(&request, &linux(), release).unwrap();
        let name = cache_name(release, "FIRECRACKER", &key[..12]);
        cache::store(cache.path(), &name, Some("os=freebsd\n"), |dir| {
            std::fs::create_dir_all(dir.join("boot/kernel"))?;
            std::fs::write(dir.join(FREEBSD_KERNEL), "kernel")
        })
        .unwrap();
        // make.py is empty: running it would fail.
        let found = build_freebsd(&request, &linux(), cache.path(), &mut Quiet).unwrap();
        assert_eq!(
            (found.name.as_str(), found.release.as_str(), found.cached),
            (name.as_str(), release, true)
        );
        assert!(!cache.path().join("builds").exists(), "nothing was built");
    }

    #[test]
    fn a_failed_build_stores_nothing_and_names_its_log() {
        let source = fake_source();
        let cache = tempfile::tempdir().unwrap();
        let request = FreeBsdBuild {
            source: source.path().to_path_buf(),
            ..build()
        };
        let make_py = source.path().join("tools/build/make.py");
        std::fs::write(
            &make_py,
            "#!/bin/sh\necho 'cc: error: no toolchain'\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &make_py,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
        let error = build_freebsd(&request, &linux(), cache.path(), &mut Quiet)
            .unwrap_err()
            .to_string();
        assert!(error.contains("make.py kernel-toolchain"), "{error}");
        assert!(error.contains("cc: error: no toolchain"), "{error}");
        assert!(error.contains("build.log"), "{error}");
        assert!(
            std::fs::read_dir(kernels_dir(cache.path())).map_or(true, |mut d| d.next().is_none()),
            "no kernel in the cache"
        );
    }

    #[test]
    fn the_marker_records_how_it_was_built() {
        let marker = marker(&build(), &linux(), "15.1-RELEASE-p1");
        assert_eq!(
            marker,
            "os=freebsd\nsource=/src/freebsd\nrelease=15.1-RELEASE-p1\nkernconf=FIRECRACKER\ntoolchain=/usr/lib/llvm-19/bin\n"
        );
    }
}
