//! JSON-line events: a guest program reports what it saw as one JSON object per line (on stdout
//! or the console), and a test names the events it expects by partial objects, so events can
//! grow fields without breaking tests.
//!
//! Matching ([`matches()`]): an object pattern matches an object holding every key of the pattern
//! with a matching value (extra keys are ignored, recursively); an array pattern matches an
//! array of the same length whose elements match pairwise, in order (arrays are positional, so a
//! subset match would be ambiguous); numbers match by value (`1` matches `1.0`); every other
//! scalar must be equal.

use crate::printk::console_lines;
use serde_json::Value;
use std::fmt;

/// At most this many `{` per line are tried as the start of the object, so a line full of
/// braces costs a bounded amount of parsing.
const MAX_OBJECT_STARTS: usize = 8;
/// A missing-event report lists at most this many candidates.
pub const MAX_CANDIDATES: usize = 5;

/// One JSON object found in a stream of lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The 1-based line it was on.
    pub line_number: usize,
    /// The object.
    pub value: Value,
}

impl Event {
    /// Its `kind` field, when it has one.
    pub fn kind(&self) -> Option<&Value> {
        self.value.get("kind")
    }
}

/// The JSON object a line carries, if any: the line from one of its first `{` to its end must
/// parse as a JSON object, so a printk timestamp or a `prog[42]: ` prefix in front is fine and
/// anything after the object is not.
pub fn parse_event(line: &str) -> Option<Value> {
    let line = line.trim_end_matches(['\r', '\n']);
    line.match_indices('{')
        .take(MAX_OBJECT_STARTS)
        .find_map(|(start, _)| {
            serde_json::from_str::<Value>(&line[start..])
                .ok()
                .filter(Value::is_object)
        })
}

/// Every event in `text` (stdout or a console log), in order.
pub fn extract_events(text: &str) -> Vec<Event> {
    console_lines(text)
        .enumerate()
        .filter_map(|(i, line)| {
            parse_event(line).map(|value| Event {
                line_number: i + 1,
                value,
            })
        })
        .collect()
}

/// Whether `value` matches `pattern` (see the module doc for the rules).
pub fn matches(pattern: &Value, value: &Value) -> bool {
    first_difference(pattern, value).is_none()
}

/// Where `value` first fails to match `pattern`.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// Where, as `data.errno_name` or `args[1]`; empty for the value itself.
    pub path: String,
    /// What the pattern wants there.
    pub expected: Value,
    /// What the value has there; `None` when the key is missing.
    pub found: Option<Value>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "the event"
        } else {
            &self.path
        };
        match &self.found {
            Some(found) => write!(f, "{path}: expected {}, found {found}", self.expected),
            None => write!(f, "{path}: expected {}, missing", self.expected),
        }
    }
}

/// The first place (in key order, depth first) where `value` does not match `pattern`, or
/// `None` when it matches.
pub fn first_difference(pattern: &Value, value: &Value) -> Option<Difference> {
    difference_at(String::new(), pattern, value)
}

fn difference_at(path: String, pattern: &Value, value: &Value) -> Option<Difference> {
    let differ = |path: String| {
        Some(Difference {
            path,
            expected: pattern.clone(),
            found: Some(value.clone()),
        })
    };
    match (pattern, value) {
        (Value::Object(want), Value::Object(have)) => want.iter().find_map(|(key, want)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match have.get(key) {
                Some(have) => difference_at(path, want, have),
                None => Some(Difference {
                    path,
                    expected: want.clone(),
                    found: None,
                }),
            }
        }),
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => want
            .iter()
            .zip(have)
            .enumerate()
            .find_map(|(i, (want, have))| difference_at(format!("{path}[{i}]"), want, have)),
        (Value::Number(want), Value::Number(have)) => {
            if numbers_equal(want, have) {
                None
            } else {
                differ(path)
            }
        }
        (Value::Object(_) | Value::Array(_) | Value::Number(_), _) => differ(path),
        _ if pattern == value => None,
        _ => differ(path),
    }
}

/// Integers compare exactly (so large ids do not collide through `f64`); anything else by value.
fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    let exact = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (exact(a), exact(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a.as_f64().is_some_and(|a| b.as_f64() == Some(a)),
    }
}

/// An event that matched, and the closest it came otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The event.
    pub event: Event,
    /// Where it fails the pattern.
    pub difference: Option<Difference>,
}

/// An expected event that no event matched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", describe_missing(self))]
pub struct MissingEvent {
    /// Which pattern, by its index in the list given.
    pub index: usize,
    /// The pattern.
    pub pattern: Value,
    /// Events with the pattern's `kind` (the first [`MAX_CANDIDATES`]), and where each one
    /// differs; empty when the pattern names no kind.
    pub candidates: Vec<Candidate>,
    /// How many events had that kind in all.
    pub same_kind: usize,
}

