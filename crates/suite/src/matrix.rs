//! The kernel matrix (every test on every kernel) and deterministic sharding of it, so a CI
//! system's parallel jobs each run a fixed share without a scheduler of vmlane's own, the
//! way nextest's `--partition count:K/N` and `hash:K/N` do.

use crate::error::SuiteError;
use crate::model::Suite;

/// One run: a test on a kernel (`None`: vmlane's default kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its place in the whole matrix, before selection and partitioning: reports of shards
    /// are merged back into this order.
    pub index: usize,
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
                index: cases.len(),
                test: index,
                kernel: None,
            });
        }
        for kernel in kernels {
            cases.push(Case {
                index: cases.len(),
                test: index,
                kernel: Some(kernel.clone()),
            });
        }
    }
    cases
}

/// `--partition [count:|hash:]K/N`: this machine runs share K of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// How cases are dealt out.
    pub kind: PartitionKind,
    /// 1-based share.
    pub index: usize,
    /// Number of shares.
    pub count: usize,
}

/// How a partition deals cases to shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// Every N-th case of the matrix (`count:K/N`, or plain `K/N`): even shares, but adding a
    /// test moves others to other shares.
    Count,
    /// By a hash of the test's name and kernel (`hash:K/N`): a case stays on its share when
    /// tests are added or removed, so a share's history stays comparable.
    Hash,
}

impl std::str::FromStr for Partition {
    type Err = SuiteError;

    fn from_str(text: &str) -> Result<Partition, SuiteError> {
        let bad = || SuiteError::BadPartition(text.to_string());
        let (kind, share) = match text.split_once(':') {
            Some(("count", share)) => (PartitionKind::Count, share),
            Some(("hash", share)) => (PartitionKind::Hash, share),
            Some(_) => return Err(bad()),
            None => (PartitionKind::Count, text),
        };
        let (k, n) = share.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { kind, index, count })
    }
}

/// The cases of one share. Both ways depend only on the suite and the kernels, so every
/// machine computes the same split.
pub fn partition(suite: &Suite, cases: Vec<Case>, share: Partition) -> Vec<Case> {
    cases
        .into_iter()
        .enumerate()
        .filter(|(i, case)| {
            let slot = match share.kind {
                PartitionKind::Count => *i as u64,
                PartitionKind::Hash => {
                    name_hash(&suite.tests[case.test].name, case.kernel.as_deref())
                }
            };
            slot % share.count as u64 == (share.index - 1) as u64
        })
        .map(|(_, case)| case)
        .collect()
}

/// A hash of the test's name and kernel that no Rust or platform version changes.
fn name_hash(test: &str, kernel: Option<&str>) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(test.as_bytes());
    hasher.update([0]);
    hasher.update(kernel.unwrap_or("").as_bytes());
    let digest = hasher.finalize();
    u64::from_le_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 8 bytes"),
    )
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
            let share = partition(
                &suite(),
                all.clone(),
                Partition {
                    kind: PartitionKind::Count,
                    index,
                    count: 4,
                },
            );
            assert!(share.len() <= all.len().div_ceil(4));
            seen.extend(share);
        }
        assert_eq!(seen.len(), all.len());
        for case in &all {
            assert_eq!(seen.iter().filter(|c| *c == case).count(), 1, "{case:?}");
        }
    }

    fn many_tests(names: &[String]) -> Suite {
        let text: String = names
            .iter()
            .map(|n| format!("[[test]]\nname = \"{n}\"\ncommand = \"true\"\n"))
            .collect();
        parse(&text, Path::new("s.toml")).unwrap()
    }

    /// Each test's share under `hash:K/3`, by name.
    fn hash_shares(suite: &Suite, kernels: &[String]) -> Vec<(String, Option<String>, usize)> {
        let all = matrix(suite, kernels);
        let mut shares = Vec::new();
        for index in 1..=3 {
            let share = Partition {
                kind: PartitionKind::Hash,
                index,
                count: 3,
            };
            for case in partition(suite, all.clone(), share) {
                shares.push((suite.tests[case.test].name.clone(), case.kernel, index));
            }
        }
        shares.sort();
        shares
    }

    #[test]
    fn hash_partitions_cover_the_matrix_once_and_keep_cases_put_when_tests_are_added() {
        let names: Vec<String> = (0..30).map(|i| format!("test-{i}")).collect();
        let kernels = ["k1".to_string(), "k2".to_string()];
        let before = hash_shares(&many_tests(&names), &kernels);
        assert_eq!(before.len(), 60, "every case exactly once");
        let mut deduped = before.clone();
        deduped.dedup_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1));
        assert_eq!(deduped.len(), 60);
        for index in 1..=3 {
            let n = before.iter().filter(|s| s.2 == index).count();
            assert!((8..=32).contains(&n), "share {index} has {n} of 60");
        }
        let mut more = names.clone();
        more.insert(3, "added".into());
        more.push("added-last".into());
        let after = hash_shares(&many_tests(&more), &kernels);
        for case in &before {
            assert!(after.contains(case), "{case:?} moved");
        }
    }

    #[test]
    fn partition_syntax_is_checked() {
        let count = Partition {
            kind: PartitionKind::Count,
            index: 2,
            count: 4,
        };
        assert_eq!("2/4".parse::<Partition>().unwrap(), count);
        assert_eq!("count:2/4".parse::<Partition>().unwrap(), count);
        assert_eq!(
            "hash:3/4".parse::<Partition>().unwrap(),
            Partition {
                kind: PartitionKind::Hash,
                index: 3,
                count: 4
            }
        );
        for bad in [
            "0/4", "5/4", "2", "a/b", "1/0", "rr:1/2", "hash:0/2", "hash:",
        ] {
            let error = bad.parse::<Partition>().unwrap_err().to_string();
            assert!(error.contains("K/N"), "{bad}: {error}");
        }
    }
}
