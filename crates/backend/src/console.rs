use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use vmlane_checks::splat::{kind_of, SplatKind};
use vmlane_checks::strip_timestamp;

/// The guest's serial console: every byte goes to the log file; lines are watched for the
/// kernel's panic message (or a FreeBSD fatal trap) and kept as a short tail for error reports.
#[derive(Debug)]
pub struct ConsoleLog {
    file: File,
    path: PathBuf,
    partial: Vec<u8>,
    tail: Vec<String>,
    panic_line: Option<String>,
    /// FreeBSD's `Fatal trap` line: it starts a panic report, which a hung kernel may never end.
    trap_line: Option<String>,
    /// The step and reason of vmlane's Linux init failing, as it writes them to the console:
    /// the only report there is when the vmlane port never came up.
    init_failure: Option<(String, String)>,
    logged: u64,
    /// Where the console is also streamed as it comes (`vmlane test -v`).
    echo: Option<Echo>,
}

/// The sink a console is streamed to.
struct Echo(Box<dyn Write + Send>);

impl std::fmt::Debug for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Echo")
    }
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
            trap_line: None,
            init_failure: None,
            logged: 0,
            echo: None,
        })
    }

    /// Also streams every byte the guest writes to `sink`, as it arrives.
    pub fn echo_to(&mut self, sink: Box<dyn Write + Send>) {
        self.echo = Some(Echo(sink));
    }

    /// Empties the log for a second start of the VM, as if just created.
    pub fn restart(&mut self) -> io::Result<()> {
        let echo = self.echo.take();
        *self = ConsoleLog::create(&self.path.clone())?;
        self.echo = echo;
        Ok(())
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes bytes as they arrive from the guest.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(Echo(echo)) = &mut self.echo {
            // A reader that went away must not end the run.
            let _ = echo.write_all(bytes).and_then(|()| echo.flush());
        }
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
        match kind_of(&line) {
            Some(SplatKind::Panic | SplatKind::FreeBsdPanic) if self.panic_line.is_none() => {
                self.panic_line = Some(strip_timestamp(&line).to_string());
            }
            Some(SplatKind::FatalTrap) if self.trap_line.is_none() => {
                self.trap_line = Some(strip_timestamp(&line).to_string());
            }
            _ => {}
        }
        if self.init_failure.is_none() {
            self.init_failure = init_failure(&line);
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.remove(0);
        }
        self.tail.push(line);
    }

    /// The kernel's panic line, if one was seen; else the fatal trap that began a panic report
    /// the kernel may never finish.
    pub fn panic_line(&self) -> Option<&str> {
        self.panic_line.as_deref().or(self.trap_line.as_deref())
    }

    /// The step vmlane's Linux init said it failed at, and why, if it said so.
    pub fn init_failure(&self) -> Option<(&str, &str)> {
        self.init_failure
            .as_ref()
            .map(|(step, message)| (step.as_str(), message.as_str()))
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

/// `vmlane-init: failed to STEP: MESSAGE`, as the init writes a failed step.
fn init_failure(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("vmlane-init: failed to ")?;
    let (step, message) = rest.split_once(": ")?;
    Some((step.to_string(), message.to_string()))
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

    /// A sink the test can read after the log has taken it.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_echoed_console_streams_every_byte_even_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ConsoleLog::create(&dir.path().join("console.log")).unwrap();
        let sink = Shared::default();
        log.echo_to(Box::new(sink.clone()));
        log.write(b"[    0.1] boot").unwrap();
        assert_eq!(
            sink.0.lock().unwrap().as_slice(),
            b"[    0.1] boot",
            "not held back to a line end"
        );
        log.restart().unwrap();
        log.write(b"ing again\n").unwrap();
        assert_eq!(
            sink.0.lock().unwrap().as_slice(),
            b"[    0.1] booting again\n"
        );
        assert_eq!(std::fs::read(log.path()).unwrap(), b"ing again\n");
    }

    #[test]
    fn a_fatal_trap_counts_as_the_panic_until_the_panic_line_comes() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ConsoleLog::create(&dir.path().join("console.log")).unwrap();
        log.write(b"Fatal trap 12: page fault while in kernel mode\ncpuid = 0; apic id = 00\n")
            .unwrap();
        assert_eq!(
            log.panic_line(),
            Some("Fatal trap 12: page fault while in kernel mode")
        );
        log.write(b"panic: page fault\n").unwrap();
        assert_eq!(log.panic_line(), Some("panic: page fault"));
    }

    #[test]
    fn an_init_failure_on_the_console_is_read_with_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ConsoleLog::create(&dir.path().join("console.log")).unwrap();
        log.write(b"[    1.3] Run /init as init process\nvmlane-init: failed to find the host port: no virtio port named vmlane.0 appeared within 10s\n")
            .unwrap();
        assert_eq!(
            log.init_failure(),
            Some((
                "find the host port",
                "no virtio port named vmlane.0 appeared within 10s"
            ))
        );
        log.write(b"vmlane-init: failed to mount: later\n").unwrap();
        assert_eq!(
            log.init_failure().unwrap().0,
            "find the host port",
            "the first"
        );
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
