//! Finding the kernel to boot and learning what it is: its image format, its release, where its
//! modules and config are.
#![deny(missing_docs)]

mod bare;
mod boot;
pub mod build;
mod cache;
mod config;
mod error;
pub mod fetch;
#[cfg(test)]
mod fixtures;
mod freebsd_traits;
mod image;
mod search;
mod symbols;
mod tree;
mod version;

pub use cache::{cache_dir, kernels_dir};
pub use config::{KernelConfig, Tristate};
pub use error::KernelError;
pub use freebsd_traits::{freebsd_traits, FreeBsdTraits};
pub use image::{identify, ImageFormat};
pub use search::{find_kernel, Search};
pub use symbols::{debug_info_file, symbols_file};
pub use version::compare as compare_releases;

use std::fmt;
use std::path::PathBuf;

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The file QEMU gets with `-kernel`.
    pub image: PathBuf,
    /// What kind of image it is.
    pub format: ImageFormat,
    /// The kernel release (`uname -r`), when known.
    pub release: Option<String>,
    /// Its modules: a `lib/modules/<release>` directory or a build tree's root.
    pub modules: Option<PathBuf>,
    /// Its `.config`, when known.
    pub config: Option<PathBuf>,
    /// How it was chosen.
    pub origin: Origin,
}

impl Kernel {
    /// The value of `CONFIG_<name>` in the kernel's config; `None` when the config is unknown
    /// or unreadable. An option the config does not mention is [`Tristate::No`].
    pub fn config_option(&self, name: &str) -> Option<Tristate> {
        config::lookup(self.config.as_deref()?, name)
    }
}

/// How a kernel was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `-k` on the command line.
    Explicit,
    /// `$VMLANE_KERNEL`.
    Environment,
    /// A kernel build tree in the current directory.
    BuildTree,
    /// vmlane's kernel cache.
    Cache,
    /// The host's `/boot`.
    Boot,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Explicit => "given with -k",
            Origin::Environment => "from $VMLANE_KERNEL",
            Origin::BuildTree => "the build tree in the current directory",
            Origin::Cache => "from vmlane's kernel cache",
            Origin::Boot => "the host's newest /boot kernel",
        })
    }
}
