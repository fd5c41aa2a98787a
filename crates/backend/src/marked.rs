//! The serial console of a guest that reports on it (FreeBSD): marker lines say when the
//! command starts and how it ended, the lines between them are its output, and the kernel's
//! own prompts (`db>`, `mountroot>`) say it is stuck and will never report.

use vmlane_proto::{parse_marker, Marker};

/// What one chunk of console bytes meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// Output of the command, to go to the user's stdout.
    Output(Vec<u8>),
    /// A marker line of this run.
    Marker(Marker),
    /// The kernel waits at a prompt nobody will answer; the line before it, if telling.
    Stuck {
        /// The prompt.
        prompt: String,
        /// The last line that explains it (`Mounting from ... failed ...`), if seen.
        reason: Option<String>,
    },
}

/// The debugger prompt; it ends without a newline, so the partial line is checked. It counts
/// only after the kernel said it entered the debugger: a command may print the same bytes.
const DEBUGGER_PROMPT: &str = "db> ";
/// The root-mount prompt; it counts only before the command started.
const MOUNTROOT_PROMPT: &str = "mountroot> ";
/// A line longer than this is passed on in pieces; the guest decides how long its lines are.
const MAX_LINE: usize = 64 * 1024;

/// Splits the console into lines and follows the markers of one run's token.
#[derive(Debug)]
pub struct MarkedConsole {
    token: String,
    partial: Vec<u8>,
    running: bool,
    /// An empty line held back: the newline that starts an ending marker is not output.
    held_blank: bool,
    reason: Option<String>,
    in_debugger: bool,
    stuck: bool,
}

impl MarkedConsole {
    /// Follows the markers carrying `token`.
    pub fn new(token: &str) -> MarkedConsole {
        MarkedConsole {
            token: token.to_string(),
            partial: Vec::new(),
            running: false,
            held_blank: false,
            reason: None,
            in_debugger: false,
            stuck: false,
        }
    }

