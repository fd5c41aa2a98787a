use std::path::PathBuf;

/// Why a suite cannot be used. Each says which file and which test.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The file or directory cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no `*.toml` file.
    #[error("{0} holds no .toml suite files")]
    Empty(PathBuf),
    /// The TOML does not parse or has keys vmlane does not know.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A test is not usable as written.
    #[error("{path}: test {test:?}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The test's name.
        test: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `--partition` is not `[count:|hash:]K/N` with 1 <= K <= N.
    #[error("--partition must be K/N, count:K/N or hash:K/N with 1 <= K <= N (e.g. hash:2/4), got {0:?}")]
    BadPartition(String),
}
