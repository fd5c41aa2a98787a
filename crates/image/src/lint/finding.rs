//! One thing `rc` needs that an image lacks, and the sorted, duplicate-free set of them.

use std::collections::BTreeSet;
use std::fmt;

/// A problem found in an image: the file it is about (relative to the image's root, as in
/// `etc/rc.d/cleartmp`) and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    /// The file the problem is about, without a leading `/`.
    pub path: String,
    /// What is missing, and where it was looked for.
    pub message: String,
}

impl Finding {
    /// A finding about `path` (a leading `/` is dropped, so both spellings compare equal).
    pub fn new(path: impl AsRef<str>, message: impl Into<String>) -> Finding {
        Finding {
            path: path.as_ref().trim_start_matches('/').to_string(),
            message: message.into(),
        }
    }

    /// Reads back a line written by `Display` (`path: message`), as kept beside a cached
    /// image.
    pub fn parse(line: &str) -> Option<Finding> {
        let (path, message) = line.split_once(": ")?;
        (!path.is_empty() && !message.is_empty()).then(|| Finding::new(path, message))
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What the checks add to: sorted by file then message, each finding once.
#[derive(Debug, Default)]
pub(crate) struct Findings(BTreeSet<Finding>);

impl Findings {
    pub fn add(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.0.insert(Finding::new(path, message));
    }

    pub fn into_vec(self) -> Vec<Finding> {
        self.0.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_sorted_once_each_and_read_back_from_their_lines() {
        let mut findings = Findings::default();
        findings.add("/etc/rc.d/b", "calls x, which the image lacks");
        findings.add("etc/rc.d/a", "calls y, which the image lacks");
        findings.add("etc/rc.d/b", "calls x, which the image lacks");
        let lines: Vec<String> = findings.into_vec().iter().map(|f| f.to_string()).collect();
        assert_eq!(
            lines,
            [
                "etc/rc.d/a: calls y, which the image lacks",
                "etc/rc.d/b: calls x, which the image lacks"
            ]
        );
        assert_eq!(
            Finding::parse(&lines[0]),
            Some(Finding::new("etc/rc.d/a", "calls y, which the image lacks"))
        );
        assert_eq!(Finding::parse("no separator"), None);
    }
}
