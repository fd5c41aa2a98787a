//! What one KTAP line is, without its printk timestamp and indentation: the four kinds of line
//! the KTAP spec names (version, plan, result, diagnostic), plus `Bail out!` and everything else.

use super::KtapStatus;

/// One line's kind, borrowing its text.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line<'a> {
    /// `KTAP version 1`, `TAP version 13`.
    Version,
    /// `1..N`.
    Plan(usize),
    /// `ok 1 name`, `not ok 2 name # directive`.
    Result(ResultLine),
    /// `# Subtest: name`: names the subtest it opens, says nothing about a result.
    Subtest(&'a str),
    /// `# text`, without the `# `.
    Diagnostic(&'a str),
    /// `Bail out! why`.
    BailOut,
    /// Anything else: unrelated console output, or the unmarked lines of a diagnostic.
    Other,
}

/// A parsed result line.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ResultLine {
    pub status: KtapStatus,
    pub name: String,
    pub reason: String,
}

/// Tells what `body` (a line without timestamp and indentation) is.
pub(super) fn classify(body: &str) -> Line<'_> {
    if body.starts_with("KTAP version") || body.starts_with("TAP version") {
        Line::Version
    } else if body.starts_with("Bail out!") {
        Line::BailOut
    } else if let Some(count) = plan(body) {
        Line::Plan(count)
    } else if let Some(result) = result_line(body) {
        Line::Result(result)
    } else if let Some(text) = comment(body) {
        match text.trim_start().strip_prefix("Subtest:") {
            Some(name) => Line::Subtest(name.trim()),
            None => Line::Diagnostic(text),
        }
    } else {
        Line::Other
    }
}

/// `1..N`, also with a trailing `# SKIP why` (kselftest's "skip everything" plan).
fn plan(body: &str) -> Option<usize> {
    let rest = body.strip_prefix("1..")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The text of `# text` or a bare `#`. The spec writes diagnostics as `# ` and a description, so
/// `#PF: …` from an oops is console output, not a diagnostic.
fn comment(body: &str) -> Option<&str> {
    let rest = body.strip_prefix('#')?;
    if rest.is_empty() {
        return Some("");
    }
    let text = rest.strip_prefix([' ', '\t'])?;
    Some(text.trim_end())
}

/// `<ok|not ok> <number> [- ][<description>][ # [<directive>] [<diagnostic data>]]`.
fn result_line(body: &str) -> Option<ResultLine> {
    let (ok, rest) = outcome_word(body)?;
    let number_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (number, rest) = rest.split_at(number_end);
    if number.is_empty() || rest.starts_with(|c: char| !c.is_ascii_whitespace()) {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (description, tail) = match tail_start(rest) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let description = description.trim();
    let name = if description.is_empty() {
        format!("test_{number}")
    } else {
        description.to_string()
    };
    let (status, reason) = status_and_reason(ok, tail.unwrap_or(""));
    Some(ResultLine {
        status,
        name,
        reason,
    })
}

/// `ok` or `not ok` followed by whitespace; the text after it.
fn outcome_word(body: &str) -> Option<(bool, &str)> {
    let (ok, rest) = match body.strip_prefix("not ok") {
        Some(rest) => (false, rest),
        None => (true, body.strip_prefix("ok")?),
    };
    rest.starts_with(|c: char| c.is_ascii_whitespace())
        .then(|| (ok, rest.trim_start()))
}

/// Where the directive and diagnostic data begin: the first `#` that opens the text or follows
/// whitespace. A `#` inside a word (`test_case#1`) is part of the description.
fn tail_start(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    (0..bytes.len())
        .find(|&at| bytes[at] == b'#' && (at == 0 || bytes[at - 1].is_ascii_whitespace()))
}

/// The directives this reader knows; the KTAP spec's five plus kselftest's `XPASS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Skip,
    Todo,
    Xfail,
    Xpass,
    Timeout,
    Error,
}

impl Directive {
    /// The keyword, case-insensitively; `SKIPPED` is not `SKIP`.
    fn parse(word: &str) -> Option<Self> {
        let directive = match word.to_ascii_uppercase().as_str() {
            "SKIP" => Self::Skip,
            "TODO" => Self::Todo,
            "XFAIL" => Self::Xfail,
            "XPASS" => Self::Xpass,
            "TIMEOUT" => Self::Timeout,
            "ERROR" => Self::Error,
            _ => return None,
        };
        Some(directive)
    }

    fn keyword(self) -> &'static str {
        match self {
            Self::Skip => "SKIP",
            Self::Todo => "TODO",
            Self::Xfail => "XFAIL",
            Self::Xpass => "XPASS",
            Self::Timeout => "TIMEOUT",
            Self::Error => "ERROR",
        }
    }
}

