//! The shape of a console line: an optional printk timestamp in front, maybe a `\r` behind.
//! Every check looks at lines through these two functions so they agree on what a line is.

/// `[    1.234567] text` → `text`; anything else is returned as it is.
///
/// Only a bracketed decimal number counts as a timestamp, so `[123]:` or `[  OK  ]` are kept.
pub fn strip_timestamp(line: &str) -> &str {
    let Some(rest) = line.trim_start().strip_prefix('[') else {
        return line;
    };
    let Some((stamp, after)) = rest.split_once(']') else {
        return line;
    };
    if is_stamp(stamp.trim()) {
        // printk puts exactly one space after the stamp; more belongs to the message
        // (indented frames, `<TASK>` markers).
        after.strip_prefix(' ').unwrap_or(after)
    } else {
        line
    }
}

fn is_stamp(stamp: &str) -> bool {
    match stamp.split_once('.') {
        Some((secs, frac)) => {
            !secs.is_empty()
                && !frac.is_empty()
                && secs.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The lines of a whole log without their line terminators (`\n`, `\r\n`, stray trailing `\r`).
pub fn console_lines(log: &str) -> impl Iterator<Item = &str> {
    log.lines().map(|line| line.trim_end_matches('\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printk_stamps_are_stripped_with_their_one_space() {
        assert_eq!(
            strip_timestamp("[    1.234567] Linux version"),
            "Linux version"
        );
        assert_eq!(strip_timestamp("[12345.000001]  <TASK>"), " <TASK>");
        assert_eq!(strip_timestamp("[    0.000000]"), "");
    }

    #[test]
    fn brackets_that_are_not_stamps_are_kept() {
        for line in [
            "[  OK  ] Started",
            "[123]: x",
            "[1.] x",
            "[.5] x",
            "[ 1.2",
            "no stamp",
            "[",
            "",
        ] {
            assert_eq!(strip_timestamp(line), line);
        }
    }

    #[test]
    fn lines_lose_carriage_returns() {
        let lines: Vec<_> = console_lines("a\r\nb\r\r\nc").collect();
        assert_eq!(lines, ["a", "b", "c"]);
    }
}
