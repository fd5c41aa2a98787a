//! `vmlane kernel`: build or fetch kernels into the cache, list them, remove them.

use crate::args::{KernelBuildArgs, KernelCommand, KernelFetchArgs};
use crate::interrupt::{ride_out, Caught};
use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use vmlane_kernel::build::{
    build_linux, debian_source, newest_llvm_bin, parse_config, BuiltKernel, FreeBsdBuild,
    FreeBsdHost, LinuxBuild, Progress, Setting,
};
use vmlane_kernel::fetch::{fetch_debian, Wanted};
use vmlane_kernel::{cache_dir, identify, kernels_dir};
use vmlane_spec::Arch;

pub fn kernel(command: KernelCommand) -> Result<i32> {
    match command {
        KernelCommand::Build(args) => build(args),
        KernelCommand::Fetch(args) => fetch(args),
        KernelCommand::List { arch } => list(arch),
        KernelCommand::Rm { names } => remove(&names),
    }
}

fn build(args: KernelBuildArgs) -> Result<i32> {
    let cache = cache_dir();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    if let Some(source) = &args.freebsd {
        return build_freebsd(source, &args.conf, &cache, jobs);
    }
    let caught = Caught::register()?;
    let source = match (&args.source, args.debian) {
        (_, true) => caught.settle(debian_source(&cache, args.arch.unwrap_or(Arch::host())))?,
        (Some(source), false) => source.clone(),
        (None, false) => std::env::current_dir().context("failed to read the current directory")?,
    };
    let request = LinuxBuild {
        source,
        extra: extra_settings(&args)?,
        clang: args.clang,
        arch: args.arch.unwrap_or(Arch::host()),
        jobs,
    };
    let mut progress = TerminalProgress::new(&caught);
    let started = Instant::now();
    let built = caught.settle(build_linux(&request, &cache, &mut progress).map_err(Into::into));
    progress.finish();
    announce(&built?, started)
}

fn fetch(args: KernelFetchArgs) -> Result<i32> {
    let arch = args.arch.unwrap_or(Arch::host());
    let wanted = Wanted {
        arch,
        suite: args
            .suite
            .unwrap_or_else(|| arch.debian_suite().to_string()),
        flavour: args.flavour,
    };
    let started = Instant::now();
    let fetched = ride_out(|| {
        Ok(fetch_debian(&wanted, &cache_dir(), &mut |step| {
            eprintln!("vmlane: {step}")
        })?)
    })?;
    if fetched.cached {
        eprintln!(
            "vmlane: {} ({}) is already in the cache",
            fetched.name, fetched.package
        );
    } else {
        eprintln!(
            "vmlane: fetched {} into {} in {:.0?}",
            fetched.package,
            fetched.dir.display(),
            started.elapsed()
        );
    }
    println!("{}", fetched.name);
    Ok(0)
}

/// Says what was built (or found) and prints its cache name, which `run -k` takes.
fn announce(built: &BuiltKernel, started: Instant) -> Result<i32> {
    if built.cached {
        eprintln!(
            "vmlane: {} is already built (unchanged source and options)",
            built.name
        );
    } else {
        eprintln!("vmlane: built {} in {:.0?}", built.name, started.elapsed());
    }
    println!("{}", built.name);
    Ok(0)
}

/// `-e`, `-m`, `-d` and `--config`, in that order of precedence from low to high.
fn extra_settings(args: &KernelBuildArgs) -> Result<Vec<Setting>> {
    let mut settings = Vec::new();
    if let Some(file) = &args.config {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read {}", file.display()))?;
        settings.extend(parse_config(&text));
    }
    for (names, value) in [
        (&args.enable, "y"),
        (&args.module, "m"),
        (&args.disable, "n"),
    ] {
        settings.extend(names.iter().map(|name| Setting::new(name, value)));
    }
    Ok(settings)
}

