//! What an `sh` script runs, read from its tokens without running it: the first word of
//! each simple command (and of each command substitution), the functions it defines, its
//! variable assignments, the files it sources and the paths it tests before using. It
//! errs towards seeing less: case patterns, `for` lists, arguments, quoted or expanded
//! words are never commands.

use super::lex::{lex, Part, Token, Word};
use std::collections::BTreeSet;

/// How deep command substitutions are followed.
const MAX_NESTING: usize = 8;

/// Test operators whose operand is a file a script checks before using it.
const FILE_TESTS: &[&str] = &[
    "-b", "-c", "-d", "-e", "-f", "-g", "-h", "-k", "-L", "-p", "-r", "-s", "-S", "-u", "-w", "-x",
];

/// A variable assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    pub name: String,
    pub value: Vec<Part>,
    /// Outside any function, condition, loop or group: it happens whenever the script runs.
    pub top: bool,
    /// A default (`${name:=value}`), which applies only where the variable is unset.
    pub default: bool,
}

/// A command a script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    /// Its plain name or path.
    pub name: String,
    /// Inside a condition, loop or case item, or after `&&` or `||` (within its function,
    /// if it is in one): it may never run.
    pub conditional: bool,
    /// The function whose body it is in, if any: it runs when that function does.
    pub function: Option<String>,
}

/// What a scan found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scan {
    /// Plain command words, in order, with duplicates.
    pub commands: Vec<Command>,
    /// Functions the script defines.
    pub functions: BTreeSet<String>,
    pub assignments: Vec<Assignment>,
    /// Literal paths of `.` commands.
    pub sourced: Vec<String>,
    /// Paths tested with `test`'s file operators and names looked up with `command -v`,
    /// `type` or `which`: the script copes with their absence.
    pub tested: BTreeSet<String>,
}

impl Scan {
    /// Whether the script runs `name` anywhere.
    pub fn runs(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c.name == name)
    }

    /// The value of the last top-level assignment to `name`.
    pub fn top_value(&self, name: &str) -> Option<&[Part]> {
        self.assignments
            .iter()
            .rev()
            .find(|a| a.top && !a.default && a.name == name)
            .map(|a| a.value.as_slice())
    }
}

/// Scans `source`.
pub(crate) fn scan(source: &str) -> Scan {
    let mut scan = Scan::default();
    scan_into(source, &mut scan, 0, &Context::default());
    scan
}

/// Where a command substitution is: its commands are as conditional as the command it is
/// in, and in the same function.
#[derive(Debug, Clone, Default)]
struct Context {
    conditional: bool,
    function: Option<String>,
}

fn scan_into(source: &str, scan: &mut Scan, nesting: usize, outer: &Context) {
    let tokens = lex(source);
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        frames: Vec::new(),
        bodies: Vec::new(),
        defining: None,
        expect_command: true,
        in_for_list: false,
        after_and_or: false,
        previous: None,
        command: None,
        scan,
        nesting,
        outer: outer.clone(),
    };
    parser.run();
}

/// What a token is nested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `( ... )`, opened after `&&` or `||` or not.
    Paren { conditional: bool },
    /// `{ ... }`, opened after `&&` or `||` or not.
    Brace { conditional: bool },
    /// `if ... fi`
    If,
    /// `while`/`until`/`for` ... `done`
    Loop,
    /// `case WORD in`: the word, then `in`.
    CaseHead { seen_subject: bool },
    /// Case patterns, up to `)`.
    CasePattern,
    /// A case item's commands, up to `;;`.
    CaseBody,
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    frames: Vec<Frame>,
    /// Function bodies being read: the depth of their frame, and the function's name.
    bodies: Vec<(usize, String)>,
    /// A function just defined, whose body the next group is.
    defining: Option<String>,
    expect_command: bool,
    in_for_list: bool,
    /// The current list has had a `&&` or `||`.
    after_and_or: bool,
    /// The previous word of the current command.
    previous: Option<String>,
    /// The current command's name.
    command: Option<String>,
    scan: &'a mut Scan,
    nesting: usize,
    outer: Context,
}

