use std::io;
use std::path::PathBuf;

/// Why the payload could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A file or directory could not be read or written.
    #[error("failed to {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A module the guest needs is neither built in nor in the modules directory.
    #[error("the kernel has no module {name} (not built in, not in {dir})")]
    MissingModule {
        /// The module.
        name: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A module file could not be parsed.
    #[error("module {path} is unreadable: {reason}")]
    BadModule {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl PayloadError {
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
