//! Kernel release ordering: numbers compare as numbers, so 6.1.10 is newer than 6.1.9, and a
//! release candidate comes before its release.

use std::cmp::Ordering;

/// Compares two releases such as `6.1.0-56-amd64` piece by piece.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (pieces(a), pieces(b));
    for (x, y) in pa.iter().zip(&pb) {
        let order = compare_piece(x, y);
        if order != Ordering::Equal {
            return order;
        }
    }
    match pa.len().cmp(&pb.len()) {
        // `6.1.0-rc1` is older than `6.1.0`; `6.1.0-1` is newer.
        Ordering::Greater if is_rc(pa[pb.len()]) => Ordering::Less,
        Ordering::Less if is_rc(pb[pa.len()]) => Ordering::Greater,
        order => order,
    }
}

fn compare_piece(x: &str, y: &str) -> Ordering {
    match (x.parse::<u64>(), y.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => match (rc_number(x), rc_number(y)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x.cmp(y),
        },
    }
}

fn rc_number(piece: &str) -> Option<u64> {
    piece.strip_prefix("rc")?.parse().ok()
}

fn is_rc(piece: &str) -> bool {
    rc_number(piece).is_some()
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
            .is_some_and(|rest| rest.starts_with(['.', '-', '+', '_']))
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
        assert_eq!(compare("6.1.0", "6.1.0"), Ordering::Equal);
    }

    #[test]
    fn release_candidates_come_before_their_release() {
        assert_eq!(compare("6.12.0-rc1", "6.12.0"), Ordering::Less);
        assert_eq!(compare("6.12.0", "6.12.0-rc7"), Ordering::Greater);
        assert_eq!(compare("6.12.0-rc10", "6.12.0-rc9"), Ordering::Greater);
        assert_eq!(compare("6.12.0-rc1", "6.11.9"), Ordering::Greater);
    }

    #[test]
    fn prefixes_match_at_boundaries_only() {
        assert!(matches_prefix("6.1.9", "6.1"));
        assert!(matches_prefix("6.1.0-56-amd64", "6.1.0"));
        assert!(!matches_prefix("6.10.1", "6.1"));
    }
}
