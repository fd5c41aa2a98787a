//! Saved guests: a VM booted to where its init waits for the request, kept in vmlane's cache
//! under a key of everything that shapes it (the backend names the parts), and restored
//! instead of booted by later runs of the same configuration.
//!
//! A configuration is saved the second time it runs (or the first, when the caller knows more
//! runs follow), so the first run on a new kernel costs no more than a cold boot. Snapshots are
//! written whole or not at all, the newest few are kept, and one that fails to restore is
//! deleted.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use vmlane_backend::{sweep_abandoned, RunDir};

/// Saved guests kept; each is tens of MiB.
const KEPT_SNAPSHOTS: usize = 8;
/// Configurations remembered as run once, so their second run saves them.
const KEPT_SEEN: usize = 256;
const STATE: &str = "state";
const RAM: &str = "ram";
const CONSOLE: &str = "console.log";
const KEY: &str = "key";
/// Names of saves under way.
const PENDING_PREFIX: &str = ".new-";

/// What a saved guest depends on: named parts, and their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    parts: Vec<(String, String)>,
    hash: String,
}

impl Key {
    /// A key of these parts.
    pub fn new(parts: Vec<(String, String)>) -> Key {
        let mut hasher = Sha256::new();
        for (name, value) in &parts {
            for field in [name, value] {
                hasher.update((field.len() as u64).to_le_bytes());
                hasher.update(field.as_bytes());
            }
        }
        let hash = hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Key { parts, hash }
    }

    fn text(&self) -> String {
        self.parts
            .iter()
            .map(|(name, value)| format!("{name}\t{}\n", value.replace('\n', " ")))
            .collect()
    }

    fn parse(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn kernel(&self) -> Option<&str> {
        part(&self.parts, "kernel")
    }
}

fn part<'a>(parts: &'a [(String, String)], name: &str) -> Option<&'a str> {
    parts
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}

/// A saved guest to restore.
#[derive(Debug)]
pub struct Saved {
    dir: PathBuf,
    /// The VM's state.
    pub state: PathBuf,
    /// Its RAM, when the state leaves it out.
    pub ram: Option<PathBuf>,
    /// What its console printed while it booted.
    pub console: Vec<u8>,
}

/// Where a guest saved by this run goes until it is complete: a directory marked as this
/// process's, so one left by a run killed mid-save is removed by the next save.
#[derive(Debug)]
pub struct Pending {
    dir: RunDir,
    target: PathBuf,
    /// Where the VM's state is written.
    pub state: PathBuf,
    /// Where its RAM is written, when the state leaves it out.
    pub ram: PathBuf,
    /// Where the boot console is written.
    pub console: PathBuf,
}

/// How a run starts.
#[derive(Debug)]
pub enum Start {
    /// From a saved guest.
    Warm(Saved),
    /// Booting, and saving the ready guest for later runs.
    ColdSaving(Pending, String),
    /// Booting; why it saves nothing.
    Cold(String),
}

impl Start {
    /// A line for `-v`: warm or cold, and why.
    pub fn describe(&self) -> String {
        match self {
            Start::Warm(saved) => format!(
                "warm: restoring the ready guest saved in {}",
                saved.dir.display()
            ),
            Start::ColdSaving(_, why) | Start::Cold(why) => format!("cold: {why}"),
        }
    }
}