fn describe_missing(missing: &MissingEvent) -> String {
    let mut text = format!("no event matches {}", missing.pattern);
    match missing.pattern.get("kind") {
        None => text.push_str(" (it names no kind, so no candidates are listed)"),
        Some(kind) if missing.same_kind == 0 => {
            text.push_str(&format!("; no event has kind {kind}"));
        }
        Some(kind) => {
            text.push_str(&format!("; {} event(s) of kind {kind}", missing.same_kind));
            if missing.same_kind > missing.candidates.len() {
                text.push_str(&format!(", the first {}", missing.candidates.len()));
            }
            text.push(':');
            for candidate in &missing.candidates {
                text.push_str(&format!(
                    "\n  line {}: {}",
                    candidate.event.line_number, candidate.event.value
                ));
                if let Some(difference) = &candidate.difference {
                    text.push_str(&format!("\n    {difference}"));
                }
            }
        }
    }
    text
}

/// A forbidden event that occurred.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("forbidden event {pattern} occurred at line {}: {}", event.line_number, event.value)]
pub struct ForbiddenEvent {
    /// Which pattern, by its index in the list given.
    pub index: usize,
    /// The pattern.
    pub pattern: Value,
    /// The first event it matched.
    pub event: Event,
}

/// Checks that every pattern matches at least one event; one failure per pattern that does not.
pub fn expect_events(events: &[Event], patterns: &[Value]) -> Vec<MissingEvent> {
    patterns
        .iter()
        .enumerate()
        .filter(|(_, pattern)| !events.iter().any(|event| matches(pattern, &event.value)))
        .map(|(index, pattern)| missing(index, pattern, events))
        .collect()
}

fn missing(index: usize, pattern: &Value, events: &[Event]) -> MissingEvent {
    let same_kind: Vec<&Event> = match pattern.get("kind") {
        Some(kind) => events
            .iter()
            .filter(|event| event.kind() == Some(kind))
            .collect(),
        None => Vec::new(),
    };
    MissingEvent {
        index,
        pattern: pattern.clone(),
        candidates: same_kind
            .iter()
            .take(MAX_CANDIDATES)
            .map(|event| Candidate {
                event: (*event).clone(),
                difference: first_difference(pattern, &event.value),
            })
            .collect(),
        same_kind: same_kind.len(),
    }
}

