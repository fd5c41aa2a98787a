//! Kernel release ordering: numbers compare as numbers, so 6.1.10 is newer than 6.1.9.

use std::cmp::Ordering;

/// Compares two releases such as `6.1.0-56-amd64` piece by piece.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (pieces(a), pieces(b));
    for (x, y) in pa.iter().zip(&pb) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    pa.len().cmp(&pb.len())
}

fn pieces(release: &str) -> Vec<&str> {
    release
        .split(['.', '-', '+', '_'])
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether `release` is `prefix` or starts with it at a piece boundary (`6.1` matches `6.1.9`
/// but not `6.10`).
pub fn matches_prefix(release: &str, prefix: &str) -> bool {
    release == prefix
        || release
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_numbers() {
        assert_eq!(compare("6.1.10", "6.1.9"), Ordering::Greater);
        assert_eq!(
            compare("6.1.0-56-amd64", "6.1.0-9-amd64"),
            Ordering::Greater
        );
        assert_eq!(compare("6.1", "6.1.1"), Ordering::Less);
    }

    #[test]
    fn prefixes_match_at_boundaries_only() {
        assert!(matches_prefix("6.1.9", "6.1"));
        assert!(matches_prefix("6.1.0-56-amd64", "6.1.0"));
        assert!(!matches_prefix("6.10.1", "6.1"));
    }
}