impl Parser<'_> {
    fn run(&mut self) {
        while let Some(token) = self.tokens.get(self.at) {
            self.at += 1;
            match token {
                Token::Op(op) => self.operator(op),
                Token::Redirect => {
                    if let Some(Token::Word(target)) = self.tokens.get(self.at) {
                        self.at += 1;
                        self.substitutions(target);
                    }
                }
                Token::Word(word) => self.word(word),
            }
        }
    }

    /// Whether a command here may not run: inside a condition, loop or case item, or after
    /// `&&` or `||`.
    fn conditional(&self) -> bool {
        let body = self.bodies.last().map_or(0, |(depth, _)| *depth);
        let nested = self.frames.get(body..).unwrap_or_default().iter().any(|f| {
            !matches!(
                f,
                Frame::Paren { conditional: false } | Frame::Brace { conditional: false }
            )
        });
        (self.outer.conditional && self.bodies.is_empty()) || self.after_and_or || nested
    }

    /// The context of a command here.
    fn context(&self) -> Context {
        Context {
            conditional: self.conditional(),
            function: match self.bodies.last() {
                Some((_, name)) => Some(name.clone()),
                None => self.outer.function.clone(),
            },
        }
    }

    fn top(&self) -> Option<Frame> {
        self.frames.last().copied()
    }

    /// Opens a frame; a group right after a function's definition is its body.
    fn push(&mut self, frame: Frame) {
        self.frames.push(frame);
        if let Some(name) = self.defining.take() {
            if matches!(frame, Frame::Paren { .. } | Frame::Brace { .. }) {
                self.bodies.push((self.frames.len(), name));
            }
        }
        self.after_and_or = false;
    }

    /// Closes the innermost frame, and the function body it was.
    fn pop(&mut self) {
        self.frames.pop();
        if self
            .bodies
            .last()
            .is_some_and(|(depth, _)| *depth > self.frames.len())
        {
            self.bodies.pop();
        }
    }

    /// Moves a case along: head, patterns, body.
    fn replace_top(&mut self, frame: Frame) {
        if let Some(top) = self.frames.last_mut() {
            *top = frame;
        }
    }

    fn end_command(&mut self) {
        self.expect_command = true;
        self.previous = None;
        self.command = None;
    }

    fn operator(&mut self, op: &str) {
        match (op, self.top()) {
            ("(" | "|", Some(Frame::CasePattern)) => {}
            (")", Some(Frame::CasePattern)) => {
                self.replace_top(Frame::CaseBody);
                self.end_command();
            }
            (";;" | ";&", _) => {
                if self.top() == Some(Frame::CaseBody) {
                    self.replace_top(Frame::CasePattern);
                }
                self.end_command();
            }
            ("(", _) => {
                self.push(Frame::Paren {
                    conditional: self.after_and_or,
                });
                self.end_command();
            }
            (")", _) => {
                if matches!(self.top(), Some(Frame::Paren { .. })) {
                    self.pop();
                }
                self.end_command();
                self.expect_command = false;
            }
            (";" | "\n" | "&", _) => {
                self.in_for_list = false;
                self.after_and_or = false;
                self.end_command();
            }
            ("&&" | "||", _) => {
                self.after_and_or = true;
                self.end_command();
            }
            _ => self.end_command(),
        }
    }

    fn word(&mut self, word: &Word) {
        self.substitutions(word);
        match self.top() {
            Some(Frame::CaseHead {
                seen_subject: false,
            }) => {
                self.replace_top(Frame::CaseHead { seen_subject: true });
                return;
            }
            Some(Frame::CaseHead { seen_subject: true }) => {
                self.replace_top(Frame::CasePattern);
                return;
            }
            Some(Frame::CasePattern) => {
                if !word.quoted && word.raw == "esac" {
                    self.pop();
                    self.expect_command = false;
                }
                return;
            }
            _ => {}
        }
        if self.in_for_list {
            if !word.quoted && word.raw == "do" {
                self.in_for_list = false;
                self.end_command();
            }
            return;
        }
        if self.expect_command {
            self.command_position(word);
        } else {
            self.argument(word);
        }
    }

    fn command_position(&mut self, word: &Word) {
        // `command -v x` only looks x up: an option keeps `command` the command.
        if matches!(self.command.as_deref(), Some("exec" | "command")) && word.raw.starts_with('-')
        {
            self.expect_command = false;
            self.previous = Some(word.raw.clone());
            return;
        }
        if let Some((name, value)) = assignment(word) {
            self.assign(name, value, false);
            return;
        }
        if !word.quoted && self.reserved(&word.raw) {
            return;
        }
        let defines = matches!(
            (self.tokens.get(self.at), self.tokens.get(self.at + 1)),
            (Some(Token::Op("(")), Some(Token::Op(")")))
        );
        if defines {
            self.at += 2;
            if let Some(name) = plain(word) {
                self.scan.functions.insert(name.clone());
                self.defining = Some(name);
            }
            self.end_command();
            return;
        }
        self.defining = None;
        self.expect_command = false;
        self.previous = Some(word.raw.clone());
        self.command = plain(word);
        if let Some(name) = &self.command {
            let Context {
                conditional,
                function,
            } = self.context();
            self.scan.commands.push(Command {
                name: name.clone(),
                conditional,
                function,
            });
            // `exec cmd` and `command cmd` run cmd: it takes the command's place.
            if name == "exec" || name == "command" {
                self.expect_command = true;
            }
        }
    }

    /// Reserved words at a command's start: they nest, and keep the next word a command.
    fn reserved(&mut self, raw: &str) -> bool {
        match raw {
            "if" => self.push(Frame::If),
            "while" | "until" => self.push(Frame::Loop),
            "for" => {
                self.push(Frame::Loop);
                self.in_for_list = true;
            }
            "case" => self.push(Frame::CaseHead {
                seen_subject: false,
            }),
            "{" => self.push(Frame::Brace {
                conditional: self.after_and_or,
            }),
            "fi" | "done" | "}" | "esac" => {
                let closes = matches!(
                    (raw, self.top()),
                    ("fi", Some(Frame::If))
                        | ("done", Some(Frame::Loop))
                        | ("}", Some(Frame::Brace { .. }))
                        | ("esac", Some(Frame::CaseBody))
                );
                if closes {
                    self.pop();
                }
                self.expect_command = false;
                return true;
            }
            "then" | "else" | "elif" | "do" | "!" | "in" => {}
            "function" => {
                // `function name`: the next word is a name, not a command.
                if let Some(Token::Word(name)) = self.tokens.get(self.at) {
                    self.at += 1;
                    self.scan.functions.extend(plain(name));
                }
            }
            _ => return false,
        }
        true
    }

    fn argument(&mut self, word: &Word) {
        let value = word.literal();
        let command = self.command.as_deref();
        if let (Some(value), Some(previous)) = (&value, &self.previous) {
            let after_test = FILE_TESTS.contains(&previous.as_str());
            let lookup = matches!(command, Some("type" | "which"))
                || (command == Some("command") && matches!(previous.as_str(), "-v" | "-V"));
            if (after_test && value.starts_with('/')) || lookup {
                self.scan.tested.insert(value.clone());
            }
            if command == Some(".") && self.previous.as_deref() == Some(".") {
                self.scan.sourced.push(value.clone());
            }
        }
        self.previous = Some(word.raw.clone());
        for (name, value) in &word.defaults {
            let name = name.clone();
            self.assign_default(name, value.clone());
        }
    }

    fn assign(&mut self, name: String, value: Vec<Part>, default: bool) {
        let top = self.frames.is_empty() && self.nesting == 0 && !self.after_and_or;
        self.scan.assignments.push(Assignment {
            name,
            value,
            top,
            default,
        });
    }

    fn assign_default(&mut self, name: String, value: Vec<Part>) {
        self.assign(name, value, true);
    }

    /// Scans the command substitutions in `word` as scripts of their own.
    fn substitutions(&mut self, word: &Word) {
        if self.nesting >= MAX_NESTING {
            return;
        }
        let context = self.context();
        for inner in &word.substitutions {
            scan_into(inner, self.scan, self.nesting + 1, &context);
        }
    }
}