/// Debian's `linux-source` tarball for `arch`, unpacked once into the cache.
fn debian_source(cache: &Path, arch: Arch) -> Result<PathBuf> {
    let tarball = match find_debian_tarball(arch) {
        Some(tarball) => tarball,
        None => {
            let package = debian_source::source_package(arch);
            eprintln!("vmlane: installing Debian's {package} package");
            let status = Command::new("apt-get")
                .args(["install", "-y", "-qq", &package])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .context("failed to run apt-get")?;
            if !status.success() {
                bail!("`apt-get install {package}` failed; run it as root, then try again");
            }
            find_debian_tarball(arch).with_context(|| {
                format!("{package} is installed but /usr/src has no linux-source-*.tar.xz for it")
            })?
        }
    };
    let stem = tarball
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .trim_end_matches(".tar.xz")
        .to_string();
    let sources = cache.join("src");
    let tree = sources.join(&stem);
    if tree.join(".vmlane-unpacked").is_file() {
        return Ok(tree);
    }
    std::fs::create_dir_all(&sources)?;
    let _ = std::fs::remove_dir_all(&tree);
    eprintln!(
        "vmlane: unpacking {} into {}",
        tarball.display(),
        sources.display()
    );
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&sources)
        .status()?;
    if !status.success() {
        // Half a tree is a gigabyte the next build would unpack over anyway.
        let _ = std::fs::remove_dir_all(&tree);
        bail!("failed to unpack {}", tarball.display());
    }
    std::fs::write(tree.join(".vmlane-unpacked"), "")?;
    Ok(tree)
}

fn find_debian_tarball(arch: Arch) -> Option<PathBuf> {
    let dir = Path::new("/usr/src");
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    debian_source::pick_tarball(names.iter().map(String::as_str), arch).map(|name| dir.join(name))
}

fn build_freebsd(source: &Path, kernconf: &str, cache: &Path, jobs: u32) -> Result<i32> {
    let host = if cfg!(target_os = "freebsd") {
        FreeBsdHost::FreeBsd
    } else {
        let llvm_bin = newest_llvm_bin(Path::new("/usr/lib"));
        let missing = missing_linux_packages(llvm_bin.is_some());
        if !missing.is_empty() {
            bail!(
                "building FreeBSD kernels on Linux needs: apt-get install {}",
                missing.join(" ")
            );
        }
        FreeBsdHost::Linux {
            llvm_bin: llvm_bin.context("no /usr/lib/llvm-*/bin with clang and ld.lld")?,
        }
    };
    let request = FreeBsdBuild {
        source: source.to_path_buf(),
        kernconf: kernconf.to_string(),
        jobs,
    };
    let caught = Caught::register()?;
    let mut progress = TerminalProgress::new(&caught);
    let started = Instant::now();
    let built = vmlane_kernel::build::build_freebsd(&request, &host, cache, &mut progress);
    let built = caught.settle(built.map_err(Into::into));
    progress.finish();
    announce(&built?, started)
}

/// The Debian packages FreeBSD's make.py needs that this host lacks, checked up front so a
/// missing one is not found minutes into the bootstrap: LLVM for the kernel, a C compiler,
/// libarchive and flex for the bootstrap tools.
fn missing_linux_packages(has_llvm: bool) -> Vec<&'static str> {
    let on_path = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
    };
    [
        (has_llvm, "clang-19 lld-19 llvm-19"),
        (on_path("cc") && on_path("c++"), "build-essential"),
        (
            Path::new("/usr/include/archive.h").is_file(),
            "libarchive-dev",
        ),
        (on_path("lex") || on_path("flex"), "flex"),
        (on_path("python3"), "python3"),
    ]
    .into_iter()
    .filter(|(present, _)| !present)
    .map(|(_, package)| package)
    .collect()
}

