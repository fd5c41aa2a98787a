//! One way for a test to name text: a plain substring, or a regex when it needs one. Shared by
//! console-line checks and splat expectations so both read the same in a suite file.

use crate::error::{compile, Error};
use regex::Regex;
use std::fmt;

/// A substring or a regex, matched anywhere in a line.
#[derive(Debug, Clone)]
pub enum TextPattern {
    /// Matches lines containing this text.
    Substring(String),
    /// Matches lines this regex finds a match in (unanchored unless it says `^`/`$`).
    Regex(Regex),
}

impl TextPattern {
    /// A plain substring.
    pub fn substring(text: impl Into<String>) -> TextPattern {
        TextPattern::Substring(text.into())
    }

    /// A regex; fails if it does not compile.
    pub fn regex(pattern: &str) -> Result<TextPattern, Error> {
        compile(pattern).map(TextPattern::Regex)
    }

    /// Whether `line` contains a match.
    pub fn is_match(&self, line: &str) -> bool {
        match self {
            TextPattern::Substring(text) => line.contains(text.as_str()),
            TextPattern::Regex(regex) => regex.is_match(line),
        }
    }
}

impl fmt::Display for TextPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextPattern::Substring(text) => write!(f, "{text:?}"),
            TextPattern::Regex(regex) => write!(f, "regex {:?}", regex.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substrings_are_literal_and_regexes_are_not() {
        let plain = TextPattern::substring("a.c");
        assert!(plain.is_match("xa.cx"));
        assert!(!plain.is_match("abc"));
        let regex = TextPattern::regex(r"^a.c$").unwrap();
        assert!(regex.is_match("abc"));
        assert!(!regex.is_match("xabc"));
    }

    #[test]
    fn a_bad_regex_is_an_error_naming_it() {
        let err = TextPattern::regex("(unclosed").unwrap_err();
        assert!(err.to_string().contains("(unclosed"), "{err}");
    }

    #[test]
    fn display_tells_the_two_apart() {
        assert_eq!(TextPattern::substring("x").to_string(), "\"x\"");
        assert_eq!(
            TextPattern::regex("x+").unwrap().to_string(),
            "regex \"x+\""
        );
    }
}
