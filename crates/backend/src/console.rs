use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use vmlane_checks::splat::{kind_of, SplatKind};
use vmlane_checks::strip_timestamp;

/// The guest's serial console: every byte goes to the log file; lines are watched for the
/// kernel's panic message and kept as a short tail for error reports.
#[derive(Debug)]
pub struct ConsoleLog {
    file: File,
    path: PathBuf,
    partial: Vec<u8>,
    tail: Vec<String>,
    panic_line: Option<String>,
    logged: u64,
}

const TAIL_LINES: usize = 20;
/// A guest flooding its console must not fill the host's disk; the log stops here.
const MAX_LOG_BYTES: u64 = 64 << 20;
/// Console lines longer than this are cut when kept in memory; the log file keeps them whole.
const MAX_LINE: usize = 4096;

impl ConsoleLog {
    /// Creates (or truncates) the log file.
    pub fn create(path: &Path) -> io::Result<ConsoleLog> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(ConsoleLog {
            file: File::create(path)?,
            path: path.to_path_buf(),
            partial: Vec::new(),
            tail: Vec::new(),
            panic_line: None,
            logged: 0,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes bytes as they arrive from the guest.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let room = MAX_LOG_BYTES.saturating_sub(self.logged);
        if room > 0 {
            let kept = &bytes[..bytes.len().min(room as usize)];
            self.file.write_all(kept)?;
            self.logged += kept.len() as u64;
            if self.logged == MAX_LOG_BYTES {
                self.file
                    .write_all(b"\n[vmlane: console log truncated at 64 MiB]\n")?;
            }
        }
        for &byte in bytes {
            if byte == b'\n' {
                self.end_line();
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(byte);
            }
        }
        Ok(())
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.partial)
            .trim_end_matches('\r')
            .to_string();
        self.partial.clear();
        if self.panic_line.is_none() && is_panic_line(&line) {
            self.panic_line = Some(strip_timestamp(&line).to_string());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.remove(0);
        }
        self.tail.push(line);
    }

    /// The kernel's panic line, if one was seen.
    pub fn panic_line(&self) -> Option<&str> {
        self.panic_line.as_deref()
    }

    /// The last lines of the console, oldest first.
    pub fn tail(&mut self) -> &[String] {
        if !self.partial.is_empty() {
            self.end_line();
        }
        &self.tail
    }

    /// The last non-empty console line.
    pub fn last_line(&mut self) -> Option<String> {
        self.tail()
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
    }
}

/// The kernel's panic line, Linux's or FreeBSD's, recognised as `vmlane test` recognises it.
fn is_panic_line(line: &str) -> bool {
    matches!(
        kind_of(line),
        Some(SplatKind::Panic | SplatKind::FreeBsdPanic)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_line_is_found_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ConsoleLog::create(&dir.path().join("console.log")).unwrap();
        log.write(b"[    0.1] booting\n[    2.5] Kernel pan")
            .unwrap();
        assert_eq!(log.panic_line(), None);
        log.write(b"ic - not syncing: sysrq triggered crash\n")
            .unwrap();
        assert_eq!(
            log.panic_line(),
            Some("Kernel panic - not syncing: sysrq triggered crash")
        );
        let written = std::fs::read(log.path()).unwrap();
        assert!(written.ends_with(b"sysrq triggered crash\n"));
    }

    #[test]
    fn tail_keeps_the_last_lines_and_the_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ConsoleLog::create(&dir.path().join("c.log")).unwrap();
        for i in 0..30 {
            log.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        log.write(b"partial").unwrap();
        let tail = log.tail().to_vec();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "partial");
        assert_eq!(tail.first().unwrap(), "line 11");
    }

    #[test]
    fn a_flooding_guest_cannot_grow_the_log_past_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ConsoleLog::create(&dir.path().join("flood.log")).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(MAX_LOG_BYTES >> 20) + 3 {
            log.write(&chunk).unwrap();
        }
        log.write(b"\nKernel panic - not syncing: late\n").unwrap();
        let size = std::fs::metadata(log.path()).unwrap().len();
        assert!(size < MAX_LOG_BYTES + 100, "{size}");
        assert_eq!(
            log.panic_line(),
            Some("Kernel panic - not syncing: late"),
            "still watched"
        );
    }

    #[test]
    fn timestamps_are_stripped_only_when_they_are_timestamps() {
        assert_eq!(
            strip_timestamp("[   12.000001] Kernel panic"),
            "Kernel panic"
        );
        assert_eq!(strip_timestamp("[not a stamp] x"), "[not a stamp] x");
    }
}
