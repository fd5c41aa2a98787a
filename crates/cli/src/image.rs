//! `vmlane image`: disk images for FreeBSD runs, built into vmlane's cache.

use crate::args::{parse_memory, AccelArg, BootArg, MachineArg};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Instant;
use vmlane_image::{
    build_freebsd_image, images_dir, lint, Account, AuthorizedKeys, CustomKernel, Deploy,
    DiskFormat, Finding, FreeBsdImage, Makefs, QemuImg, UfsVersion, DEFAULT_DHCP_INTERFACE,
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
    /// Boot a FreeBSD image as it would boot when deployed: no command and no run disk, so rc
    /// runs all the way, with QEMU's user network. Waits for multi-user (rc's closing date
    /// line or getty's login prompt) and, when the image's rc.conf enables sshd, for sshd's
    /// banner through a forwarded port; prints how far rc got and the first failure on the
    /// console. Exits 0 when the image came up, 1 when it did not, 125 when vmlane failed.
    /// The image is not changed.
    Check(ImageCheckArgs),
}

#[derive(Debug, Args)]
pub struct ImageCheckArgs {
    /// The image, as `vmlane image build` wrote it (raw UFS).
    #[arg(value_name = "IMG")]
    pub image: PathBuf,
    /// The FreeBSD kernel to boot it with: a kernel file, or the name of one in vmlane's
    /// cache; default as for `vmlane run`.
    #[arg(short, long, value_name = "KERNEL")]
    pub kernel: Option<PathBuf>,
    /// How long the image may take to come up, sshd included.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub timeout: f64,
    /// The host port forwarded to the guest's port 22 when the image runs sshd (default: a
    /// free one).
    #[arg(long, value_name = "PORT")]
    pub ssh_port: Option<u16>,
    /// Extra kernel environment words, after vmlane's own.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub append: Vec<String>,
    /// How the kernel is entered, as for `vmlane run`.
    #[arg(long, value_enum, default_value_t = BootArg::Auto)]
    pub boot: BootArg,
    /// CPU accelerator, as for `vmlane run`.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// QEMU machine type, as for `vmlane run`.
    #[arg(long, value_enum, default_value_t = MachineArg::Auto)]
    pub machine: MachineArg,
    /// Guest memory (512M, 2G).
    #[arg(short, long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u32>,
    /// Write the console log here (kept); otherwise it is kept only when the check fails.
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Say what vmlane found and decided, with timings.
    #[arg(short, long)]
    pub verbose: bool,
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
    /// Also write the image here (a file, or a directory to put it in), in --format.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The format of the -o copy: raw (the cached image as it is), qcow2, or vhd (a dynamic
    /// VHD, its size rounded up to whole MiB, as Azure and XCP-ng import it). qcow2 and vhd
    /// need -o and qemu-img; the cached image, which runs attach, stays raw.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: ImageFormat,
    /// The image's size (1536M, 2G); default: the system plus a quarter, at least 64 MiB,
    /// free.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Refuse to build when the lint (`vmlane image lint`, run on the staged tree before
    /// makefs) finds anything; without it, findings are warnings.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub deploy: DeployArgs,
}

/// What an image to deploy (rather than only to run tests in) needs.
#[derive(Debug, Default, Args)]
pub struct DeployArgs {
    /// The image's host name (rc.conf's hostname; default: vmlane).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// An OpenSSH public key file to put in root's ~/.ssh/authorized_keys (mode 0600).
    #[arg(long, value_name = "KEY_FILE")]
    pub root_key: Option<PathBuf>,
    /// An account to make at first boot (`pw useradd -m`), with the public keys of KEY_FILE
    /// in its ~/.ssh/authorized_keys. Repeatable.
    #[arg(long = "user", value_name = "NAME[:KEY_FILE]")]
    pub users: Vec<String>,
    /// Start sshd, taking keys only (no passwords, root by key); host keys are made at first
    /// boot.
    #[arg(long)]
    pub sshd: bool,
    /// Configure this interface by DHCP at boot (default: vtnet0, the first virtio-net
    /// device).
    #[arg(long, value_name = "IFACE", num_args = 0..=1, default_missing_value = DEFAULT_DHCP_INTERFACE)]
    pub dhcp: Option<String>,
}

