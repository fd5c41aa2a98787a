use std::io;
use std::path::{Path, PathBuf};

/// A private directory for one run's sockets and scratch files, removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    dir: tempfile::TempDir,
}

impl RunDir {
    /// Creates it under `$XDG_RUNTIME_DIR` when set, else the system temp directory.
    pub fn create() -> io::Result<RunDir> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|dir| dir.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("vmlane-")
            .tempdir_in(base)?;
        Ok(RunDir { dir })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