/// Checks that no pattern matches any event; one failure per pattern that does.
pub fn forbid_events(events: &[Event], patterns: &[Value]) -> Vec<ForbiddenEvent> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(index, pattern)| {
            events
                .iter()
                .find(|event| matches(pattern, &event.value))
                .map(|event| ForbiddenEvent {
                    index,
                    pattern: pattern.clone(),
                    event: event.clone(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONSOLE: &str = "\
[    1.000000] Run /init as init process\r
[    1.200000] vmlane-probe[42]: {\"kind\":\"probe\",\"status\":\"ok\",\"data\":{\"syscall\":467,\"rc\":0}}\r
[    1.200001] {not json}\r
[    1.200002] {\"kind\":\"probe\",\"status\":\"syscall_error\",\"data\":{\"syscall\":468,\"op\":1,\"rc\":-1,\"errno\":45,\"errno_name\":\"ENOTSUP\"}}\r
[    1.200003] [1,2,3]\r
[    1.200004] {\"kind\":\"done\",\"ok\":true} trailing\r
{\"kind\":\"done\",\"ok\":true,\"tags\":[\"a\",\"b\"],\"elapsed\":1.0}
";

    #[test]
    fn events_are_found_behind_prefixes_and_only_whole_objects_count() {
        let events = extract_events(CONSOLE);
        let lines: Vec<_> = events.iter().map(|e| e.line_number).collect();
        assert_eq!(lines, [2, 4, 7]);
        assert_eq!(events[0].value["data"]["syscall"], 467);
        assert_eq!(events[2].kind(), Some(&json!("done")));
    }

    #[test]
    fn a_later_brace_is_tried_when_an_earlier_one_is_not_json() {
        assert_eq!(
            parse_event("probe {x} said {\"a\":1}"),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            parse_event("{\"a\":{\"b\":2}}"),
            Some(json!({"a": {"b": 2}}))
        );
        assert_eq!(parse_event("\"just a string\""), None);
        assert_eq!(parse_event(""), None);
        assert_eq!(parse_event(&"{".repeat(10_000)), None);
    }

    #[test]
    fn the_example_pattern_matches_the_syscall_error_event() {
        let pattern = json!({"kind": "probe", "data": {"errno_name": "ENOTSUP"}});
        let event = json!({"kind":"probe","status":"syscall_error","data":{"syscall":468,"op":1,"rc":-1,"errno":45,"errno_name":"ENOTSUP"}});
        assert!(matches(&pattern, &event));
        assert!(!matches(
            &json!({"kind": "probe", "data": {"errno_name": "EINVAL"}}),
            &event
        ));
        assert!(!matches(&json!({"kind": "probe", "missing": null}), &event));
    }

    #[test]
    fn arrays_match_by_length_and_position() {
        let event = json!({"tags": ["a", {"x": 1, "y": 2}]});
        assert!(matches(&json!({"tags": ["a", {"x": 1}]}), &event));
        assert!(!matches(&json!({"tags": ["a"]}), &event));
        assert!(!matches(&json!({"tags": [{"x": 1}, "a"]}), &event));
        assert!(!matches(&json!({"tags": "a"}), &event));
    }

    #[test]
    fn numbers_match_by_value_and_large_integers_exactly() {
        assert!(matches(&json!({"n": 1}), &json!({"n": 1.0})));
        assert!(matches(&json!({"n": -1}), &json!({"n": -1})));
        assert!(!matches(&json!({"n": 1}), &json!({"n": "1"})));
        assert!(!matches(
            &json!({"n": 9_007_199_254_740_993_u64}),
            &json!({"n": 9_007_199_254_740_992_u64})
        ));
        assert!(matches(&json!({"n": u64::MAX}), &json!({"n": u64::MAX})));
        assert!(!matches(&json!({"n": null}), &json!({"n": 0})));
    }

    #[test]
    fn differences_name_the_path() {
        let event = json!({"kind": "probe", "data": {"errno_name": "EINVAL"}, "list": [1, 2]});
        let diff = first_difference(&json!({"data": {"errno_name": "ENOTSUP"}}), &event).unwrap();
        assert_eq!(
            diff.to_string(),
            "data.errno_name: expected \"ENOTSUP\", found \"EINVAL\""
        );
        let diff = first_difference(&json!({"data": {"errno": 45}}), &event).unwrap();
        assert_eq!(diff.to_string(), "data.errno: expected 45, missing");
        let diff = first_difference(&json!({"list": [1, 3]}), &event).unwrap();
        assert_eq!(diff.path, "list[1]");
        let diff = first_difference(&json!({"a": 1}), &json!([1])).unwrap();
        assert_eq!(diff.to_string(), "the event: expected {\"a\":1}, found [1]");
    }

    #[test]
    fn a_missing_event_lists_events_of_its_kind() {
        let events = extract_events(CONSOLE);
        let patterns = [
            json!({"kind": "probe", "data": {"errno_name": "ENOTSUP"}}),
            json!({"kind": "probe", "data": {"errno_name": "EPERM"}}),
            json!({"kind": "exit"}),
            json!({"status": "weird"}),
        ];
        let missing = expect_events(&events, &patterns);
        let indices: Vec<_> = missing.iter().map(|m| m.index).collect();
        assert_eq!(indices, [1, 2, 3]);

        let eperm = &missing[0];
        assert_eq!(eperm.same_kind, 2);
        assert_eq!(eperm.candidates.len(), 2);
        assert_eq!(eperm.candidates[0].event.line_number, 2);
        let message = eperm.to_string();
        assert!(
            message.contains("2 event(s) of kind \"probe\""),
            "{message}"
        );
        assert!(message.contains("line 4: "), "{message}");
        assert!(
            message.contains("data.errno_name: expected \"EPERM\", found \"ENOTSUP\""),
            "{message}"
        );
        assert!(
            message.contains("data.errno_name: expected \"EPERM\", missing"),
            "{message}"
        );

        assert!(missing[1]
            .to_string()
            .contains("no event has kind \"exit\""));
        assert!(missing[2].candidates.is_empty());
        assert!(missing[2].to_string().contains("names no kind"));
    }

    #[test]
    fn candidates_are_capped() {
        let text = "{\"kind\":\"tick\",\"n\":1}\n".repeat(MAX_CANDIDATES + 3);
        let missing = expect_events(&extract_events(&text), &[json!({"kind": "tick", "n": 2})]);
        assert_eq!(missing[0].candidates.len(), MAX_CANDIDATES);
        assert_eq!(missing[0].same_kind, MAX_CANDIDATES + 3);
        assert!(missing[0]
            .to_string()
            .contains(&format!("the first {MAX_CANDIDATES}")));
    }

    #[test]
    fn forbidden_events_report_the_first_match() {
        let events = extract_events(CONSOLE);
        let found = forbid_events(
            &events,
            &[json!({"status": "syscall_error"}), json!({"kind": "oops"})],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].index, 0);
        assert_eq!(found[0].event.line_number, 4);
        assert!(found[0].to_string().contains("at line 4"));
    }
}
