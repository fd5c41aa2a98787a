//! Splits `sh` source into words and operators, as far as finding commands needs: quotes
//! removed (and remembered), parameter expansions kept apart from literal text, command
//! substitutions kept as source to scan again, here-document bodies and comments dropped.
//! Anything it does not follow becomes opaque, never a command.

/// One token of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(Word),
    /// `;`, `&`, `|`, `&&`, `||`, `;;`, `;&`, `(`, `)` or a newline (`"\n"`).
    Op(&'static str),
    /// A redirection operator (`>`, `2>&1`'s `>&`, `<<`, ...); the next word is its target.
    Redirect,
}

/// A word, with what its quoting and expansions mean for a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Word {
    /// The word as written.
    pub raw: String,
    /// Its text after quote removal, literal runs and parameter expansions apart.
    pub parts: Vec<Part>,
    /// Whether any of it was quoted or escaped: such a word is never a reserved word, and
    /// never taken for a command name.
    pub quoted: bool,
    /// The source of each command substitution in it (`$(...)`, backquotes).
    pub substitutions: Vec<String>,
    /// Defaults it assigns (`${name:=value}`, `${name=value}`), as `(name, value)`.
    pub defaults: Vec<(String, Vec<Part>)>,
}

/// A piece of a word's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Text as it stands.
    Lit(String),
    /// `$name` or `${name}`.
    Var(String),
    /// Anything else: special parameters, `${name:-...}`, arithmetic, substitutions.
    Opaque,
}

/// A value that is plain text, without expansions.
pub(crate) fn literal(parts: &[Part]) -> Option<String> {
    let mut text = String::new();
    for part in parts {
        match part {
            Part::Lit(s) => text.push_str(s),
            _ => return None,
        }
    }
    Some(text)
}

impl Word {
    /// The word's value when it is plain text, without expansions.
    pub fn literal(&self) -> Option<String> {
        literal(&self.parts)
    }

    fn push_char(&mut self, c: char) {
        match self.parts.last_mut() {
            Some(Part::Lit(s)) => s.push(c),
            _ => self.parts.push(Part::Lit(c.to_string())),
        }
    }
}

/// Characters that end an unquoted word.
fn is_delimiter(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
    )
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A here-document whose body starts after the current line.
struct Pending {
    delimiter: String,
    strip_tabs: bool,
}

/// The tokens of `source`.
pub(crate) fn lex(source: &str) -> Vec<Token> {
    Lexer::new(source, 0).run()
}

/// How deep `${name:-${...}}` operands are read; deeper ones are opaque.
const MAX_BRACES: usize = 16;
/// How deep substitutions and quotes inside substitutions are followed; past that, the
/// rest of the source is opaque.
const MAX_NESTED: usize = 64;

struct Lexer {
    chars: Vec<char>,
    at: usize,
    tokens: Vec<Token>,
    heredocs: Vec<Pending>,
    /// How many `${...}` operands this one is inside.
    braces: usize,
    /// How many substitutions `balanced` is inside.
    nested: usize,
}

impl Lexer {
    fn new(source: &str, braces: usize) -> Lexer {
        Lexer {
            chars: source.chars().collect(),
            at: 0,
            tokens: Vec::new(),
            heredocs: Vec::new(),
            braces,
            nested: 0,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.peek(i) == Some(c))
    }

