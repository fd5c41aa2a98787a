//! The kernel matrix (every test on every kernel) and deterministic sharding of it, so a CI
//! system's parallel jobs each run a fixed share without a scheduler of vmlane's own.

use crate::error::SuiteError;
use crate::model::Suite;

/// One run: a test on a kernel (`None`: vmlane's default kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Index into [`Suite::tests`].
    pub test: usize,
    /// The kernel, as `-k` takes it.
    pub kernel: Option<String>,
}

/// Expands the suite: kernels given on the command line replace every test's own; a test
/// without kernels runs once on the default kernel.
pub fn matrix(suite: &Suite, command_line_kernels: &[String]) -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, test) in suite.tests.iter().enumerate() {
        let kernels = if command_line_kernels.is_empty() {
            &test.kernels
        } else {
            command_line_kernels
        };
        if kernels.is_empty() {
            cases.push(Case {
                test: index,
                kernel: None,
            });
        }
        for kernel in kernels {
            cases.push(Case {
                test: index,
                kernel: Some(kernel.clone()),
            });
        }
    }
    cases
}

/// `--partition K/N`: this machine runs share K of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// 1-based share.
    pub index: usize,
    /// Number of shares.
    pub count: usize,
}

impl std::str::FromStr for Partition {
    type Err = SuiteError;

    fn from_str(text: &str) -> Result<Partition, SuiteError> {
        let bad = || SuiteError::BadPartition(text.to_string());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

/// The cases of one share: every N-th case of the matrix, starting at K-1. The matrix order
/// depends only on the suite and the kernels, so every machine computes the same split.
pub fn partition(cases: Vec<Case>, share: Partition) -> Vec<Case> {
    cases
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % share.count == share.index - 1)
        .map(|(_, case)| case)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse;
    use std::path::Path;

    fn suite() -> Suite {
        parse(
            r#"
[[test]]
name = "a"
command = "true"
kernels = ["k1", "k2"]

[[test]]
name = "b"
command = "true"
"#,
            Path::new("s.toml"),
        )
        .unwrap()
    }

    fn kernels(cases: &[Case]) -> Vec<(usize, Option<&str>)> {
        cases
            .iter()
            .map(|c| (c.test, c.kernel.as_deref()))
            .collect()
    }

    #[test]
    fn each_test_runs_on_its_kernels_or_once_on_the_default() {
        let cases = matrix(&suite(), &[]);
        assert_eq!(
            kernels(&cases),
            [(0, Some("k1")), (0, Some("k2")), (1, None)]
        );
    }

    #[test]
    fn command_line_kernels_replace_the_suites() {
        let cases = matrix(&suite(), &["x".into(), "y".into()]);
        assert_eq!(
            kernels(&cases),
            [
                (0, Some("x")),
                (0, Some("y")),
                (1, Some("x")),
                (1, Some("y"))
            ]
        );
    }

    #[test]
    fn partitions_cover_the_matrix_exactly_once() {
        let all = matrix(&suite(), &["x".into(), "y".into(), "z".into()]);
        let mut seen = Vec::new();
        for index in 1..=4 {
            let share = partition(all.clone(), Partition { index, count: 4 });
            assert!(share.len() <= all.len().div_ceil(4));
            seen.extend(share);
        }
        assert_eq!(seen.len(), all.len());
        for case in &all {
            assert_eq!(seen.iter().filter(|c| *c == case).count(), 1, "{case:?}");
        }
    }

    #[test]
    fn partition_syntax_is_checked() {
        assert_eq!(
            "2/4".parse::<Partition>().unwrap(),
            Partition { index: 2, count: 4 }
        );
        for bad in ["0/4", "5/4", "2", "a/b", "1/0"] {
            let error = bad.parse::<Partition>().unwrap_err().to_string();
            assert!(error.contains("K/N"), "{bad}: {error}");
        }
    }
}
