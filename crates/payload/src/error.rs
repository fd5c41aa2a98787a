use std::error::Error;
use std::io;
use std::path::PathBuf;
use vmlane_spec::Arch;

/// Why the payload could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A file or directory could not be read or written.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done, as a verb phrase ("read module").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A module the guest needs is neither built into the kernel nor a loadable module.
    #[error("module {name} is neither built into the kernel nor found in {dir}")]
    MissingModule {
        /// The module, normalised (`-` written as `_`).
        name: String,
        /// The modules directory or build tree it was looked for in.
        dir: PathBuf,
    },
    /// A compressed module could not be decompressed.
    #[error("failed to decompress {format} module {path}")]
    Decompress {
        /// `xz`, `zstd` or `gzip`.
        format: &'static str,
        /// The module file.
        path: PathBuf,
        /// What the decoder reported, boxed so the decoders stay out of this crate's interface.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// A module file is not an ELF object the parser accepts.
    #[error("module {path} is not a valid ELF object")]
    BadModule {
        /// The module file.
        path: PathBuf,
        /// What the parser reported, boxed so the parser stays out of this crate's interface.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The guest's architecture is not the host's, and no init for it was built into this
    /// vmlane: its cross toolchain was missing then, or `VMLANE_GUEST_ARCHES` left it out.
    #[error(
        "this vmlane was built without the {arch} guest init: install gcc-{gcc}, \
         libc6-dev-{arch}-cross and a Rust std for {target} (`rustup target add {target}`, or \
         Debian's rustc-web with libstd-rust-web-dev:{arch} or rust-web-src to build one), then \
         rebuild vmlane; \
         `scripts/setup --arch {arch}` does all of it",
        gcc = .arch.gnu_triple().replace('_', "-"),
        target = .arch.rust_target()
    )]
    NoGuestInit {
        /// The guest's architecture.
        arch: Arch,
    },
    /// A module has no `.modinfo` section, so its dependencies are unknown.
    #[error("module {path} has no .modinfo section")]
    NoModinfo {
        /// The module file.
        path: PathBuf,
    },
}

impl PayloadError {
    /// Wraps an I/O error with what was being done and where, for use with `map_err`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> PayloadError {
        let path = path.into();
        move |source| PayloadError::Io {
            action,
            path,
            source,
        }
    }
}