    fn run(mut self) -> Vec<Token> {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' | '\r' => self.at += 1,
                '\\' if self.peek(1) == Some('\n') => self.at += 2,
                '#' => self.skip_comment(),
                '\n' => {
                    self.at += 1;
                    self.tokens.push(Token::Op("\n"));
                    self.skip_heredoc_bodies();
                }
                ';' | '&' | '|' | '(' | ')' => self.operator(),
                '<' | '>' => self.redirect(),
                _ => self.word_token(),
            }
        }
        self.tokens
    }

    fn skip_comment(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.at += 1;
        }
    }

    fn operator(&mut self) {
        let ops = [";;", ";&", "&&", "||", ";", "&", "|", "(", ")"];
        let op = ops
            .into_iter()
            .find(|op| self.starts_with(op))
            .unwrap_or(";");
        self.at += op.len();
        self.tokens.push(Token::Op(op));
    }

    fn redirect(&mut self) {
        let ops = ["<<-", "<<", "<>", "<&", ">>", ">&", ">|", "<", ">"];
        let op = ops
            .into_iter()
            .find(|op| self.starts_with(op))
            .unwrap_or(">");
        self.at += op.len();
        self.tokens.push(Token::Redirect);
        if op.starts_with("<<") {
            while matches!(self.peek(0), Some(' ' | '\t')) {
                self.at += 1;
            }
            let word = self.word();
            // The delimiter is the word with its quotes removed.
            let delimiter: String = word
                .raw
                .chars()
                .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                .collect();
            self.heredocs.push(Pending {
                delimiter,
                strip_tabs: op == "<<-",
            });
            self.tokens.push(Token::Word(word));
        }
    }

    /// Drops the bodies of the here-documents opened on the line just ended.
    fn skip_heredoc_bodies(&mut self) {
        for heredoc in std::mem::take(&mut self.heredocs) {
            while self.at < self.chars.len() {
                let end = (self.at..self.chars.len())
                    .find(|&i| self.chars[i] == '\n')
                    .unwrap_or(self.chars.len());
                let line: String = self.chars[self.at..end].iter().collect();
                self.at = (end + 1).min(self.chars.len());
                let line = if heredoc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if line == heredoc.delimiter {
                    break;
                }
            }
        }
    }

    fn word_token(&mut self) {
        let start = self.at;
        let word = self.word();
        // An IO number (the 2 of `2>&1`) belongs to the redirection.
        let io_number = !word.raw.is_empty()
            && word.raw.chars().all(|c| c.is_ascii_digit())
            && matches!(self.peek(0), Some('<' | '>'));
        if self.at == start {
            // Nothing a word can start with: skip it rather than loop.
            self.at += 1;
        } else if !io_number {
            self.tokens.push(Token::Word(word));
        }
    }

    /// One word, up to an unquoted delimiter.
    fn word(&mut self) -> Word {
        let start = self.at;
        let mut word = Word::default();
        self.word_body(&mut word, true);
        word.raw = self.chars[start..self.at].iter().collect();
        word
    }

    /// A word's characters, up to an unquoted delimiter when `delimited` (otherwise to the
    /// end: the operand of `${name:-word}` may hold blanks).
    fn word_body(&mut self, word: &mut Word, delimited: bool) {
        while let Some(c) = self.peek(0) {
            if delimited && is_delimiter(c) {
                break;
            }
            self.at += 1;
            match c {
                '\'' => {
                    word.quoted = true;
                    let text = self.until_char('\'');
                    text.chars().for_each(|c| word.push_char(c));
                }
                '"' => {
                    word.quoted = true;
                    self.double_quoted(word);
                }
                '\\' => match self.peek(0) {
                    Some('\n') => self.at += 1,
                    Some(next) => {
                        word.quoted = true;
                        self.at += 1;
                        word.push_char(next);
                    }
                    None => {}
                },
                '$' => self.dollar(word),
                '`' => self.backquote(word),
                _ => word.push_char(c),
            }
        }
    }

    /// Text up to `end` (consumed), or to the end of the source.
    fn until_char(&mut self, end: char) -> String {
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            self.at += 1;
            if c == end {
                break;
            }
            text.push(c);
        }
        text
    }

    /// The inside of `"..."`, after the opening quote.
    fn double_quoted(&mut self, word: &mut Word) {
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match c {
                '"' => return,
                '\\' => match self.peek(0) {
                    Some(next @ ('$' | '`' | '"' | '\\')) => {
                        self.at += 1;
                        word.push_char(next);
                    }
                    Some('\n') => self.at += 1,
                    _ => word.push_char('\\'),
                },
                '$' => self.dollar(word),
                '`' => self.backquote(word),
                _ => word.push_char(c),
            }
        }
    }

    /// After a `$`: a parameter, `${...}`, `$(...)` or `$((...))`.
    fn dollar(&mut self, word: &mut Word) {
        match self.peek(0) {
            Some('(') if self.peek(1) == Some('(') => {
                self.at += 2;
                self.balanced('(', ')', 2);
                word.parts.push(Part::Opaque);
            }
            Some('(') => {
                self.at += 1;
                let inner = self.balanced('(', ')', 1);
                word.substitutions.push(inner);
                word.parts.push(Part::Opaque);
            }
            Some('{') => {
                self.at += 1;
                let inner = self.balanced('{', '}', 1);
                self.braced(&inner, word);
            }
            Some(c) if is_name_start(c) => {
                let mut name = String::new();
                while let Some(c) = self.peek(0).filter(|&c| is_name_char(c)) {
                    name.push(c);
                    self.at += 1;
                }
                word.parts.push(Part::Var(name));
            }
            Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => {
                self.at += 1;
                word.parts.push(Part::Opaque);
            }
            _ => word.push_char('$'),
        }
    }

    /// `${inner}`: a plain parameter, a default assignment, or something opaque whose
    /// words may still hold command substitutions.
    fn braced(&mut self, inner: &str, word: &mut Word) {
        let name: String = inner.chars().take_while(|&c| is_name_char(c)).collect();
        let rest = &inner[name.len()..];
        let valid = name.chars().next().is_some_and(is_name_start);
        if valid && rest.is_empty() {
            word.parts.push(Part::Var(name));
            return;
        }
        word.parts.push(Part::Opaque);
        let operand = ["=", ":=", "-", ":-", "+", ":+", "?", ":?"]
            .iter()
            .rev()
            .find_map(|op| rest.strip_prefix(op).map(|o| (*op, o)));
        let Some((op, operand)) = operand.filter(|_| self.braces < MAX_BRACES) else {
            return;
        };
        let mut inner_word = Lexer::new(operand, self.braces + 1);
        let mut value = Word::default();
        inner_word.word_body(&mut value, false);
        word.substitutions.append(&mut value.substitutions);
        if valid && (op == "=" || op == ":=") {
            word.defaults.push((name, value.parts));
        }
    }

    /// Backquoted command substitution, after the opening quote.
    fn backquote(&mut self, word: &mut Word) {
        let mut inner = String::new();
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match c {
                '`' => break,
                '\\' => match self.peek(0) {
                    Some(next @ ('$' | '`' | '\\')) => {
                        self.at += 1;
                        inner.push(next);
                    }
                    _ => inner.push('\\'),
                },
                _ => inner.push(c),
            }
        }
        word.substitutions.push(inner);
        word.parts.push(Part::Opaque);
    }

    /// Source up to the `close` that balances `depth` opened ones (consumed), minding
    /// quotes and escapes; to the end of the source when unbalanced.
    fn balanced(&mut self, open: char, close: char, depth: usize) -> String {
        if self.nested >= MAX_NESTED {
            self.at = self.chars.len();
            return String::new();
        }
        self.nested += 1;
        let inner = self.balanced_inner(open, close, depth);
        self.nested -= 1;
        inner
    }

    fn balanced_inner(&mut self, open: char, close: char, mut depth: usize) -> String {
        let start = self.at;
        let mut end = self.chars.len();
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match c {
                '\\' => self.at = (self.at + 1).min(self.chars.len()),
                '\'' => {
                    self.until_char('\'');
                }
                '"' => self.double_quoted(&mut Word::default()),
                '`' => self.backquote(&mut Word::default()),
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        end = self.at - 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        self.chars[start..end.max(start)].iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(source: &str) -> Vec<String> {
        lex(source)
            .into_iter()
            .map(|t| match t {
                Token::Word(w) => w.raw,
                Token::Op("\n") => "NL".to_string(),
                Token::Op(op) => op.to_string(),
                Token::Redirect => "REDIR".to_string(),
            })
            .collect()
    }

    #[test]
    fn operators_redirections_comments_and_continuations() {
        assert_eq!(
            words("a b;c&&d || e # x y\nf 2>&1 >/dev/null \\\n g|h"),
            [
                "a",
                "b",
                ";",
                "c",
                "&&",
                "d",
                "||",
                "e",
                "NL",
                "f",
                "REDIR",
                "1",
                "REDIR",
                "/dev/null",
                "g",
                "|",
                "h"
            ]
        );
    }

    #[test]
    fn here_document_bodies_are_dropped() {
        let source = "cat <<EOF >x\nrm -rf /\nEOF\nnext\ntr <<-'END'\n\tmktemp\n\tEND\nlast";
        assert_eq!(
            words(source),
            [
                "cat", "REDIR", "EOF", "REDIR", "x", "NL", "next", "NL", "tr", "REDIR", "'END'",
                "NL", "last"
            ]
        );
    }

    #[test]
    fn quotes_expansions_and_substitutions() {
        let tokens = lex(
            r#"x="a $b ${c}"'d' "$(mktemp -d "/tmp/x")" `hostname -s` ${d:-$(uname)} $((1+2))"#,
        );
        let Token::Word(x) = &tokens[0] else { panic!() };
        assert!(x.quoted);
        assert_eq!(
            x.parts,
            [
                Part::Lit("x=a ".into()),
                Part::Var("b".into()),
                Part::Lit(" ".into()),
                Part::Var("c".into()),
                Part::Lit("d".into())
            ]
        );
        let substitutions: Vec<String> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.substitutions.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            substitutions,
            ["mktemp -d \"/tmp/x\"", "hostname -s", "uname"]
        );
        let Token::Word(arith) = tokens.last().unwrap() else {
            panic!()
        };
        assert_eq!(arith.parts, [Part::Opaque]);
    }

    #[test]
    fn default_assignments_are_kept() {
        let tokens = lex(r#": ${foo_enable:="NO"} ${bar=/usr/sbin/bar}"#);
        let defaults: Vec<(String, Vec<Part>)> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.defaults.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            defaults,
            [
                ("foo_enable".to_string(), vec![Part::Lit("NO".into())]),
                ("bar".to_string(), vec![Part::Lit("/usr/sbin/bar".into())])
            ]
        );
    }

    #[test]
    fn deep_nesting_ends_without_exhausting_the_stack() {
        let depth = 20_000;
        let braces = "${a:-".repeat(depth) + &"}".repeat(depth);
        let substitutions = "$(".repeat(depth) + &")".repeat(depth);
        let quotes = "\"$(echo \"".repeat(depth);
        for source in [braces, substitutions, quotes] {
            let _ = lex(&source);
            let _ = crate::lint::shell::scan(&source);
        }
    }

    #[test]
    fn unterminated_input_ends_without_panics() {
        for source in [
            "'",
            "\"",
            "$(",
            "${",
            "`",
            "$((",
            "a <<",
            "a <<EOF\nbody",
            "\\",
            "$",
        ] {
            let _ = lex(source);
        }
    }
}
