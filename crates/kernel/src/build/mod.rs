//! Building kernels into vmlane's cache: Linux with a minimal config that boots without
//! modules, and FreeBSD through its own build system.

mod fragment;
mod freebsd;
mod linux;
mod process;

pub use fragment::{parse_config, unmet, vmlane_fragment, Setting};
pub use freebsd::{
    check_freebsd_source, freebsd_build_commands, BuildCommand, FreeBsdBuild, FreeBsdHost,
};
pub use linux::{build_linux, make_args, BuiltKernel, LinuxBuild};
pub use process::Progress;

use std::io;
use std::path::PathBuf;

/// Why a kernel build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The source directory is not a kernel source tree.
    #[error("{path} is not a {what} source tree ({why})")]
    NotASourceTree {
        /// The directory.
        path: PathBuf,
        /// Linux or FreeBSD.
        what: &'static str,
        /// What is missing.
        why: String,
    },
    /// The config lacks options vmlane or the user asked for.
    #[error("the kernel config does not have what was asked for; kconfig dropped:\n  {}\n(options often depend on others; full config: {config})", .unmet.join("\n  "))]
    ConfigUnmet {
        /// The options that did not stick.
        unmet: Vec<String>,
        /// The effective `.config`.
        config: PathBuf,
    },
    /// A build step failed; the lines that say why and the full log.
    #[error("{step} failed:\n{quote}\nfull log: {log}")]
    StepFailed {
        /// The step, e.g. `make bzImage`.
        step: String,
        /// The failing lines from the log.
        quote: String,
        /// The log.
        log: PathBuf,
    },
    /// I/O around the build.
    #[error("failed to {action}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl BuildError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> BuildError {
        let action = action.into();
        move |source| BuildError::Io { action, source }
    }
}
