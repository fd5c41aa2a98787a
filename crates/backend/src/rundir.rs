use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Name prefix of run directories, which is how a later run finds leftovers to sweep.
const PREFIX: &str = "vmlane-";
/// Held locked by the owning process for the directory's lifetime; the kernel drops the lock
/// when that process dies, however it dies.
const OWNER_LOCK: &str = "owner.lock";

/// A private directory for one run's sockets and scratch files, removed when dropped. A run
/// killed outright (SIGKILL) cannot remove it, so the next one does: see [`RunDir::create`].
#[derive(Debug)]
pub struct RunDir {
    dir: tempfile::TempDir,
    /// Keeps `owner.lock` locked; dropped after `dir` is removed.
    _owner: File,
}

impl RunDir {
    /// Creates it under `$XDG_RUNTIME_DIR` when set, else the system temp directory, after
    /// removing run directories there whose owner is gone.
    pub fn create() -> io::Result<RunDir> {
        RunDir::create_in(&default_base())
    }

    /// [`RunDir::create`] under `base`.
    pub fn create_in(base: &Path) -> io::Result<RunDir> {
        sweep_abandoned(base, PREFIX);
        RunDir::owned(base, PREFIX)
    }

    /// A directory named `prefix…` in `base`, marked as this process's until dropped, so
    /// [`sweep_abandoned`] with the same prefix removes it once this process is gone.
    pub fn owned(base: &Path, prefix: &str) -> io::Result<RunDir> {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(base)?;
        // Locked before it gets its name: a sweep never sees an unlocked owner file of a
        // live run.
        let pending = dir.path().join(".owner.lock");
        let owner = File::create(&pending)?;
        flock(&owner, FlockOperation::NonBlockingLockExclusive)?;
        std::fs::rename(&pending, dir.path().join(OWNER_LOCK))?;
        Ok(RunDir { dir, _owner: owner })
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

fn default_base() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Removes the directories `prefix…` in `base` whose owner lock nobody holds: their process
/// died without cleaning up. Directories without an owner file (made by someone else, or
/// an older vmlane) are left alone. Failures are ignored: sweeping is best effort.
pub fn sweep_abandoned(base: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let named = entry.file_name().to_string_lossy().starts_with(prefix);
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if named && is_dir && owner_is_gone(&entry.path()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `dir` has an owner file that can be locked, i.e. its owner no longer runs.
fn owner_is_gone(dir: &Path) -> bool {
    let Ok(owner) = File::open(dir.join(OWNER_LOCK)) else {
        return false;
    };
    // Held while the directory is removed, so two sweeps never race on one directory.
    flock(&owner, FlockOperation::NonBlockingLockExclusive).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_whose_owner_is_gone_are_swept() {
        let base = tempfile::tempdir().unwrap();
        let live = RunDir::owned(base.path(), PREFIX).unwrap();
        // A dead owner: its lock file exists and nobody holds it.
        let dead = base.path().join("vmlane-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER_LOCK), "").unwrap();
        std::fs::write(dead.join("scratch0.img"), "data").unwrap();
        // Not vmlane's, or without an owner file: left alone.
        let foreign = base.path().join("vmlane-foreign");
        std::fs::create_dir(&foreign).unwrap();
        let other = base.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(OWNER_LOCK), "").unwrap();

        let next = RunDir::create_in(base.path()).unwrap();
        assert!(!dead.exists(), "a dead run's directory is removed");
        assert!(live.path().join(OWNER_LOCK).is_file(), "a live run's stays");
        assert!(foreign.exists() && other.exists());
        let (live_path, next_path) = (live.path().to_path_buf(), next.path().to_path_buf());
        drop(live);
        drop(next);
        assert!(!live_path.exists() && !next_path.exists());
    }
}
