//! Console lines a test expects or forbids. Each expectation is matched against single lines
//! with the printk timestamp and `\r` removed, so `^` anchors at the message and the same
//! expectation holds with or without `printk.time`.
//!
//! In order, every "must appear" expectation must match a line after the line the previous
//! one matched (the earliest such line is taken, so a later expectation gets the most room).
//! "Must not appear" expectations are checked over the whole log either way.

use crate::pattern::TextPattern;
use crate::printk::{console_lines, strip_timestamp};
use std::fmt;

/// Whether an expectation wants its line present or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Some line must match.
    MustAppear,
    /// No line may match.
    MustNotAppear,
}

/// One console-line expectation.
#[derive(Debug, Clone)]
pub struct LineExpectation {
    /// What to look for.
    pub pattern: TextPattern,
    /// Whether it must or must not be there.
    pub presence: Presence,
}

impl LineExpectation {
    /// Some line must match `pattern`.
    pub fn appears(pattern: TextPattern) -> LineExpectation {
        LineExpectation {
            pattern,
            presence: Presence::MustAppear,
        }
    }

    /// No line may match `pattern`.
    pub fn absent(pattern: TextPattern) -> LineExpectation {
        LineExpectation {
            pattern,
            presence: Presence::MustNotAppear,
        }
    }
}

/// Where an earlier in-order expectation matched.
#[derive(Debug, Clone)]
pub struct PreviousMatch {
    /// Its index in the list given.
    pub index: usize,
    /// Its pattern.
    pub pattern: TextPattern,
    /// The 1-based line it matched.
    pub line_number: usize,
}

/// An expectation the log did not meet.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LineFailure {
    /// No line matched.
    #[error("console has no line matching {pattern}")]
    Missing {
        /// Its index in the list given.
        index: usize,
        /// Its pattern.
        pattern: TextPattern,
    },
    /// In order: no line after the previous match matched.
    #[error("{}", describe_out_of_order(pattern, previous, *earlier_line))]
    NotAfter {
        /// Its index in the list given.
        index: usize,
        /// Its pattern.
        pattern: TextPattern,
        /// The expectation that matched before it.
        previous: PreviousMatch,
        /// The first line it does match, which comes too early; `None` if none does.
        earlier_line: Option<usize>,
    },
    /// A forbidden line is there.
    #[error("console line {line_number} matches forbidden {pattern}: {line}")]
    Forbidden {
        /// Its index in the list given.
        index: usize,
        /// Its pattern.
        pattern: TextPattern,
        /// The first line that matched.
        line_number: usize,
        /// That line, timestamp stripped.
        line: String,
    },
}

impl LineFailure {
    /// The index of the failed expectation in the list given.
    pub fn index(&self) -> usize {
        match self {
            LineFailure::Missing { index, .. }
            | LineFailure::NotAfter { index, .. }
            | LineFailure::Forbidden { index, .. } => *index,
        }
    }
}

fn describe_out_of_order(
    pattern: &TextPattern,
    previous: &PreviousMatch,
    earlier_line: Option<usize>,
) -> String {
    let mut text = format!(
        "console has no line matching {pattern} after line {} (where {} matched)",
        previous.line_number, previous.pattern
    );
    match earlier_line {
        Some(line) => text.push_str(&format!("; it matches line {line}, which is too early")),
        None => text.push_str("; it matches no line at all"),
    }
    text
}

impl fmt::Display for LineExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.presence {
            Presence::MustAppear => write!(f, "a line matching {}", self.pattern),
            Presence::MustNotAppear => write!(f, "no line matching {}", self.pattern),
        }
    }
}