fn list(only: Option<Arch>) -> Result<i32> {
    let dir = kernels_dir(&cache_dir());
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !is_partial(p))
            .collect(),
        Err(_) => Vec::new(),
    };
    if entries.is_empty() {
        eprintln!(
            "vmlane: no kernels in {} (run scripts/setup or vmlane kernel build)",
            dir.display()
        );
        return Ok(0);
    }
    entries.sort();
    let name_of = |path: &Path| {
        path.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    // FreeBSD names (`freebsd-15.1-RELEASE-p1-FIRECRACKER-<key>`) are longer than Linux ones.
    let width = entries
        .iter()
        .map(|p| name_of(p).len())
        .max()
        .unwrap_or(0)
        .max(40);
    println!(
        "{:<width$} {:<24} {:<5} {:>9}  {:<16}  config",
        "NAME", "RELEASE", "ARCH", "SIZE", "ADDED"
    );
    for path in entries {
        let name = name_of(&path);
        let release = release_of(&path).unwrap_or_else(|| "?".into());
        let arch = arch_of(&path, &release);
        if only.is_some_and(|only| arch != Some(only)) {
            continue;
        }
        let arch = arch.map_or_else(|| "?".into(), |a| a.to_string());
        let size = dir_size(&path);
        let added = path
            .metadata()
            .and_then(|m| m.modified())
            .map(format_time)
            .unwrap_or_default();
        println!(
            "{name:<width$} {release:<24} {arch:<5} {:>7} MB  {added:<16}  {}",
            size >> 20,
            config_summary(&path)
        );
    }
    Ok(0)
}

fn is_partial(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// A Linux kernel's release from its `boot/vmlinuz-<release>`; a FreeBSD kernel's from its
/// build marker.
fn release_of(dir: &Path) -> Option<String> {
    let linux = std::fs::read_dir(dir.join("boot"))
        .ok()?
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        });
    linux.or_else(|| {
        let info = std::fs::read_to_string(dir.join("vmlane-build")).ok()?;
        (marker_field(&info, "os") == "freebsd")
            .then(|| marker_field(&info, "release"))
            .filter(|r| !r.is_empty())
    })
}

/// The architecture a cached kernel runs on: as its build marker records it, else from its
/// image's headers (Debian's packaged kernels have no marker); `None` when neither says.
fn arch_of(dir: &Path, release: &str) -> Option<Arch> {
    let info = std::fs::read_to_string(dir.join("vmlane-build")).unwrap_or_default();
    if let Ok(arch) = marker_field(&info, "arch").parse() {
        return Some(arch);
    }
    let image = match marker_field(&info, "os").as_str() {
        "freebsd" => dir.join("boot/kernel/kernel"),
        _ => dir.join("boot").join(format!("vmlinuz-{release}")),
    };
    identify(&image).ok().map(|(format, _)| format.arch())
}

/// A `key=value` line of a `vmlane-build` marker; empty when missing.
fn marker_field(info: &str, key: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
        .to_string()
}

