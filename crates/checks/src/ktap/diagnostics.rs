//! The diagnostic lines waiting for a result line, bounded so a test that prints without end
//! (a loop of warnings, a dumped buffer) cannot make a report unbounded.

/// At most this many lines are kept per result.
pub(super) const MAX_LINES: usize = 50;
/// At most this many bytes of text are kept per result.
pub(super) const MAX_BYTES: usize = 8 * 1024;
/// The latest line is remembered up to this many bytes, to say where a stream stopped.
const LAST_BYTES: usize = 240;

/// Lines in stream order (each with its line number, so buffers merge in order), the first
/// ones kept up to the bounds and the rest only counted.
#[derive(Debug, Default)]
pub(super) struct Diagnostics {
    lines: Vec<(usize, String)>,
    bytes: usize,
    left_out: usize,
    cut_short: bool,
    /// The latest line pushed, kept or not, with its line number.
    last: Option<(usize, String)>,
}

impl Diagnostics {
    /// Keeps `text` (line `number` of the stream) if there is room, cut short if it is the line
    /// that fills the byte budget.
    pub(super) fn push(&mut self, number: usize, text: &str) {
        if self
            .last
            .as_ref()
            .is_none_or(|(latest, _)| number >= *latest)
        {
            self.last = Some((number, prefix(text, LAST_BYTES).to_string()));
        }
        let room = MAX_BYTES - self.bytes;
        if self.lines.len() >= MAX_LINES || room == 0 {
            self.left_out += 1;
            return;
        }
        let fits = text.len() <= room;
        let kept = if fits {
            text.to_string()
        } else {
            self.cut_short = true;
            format!("{}…", prefix(text, room.saturating_sub('…'.len_utf8())))
        };
        // A line cut short used the budget up, whatever its length with the ellipsis.
        self.bytes = if fits {
            self.bytes + kept.len()
        } else {
            MAX_BYTES
        };
        self.lines.push((number, kept));
    }

    /// Both buffers' lines in stream order, bounded again.
    pub(super) fn merge(self, other: Self) -> Self {
        let mut lines = self.lines;
        lines.extend(other.lines);
        lines.sort_by_key(|(number, _)| *number);
        let mut merged = Self {
            left_out: self.left_out + other.left_out,
            cut_short: self.cut_short || other.cut_short,
            ..Self::default()
        };
        for (number, text) in lines {
            merged.push(number, &text);
        }
        merged.last = [self.last, other.last]
            .into_iter()
            .flatten()
            .max_by_key(|(number, _)| *number);
        merged
    }

    /// The latest line pushed (shortened), even if it was not kept.
    pub(super) fn last(&self) -> Option<&str> {
        self.last.as_ref().map(|(_, text)| text.as_str())
    }

    /// The kept lines, and a last line saying what was cut, if anything was.
    pub(super) fn into_lines(self) -> Vec<String> {
        let kept = self.lines.len();
        let mut lines: Vec<String> = self.lines.into_iter().map(|(_, text)| text).collect();
        if self.left_out > 0 || self.cut_short {
            lines.push(format!(
                "[diagnostics cut: {kept} of {} lines kept, at most {MAX_LINES} lines and \
                 {MAX_BYTES} bytes per result]",
                kept + self.left_out
            ));
        }
        lines
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_line_bound_are_counted_and_said() {
        let mut d = Diagnostics::default();
        for n in 0..60 {
            d.push(n, &format!("line {n}"));
        }
        let lines = d.into_lines();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[MAX_LINES - 1], "line 49");
        assert!(
            lines[MAX_LINES].contains("50 of 60 lines kept"),
            "{lines:?}"
        );
    }

    #[test]
    fn the_byte_bound_cuts_a_line_on_a_character_boundary() {
        let mut d = Diagnostics::default();
        d.push(0, &"é".repeat(MAX_BYTES));
        d.push(1, "after");
        let lines = d.into_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].len() <= MAX_BYTES && lines[0].ends_with('…'));
        assert!(lines[1].contains("1 of 2 lines kept"), "{lines:?}");
    }

    #[test]
    fn merging_keeps_stream_order_and_the_bounds() {
        let mut a = Diagnostics::default();
        let mut b = Diagnostics::default();
        for n in 0..40 {
            let half = if n % 2 == 0 { &mut a } else { &mut b };
            half.push(n, &n.to_string());
        }
        let lines = a.merge(b).into_lines();
        assert_eq!(lines.len(), 40);
        assert_eq!(lines[..3], ["0", "1", "2"]);
        let mut big = Diagnostics::default();
        let mut more = Diagnostics::default();
        for n in 0..40 {
            big.push(n, "x");
            more.push(100 + n, "y");
        }
        let lines = big.merge(more).into_lines();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(lines[MAX_LINES].contains("50 of 80"), "{lines:?}");
    }

    #[test]
    fn the_latest_line_is_remembered_even_when_left_out() {
        let mut d = Diagnostics::default();
        for n in 0..60 {
            d.push(n, &format!("line {n}"));
        }
        assert_eq!(d.last(), Some("line 59"));
        let mut earlier = Diagnostics::default();
        earlier.push(3, "early");
        assert_eq!(earlier.merge(d).last(), Some("line 59"));
    }

    #[test]
    fn nothing_cut_means_no_note() {
        let mut d = Diagnostics::default();
        d.push(0, "only");
        assert_eq!(d.into_lines(), ["only"]);
    }
}
