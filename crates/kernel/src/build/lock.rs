//! One build at a time per object directory: two vmlane processes building the same kernel
//! (two terminals, or CI jobs sharing a cache) would run make in one tree and store a kernel
//! made of each other's half-written objects.

use super::process::Progress;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::Duration;

/// Held while a build runs; the kernel releases it when this is dropped or the process dies.
#[derive(Debug)]
pub struct BuildLock {
    _file: File,
}

impl BuildLock {
    /// Locks the lock file beside `objects`. While another build of `what` holds it, the
    /// wait is said once and `progress` is asked every tenth of a second whether the user
    /// stopped it, which ends the wait in [`io::ErrorKind::Interrupted`].
    pub fn take(objects: &Path, what: &str, progress: &mut dyn Progress) -> io::Result<BuildLock> {
        if let Some(parent) = objects.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(objects.with_extension("lock"))?;
        let step = format!("wait for another vmlane build of {what}");
        let mut waited = false;
        // Polled, not blocking: vmlane's signal handlers restart a blocked flock, so Ctrl-C
        // could not end the wait.
        while flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            if !waited {
                progress.line(&step, "another vmlane process is building it in this cache");
                waited = true;
            }
            if progress.stop_requested() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            std::thread::sleep(POLL);
        }
        Ok(BuildLock { _file: file })
    }
}

/// How often a waiting build tries the lock again.
const POLL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::mpsc;

    /// Says each line on a channel, and stops after `patience` questions.
    struct Waiter {
        lines: mpsc::Sender<String>,
        patience: usize,
    }

    impl Progress for Waiter {
        fn line(&mut self, step: &str, _line: &str) {
            let _ = self.lines.send(step.to_string());
        }

        fn stop_requested(&mut self) -> bool {
            self.patience = self.patience.saturating_sub(1);
            self.patience == 0
        }
    }

    fn waiter(patience: usize) -> (Waiter, mpsc::Receiver<String>) {
        let (lines, heard) = mpsc::channel();
        (Waiter { lines, patience }, heard)
    }

    /// A cache whose objects a first build has locked, without a word of waiting.
    fn held() -> (tempfile::TempDir, PathBuf, BuildLock) {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("builds/obj-0123456789ab");
        let (mut quiet, said) = waiter(usize::MAX);
        let first = BuildLock::take(&objects, "this kernel", &mut quiet).unwrap();
        assert!(
            said.try_recv().is_err(),
            "nothing held it, nothing was said"
        );
        (dir, objects, first)
    }

    #[test]
    fn a_second_build_of_the_same_objects_waits_for_the_first() {
        let (dir, objects, first) = held();
        let objects_again = objects.clone();
        let (mut patient, heard) = waiter(usize::MAX);
        let second = std::thread::spawn(move || {
            BuildLock::take(&objects_again, "this kernel", &mut patient).map(drop)
        });
        assert_eq!(
            heard.recv_timeout(Duration::from_secs(10)).as_deref(),
            Ok("wait for another vmlane build of this kernel")
        );
        assert!(
            !second.is_finished(),
            "the second build ran beside the first"
        );
        drop(first);
        second.join().unwrap().unwrap();
        assert!(heard.try_recv().is_err(), "the wait is said once");
        // Other objects are another build's, which need not wait.
        let other = dir.path().join("builds/obj-ba9876543210");
        let (mut quiet, said) = waiter(usize::MAX);
        BuildLock::take(&other, "this kernel", &mut quiet).unwrap();
        assert!(said.try_recv().is_err(), "another kernel's build waited");
    }

    #[test]
    fn a_wait_the_user_stops_ends_interrupted() {
        let (_dir, objects, _first) = held();
        let (mut stopping, _) = waiter(3);
        let given_up = BuildLock::take(&objects, "this kernel", &mut stopping);
        assert_eq!(given_up.unwrap_err().kind(), io::ErrorKind::Interrupted);
        assert_eq!(stopping.patience, 0, "asked until it said stop");
    }
}