/// The status and reason from `ok`/`not ok` and the text after the `#`.
///
/// SKIP, TODO and XFAIL set the status and leave their data as the reason. TIMEOUT and ERROR
/// are failures whatever the line says, and keep their keyword so the reason tells them from a
/// plain `not ok`. XPASS, and text that is no directive (`# rcode=0`), keep `ok`/`not ok`, as
/// the spec says for unknown directives, and become the reason whole.
fn status_and_reason(ok: bool, tail: &str) -> (KtapStatus, String) {
    let plain = if ok {
        KtapStatus::Ok
    } else {
        KtapStatus::NotOk
    };
    let tail = tail.trim();
    let word_end = tail
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(tail.len());
    let (word, data) = tail.split_at(word_end);
    let Some(directive) = Directive::parse(word) else {
        return (plain, tail.to_string());
    };
    let data = data
        .trim_start_matches(|c: char| c == ':' || c.is_whitespace())
        .to_string();
    let with_keyword = || {
        if data.is_empty() {
            directive.keyword().to_string()
        } else {
            format!("{} {data}", directive.keyword())
        }
    };
    match directive {
        Directive::Skip => (KtapStatus::Skip, data),
        Directive::Todo => (KtapStatus::Todo, data),
        Directive::Xfail => (KtapStatus::Xfail, data),
        Directive::Xpass => (plain, with_keyword()),
        Directive::Timeout | Directive::Error => (KtapStatus::NotOk, with_keyword()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(body: &str) -> (KtapStatus, String, String) {
        match classify(body) {
            Line::Result(r) => (r.status, r.name, r.reason),
            other => panic!("{body:?} is not a result line: {other:?}"),
        }
    }

    fn is(status: KtapStatus, name: &str, reason: &str) -> (KtapStatus, String, String) {
        (status, name.to_string(), reason.to_string())
    }

    #[test]
    fn every_directive_is_read_case_insensitively_with_or_without_a_space() {
        use KtapStatus::*;
        for (line, expected) in [
            ("ok 1 a # SKIP no device", is(Skip, "a", "no device")),
            ("not ok 1 a # skip no device", is(Skip, "a", "no device")),
            ("ok 1 a #SKIP", is(Skip, "a", "")),
            ("ok 1 a # SKIP: no device", is(Skip, "a", "no device")),
            ("not ok 2 b # TODO flaky", is(Todo, "b", "flaky")),
            ("ok 2 b #todo", is(Todo, "b", "")),
            ("ok 3 c # XFAIL known bad", is(Xfail, "c", "known bad")),
            ("not ok 3 c #xfail", is(Xfail, "c", "")),
            ("ok 4 d # XPASS fixed", is(Ok, "d", "XPASS fixed")),
            ("ok 4 d #xpass", is(Ok, "d", "XPASS")),
            (
                "not ok 5 e # TIMEOUT 30 seconds",
                is(NotOk, "e", "TIMEOUT 30 seconds"),
            ),
            ("ok 5 e # timeout", is(NotOk, "e", "TIMEOUT")),
            (
                "not ok 6 f # ERROR no memory",
                is(NotOk, "f", "ERROR no memory"),
            ),
            (
                "not ok 6 # error no memory",
                is(NotOk, "test_6", "ERROR no memory"),
            ),
        ] {
            assert_eq!(result(line), expected, "{line}");
        }
    }

    #[test]
    fn a_hash_inside_a_word_is_part_of_the_name() {
        use KtapStatus::*;
        assert_eq!(result("ok 1 test_case#1"), is(Ok, "test_case#1", ""));
        assert_eq!(result("ok 1 case#2 # SKIP off"), is(Skip, "case#2", "off"));
        assert_eq!(result("ok 1 a#SKIP"), is(Ok, "a#SKIP", ""));
    }

    #[test]
    fn text_after_a_spaced_hash_that_is_no_directive_is_diagnostic_data() {
        use KtapStatus::*;
        assert_eq!(result("ok 2 param # value 3"), is(Ok, "param", "value 3"));
        assert_eq!(
            result("ok 5 check return code # rcode=0"),
            is(Ok, "check return code", "rcode=0")
        );
        assert_eq!(result("not ok 3 x # exit=1"), is(NotOk, "x", "exit=1"));
        assert_eq!(result("ok 1 x # SKIPPED"), is(Ok, "x", "SKIPPED"));
        assert_eq!(result("ok 1 x # a # SKIP"), is(Ok, "x", "a # SKIP"));
    }

    #[test]
    fn names_dashes_and_numbers() {
        use KtapStatus::*;
        assert_eq!(result("ok 1 - dashed"), is(Ok, "dashed", ""));
        assert_eq!(result("ok 7"), is(Ok, "test_7", ""));
        assert_eq!(result("ok 3 # SKIP"), is(Skip, "test_3", ""));
        assert_eq!(result("not ok\t2\tname"), is(NotOk, "name", ""));
        for line in ["ok", "ok x", "okay 1 a", "ok 1a", "not ok", "not okay 1"] {
            assert_eq!(classify(line), Line::Other, "{line}");
        }
    }

    #[test]
    fn comments_subtests_plans_and_the_rest() {
        assert_eq!(
            classify("# a: EXPECTATION FAILED"),
            Line::Diagnostic("a: EXPECTATION FAILED")
        );
        assert_eq!(classify("#"), Line::Diagnostic(""));
        assert_eq!(classify("# Subtest: list"), Line::Subtest("list"));
        assert_eq!(classify("#PF: supervisor read"), Line::Other);
        assert_eq!(classify("1..0 # SKIP no tests"), Line::Plan(0));
        assert_eq!(classify("1..12"), Line::Plan(12));
        assert_eq!(classify("1.."), Line::Other);
        assert_eq!(classify("Bail out! oops"), Line::BailOut);
        assert_eq!(classify("TAP version 13"), Line::Version);
        assert_eq!(
            classify("# TAP version 13"),
            Line::Diagnostic("TAP version 13")
        );
    }
}
