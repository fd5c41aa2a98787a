//! One build at a time per object directory: two vmlane processes building the same kernel
//! (two terminals, or CI jobs sharing a cache) would run make in one tree and store a kernel
//! made of each other's half-written objects.

use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Held while a build runs; the kernel releases it when this is dropped or the process dies.
#[derive(Debug)]
pub struct BuildLock {
    _file: File,
}

impl BuildLock {
    /// Locks the lock file beside `objects`, calling `waiting` first if another build holds it.
    pub fn take(objects: &Path, waiting: impl FnOnce()) -> io::Result<BuildLock> {
        if let Some(parent) = objects.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(objects.with_extension("lock"))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            waiting();
            flock(&file, FlockOperation::LockExclusive)?;
        }
        Ok(BuildLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_build_of_the_same_objects_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("builds/obj-0123456789ab");
        let first = BuildLock::take(&objects, || panic!("nothing holds it yet")).unwrap();
        let (told, heard) = mpsc::channel();
        let objects_again = objects.clone();
        let second = std::thread::spawn(move || {
            let lock = BuildLock::take(&objects_again, || told.send("waiting").unwrap());
            lock.map(drop)
        });
        assert_eq!(heard.recv_timeout(Duration::from_secs(10)), Ok("waiting"));
        assert!(
            !second.is_finished(),
            "the second build ran beside the first"
        );
        drop(first);
        second.join().unwrap().unwrap();
        // Other objects are another build's, which need not wait.
        let other = dir.path().join("builds/obj-ba9876543210");
        BuildLock::take(&other, || panic!("another kernel's build waited")).unwrap();
    }
}
