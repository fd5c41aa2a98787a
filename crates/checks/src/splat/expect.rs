//! Splats a test provokes on purpose, and the split of what was found into expected and not.

use super::{Splat, SplatKind};
use crate::pattern::TextPattern;
use std::fmt;

/// A splat a test declares: by kind, by its first line, or both. A matcher with neither
/// matches every splat.
#[derive(Debug, Clone, Default)]
pub struct SplatMatcher {
    /// The kind it must have.
    pub kind: Option<SplatKind>,
    /// What its first line (timestamp stripped) must contain or match.
    pub first_line: Option<TextPattern>,
}

impl SplatMatcher {
    /// Matches every splat of `kind`.
    pub fn kind(kind: SplatKind) -> SplatMatcher {
        SplatMatcher {
            kind: Some(kind),
            first_line: None,
        }
    }

    /// Matches splats whose first line matches `pattern`, whatever their kind.
    pub fn first_line(pattern: TextPattern) -> SplatMatcher {
        SplatMatcher {
            kind: None,
            first_line: Some(pattern),
        }
    }

    /// Narrows this matcher to first lines matching `pattern`.
    pub fn with_first_line(self, pattern: TextPattern) -> SplatMatcher {
        SplatMatcher {
            first_line: Some(pattern),
            ..self
        }
    }

    /// Whether `splat` is one this matcher declares.
    pub fn matches(&self, splat: &Splat) -> bool {
        self.kind.is_none_or(|kind| kind == splat.kind)
            && self
                .first_line
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(&splat.first_line))
    }
}

impl fmt::Display for SplatMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.first_line) {
            (Some(kind), Some(pattern)) => {
                write!(f, "a {kind} splat whose first line has {pattern}")
            }
            (Some(kind), None) => write!(f, "a {kind} splat"),
            (None, Some(pattern)) => write!(f, "a splat whose first line has {pattern}"),
            (None, None) => write!(f, "any splat"),
        }
    }
}

/// Found splats split by a test's declarations.
#[derive(Debug, Clone, Default)]
pub struct Triage {
    /// Splats some matcher declared.
    pub expected: Vec<Splat>,
    /// Splats no matcher declared: each one fails the test.
    pub unexpected: Vec<Splat>,
    /// Indices of matchers that matched no splat: a provoked failure that did not happen.
    pub unmatched: Vec<usize>,
}

impl Triage {
    /// No unexpected splat and every declared one seen.
    pub fn passed(&self) -> bool {
        self.unexpected.is_empty() && self.unmatched.is_empty()
    }
}

/// Splits `splats` into those `matchers` declare and those they do not. A matcher may cover any
/// number of splats (a provoked WARNING may fire twice); one covering none is listed in
/// [`Triage::unmatched`].
pub fn triage(splats: Vec<Splat>, matchers: &[SplatMatcher]) -> Triage {
    let mut used = vec![false; matchers.len()];
    let mut result = Triage::default();
    for splat in splats {
        let mut declared = false;
        for (matcher, used) in matchers.iter().zip(used.iter_mut()) {
            if matcher.matches(&splat) {
                *used = true;
                declared = true;
            }
        }
        if declared {
            result.expected.push(splat);
        } else {
            result.unexpected.push(splat);
        }
    }
    result.unmatched = used
        .iter()
        .enumerate()
        .filter(|(_, used)| !**used)
        .map(|(i, _)| i)
        .collect();
    result
}
