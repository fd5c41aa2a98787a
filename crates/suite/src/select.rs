//! Which tests of a suite run: `--filter` and `--skip` patterns over test names, each a glob
//! (`probe-*`) or a regex between slashes (`/^probe-(a|b)$/`), so a CI lane or a developer
//! runs one test or a family without editing the suite.

use crate::{Case, Suite};
use thiserror::Error;

/// A pattern that is neither a valid glob nor a valid regex.
#[derive(Debug, Error)]
#[error("`{pattern}` is not a valid {kind} (write a glob such as `probe-*`, or a regex between slashes such as `/^probe-(a|b)$/`): {reason}")]
pub struct PatternError {
    pattern: String,
    kind: &'static str,
    reason: String,
}

/// One test-name pattern.
#[derive(Debug, Clone)]
pub enum NamePattern {
    /// Matches whole names, `*`, `?` and `[...]` as in a shell.
    Glob(globset::GlobMatcher),
    /// Matches anywhere in a name unless anchored.
    Regex(regex::Regex),
}

impl NamePattern {
    /// `/…/` is a regex, anything else a glob.
    pub fn parse(pattern: &str) -> Result<NamePattern, PatternError> {
        let error = |kind, reason: String| PatternError {
            pattern: pattern.to_string(),
            kind,
            reason,
        };
        match pattern.strip_prefix('/').and_then(|p| p.strip_suffix('/')) {
            Some(regex) => regex::Regex::new(regex)
                .map(NamePattern::Regex)
                .map_err(|e| error("regex", e.to_string())),
            None => globset::Glob::new(pattern)
                .map(|glob| NamePattern::Glob(glob.compile_matcher()))
                .map_err(|e| error("glob", e.kind().to_string())),
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Glob(glob) => glob.is_match(name),
            NamePattern::Regex(regex) => regex.is_match(name),
        }
    }
}

/// The cases whose test matches a filter (any, when none is given) and no skip pattern.
pub fn select(
    suite: &Suite,
    cases: Vec<Case>,
    filters: &[NamePattern],
    skips: &[NamePattern],
) -> Vec<Case> {
    cases
        .into_iter()
        .filter(|case| {
            let name = &suite.tests[case.test].name;
            (filters.is_empty() || filters.iter().any(|p| p.matches(name)))
                && !skips.iter().any(|p| p.matches(name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{load::parse, matrix};
    use std::path::Path;

    fn names(filters: &[&str], skips: &[&str]) -> Vec<String> {
        let text: String = ["probe-a", "probe-b", "boot", "probe-a-slow"]
            .iter()
            .map(|n| format!("[[test]]\nname = \"{n}\"\ncommand = \"true\"\n\n"))
            .collect();
        let suite = parse(&text, Path::new("/s.toml")).unwrap();
        let parse_all = |patterns: &[&str]| -> Vec<NamePattern> {
            patterns
                .iter()
                .map(|p| NamePattern::parse(p).unwrap())
                .collect()
        };
        let cases = matrix(&suite, &[]);
        select(&suite, cases, &parse_all(filters), &parse_all(skips))
            .iter()
            .map(|case| suite.tests[case.test].name.clone())
            .collect()
    }

    #[test]
    fn globs_match_whole_names_and_regexes_anywhere() {
        assert_eq!(
            names(&[], &[]),
            ["probe-a", "probe-b", "boot", "probe-a-slow"]
        );
        assert_eq!(names(&["probe-a"], &[]), ["probe-a"]);
        assert_eq!(
            names(&["probe-*"], &[]),
            ["probe-a", "probe-b", "probe-a-slow"]
        );
        assert_eq!(names(&["/a/"], &[]), ["probe-a", "probe-a-slow"]);
        assert_eq!(names(&["/^probe-(a|b)$/"], &[]), ["probe-a", "probe-b"]);
        assert_eq!(names(&["boot", "probe-b"], &[]), ["probe-b", "boot"]);
    }

    #[test]
    fn skips_win_over_filters() {
        assert_eq!(names(&["probe-*"], &["*-slow"]), ["probe-a", "probe-b"]);
        assert_eq!(names(&[], &["/probe/"]), ["boot"]);
    }

    #[test]
    fn a_bad_pattern_says_what_to_write() {
        for bad in ["/(/", "probe-[a"] {
            let error = NamePattern::parse(bad).unwrap_err().to_string();
            assert!(
                error.contains(bad) && error.contains("between slashes"),
                "{error}"
            );
        }
    }
}
