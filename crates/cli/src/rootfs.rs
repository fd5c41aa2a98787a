//! `vmlane rootfs`: root filesystems of other architectures for `--root`, made by mmdebstrap
//! into vmlane's cache.

use crate::interrupt::ride_out;
use anyhow::Result;
use clap::Subcommand;
use vmlane_rootfs::{build, RootSpec};
use vmlane_spec::Arch;

#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Make a minimal Debian root of an architecture (or find it in the cache) and print its
    /// directory, for `--root`.
    Build {
        /// Its architecture (amd64, arm64, ppc64el, riscv64, s390x; ppc64 has no Debian
        /// userland). Default: the host's.
        #[arg(long, value_name = "ARCH")]
        arch: Option<Arch>,
        /// The Debian release. Default: bookworm, or trixie for riscv64 (bookworm has none).
        #[arg(long)]
        suite: Option<String>,
        /// Packages beyond the essential ones, comma-separated (`--packages strace,kmod`).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        packages: Vec<String>,
    },
}

pub fn rootfs(command: RootfsCommand) -> Result<i32> {
    match command {
        RootfsCommand::Build {
            arch,
            suite,
            packages,
        } => {
            let arch = arch.unwrap_or_else(Arch::host);
            let spec = RootSpec {
                arch,
                suite: suite.unwrap_or_else(|| arch.debian_suite().into()),
                packages,
            };
            let dir = ride_out(|| Ok(build(&vmlane_kernel::cache_dir(), &spec)?))?;
            println!("{}", dir.display());
        }
    }
    Ok(0)
}