    /// Takes console bytes as they arrive.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<ConsoleEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.end_line(line, &mut events);
            } else {
                self.partial.push(byte);
                if self.partial.len() >= MAX_LINE {
                    let piece = std::mem::take(&mut self.partial);
                    if self.running {
                        self.flush_blank(&mut events);
                        events.push(ConsoleEvent::Output(piece));
                    }
                }
            }
        }
        if !self.stuck {
            let at = |prompt: &str| self.partial.ends_with(prompt.as_bytes());
            let prompt = if self.in_debugger && at(DEBUGGER_PROMPT) {
                Some(DEBUGGER_PROMPT)
            } else if !self.running && at(MOUNTROOT_PROMPT) {
                Some(MOUNTROOT_PROMPT)
            } else {
                None
            };
            if let Some(prompt) = prompt {
                self.stuck = true;
                events.push(ConsoleEvent::Stuck {
                    prompt: prompt.trim_end().to_string(),
                    reason: self.reason.clone(),
                });
            }
        }
        events
    }

    /// Output still held when the VM is gone: an unterminated last line.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.partial);
        (self.running && !rest.is_empty()).then_some(rest)
    }

    fn end_line(&mut self, mut line: Vec<u8>, events: &mut Vec<ConsoleEvent>) {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(marker) = parse_marker(&text, &self.token) {
            self.held_blank = false;
            self.running = marker == Marker::Start;
            events.push(ConsoleEvent::Marker(marker));
            return;
        }
        if text.starts_with("Mounting from ") || text.contains("ABORTING BOOT") {
            self.reason = Some(text.to_string());
        }
        if ["panic: ", "Fatal trap ", "KDB: enter"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            self.in_debugger = true;
        }
        if !self.running {
            return;
        }
        self.flush_blank(events);
        if line.is_empty() {
            self.held_blank = true;
        } else {
            line.push(b'\n');
            events.push(ConsoleEvent::Output(line));
        }
    }

    fn flush_blank(&mut self, events: &mut Vec<ConsoleEvent>) {
        if std::mem::take(&mut self.held_blank) {
            events.push(ConsoleEvent::Output(b"\n".to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmlane_spec::GuestStatus;

    const T: &str = "00000000000000aa";

    fn output(events: &[ConsoleEvent]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                ConsoleEvent::Output(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn push_all(console: &mut MarkedConsole, text: &str) -> Vec<ConsoleEvent> {
        // Byte by byte: chunk boundaries must not matter.
        text.bytes().flat_map(|b| console.push(&[b])).collect()
    }

    #[test]
    fn only_lines_between_the_markers_are_output() {
        let mut console = MarkedConsole::new(T);
        let events = push_all(
            &mut console,
            "Booting...\r\nvtbd0: 4MB\r\n\r\nvmlane:00000000000000aa:start\r\nhello\r\n\r\nworld\r\n\r\nvmlane:00000000000000aa:exit 3\r\nUptime: 1s\r\n",
        );
        assert_eq!(output(&events), b"hello\n\nworld\n");
        assert_eq!(
            events.last(),
            Some(&ConsoleEvent::Marker(Marker::Ended(GuestStatus::Exited(3))))
        );
    }

    #[test]
    fn output_without_a_final_newline_ends_at_the_marker() {
        let mut console = MarkedConsole::new(T);
        let events = push_all(
            &mut console,
            "\nvmlane:00000000000000aa:start\nno newline\nvmlane:00000000000000aa:signal 12\n",
        );
        assert_eq!(output(&events), b"no newline\n");
    }

    #[test]
    fn another_runs_token_is_output() {
        let mut console = MarkedConsole::new(T);
        let events = push_all(
            &mut console,
            "vmlane:00000000000000aa:start\nvmlane:00000000000000bb:exit 0\n",
        );
        assert_eq!(output(&events), b"vmlane:00000000000000bb:exit 0\n");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn prompts_without_a_newline_are_seen() {
        let mut console = MarkedConsole::new(T);
        let events = push_all(
            &mut console,
            "Mounting from ufs:/dev/vtbd0 failed with error 19.\n\nLoader variables:\n\nmountroot> ",
        );
        assert_eq!(
            events,
            vec![ConsoleEvent::Stuck {
                prompt: "mountroot>".into(),
                reason: Some("Mounting from ufs:/dev/vtbd0 failed with error 19.".into()),
            }]
        );
        let mut console = MarkedConsole::new(T);
        let events = push_all(&mut console, "panic: x\nStopped at kdb_enter+0x33\ndb> ");
        assert_eq!(events.len(), 1);
        let mut console = MarkedConsole::new(T);
        let events = push_all(
            &mut console,
            "vmlane:00000000000000aa:start\nmountroot> db> ",
        );
        assert_eq!(events, vec![ConsoleEvent::Marker(Marker::Start)]);
        let mut console = MarkedConsole::new(T);
        let events = push_all(&mut console, "KDB: enter: panic\ndb> ");
        assert_eq!(
            events,
            vec![ConsoleEvent::Stuck {
                prompt: "db>".into(),
                reason: None
            }]
        );
    }

    #[test]
    fn endless_lines_come_out_in_bounded_pieces() {
        let mut console = MarkedConsole::new(T);
        console.push(b"vmlane:00000000000000aa:start\n");
        let events = console.push(&vec![b'x'; 3 * MAX_LINE]);
        assert_eq!(events.len(), 3);
        assert!(events
            .iter()
            .all(|e| matches!(e, ConsoleEvent::Output(b) if b.len() == MAX_LINE)));
    }

    #[test]
    fn an_unterminated_last_line_is_kept() {
        let mut console = MarkedConsole::new(T);
        console.push(b"vmlane:00000000000000aa:start\npartial");
        assert_eq!(console.finish(), Some(b"partial".to_vec()));
    }
}