/// Checks `log` against `expectations`; an empty result means they all hold.
pub fn check_lines(
    log: &str,
    expectations: &[LineExpectation],
    in_order: bool,
) -> Vec<LineFailure> {
    let lines: Vec<&str> = console_lines(log).map(strip_timestamp).collect();
    let first_match = |pattern: &TextPattern, from: usize| {
        lines
            .get(from..)
            .unwrap_or_default()
            .iter()
            .position(|line| pattern.is_match(line))
            .map(|i| i + from)
    };
    let mut failures = Vec::new();
    let mut previous: Option<PreviousMatch> = None;
    for (index, expectation) in expectations.iter().enumerate() {
        let pattern = &expectation.pattern;
        match expectation.presence {
            Presence::MustNotAppear => {
                if let Some(at) = first_match(pattern, 0) {
                    failures.push(LineFailure::Forbidden {
                        index,
                        pattern: pattern.clone(),
                        line_number: at + 1,
                        line: lines[at].to_string(),
                    });
                }
            }
            Presence::MustAppear if !in_order => {
                if first_match(pattern, 0).is_none() {
                    failures.push(LineFailure::Missing {
                        index,
                        pattern: pattern.clone(),
                    });
                }
            }
            Presence::MustAppear => {
                let from = previous.as_ref().map_or(0, |p| p.line_number);
                match (first_match(pattern, from), &previous) {
                    (Some(at), _) => {
                        previous = Some(PreviousMatch {
                            index,
                            pattern: pattern.clone(),
                            line_number: at + 1,
                        });
                    }
                    (None, Some(prev)) => failures.push(LineFailure::NotAfter {
                        index,
                        pattern: pattern.clone(),
                        previous: prev.clone(),
                        earlier_line: first_match(pattern, 0).map(|at| at + 1),
                    }),
                    (None, None) => failures.push(LineFailure::Missing {
                        index,
                        pattern: pattern.clone(),
                    }),
                }
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "\
[    0.000000] Linux version 6.1.0 (root@build) #1 SMP\r
[    0.120000] virtio_blk virtio1: [vda] 2048 512-byte logical blocks\r
[    0.500000] Run /init as init process\r
[    0.600000] vmlane: mounted host root (virtiofs)\r
[    0.700000] vmlane: running /bin/sh -c true\r
";

    fn sub(text: &str) -> TextPattern {
        TextPattern::substring(text)
    }

    #[test]
    fn present_lines_pass_and_missing_ones_are_named() {
        let failures = check_lines(
            BOOT,
            &[
                LineExpectation::appears(sub("Run /init")),
                LineExpectation::appears(
                    TextPattern::regex(r"^vmlane: mounted host root \((9p|virtiofs)\)$").unwrap(),
                ),
                LineExpectation::appears(sub("Freeing unused")),
            ],
            false,
        );
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].index(), 2);
        assert_eq!(
            failures[0].to_string(),
            "console has no line matching \"Freeing unused\""
        );
    }

    #[test]
    fn regexes_see_lines_without_stamps() {
        let failures = check_lines(
            BOOT,
            &[LineExpectation::appears(
                TextPattern::regex(r"^Linux version 6\.1\.").unwrap(),
            )],
            false,
        );
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn forbidden_lines_report_where_they_are() {
        let failures = check_lines(
            BOOT,
            &[
                LineExpectation::absent(sub("vmlane:")),
                LineExpectation::absent(sub("Call Trace")),
            ],
            true,
        );
        assert_eq!(failures.len(), 1);
        match &failures[0] {
            LineFailure::Forbidden {
                index,
                line_number,
                line,
                ..
            } => {
                assert_eq!((*index, *line_number), (0, 4));
                assert_eq!(line, "vmlane: mounted host root (virtiofs)");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_order_passes_when_the_order_holds() {
        let expectations = [
            LineExpectation::appears(sub("Linux version")),
            LineExpectation::appears(sub("Run /init")),
            LineExpectation::appears(sub("vmlane:")),
            LineExpectation::appears(sub("vmlane:")),
        ];
        assert!(check_lines(BOOT, &expectations, true).is_empty());
    }

    #[test]
    fn in_order_says_where_the_previous_match_was() {
        let expectations = [
            LineExpectation::appears(sub("Run /init")),
            LineExpectation::appears(sub("virtio_blk")),
            LineExpectation::appears(sub("running /bin/sh")),
            LineExpectation::appears(sub("never printed")),
        ];
        let failures = check_lines(BOOT, &expectations, true);
        assert_eq!(failures.len(), 2, "{failures:?}");
        match &failures[0] {
            LineFailure::NotAfter {
                index,
                previous,
                earlier_line,
                ..
            } => {
                assert_eq!(*index, 1);
                assert_eq!(previous.index, 0);
                assert_eq!(previous.line_number, 3);
                assert_eq!(*earlier_line, Some(2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            failures[0].to_string(),
            "console has no line matching \"virtio_blk\" after line 3 (where \"Run /init\" matched); it matches line 2, which is too early"
        );
        // The failed expectation does not move the cursor: the third still matched after line 3.
        assert_eq!(failures[1].index(), 3);
        assert!(failures[1].to_string().contains("after line 5"));
        assert!(failures[1].to_string().contains("matches no line at all"));
    }

    #[test]
    fn the_same_text_twice_in_order_needs_two_lines() {
        let expectations = [
            LineExpectation::appears(sub("Run /init")),
            LineExpectation::appears(sub("Run /init")),
        ];
        assert_eq!(check_lines(BOOT, &expectations, true).len(), 1);
        assert!(check_lines(BOOT, &expectations, false).is_empty());
    }

    #[test]
    fn an_empty_log_fails_what_must_appear_only() {
        let expectations = [
            LineExpectation::appears(sub("x")),
            LineExpectation::absent(sub("x")),
        ];
        let failures = check_lines("", &expectations, true);
        assert_eq!(failures.len(), 1);
        assert!(matches!(failures[0], LineFailure::Missing { index: 0, .. }));
    }
}