impl DeployArgs {
    /// The deployment, with its key files read and checked.
    fn deploy(&self) -> Result<Deploy> {
        let root_keys = self
            .root_key
            .as_deref()
            .map(AuthorizedKeys::read)
            .transpose()
            .context("--root-key")?;
        let users = self
            .users
            .iter()
            .map(|spec| Account::parse(spec).with_context(|| format!("--user {spec}")))
            .collect::<Result<_>>()?;
        let deploy = Deploy {
            hostname: self.hostname.clone(),
            root_keys,
            users,
            sshd: self.sshd,
            dhcp: self.dhcp.clone(),
        };
        deploy.validate()?;
        Ok(deploy)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    Raw,
    Qcow2,
    Vhd,
}

impl From<ImageFormat> for DiskFormat {
    fn from(format: ImageFormat) -> DiskFormat {
        match format {
            ImageFormat::Raw => DiskFormat::Raw,
            ImageFormat::Qcow2 => DiskFormat::Qcow2,
            ImageFormat::Vhd => DiskFormat::Vhd,
        }
    }
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
        ImageCommand::Check(args) => crate::image_check::check(&args),
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
    let format = DiskFormat::from(args.format);
    // Found before the build, so a missing qemu-img costs no image.
    let qemu_img = match (format, &args.output) {
        (DiskFormat::Raw, _) => None,
        (_, None) => bail!(
            "--format {} writes a copy of the image: say where with -o PATH (the cached image stays raw)",
            format.extension()
        ),
        (_, Some(_)) => Some(QemuImg::find()?),
    };
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
        deploy: args.deploy.deploy()?,
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
        let started = Instant::now();
        let target = write_out(&built.path, output, format, qemu_img.as_ref())?;
        eprintln!(
            "vmlane: written as {} to {} in {:.1?}",
            format.extension(),
            target.display(),
            started.elapsed()
        );
        println!("{}", target.display());
    }
    Ok(())
}

/// Writes the image to `output`, or into it when it is a directory, in `format`; writes a
/// temporary file beside the target and renames it, so a half-written image is never left
/// under its name.
fn write_out(
    image: &Path,
    output: &Path,
    format: DiskFormat,
    qemu_img: Option<&QemuImg>,
) -> Result<PathBuf> {
    let target = if output.is_dir() {
        output.join(
            image
                .with_extension(format.extension())
                .file_name()
                .unwrap_or_default(),
        )
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
    match qemu_img {
        Some(qemu_img) => qemu_img.convert(image, format, partial.path())?,
        None => {
            std::fs::copy(image, partial.path()).with_context(|| {
                format!("cannot copy {} to {}", image.display(), target.display())
            })?;
        }
    }
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
    fn formats_other_than_raw_need_an_output() {
        use clap::Parser;
        let vhd = [
            "image", "build", "--os", "freebsd", "--from", "d", "--format", "vhd",
        ];
        let ImageCommand::Build(args) = Cli::try_parse_from(vhd).unwrap().command else {
            panic!("not build")
        };
        assert_eq!(args.format, ImageFormat::Vhd);
        let error = build(&args).unwrap_err().to_string();
        assert!(error.contains("-o PATH"), "{error}");
        let odd = [
            "image", "build", "--os", "freebsd", "--from", "d", "--format", "vmdk",
        ];
        assert!(Cli::try_parse_from(odd).is_err());
    }

    #[test]
    fn deploy_flags_parse_and_dhcp_defaults_to_vtnet0() {
        use clap::Parser;
        let deploy = [
            "image",
            "build",
            "--os",
            "freebsd",
            "--from",
            "d",
            "--hostname",
            "web1",
            "--user",
            "alice",
            "--user",
            "bob:bob.pub",
            "--sshd",
            "--dhcp",
        ];
        let ImageCommand::Build(args) = Cli::try_parse_from(deploy).unwrap().command else {
            panic!("not build")
        };
        assert_eq!(args.deploy.hostname.as_deref(), Some("web1"));
        assert_eq!(args.deploy.users, ["alice", "bob:bob.pub"]);
        assert!(args.deploy.sshd);
        assert_eq!(args.deploy.dhcp.as_deref(), Some("vtnet0"));
        let em = [
            "image", "build", "--os", "freebsd", "--from", "d", "--dhcp", "em0",
        ];
        let ImageCommand::Build(args) = Cli::try_parse_from(em).unwrap().command else {
            panic!("not build")
        };
        assert_eq!(args.deploy.dhcp.as_deref(), Some("em0"));
    }

    #[test]
    fn bad_deploy_inputs_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("id_ed25519");
        std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
        let cases = [
            (
                DeployArgs {
                    users: vec!["Alice".into()],
                    ..DeployArgs::default()
                },
                "lower-case",
            ),
            (
                DeployArgs {
                    root_key: Some(private.clone()),
                    ..DeployArgs::default()
                },
                "public half",
            ),
            (
                DeployArgs {
                    users: vec![format!("bob:{}", dir.path().join("none.pub").display())],
                    ..DeployArgs::default()
                },
                "none.pub",
            ),
            (
                DeployArgs {
                    dhcp: Some("eth".into()),
                    ..DeployArgs::default()
                },
                "like vtnet0",
            ),
        ];
        for (args, says) in cases {
            let error = format!("{:#}", args.deploy().unwrap_err());
            assert!(error.contains(says), "{says}: {error}");
        }
    }

    #[test]
    fn linux_images_are_refused_with_why() {
        let args = ImageBuildArgs {
            os: ImageOs::Linux,
            source: "/".into(),
            kernel: None,
            kernel_name: None,
            output: None,
            format: ImageFormat::Raw,
            size: None,
            strict: false,
            deploy: DeployArgs::default(),
        };
        let error = build(&args).unwrap_err().to_string();
        assert!(error.contains("only --os freebsd"), "{error}");
    }
}