/// `name=value` at a command's start: the name, and the value's parts.
fn assignment(word: &Word) -> Option<(String, Vec<Part>)> {
    let (name, _) = word.raw.split_once('=')?;
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return None;
    }
    let mut parts = word.parts.clone();
    match parts.first_mut() {
        Some(Part::Lit(text)) => {
            *text = text.strip_prefix(&format!("{name}="))?.to_string();
        }
        _ => return None,
    }
    Some((name.to_string(), parts))
}

/// A word that can only name a command: unquoted, unexpanded, no glob or `=`.
fn plain(word: &Word) -> Option<String> {
    if word.quoted {
        return None;
    }
    let text = word.literal()?;
    let ok = !text.is_empty()
        && !text.starts_with('-')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./+-:[".contains(c));
    ok.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(source: &str) -> Vec<String> {
        scan(source).commands.into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn first_words_of_simple_commands_and_substitutions() {
        let source = r#"
stty status '^T' 2> /dev/null
_localbase=`/sbin/sysctl -n user.localbase 2> /dev/null`
if [ -f /etc/diskless ] && ! checkyesno x; then
	sh /etc/rc.initdiskless | tee -a log
elif true; then :; else
	tmp="$(mktemp -d /tmp/x.XXXX)"; rm -rf "$tmp"
fi
while read line; do echo "$line" | sed -e 's/a/b/'; done < /etc/ttys
FOO=bar env -i ls
exec /sbin/init
( cd / && pwd ) &
"#;
        assert_eq!(
            commands(source),
            [
                "stty",
                "/sbin/sysctl",
                "[",
                "checkyesno",
                "sh",
                "tee",
                "true",
                ":",
                "mktemp",
                "rm",
                "read",
                "echo",
                "sed",
                "env",
                "exec",
                "/sbin/init",
                "cd",
                "pwd"
            ]
        );
    }

    #[test]
    fn case_patterns_for_lists_and_quoted_words_are_not_commands() {
        let source = r#"
case "$1" in
[Yy][Ee][Ss]|start) startcmd ;;
stop)
	stopcmd
	;;
*) case $x in a) inner ;; esac; other ;;
esac
for f in alpha beta; do body $f; done
for g
do
	loop
