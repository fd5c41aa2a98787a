//! `vmlane image`: disk images for FreeBSD runs, built into vmlane's cache.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vmlane_image::{
    build_freebsd_image, images_dir, lint, CustomKernel, Finding, FreeBsdImage, Makefs, UfsVersion,
    DEFAULT_KERNEL_NAME,
};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a FreeBSD disk image with vmlane's boot hook from a FreeBSD root tree or
    /// base.txz, into vmlane's cache; prints its path. Rebuilding from unchanged inputs is
    /// instant. Runs attach images behind a snapshot they throw away: an image is never
    /// written after it is built.
    Build(ImageBuildArgs),
    /// Check a FreeBSD root tree, base.txz or image built by vmlane for what rc needs and
    /// it lacks: libraries and the run-time linker of dynamic programs, commands the
    /// enabled rc.d scripts call, fstab's fsck passes and mount points, the files rc reads.
    /// Prints one finding a line; exits 1 when there are any, 0 when there are none, 125
    /// when the input cannot be read.
    Lint(ImageLintArgs),
}

#[derive(Debug, Args)]
pub struct ImageLintArgs {
    /// A FreeBSD root tree (a directory), a FreeBSD base.txz, or a UFS image written by
    /// `vmlane image build`. Only read.
    #[arg(value_name = "IMG|DIR|base.txz")]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// The image's operating system (only freebsd for now).
    #[arg(long, value_enum)]
    pub os: ImageOs,
    /// A FreeBSD root tree (a directory) or a FreeBSD base.txz. Only read.
    #[arg(long = "from", value_name = "DIR|base.txz")]
    pub source: PathBuf,
    /// A FreeBSD kernel to install as /boot/NAME/kernel (without modules) and boot by
    /// default; the stock /boot/kernel stays bootable.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// NAME for --kernel (default: vmlane). Not `kernel`, which is the stock one.
    #[arg(long, value_name = "NAME", requires = "kernel")]
    pub kernel_name: Option<String>,
    /// Also copy the image here (a file, or a directory to put it in).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The image's size (1536M, 2G); default: the system plus a quarter, at least 64 MiB,
    /// free.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Refuse to build when the lint (`vmlane image lint`, run on the staged tree before
    /// makefs) finds anything; without it, findings are warnings.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageOs {
    #[value(name = "freebsd")]
    FreeBsd,
    Linux,
}

pub fn image(command: ImageCommand) -> Result<i32> {
    match command {
        ImageCommand::Build(args) => build(&args).map(|()| 0),
        ImageCommand::Lint(args) => lint_command(&args),
    }
}

/// `vmlane image lint`: the findings on stdout, a summary on stderr; 1 when there are any.
fn lint_command(args: &ImageLintArgs) -> Result<i32> {
    let scratch = images_dir(&vmlane_kernel::cache_dir());
    let findings = lint(&args.input, &scratch)?;
    for finding in &findings {
        println!("{finding}");
    }
    let input = args.input.display();
    match findings.len() {
        0 => {
            eprintln!("vmlane: {input}: nothing rc needs is missing");
            Ok(0)
        }
        n => {
            eprintln!("vmlane: {input}: {n} finding(s)");
            Ok(1)
        }
    }
}

/// A build's findings, as warnings on stderr.
fn warn_about(findings: &[Finding]) {
    for finding in findings {
        eprintln!("vmlane: warning: {finding}");
    }
    if !findings.is_empty() {
        eprintln!(
            "vmlane: the image may not boot as expected ({} finding(s) above; --strict refuses such images)",
            findings.len()
        );
    }
}

pub fn build(args: &ImageBuildArgs) -> Result<()> {
    if args.os == ImageOs::Linux {
        bail!("only --os freebsd is supported: Linux runs need no disk image (vmlane shares the host's files into the VM)");
    }
    let kernel = args.kernel.as_ref().map(|path| CustomKernel {
        path: path.clone(),
        name: args
            .kernel_name
            .clone()
            .unwrap_or_else(|| DEFAULT_KERNEL_NAME.to_string()),
    });
    let request = FreeBsdImage {
        source: args.source.clone(),
        kernel,
        size: args.size,
        strict: args.strict,
    };
    let makefs = Makefs::find()?;
    let started = Instant::now();
    eprintln!(
        "vmlane: building a FreeBSD image from {}",
        args.source.display()
    );
    let built = build_freebsd_image(&request, &makefs, &vmlane_kernel::cache_dir())?;
    warn_about(&built.findings);
    if built.cached {
        eprintln!("vmlane: already built (unchanged inputs)");
    } else {
        eprintln!("vmlane: built in {:.1?}", started.elapsed());
    }
    if built.version == UfsVersion::Ufs1 {
        eprintln!(
            "vmlane: note: a UFS1 image, since this makefs (NetBSD's) cannot write a UFS2 one FreeBSD mounts"
        );
    }
    println!("{}", built.path.display());
    if let Some(output) = &args.output {
        let target = copy_to(&built.path, output)?;
        eprintln!("vmlane: copied to {}", target.display());
        println!("{}", target.display());
    }
    Ok(())
}

