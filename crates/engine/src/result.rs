//! Step 7, the result: how the run ended and when each phase was reached; for runs whose
//! output is checked afterwards, the output itself, bounded.

use std::io::Write;
use std::path::PathBuf;
use vmlane_backend::Timings;
use vmlane_spec::Outcome;

/// How a run ended, and when each phase was reached.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub outcome: Outcome,
    /// When each phase was reached.
    pub timings: Timings,
    /// The kernel's file with symbols and DWARF, when known, so a front end can add source
    /// lines to the backtraces of splats (`vmlane_symbols`).
    pub debug_info: Option<PathBuf>,
}

/// Each stream of a captured run kept in memory at most.
pub const MAX_CAPTURE: usize = 16 << 20;

/// What a run with captured output produced.
#[derive(Debug, Clone)]
pub struct Captured {
    /// How it ended.
    pub outcome: Outcome,
    /// The command's stdout (at most [`MAX_CAPTURE`] bytes).
    pub stdout: Vec<u8>,
    /// The command's stderr (at most [`MAX_CAPTURE`] bytes).
    pub stderr: Vec<u8>,
    /// The console log, read back.
    pub console: String,
    /// The kernel's file with symbols and DWARF, as in [`Finished::debug_info`].
    pub debug_info: Option<PathBuf>,
}

/// Keeps what fits; a command flooding its output cannot exhaust the host's memory.
#[derive(Default)]
pub(crate) struct CappedBuffer {
    pub(crate) bytes: Vec<u8>,
}

impl Write for CappedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MAX_CAPTURE.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_is_capped_but_writes_never_fail() {
        let mut buffer = CappedBuffer::default();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..20 {
            assert_eq!(buffer.write(&chunk).unwrap(), chunk.len());
        }
        assert_eq!(buffer.bytes.len(), MAX_CAPTURE);
    }
}
