//! The reader sees whatever a console printed, so it must stay total: any text, and any
//! damage to a real stream, gives a report, never a panic.

use proptest::prelude::*;

use super::diagnostics::{MAX_BYTES, MAX_LINES};
use super::fixtures::{ALL, KUNIT_INTERLEAVED, KUNIT_NESTED, KUNIT_SKIPPED_SUITE};
use super::*;

/// One change to a stream: a line removed, repeated, moved, or re-indented, text inserted, or
/// the stream cut at a byte.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Indent(usize, usize),
    Insert(usize, String),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        at.prop_map(Mutation::Delete),
        at.prop_map(Mutation::Duplicate),
        (at, at).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (at, 0usize..12).prop_map(|(a, n)| Mutation::Indent(a, n)),
        (at, fragment()).prop_map(|(a, s)| Mutation::Insert(a, s)),
        at.prop_map(Mutation::Cut),
    ]
}

/// Text that looks like pieces of KTAP, so mutations hit the interesting paths.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\n".to_string()),
        Just("#".to_string()),
        Just(" # SKIP ".to_string()),
        Just("\r".to_string()),
        Just("not ok 1 x\n".to_string()),
        Just("    KTAP version 1\n".to_string()),
        Just("1..3\n".to_string()),
        Just("# Subtest: s\n".to_string()),
        Just("Bail out!\n".to_string()),
        Just("[    1.000000] ".to_string()),
        "\\PC{0,12}",
    ]
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let n = lines.len();
    match mutation {
        Mutation::Delete(a) => {
            lines.remove(a % n);
        }
        Mutation::Duplicate(a) => {
            let line = lines[a % n].clone();
            lines.insert(a % n, line);
        }
        Mutation::Swap(a, b) => lines.swap(a % n, b % n),
        Mutation::Indent(a, spaces) => {
            let line = &mut lines[a % n];
            *line = format!("{}{}", " ".repeat(*spaces), line.trim_start());
        }
        Mutation::Insert(a, fragment) => {
            let line = &mut lines[a % n];
            let at = floor_boundary(line, a % (line.len() + 1));
            line.insert_str(at, fragment);
        }
        Mutation::Cut(a) => {
            let joined = lines.join("\n");
            let at = floor_boundary(&joined, a % (joined.len() + 1));
            return joined[..at].to_string();
        }
    }
    lines.join("\n")
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// What every report must satisfy, whatever the input.
fn well_formed(report: &KtapReport) -> Result<(), TestCaseError> {
    for result in &report.results {
        prop_assert!(!result.name.is_empty());
        prop_assert!(result.diagnostics.len() <= MAX_LINES + 1);
        let bytes: usize = result
            .diagnostics
            .iter()
            .take(MAX_LINES)
            .map(String::len)
            .sum();
        prop_assert!(bytes <= MAX_BYTES, "{} bytes", bytes);
    }
    if report.passed() {
        prop_assert!(report.problems.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*(\r?\n\\PC*){0,16}") {
        well_formed(&parse_ktap(&text))?;
    }

    #[test]
    fn ktap_shaped_text_never_panics(
        text in "((KTAP version 1|1\\.\\.[0-9]|(not )?ok [0-9]{1,3}[ #a-zA-Z-]{0,12}|# Subtest: [a-z]{0,4}|# [a-z #]{0,8}|Bail out!|[ \\t\\r\\[\\]0-9.#]{0,6}| {0,9}[a-z]{0,6})\r?\n){0,40}"
    ) {
        well_formed(&parse_ktap(&text))?;
    }

    #[test]
    fn damaged_fixtures_never_panic(
        fixture in proptest::sample::select(ALL.to_vec()),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let mut text = fixture.to_string();
        for mutation in &mutations {
            text = apply(&text, mutation);
        }
        well_formed(&parse_ktap(&text))?;
    }

    /// A passing stream cut anywhere before its last result line never passes.
    #[test]
    fn a_passing_stream_cut_before_its_end_never_passes(
        fixture in proptest::sample::select(vec![KUNIT_NESTED, KUNIT_SKIPPED_SUITE, KUNIT_INTERLEAVED]),
        at in any::<usize>(),
    ) {
        prop_assert!(parse_ktap(fixture).passed());
        let last_result = fixture
            .trim_end()
            .rfind("ok ")
            .and_then(|at| fixture[..at].rfind('\n'))
            .map_or(0, |newline| newline + 1);
        let cut = floor_boundary(fixture, at % (last_result + 1));
        let report = parse_ktap(&fixture[..cut]);
        well_formed(&report)?;
        prop_assert!(!report.passed(), "passed when cut at {}: {:?}", cut, &fixture[..cut]);
    }
}