/// The saved guests in vmlane's cache.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// The snapshots under vmlane's cache directory.
    pub fn new(cache_dir: &Path) -> Snapshots {
        Snapshots {
            dir: cache_dir.join("snapshots"),
        }
    }

    /// Whether a saved guest for `key` is there to restore, touching nothing.
    pub fn holds(&self, key: &Key) -> bool {
        let dir = self.dir.join(&key.hash);
        dir.join(STATE).is_file() && dir.join(CONSOLE).is_file()
    }

    /// Whether to restore, boot and save, or just boot, for `key`.
    pub fn decide(&self, key: &Key, save_on_first_use: bool) -> Start {
        let dir = self.dir.join(&key.hash);
        if let Some(saved) = load(&dir) {
            // Marked as used, so pruning (oldest first) keeps it.
            let _ = touch(&dir.join(KEY));
            return Start::Warm(saved);
        }
        let why = if self.remember(key) {
            "this run saves the ready guest for the next runs of this configuration".to_string()
        } else {
            let differs = self.nearest_difference(key);
            let next = if save_on_first_use {
                "this run"
            } else {
                "the next run"
            };
            let why = format!(
                "no ready guest is saved for this configuration{differs}; {next} saves one"
            );
            if !save_on_first_use {
                return Start::Cold(why);
            }
            why
        };
        match self.pending(key) {
            Ok(pending) => Start::ColdSaving(pending, why),
            Err(e) => Start::Cold(format!(
                "{why}, but {} cannot be written ({e})",
                self.dir.display()
            )),
        }
    }

    /// Whether `key` ran before; it has now.
    fn remember(&self, key: &Key) -> bool {
        let seen = self.seen_dir().join(&key.hash);
        if seen.exists() {
            return true;
        }
        let _ = fs::create_dir_all(self.seen_dir()).and_then(|()| fs::write(&seen, key.text()));
        prune(&self.seen_dir(), KEPT_SEEN, |_| true);
        false
    }

    /// Keeps what a run saved, whole: its files appear under the key at once or not at all.
    pub fn commit(&self, pending: Pending, key: &Key) -> io::Result<()> {
        fs::write(pending.dir.join(KEY), key.text())?;
        // On disk before it is in place, so a crash never leaves a saved guest half there.
        for entry in fs::read_dir(pending.dir.path())? {
            fs::File::open(entry?.path())?.sync_data()?;
        }
        // Moved into place whole; if another run saved the same guest first, dropping
        // `pending` removes this one.
        let _ = fs::rename(pending.dir.path(), &pending.target);
        prune(&self.dir, KEPT_SNAPSHOTS, |name| {
            name != "seen" && !name.starts_with('.')
        });
        Ok(())
    }

    /// Drops what a run was saving, when it did not finish.
    pub fn abandon(&self, pending: Pending) {
        drop(pending);
    }

    /// Deletes a saved guest that could not be restored.
    pub fn discard(&self, saved: &Saved) {
        let _ = fs::remove_dir_all(&saved.dir);
    }

    /// Deletes every saved guest of kernels under `kernel_dir` (`vmlane kernel rm`); how many.
    pub fn forget_kernel(&self, kernel_dir: &Path) -> usize {
        let prefix = kernel_dir.to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let key = fs::read_to_string(entry.path().join(KEY)).unwrap_or_default();
            let parts = Key::parse(&key);
            if part(&parts, "kernel").is_some_and(|k| k.starts_with(&prefix))
                && fs::remove_dir_all(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    fn seen_dir(&self) -> PathBuf {
        self.dir.join("seen")
    }

    fn pending(&self, key: &Key) -> io::Result<Pending> {
        fs::create_dir_all(&self.dir)?;
        sweep_abandoned(&self.dir, PENDING_PREFIX);
        let dir = RunDir::owned(&self.dir, PENDING_PREFIX)?;
        Ok(Pending {
            state: dir.join(STATE),
            ram: dir.join(RAM),
            console: dir.join(CONSOLE),
            target: self.dir.join(&key.hash),
            dir,
        })
    }

    /// ` (the last configuration run on this kernel differed in: memory, CPUs)`, or nothing.
    fn nearest_difference(&self, key: &Key) -> String {
        let mut known: Vec<(SystemTime, Vec<(String, String)>)> = Vec::new();
        for (dir, file) in [(self.seen_dir(), None), (self.dir.clone(), Some(KEY))] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = match file {
                    Some(name) => entry.path().join(name),
                    None => entry.path(),
                };
                let (Ok(text), Ok(meta)) = (fs::read_to_string(&path), path.metadata()) else {
                    continue;
                };
                if let Ok(modified) = meta.modified() {
                    known.push((modified, Key::parse(&text)));
                }
            }
        }
        let same_kernel = |parts: &Vec<(String, String)>| part(parts, "kernel") == key.kernel();
        let Some((_, nearest)) = known
            .iter()
            .filter(|(_, parts)| same_kernel(parts) && *parts != key.parts)
            .max_by_key(|(modified, _)| *modified)
        else {
            return String::new();
        };
        let differing: Vec<&str> = key
            .parts
            .iter()
            .filter(|(name, value)| part(nearest, name) != Some(value.as_str()))
            .map(|(name, _)| name.as_str())
            .collect();
        format!(
            " (the last one on this kernel differed in: {})",
            differing.join(", ")
        )
    }
}

fn load(dir: &Path) -> Option<Saved> {
    let state = dir.join(STATE);
    state.is_file().then_some(())?;
    let console = fs::read(dir.join(CONSOLE)).ok()?;
    let ram = dir.join(RAM);
    Some(Saved {
        dir: dir.to_path_buf(),
        state,
        ram: ram.is_file().then_some(ram),
        console,
    })
}

