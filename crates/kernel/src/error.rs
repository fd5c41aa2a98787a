use std::io;
use std::path::PathBuf;

/// Why no kernel could be used.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Nothing was found anywhere; lists each place and why it did not qualify.
    #[error("no kernel found. Looked at:\n{}\nRun scripts/setup to fetch Debian's kernel into the cache, or pass -k PATH to a bzImage, vmlinux or kernel build tree.", .looked.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// One line per place looked.
        looked: Vec<String>,
    },
    /// `-k` named a path that does not exist and no cached kernel of that name.
    #[error("kernel {path} does not exist and is not the name or release of a cached kernel (cached: {})", if .cached.is_empty() { "none; run scripts/setup".to_string() } else { .cached.join(", ") })]
    NoSuchKernel {
        /// What was asked for.
        path: PathBuf,
        /// The names of cached kernels.
        cached: Vec<String>,
    },
    /// The file exists but is not a bootable kernel.
    #[error("{path} is not a kernel: {reason}")]
    NotAKernel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read kernel {path}{hint}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// A fix, when one is known.
        hint: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl KernelError {
    pub(crate) fn unreadable(path: PathBuf, source: io::Error) -> KernelError {
        let hint = if source.kind() == io::ErrorKind::PermissionDenied {
            " (permission denied: copy it somewhere readable, or `sudo chmod a+r` it)".to_string()
        } else {
            String::new()
        };
        KernelError::Unreadable { path, hint, source }
    }
}
