use crate::Origin;
use std::io;
use std::path::{Path, PathBuf};

/// What to do when nothing is found.
const HOW_TO_GET_ONE: &str = "run scripts/setup to fetch Debian's kernel into the cache, or pass -k PATH to a bzImage, vmlinux or kernel build tree";

/// What to do about a damaged image.
const REPLACE_IT: &str = "copy it again or rebuild the kernel";

/// Why no kernel could be used.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Nothing was found anywhere; lists each place and why it did not qualify.
    #[error("no kernel found; looked at:\n{}\n{HOW_TO_GET_ONE}", .looked.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"))]
    NotFound {
        /// One line per place looked, with why it failed.
        looked: Vec<String>,
    },
    /// `-k` or `$VMLANE_KERNEL` named a path that does not exist and no cached kernel.
    #[error("kernel {path} ({origin}) does not exist and is not the name, release or release prefix of a cached kernel; {}", cached_list(.kernels_dir, .cached))]
    NoSuchKernel {
        /// What was asked for.
        path: PathBuf,
        /// Who asked for it.
        origin: Origin,
        /// Where cached kernels live.
        kernels_dir: PathBuf,
        /// The cached kernels, as `name` or `name (release)`.
        cached: Vec<String>,
    },
    /// The file or directory exists but is not something vmlane can boot.
    #[error("{path} is not a kernel: {reason}")]
    NotAKernel {
        /// The file or directory.
        path: PathBuf,
        /// What it is instead, or what is wrong with it.
        reason: String,
    },
    /// The file is shorter than its own header says: a partial download or copy, which QEMU
    /// would start and the kernel would never report from.
    #[error("{path} is truncated: its {header} describes {} but the file has {}; {REPLACE_IT}", sizes(*.wanted, *.actual).0, sizes(*.wanted, *.actual).1)]
    Truncated {
        /// The image.
        path: PathBuf,
        /// The header that gives the size, e.g. `boot header`.
        header: &'static str,
        /// The bytes the header describes.
        wanted: u64,
        /// The bytes the file has.
        actual: u64,
    },
    /// The header holds values no real image has, such as a segment ending past 2^64 bytes.
    #[error("{path} is corrupt: {reason}; {REPLACE_IT}")]
    Corrupt {
        /// The image.
        path: PathBuf,
        /// What is wrong with its header.
        reason: String,
    },
    /// The file could not be read.
    #[error("cannot read kernel {path}{hint}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// A fix, when one is known, starting with a separator.
        hint: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl KernelError {
    /// An unreadable file, with the fix when it is a matter of permissions (Ubuntu installs
    /// `/boot/vmlinuz-*` readable by root only).
    pub(crate) fn unreadable(path: &Path, source: io::Error) -> KernelError {
        let hint = if source.kind() == io::ErrorKind::PermissionDenied {
            format!(
                ": permission denied; make it readable with `sudo chmod a+r {}`, or run scripts/setup to put a kernel in vmlane's cache",
                path.display()
            )
        } else {
            String::new()
        };
        KernelError::Unreadable {
            path: path.to_path_buf(),
            hint,
            source,
        }
    }

    pub(crate) fn not_a_kernel(path: &Path, reason: &str) -> KernelError {
        KernelError::NotAKernel {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Both sizes in MiB, KiB or bytes; exact byte counts when the rounded ones would read the
/// same, so a file a few bytes short does not say "9.8 MiB but the file has 9.8 MiB".
fn sizes(wanted: u64, actual: u64) -> (String, String) {
    let (wanted_text, actual_text) = (human_size(wanted), human_size(actual));
    if wanted_text == actual_text {
        (format!("{wanted} bytes"), format!("{actual} bytes"))
    } else {
        (wanted_text, actual_text)
    }
}

fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let exact = bytes as f64;
    if exact >= KIB * KIB {
        format!("{:.1} MiB", exact / (KIB * KIB))
    } else if exact >= KIB {
        format!("{:.1} KiB", exact / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn cached_list(kernels_dir: &Path, cached: &[String]) -> String {
    if cached.is_empty() {
        format!(
            "no kernels are cached in {} (run scripts/setup to fetch one)",
            kernels_dir.display()
        )
    } else {
        format!(
            "cached kernels in {}: {}",
            kernels_dir.display(),
            cached.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_names_the_file_and_the_fix() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let error = KernelError::unreadable(Path::new("/boot/vmlinuz-6.8.0-1-generic"), denied);
        let text = error.to_string();
        assert!(
            text.contains("cannot read kernel /boot/vmlinuz-6.8.0-1-generic"),
            "{text}"
        );
        assert!(
            text.contains("sudo chmod a+r /boot/vmlinuz-6.8.0-1-generic"),
            "{text}"
        );
        assert!(std::error::Error::source(&error).is_some());

        let missing = io::Error::from(io::ErrorKind::NotFound);
        let text = KernelError::unreadable(Path::new("/x"), missing).to_string();
        assert_eq!(text, "cannot read kernel /x");
    }

    #[test]
    fn truncation_names_the_file_both_sizes_and_the_fix() {
        let error = KernelError::Truncated {
            path: "/x/bzImage".into(),
            header: "boot header",
            wanted: 10_276_000,
            actual: 1 << 20,
        };
        assert_eq!(
            error.to_string(),
            "/x/bzImage is truncated: its boot header describes 9.8 MiB but the file has 1.0 MiB; copy it again or rebuild the kernel"
        );
    }

    #[test]
    fn sizes_that_round_alike_are_given_in_bytes() {
        assert_eq!(
            sizes(10_276_000, 10_275_990),
            ("10276000 bytes".to_string(), "10275990 bytes".to_string())
        );
        assert_eq!(
            sizes(4096, 3072),
            ("4.0 KiB".to_string(), "3.0 KiB".to_string())
        );
    }
}