done
"quoted" arg; $var arg; ${cmd} arg; echo done fi esac
"#;
        assert_eq!(
            commands(source),
            ["startcmd", "stopcmd", "inner", "other", "body", "loop", "echo"]
        );
    }

    #[test]
    fn commands_know_their_function_and_whether_they_may_not_run() {
        let source = r#"
f() {
	always
	if x; then sometimes; fi
	[ -n "$y" ] && { maybe; }
}
if have g; then g() { inner; }; fi
top $(sub)
a || b
"#;
        let found: Vec<(String, bool, Option<String>)> = scan(source)
            .commands
            .into_iter()
            .map(|c| (c.name, c.conditional, c.function))
            .collect();
        let f = || Some("f".to_string());
        assert_eq!(
            found,
            [
                ("always".into(), false, f()),
                ("x".into(), true, f()),
                ("sometimes".into(), true, f()),
                ("[".into(), false, f()),
                ("maybe".into(), true, f()),
                ("have".into(), true, None),
                ("inner".into(), false, Some("g".to_string())),
                ("top".into(), false, None),
                ("sub".into(), false, None),
                ("a".into(), false, None),
                ("b".into(), true, None),
            ]
        );
    }

    #[test]
    fn functions_assignments_sources_and_tests() {
        let source = r#"
. /etc/rc.subr
name="devd"
rcvar="${name}_enable"
command="/sbin/${name}"
devd_prestart()
{
	local x=1
	inner=2
	[ -x /usr/sbin/maybe ] && /usr/sbin/maybe
	if command -v optional >/dev/null; then optional; fi
}
function other { :; }
: ${devd_enable:="NO"}
load_rc_config $name
run_rc_command "$1"
"#;
        let scan = scan(source);
        assert_eq!(
            scan.functions.iter().collect::<Vec<_>>(),
            ["devd_prestart", "other"]
        );
        assert_eq!(scan.sourced, ["/etc/rc.subr"]);
        assert_eq!(
            scan.tested.iter().collect::<Vec<_>>(),
            ["/usr/sbin/maybe", "optional"]
        );
        assert_eq!(
            scan.top_value("command"),
            Some(&[Part::Lit("/sbin/".into()), Part::Var("name".into())][..])
        );
        let inner = scan.assignments.iter().find(|a| a.name == "inner").unwrap();
        assert!(!inner.top);
        let default = scan
            .assignments
            .iter()
            .find(|a| a.name == "devd_enable")
            .unwrap();
        assert!(default.top && default.default);
        assert!(scan.runs("load_rc_config"));
        assert!(!scan.runs("devd_prestart"));
    }
}