fn touch(path: &Path) -> io::Result<()> {
    File::options()
        .append(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

/// Keeps the newest `keep` entries of `dir` that `counts` by name.
fn prune(dir: &Path, keep: usize, counts: impl Fn(&str) -> bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| counts(&e.file_name().to_string_lossy()))
        .filter_map(|e| {
            let path = e.path();
            let stamp = if path.is_dir() {
                path.join(KEY)
            } else {
                path.clone()
            };
            Some((stamp.metadata().ok()?.modified().ok()?, path))
        })
        .collect();
    if found.len() <= keep {
        return;
    }
    found.sort();
    for (_, old) in &found[..found.len() - keep] {
        let _ = if old.is_dir() {
            fs::remove_dir_all(old)
        } else {
            fs::remove_file(old)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(memory: &str) -> Key {
        Key::new(vec![
            ("kernel".into(), "/k/vmlinux inode 1".into()),
            ("memory".into(), memory.into()),
            ("CPUs".into(), "1".into()),
        ])
    }

    /// Saves a guest for `key` as a run would.
    fn save(snapshots: &Snapshots, key: &Key) {
        let Start::ColdSaving(pending, _) = snapshots.decide(key, true) else {
            panic!("not saving")
        };
        fs::write(&pending.state, "state").unwrap();
        fs::write(&pending.console, "boot\n").unwrap();
        snapshots.commit(pending, key).unwrap();
    }

    #[test]
    fn a_configuration_is_saved_on_its_second_run_and_restored_after() {
        let cache = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(cache.path());
        let first = snapshots.decide(&key("512M"), false);
        assert!(matches!(first, Start::Cold(_)), "{first:?}");
        assert!(
            first.describe().contains("the next run saves one"),
            "{}",
            first.describe()
        );
        let Start::ColdSaving(pending, why) = snapshots.decide(&key("512M"), false) else {
            panic!("the second run saves")
        };
        assert!(why.contains("this run saves"), "{why}");
        fs::write(&pending.state, "state").unwrap();
        fs::write(&pending.console, "boot\n").unwrap();
        snapshots.commit(pending, &key("512M")).unwrap();
        let Start::Warm(saved) = snapshots.decide(&key("512M"), false) else {
            panic!("the third run restores")
        };
        assert_eq!(fs::read(&saved.state).unwrap(), b"state");
        assert_eq!(saved.console, b"boot\n");
    }

    #[test]
    fn an_unfinished_save_is_never_restored() {
        let cache = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(cache.path());
        let Start::ColdSaving(pending, _) = snapshots.decide(&key("512M"), true) else {
            panic!()
        };
        fs::write(&pending.state, "half a st").unwrap();
        snapshots.abandon(pending);
        let under_way = snapshots.decide(&key("512M"), true);
        assert!(!matches!(under_way, Start::Warm(_)));
        let leftovers: Vec<_> = fs::read_dir(cache.path().join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".new-"))
            .collect();
        assert_eq!(leftovers.len(), 1, "only the save now under way");
        drop(under_way);
    }

    #[test]
    fn a_save_left_by_a_run_killed_mid_way_is_removed_by_the_next_save() {
        let cache = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(cache.path());
        // As a killed run leaves it: an owner file nobody holds, half a state.
        let dead = cache.path().join("snapshots/.new-dead");
        fs::create_dir_all(&dead).unwrap();
        fs::write(dead.join("owner.lock"), "").unwrap();
        fs::write(dead.join(STATE), "half a st").unwrap();
        save(&snapshots, &key("512M"));
        assert!(!dead.exists());
        assert!(matches!(
            snapshots.decide(&key("512M"), false),
            Start::Warm(_)
        ));
    }

    #[test]
    fn a_cold_run_names_what_differs_from_the_last_configuration_of_its_kernel() {
        let cache = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(cache.path());
        save(&snapshots, &key("512M"));
        let other = snapshots.decide(&key("1024M"), false).describe();
        assert!(
            other.contains("the last one on this kernel differed in: memory"),
            "{other}"
        );
    }

    #[test]
    fn a_discarded_or_forgotten_guest_is_gone() {
        let cache = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(cache.path());
        save(&snapshots, &key("512M"));
        let Start::Warm(saved) = snapshots.decide(&key("512M"), false) else {
            panic!()
        };
        snapshots.discard(&saved);
        assert!(!matches!(
            snapshots.decide(&key("512M"), true),
            Start::Warm(_)
        ));
        save(&snapshots, &key("256M"));
        assert_eq!(snapshots.forget_kernel(Path::new("/elsewhere")), 0);
        assert_eq!(snapshots.forget_kernel(Path::new("/k")), 1);
        assert!(!matches!(
            snapshots.decide(&key("256M"), false),
            Start::Warm(_)
        ));
    }

    #[test]
    fn only_the_newest_guests_are_kept() {
        let cache = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(cache.path());
        for mib in 0..KEPT_SNAPSHOTS + 2 {
            save(&snapshots, &key(&format!("{mib}M")));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let kept = fs::read_dir(cache.path().join("snapshots"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "seen")
            .count();
        assert_eq!(kept, KEPT_SNAPSHOTS);
        assert!(matches!(
            snapshots.decide(&key(&format!("{}M", KEPT_SNAPSHOTS + 1)), false),
            Start::Warm(_)
        ));
        assert!(!matches!(
            snapshots.decide(&key("0M"), false),
            Start::Warm(_)
        ));
    }
}
