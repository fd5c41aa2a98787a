//! Symbolizers kept for the life of the process, so a suite whose runs on one kernel splat
//! again and again reads that kernel's debug info once. A rebuilt file (another size or
//! modification time) is read afresh; only the few most recent files are kept.

use crate::{Symbolizer, SymbolsError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// How many kernels' debug info stays in memory at once.
const KEPT: usize = 4;

/// What tells one build of a file from the next.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

type Entry = (Key, Arc<Mutex<Symbolizer>>);

static OPENED: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// The symbolizer of `path`, opened on first use and shared by every caller afterwards. It is
/// behind a mutex because its line tables are parsed lazily on lookup.
pub fn shared(path: &Path) -> Result<Arc<Mutex<Symbolizer>>, SymbolsError> {
    let metadata = std::fs::metadata(path).map_err(|source| SymbolsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = Key {
        path: path.to_path_buf(),
        len: metadata.len(),
        modified: metadata.modified().ok(),
    };
    let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(index) = opened.iter().position(|(k, _)| *k == key) {
        // Most recently used last, so the oldest goes first.
        let entry = opened.remove(index);
        let symbolizer = Arc::clone(&entry.1);
        opened.push(entry);
        return Ok(symbolizer);
    }
    // Opening under the lock keeps two threads from reading the same file twice.
    let symbolizer = Arc::new(Mutex::new(Symbolizer::open(path)?));
    opened.retain(|(k, _)| k.path != key.path);
    if opened.len() >= KEPT {
        opened.remove(0);
    }
    opened.push((key, Arc::clone(&symbolizer)));
    Ok(symbolizer)
}