fn config_summary(dir: &Path) -> String {
    match std::fs::read_to_string(dir.join("vmlane-build")) {
        Ok(info) if marker_field(&info, "os") == "freebsd" => {
            format!("FreeBSD {}, no modules", marker_field(&info, "kernconf"))
        }
        Ok(info) => {
            let field = |key: &str| marker_field(&info, key.trim_end_matches('='));
            let mut summary = format!(
                "vmlane minimal, {}",
                if field("clang=") == "true" {
                    "clang"
                } else {
                    "gcc"
                }
            );
            let extra = field("extra=");
            if !extra.is_empty() {
                summary.push_str(&format!(", {extra}"));
            }
            summary
        }
        Err(_) => "packaged (modules)".into(),
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn format_time(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as libc::time_t;
    let mut tm: libc::tm = unsafe_zeroed_tm();
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

fn unsafe_zeroed_tm() -> libc::tm {
    // SAFETY: libc::tm is plain data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn remove(names: &[String]) -> Result<i32> {
    let cache = cache_dir();
    let dir = kernels_dir(&cache);
    for name in names {
        let path = dir.join(name);
        if name.contains('/') || name.starts_with('.') || !path.is_dir() {
            bail!(
                "no kernel named {name} in {} (see vmlane kernel list)",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&path)
            .with_context(|| format!("failed to remove {}", path.display()))?;
        // A vmlane build's object tree is named by the key at the end of the kernel's name.
        if let Some(key) = name.rsplit('-').next().filter(|k| k.len() == 12) {
            let _ = std::fs::remove_dir_all(cache.join("builds").join(key));
        }
        let saved = vmlane::snapshot::Snapshots::new(&cache).forget_kernel(&path);
        match saved {
            0 => eprintln!("vmlane: removed {name}"),
            n => eprintln!("vmlane: removed {name} and its {n} saved guest(s)"),
        }
    }
    Ok(0)
}

/// A one-line progress display on a terminal; plain step lines otherwise.
struct TerminalProgress<'a> {
    bar: Option<indicatif::ProgressBar>,
    step: String,
    lines: u64,
    /// Ctrl-C, which ends a build waiting for another.
    caught: &'a Caught,
}

impl<'a> TerminalProgress<'a> {
    fn new(caught: &'a Caught) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        TerminalProgress {
            bar,
            step: String::new(),
            lines: 0,
            caught,
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress<'_> {
    fn line(&mut self, step: &str, line: &str) {
        self.lines += 1;
        if step != self.step {
            self.step = step.to_string();
            if self.bar.is_none() {
                eprintln!("vmlane: {step}");
            }
        }
        if let Some(bar) = &self.bar {
            let shown: String = line.trim().chars().take(70).collect();
            bar.set_message(format!("{step} [{} lines] {shown}", self.lines));
        }
    }

    fn stop_requested(&mut self) -> bool {
        self.caught.signal().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(dir: &Path, files: &[(&str, &str)]) {
        for (file, text) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn a_freebsd_kernel_is_listed_with_its_release_and_config() {
        let dir = tempfile::tempdir().unwrap();
        cached(
            dir.path(),
            &[
                ("boot/kernel/kernel", "elf"),
                (
                    "vmlane-build",
                    "os=freebsd\nsource=/src\nrelease=15.1-RELEASE-p1\nkernconf=FIRECRACKER\n",
                ),
            ],
        );
        assert_eq!(release_of(dir.path()).as_deref(), Some("15.1-RELEASE-p1"));
        assert_eq!(
            config_summary(dir.path()),
            "FreeBSD FIRECRACKER, no modules"
        );
    }

    #[test]
    fn linux_kernels_are_listed_as_before() {
        let built = tempfile::tempdir().unwrap();
        cached(
            built.path(),
            &[
                ("boot/vmlinuz-6.1.192", "bz"),
                (
                    "vmlane-build",
                    "source=/src\nclang=true\nextra=CONFIG_KASAN=y\n",
                ),
            ],
        );
        assert_eq!(release_of(built.path()).as_deref(), Some("6.1.192"));
        assert_eq!(
            config_summary(built.path()),
            "vmlane minimal, clang, CONFIG_KASAN=y"
        );
        let packaged = tempfile::tempdir().unwrap();
        cached(packaged.path(), &[("boot/vmlinuz-6.1.0-56-amd64", "bz")]);
        assert_eq!(config_summary(packaged.path()), "packaged (modules)");
    }

    #[test]
    fn a_kernels_architecture_comes_from_its_marker_or_its_image() {
        let built = tempfile::tempdir().unwrap();
        cached(
            built.path(),
            &[
                ("boot/vmlinuz-6.1.192-arm64", "not read"),
                (
                    "vmlane-build",
                    "source=/src\narch=arm64\nclang=false\nextra=\n",
                ),
            ],
        );
        assert_eq!(arch_of(built.path(), "6.1.192-arm64"), Some(Arch::Aarch64));

        // A packaged arm64 kernel: an Image header, "ARMd" at 0x38, and its banner.
        let packaged = tempfile::tempdir().unwrap();
        let mut image = vec![0u8; 0x1000];
        image[0x38..0x3c].copy_from_slice(b"ARMd");
        image.extend_from_slice(b"Linux version 6.1.0-57-arm64 (debian) #1 SMP\0");
        std::fs::create_dir_all(packaged.path().join("boot")).unwrap();
        std::fs::write(packaged.path().join("boot/vmlinuz-6.1.0-57-arm64"), image).unwrap();
        assert_eq!(
            arch_of(packaged.path(), "6.1.0-57-arm64"),
            Some(Arch::Aarch64)
        );

        // x86 builds from before the marker said the architecture, with an unreadable image.
        let old = tempfile::tempdir().unwrap();
        cached(
            old.path(),
            &[
                ("boot/vmlinuz-6.1.192", "bz"),
                ("vmlane-build", "source=/src\nclang=false\nextra=\n"),
            ],
        );
        assert_eq!(arch_of(old.path(), "6.1.192"), None);
    }
}