/// Copies the image to `output`, or into it when it is a directory; writes a temporary file
/// beside the target and renames it, so a half-copied image is never left under its name.
fn copy_to(image: &Path, output: &Path) -> Result<PathBuf> {
    let target = if output.is_dir() {
        output.join(image.file_name().unwrap_or_default())
    } else {
        output.to_path_buf()
    };
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let partial = tempfile::Builder::new()
        .prefix(".vmlane-image-")
        .tempfile_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    std::fs::copy(image, partial.path())
        .with_context(|| format!("cannot copy {} to {}", image.display(), target.display()))?;
    partial
        .persist(&target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    Ok(target)
}

/// Bytes, or a number with K, M, G or T (powers of 1024).
fn parse_size(value: &str) -> Result<u64, String> {
    let upper = value.trim().to_ascii_uppercase();
    let upper = upper
        .strip_suffix("IB")
        .or(upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (number, shift) = match upper.char_indices().last() {
        Some((i, 'K')) => (&upper[..i], 10),
        Some((i, 'M')) => (&upper[..i], 20),
        Some((i, 'G')) => (&upper[..i], 30),
        Some((i, 'T')) => (&upper[..i], 40),
        _ => (upper, 0),
    };
    let bytes = number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("expected a size like 1536M or 2G, got `{value}`"))?;
    if bytes < 1 << 20 {
        return Err(format!(
            "{value} is too small for a disk image; use at least 1M"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1536m"), Ok(1536 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4194304"), Ok(4 << 20));
        assert!(parse_size("12").unwrap_err().contains("too small"));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ImageCommand,
    }

    #[test]
    fn the_kernel_name_defaults_to_vmlane_and_needs_a_kernel() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["image", "build", "--os", "freebsd", "--from", "base.txz"])
            .unwrap();
        let ImageCommand::Build(args) = cli.command else {
            panic!("not build")
        };
        assert_eq!(args.os, ImageOs::FreeBsd);
        assert!(!args.strict);
        assert_eq!(args.kernel_name, None);
        let named = [
            "image",
            "build",
            "--os",
            "freebsd",
            "--from",
            "d",
            "--kernel-name",
            "x",
        ];
        assert!(Cli::try_parse_from(named).is_err());
        let sized = [
            "image", "build", "--os", "freebsd", "--from", "d", "--kernel", "k", "-o", "out",
            "--size", "2G",
        ];
        let ImageCommand::Build(args) = Cli::try_parse_from(sized).unwrap().command else {
            panic!("not build")
        };
        assert_eq!(args.size, Some(2 << 30));
        assert_eq!(args.output, Some(PathBuf::from("out")));
    }

    #[test]
    fn lint_takes_one_input_and_build_takes_strict() {
        use clap::Parser;
        let cli = Cli::try_parse_from(["image", "lint", "base.txz"]).unwrap();
        let ImageCommand::Lint(args) = cli.command else {
            panic!("not lint")
        };
        assert_eq!(args.input, PathBuf::from("base.txz"));
        assert!(Cli::try_parse_from(["image", "lint"]).is_err());
        let strict = [
            "image", "build", "--os", "freebsd", "--from", "d", "--strict",
        ];
        let ImageCommand::Build(args) = Cli::try_parse_from(strict).unwrap().command else {
            panic!("not build")
        };
        assert!(args.strict);
    }

    #[test]
    fn linux_images_are_refused_with_why() {
        let args = ImageBuildArgs {
            os: ImageOs::Linux,
            source: "/".into(),
            kernel: None,
            kernel_name: None,
            output: None,
            size: None,
            strict: false,
        };
        let error = build(&args).unwrap_err().to_string();
        assert!(error.contains("only --os freebsd"), "{error}");
    }
}
