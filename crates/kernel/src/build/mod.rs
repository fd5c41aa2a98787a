//! Building kernels into vmlane's cache: Linux with a minimal config that boots without
//! modules, and FreeBSD through its own build system.

pub mod debian_source;
mod fragment;
mod freebsd;
mod kconfig;
mod linux;
mod llvm;
mod lock;
mod process;
mod source;
mod target;

pub use fragment::{parse_config, unmet, vmlane_fragment, Setting};
pub use freebsd::{build_freebsd, freebsd_build_commands, BuildCommand, FreeBsdBuild, FreeBsdHost};
pub use linux::{build_linux, make_args, BuiltKernel, LinuxBuild};
pub use llvm::{newest_versioned as newest_llvm_bin, Llvm};
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
    /// The FreeBSD tree has no such kernel config.
    #[error("no kernel config {conf:?} in {dir}; there: {}", .available.join(", "))]
    NoKernelConfig {
        /// The config asked for.
        conf: String,
        /// Where configs are looked for.
        dir: PathBuf,
        /// The configs there.
        available: Vec<String>,
    },
    /// A directory of the source tree FreeBSD's make.py writes into on its first run is
    /// read-only.
    #[error("{dir} is not writable: the first FreeBSD build in vmlane's object directory bootstraps bmake with FreeBSD's make.py, which runs bmake's unit tests there (they remove the files they create); build once from a writable copy of the tree")]
    NotWritable {
        /// The directory.
        dir: PathBuf,
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
    /// Options asked for that no Kconfig file in the tree defines.
    #[error("no such config option in {tree}: {} (no Kconfig file there defines it; check the spelling)", .names.join(", "))]
    UnknownOptions {
        /// The options, as `CONFIG_NAME`.
        names: Vec<String>,
        /// The source tree.
        tree: PathBuf,
    },
    /// A build for another architecture than the host's without its cross compiler.
    #[error("building an {arch} kernel on this {host} host needs the cross compiler {compiler}, which is not on PATH: {hint}")]
    NoCrossCompiler {
        /// The architecture built for.
        arch: vmlane_spec::Arch,
        /// The host's.
        host: vmlane_spec::Arch,
        /// The compiler looked for, e.g. `aarch64-linux-gnu-gcc`.
        compiler: String,
        /// How to get it.
        hint: String,
    },
    /// `--clang` without an LLVM toolchain to build with.
    #[error("--clang needs clang, ld.lld and the llvm tools, unversioned on PATH or in /usr/lib/llvm-N/bin: apt-get install clang-19 lld-19 llvm-19")]
    NoLlvm,
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
