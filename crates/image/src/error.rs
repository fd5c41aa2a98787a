use crate::lint::Finding;
use std::io;
use std::path::{Path, PathBuf};

/// Why an image could not be written. Each message says what was wrong and, where there is
/// one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No makefs on this machine.
    #[error("makefs not found (looked in $PATH, /usr/sbin and /usr/local/sbin): install Debian's makefs package (apt-get install makefs); FreeBSD has it in its base system")]
    MakefsMissing,
    /// A program vmlane runs is not installed.
    #[error("{program} not found: {hint}")]
    ProgramMissing {
        /// The program.
        program: &'static str,
        /// How to get it.
        hint: &'static str,
    },
    /// A name to deploy the image with is not one FreeBSD takes.
    #[error("{what} {name:?} {reason}")]
    DeployName {
        /// `user name`, `host name`, `interface`.
        what: &'static str,
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key file is not OpenSSH public keys.
    #[error("{path}: {reason}")]
    AuthorizedKeys {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// qemu-img ran and failed.
    #[error("qemu-img failed writing {image} ({status}):\n{stderr}")]
    QemuImg {
        /// The image it was writing.
        image: PathBuf,
        /// How it exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// makefs ran and failed.
    #[error("makefs failed writing {image} ({status}):\n{stderr}")]
    Makefs {
        /// The image it was writing.
        image: PathBuf,
        /// How it exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// The files did not fit in the size asked for.
    #[error("{size} bytes is too small for the image's files: give a larger --size (or none, to have vmlane work it out)")]
    TooSmall {
        /// The size asked for.
        size: u64,
    },
    /// The source is not something a FreeBSD image can be made from.
    #[error("{path} is neither a directory (a FreeBSD root tree) nor a FreeBSD base.txz (an xz-compressed tar): pass one of those with --from")]
    SourceKind {
        /// The source.
        path: PathBuf,
    },
    /// The source has no FreeBSD system in it.
    #[error("{path} is not a FreeBSD root tree: it has no {missing}, which vmlane's boot hook needs; pass the root of an installed FreeBSD system or a base.txz")]
    NotARootTree {
        /// The source.
        path: PathBuf,
        /// What it lacks.
        missing: &'static str,
    },
    /// Something other than a directory is where vmlane must put a directory.
    #[error("{path} in the image is not a directory (the source has a file or symlink there), so vmlane cannot put its files under it")]
    NotADirectory {
        /// The path in the image.
        path: String,
    },
    /// tar could not unpack a base.txz.
    #[error("tar could not extract {path} ({status}): {stderr}\n(tar and xz must be installed; a base.txz is FreeBSD's base.txz from a release's distribution files)")]
    Extract {
        /// The archive.
        path: PathBuf,
        /// How tar exited.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// The `--kernel` file is not a FreeBSD kernel.
    #[error("{path} is not a FreeBSD kernel ({reason}); pass the `kernel` file a FreeBSD kernel build installs, such as /boot/kernel/kernel or the one `vmlane kernel build --freebsd` caches")]
    NotFreeBsdKernel {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// The `--kernel-name` cannot name a directory in `/boot`.
    #[error(
        "kernel name {name:?} {reason}; pick a name like `vmlane` (it becomes /boot/NAME/kernel)"
    )]
    KernelName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A word of the command cannot be put in a shell script.
    #[error("the {what} contains a NUL byte, which no command line can carry")]
    Nul {
        /// Which word: `working directory`, `argument 2`, ...
        what: String,
    },
    /// An environment entry is not `KEY=VALUE`.
    #[error("environment entry {entry:?} is not KEY=VALUE with a non-empty KEY")]
    Env {
        /// The entry, lossily decoded.
        entry: String,
    },
    /// The run has no command.
    #[error("no command to run")]
    NoCommand,
    /// A run token that would break the marker lines the host looks for.
    #[error("run token {token:?} must be non-empty letters, digits, `-` and `_`")]
    Token {
        /// The token.
        token: String,
    },
    /// This vmlane could not build vmlane-relay, which full images carry for their hook.
    #[error("cannot put vmlane-relay in the image: {why}")]
    NoRelay {
        /// Why it was not built.
        why: &'static str,
    },
    /// A file for a minimal image has a path that cannot be put in it.
    #[error("{path:?} cannot be a file in the image: {reason}")]
    GuestPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An input could not be read. The message carries the cause (rather than a source
    /// error), so that `to_string()` alone says why.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The input.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// A strict build found problems in the staged tree; nothing was written.
    #[error("the lint found {} problem(s) the image would boot with, and a strict build stops at any:\n{}", findings.len(), lines(findings))]
    Lint {
        /// What it found.
        findings: Vec<Finding>,
    },
    /// Something vmlane writes could not be written.
    #[error("cannot write {path}: {cause}")]
    Write {
        /// What was being written.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
}

impl ImageError {
    /// For `map_err`: reading `path` failed.
    pub(crate) fn read(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
        move |cause| ImageError::Read {
            path: path.to_path_buf(),
            cause,
        }
    }

    /// For `map_err`: writing `path` failed.
    pub(crate) fn write(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
        move |cause| ImageError::Write {
            path: path.to_path_buf(),
            cause,
        }
    }
}

/// Findings, one an indented line.
fn lines(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("  {f}"))
        .collect::<Vec<_>>()
        .join("\n")
}
