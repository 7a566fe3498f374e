//! `%s` / `%(name)s` placeholders → PostgreSQL `$n`, following psycopg's `%%` rules.
//!
//! One lexer pass also records what the executor needs to know about the statement:
//! whether it holds several statements and what its leading keywords are.

use std::fmt;

/// A piece of the rewritten query: literal text, or a reference to a parameter slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// Positional: the n-th `%s` (0-based). Named: the index into `Template::names`.
    Slot(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// No placeholder was found.
    NoPlaceholders,
    Positional(usize),
    /// Unique names in order of first appearance.
    Named(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
    pub style: Style,
    pub shape: Shape,
}

/// Facts about the statement that do not depend on the parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// More than one statement separated by a top-level `;`.
    pub multi_statement: bool,
    /// Up to three leading keywords, upper-cased (`["SET", "LOCAL", "X"]`).
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceholderError {
    /// `%` followed by something that is not a placeholder, at this byte offset.
    Stray { offset: usize, found: String },
    /// `%(name` without the closing `)s`.
    UnclosedName { offset: usize },
    /// Both `%s` and `%(name)s` in one query.
    Mixed,
}

impl fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceholderError::Stray { offset, found } => write!(
                f,
                "only '%s', '%b', '%t' and '%(name)s' are allowed as placeholders, got '{found}' at \
                 position {offset}; write '%%' for a literal '%'"
            ),
            PlaceholderError::UnclosedName { offset } => {
                write!(f, "incomplete placeholder '%(' at position {offset}")
            }
            PlaceholderError::Mixed => {
                write!(f, "positional and named placeholders cannot be mixed in one query")
            }
        }
    }
}

impl std::error::Error for PlaceholderError {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Code,
    SingleQuote { escapes: bool },
    DoubleQuote,
    LineComment,
    BlockComment(u32),
    Dollar,
}

/// Scans `query`. With `with_params` false the text is kept verbatim (no `%` processing),
/// which is what `execute(sql)` without parameters means.
pub fn scan(query: &str, with_params: bool) -> Result<Template, PlaceholderError> {
    scan_impl(query, with_params, false)
}

/// `scan` as psycopg reads placeholders: everywhere, inside quotes, comments and dollar
/// quotes too (`DO $$ BEGIN PERFORM %s; END $$`). What stock renders when the number of
/// values only matches this reading (`bind`).
pub fn scan_everywhere(query: &str) -> Result<Template, PlaceholderError> {
    scan_impl(query, true, true)
}

fn scan_impl(query: &str, with_params: bool, everywhere: bool) -> Result<Template, PlaceholderError> {
    let bytes = query.as_bytes();
    let mut parts: Vec<Part> = Vec::new();
    let mut text = String::with_capacity(query.len() + 16);
    let mut positional = 0usize;
    let mut names: Vec<String> = Vec::new();
    let mut saw_named = false;
    let mut ctx = Ctx::Code;
    let mut dollar_tag: &str = "";
    let mut shape = Shape::default();
    let mut after_semicolon = false;
    let mut word_start: Option<usize> = None;
    let mut i = 0usize;
    let mut literal_from = 0usize; // start of the not-yet-copied run of `query`

    macro_rules! flush_to {
        ($end:expr) => {
            text.push_str(&query[literal_from..$end]);
        };
    }

    // A `%` where placeholders are read: `%%`, `%s` / `%b` / `%t`, `%(name)s`, or an error.
    macro_rules! placeholder {
        () => {{
                    flush_to!(i);
                    match bytes.get(i + 1) {
                        Some(b'%') => {
                            text.push('%');
                            i += 2;
                        }
                        Some(b's') | Some(b'b') | Some(b't') => {
                            take_text(&mut parts, &mut text);
                            parts.push(Part::Slot(positional));
                            positional += 1;
                            i += 2;
                        }
                        Some(b'(') => {
                            let close = query[i + 2..].find(')').map(|p| p + i + 2);
                            let Some(close) = close else {
                                return Err(PlaceholderError::UnclosedName { offset: i });
                            };
                            if !matches!(bytes.get(close + 1), Some(b's') | Some(b'b') | Some(b't')) {
                                return Err(PlaceholderError::UnclosedName { offset: i });
                            }
                            saw_named = true;
                            let name = &query[i + 2..close];
                            let slot = match names.iter().position(|n| n == name) {
                                Some(p) => p,
                                None => {
                                    names.push(name.to_string());
                                    names.len() - 1
                                }
                            };
                            take_text(&mut parts, &mut text);
                            parts.push(Part::Slot(slot));
                            i = close + 2;
                        }
                        other => {
                            let found = match other {
                                Some(_) => {
                                    let ch = query[i + 1..].chars().next().unwrap_or(' ');
                                    format!("%{ch}")
                                }
                                None => "%".to_string(),
                            };
                            return Err(PlaceholderError::Stray { offset: i, found });
                        }
                    }
                    literal_from = i;
                    continue;
                        }};
    }

    while i < bytes.len() {
        let c = bytes[i];
        if everywhere && ctx != Ctx::Code && c == b'%' {
            placeholder!();
        }
        // Track leading keywords and statement separators at top level.
        if ctx == Ctx::Code {
            let is_word = c.is_ascii_alphanumeric() || c == b'_';
            if is_word {
                if word_start.is_none() {
                    word_start = Some(i);
                }
            } else if let Some(start) = word_start.take() {
                note_word(&mut shape, &query[start..i]);
            }
            if after_semicolon && !c.is_ascii_whitespace() && c != b';' && !starts_comment(bytes, i) {
                shape.multi_statement = true;
            }
            if c == b';' {
                after_semicolon = true;
            }
        }
        match ctx {
            Ctx::Code => match c {
                b'\'' => {
                    let escapes = i > 0
                        && (bytes[i - 1] == b'E' || bytes[i - 1] == b'e')
                        && (i < 2 || !is_ident_byte(bytes[i - 2]));
                    ctx = Ctx::SingleQuote { escapes };
                }
                b'"' => ctx = Ctx::DoubleQuote,
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    ctx = Ctx::LineComment;
                    i += 1;
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    ctx = Ctx::BlockComment(1);
                    i += 1;
                }
                b'$' if i == 0 || !is_ident_byte(bytes[i - 1]) => {
                    if let Some(tag_len) = dollar_tag_len(&bytes[i..]) {
                        dollar_tag = &query[i..i + tag_len];
                        ctx = Ctx::Dollar;
                        i += tag_len - 1;
                    }
                }
                b'%' if with_params => placeholder!(),
                _ => {}
            },
            Ctx::SingleQuote { escapes } => {
                // `\'` must not end the string; `\%%` is still `%%` (psycopg unescapes it
                // everywhere), so the byte after a backslash is skipped only if it is not `%`.
                if escapes && c == b'\\' && bytes.get(i + 1) != Some(&b'%') {
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    ctx = Ctx::Code;
                }
            }
            Ctx::DoubleQuote => {
                if c == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    ctx = Ctx::Code;
                }
            }
            Ctx::LineComment => {
                if c == b'\n' {
                    ctx = Ctx::Code;
                }
            }
            Ctx::BlockComment(depth) => {
                if c == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    ctx = if depth == 1 { Ctx::Code } else { Ctx::BlockComment(depth - 1) };
                    i += 2;
                    continue;
                }
                if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    ctx = Ctx::BlockComment(depth + 1);
                    i += 2;
                    continue;
                }
            }
            Ctx::Dollar => {
                if c == b'$' && query[i..].starts_with(dollar_tag) {
                    i += dollar_tag.len();
                    ctx = Ctx::Code;
                    continue;
                }
            }
        }
        // Inside quotes and comments only `%%` is unescaped; anything else stays verbatim.
        if with_params && ctx != Ctx::Code && c == b'%' && bytes.get(i + 1) == Some(&b'%') {
            flush_to!(i);
            text.push('%');
            i += 2;
            literal_from = i;
            continue;
        }
        i += 1;
    }
    if ctx == Ctx::Code {
        if let Some(start) = word_start {
            note_word(&mut shape, &query[start..]);
        }
    }
    flush_to!(bytes.len());
    take_text(&mut parts, &mut text);

    let style = match (positional, saw_named) {
        (0, false) => Style::NoPlaceholders,
        (n, false) => Style::Positional(n),
        (0, true) => Style::Named(names),
        _ => return Err(PlaceholderError::Mixed),
    };
    Ok(Template { parts, style, shape })
}

fn take_text(parts: &mut Vec<Part>, text: &mut String) {
    if !text.is_empty() {
        parts.push(Part::Text(std::mem::take(text)));
    }
}

fn note_word(shape: &mut Shape, word: &str) {
    if shape.keywords.len() < 3 && !shape.multi_statement {
        shape.keywords.push(word.to_ascii_uppercase());
    }
}

fn starts_comment(bytes: &[u8], i: usize) -> bool {
    matches!((bytes[i], bytes.get(i + 1)), (b'-', Some(b'-')) | (b'/', Some(b'*')))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Length of a `$tag$` opener at the start of `s`, if it is one (`$1` is a parameter).
fn dollar_tag_len(s: &[u8]) -> Option<usize> {
    debug_assert_eq!(s[0], b'$');
    let mut j = 1;
    while j < s.len() {
        let b = s[j];
        if b == b'$' {
            return Some(j + 1);
        }
        let ok = if j == 1 { b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 } else { is_ident_byte(b) && b != b'$' };
        if !ok {
            return None;
        }
        j += 1;
    }
    None
}

impl Template {
    /// Renders the query with `$n` for each slot, using `numbers[slot]` (1-based).
    pub fn render(&self, numbers: &[usize]) -> String {
        let mut out = String::with_capacity(self.parts.iter().map(|p| match p {
            Part::Text(t) => t.len(),
            Part::Slot(_) => 4,
        }).sum());
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Slot(s) => {
                    out.push('$');
                    out.push_str(itoa::Buffer::new().format(numbers[*s]));
                }
            }
        }
        out
    }

    /// Renders the query with each slot replaced by the given text (client-side literals).
    pub fn render_with(&self, literals: &[String]) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Slot(s) => out.push_str(&literals[*s]),
            }
        }
        out
    }

    pub fn slot_count(&self) -> usize {
        match &self.style {
            Style::NoPlaceholders => 0,
            Style::Positional(n) => *n,
            Style::Named(names) => names.len(),
        }
    }

    /// The query text itself when there are no slots.
    pub fn plain_text(&self) -> String {
        self.render(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(q: &str) -> String {
        let t = scan(q, true).unwrap();
        let n = t.slot_count();
        t.render(&(1..=n).collect::<Vec<_>>())
    }

    #[test]
    fn positional_and_percent_escapes() {
        assert_eq!(rewrite("SELECT %s, %s"), "SELECT $1, $2");
        assert_eq!(rewrite("SELECT 5 %% 2, %s"), "SELECT 5 % 2, $1");
        assert_eq!(rewrite("SELECT %b, %t"), "SELECT $1, $2");
    }

    #[test]
    fn without_params_text_is_verbatim() {
        let t = scan("SELECT '%%', 5 % 2", false).unwrap();
        assert_eq!(t.style, Style::NoPlaceholders);
        assert_eq!(t.plain_text(), "SELECT '%%', 5 % 2");
    }

    #[test]
    fn named_reuses_numbers() {
        let t = scan("SELECT %(a)s, %(b)s, %(a)s", true).unwrap();
        assert_eq!(t.style, Style::Named(vec!["a".into(), "b".into()]));
        assert_eq!(t.render(&[1, 2]), "SELECT $1, $2, $1");
    }

    #[test]
    fn jsonb_and_hstore_operators_are_left_alone() {
        assert_eq!(rewrite("SELECT data ? %s, data ?| %s, data ?& %s"), "SELECT data ? $1, data ?| $2, data ?& $3");
    }

    #[test]
    fn literals_keep_percent_s_but_unescape_double_percent() {
        assert_eq!(rewrite("SELECT '%s', %s"), "SELECT '%s', $1");
        assert_eq!(rewrite("SELECT x LIKE '%%' || %s || '%%'"), "SELECT x LIKE '%' || $1 || '%'");
        assert_eq!(rewrite("SELECT 'it''s %s', %s"), "SELECT 'it''s %s', $1");
    }

    #[test]
    fn escape_strings() {
        assert_eq!(rewrite(r"SELECT E'\'%s', %s"), r"SELECT E'\'%s', $1");
        assert_eq!(rewrite(r"SELECT REPLACE(x, E'\\', E'\\\\'), E'%%', %s"), r"SELECT REPLACE(x, E'\\', E'\\\\'), E'%', $1");
        // Found by tests/fuzz (placeholders): a backslash before `%%` swallowed the first `%`.
        assert_eq!(rewrite(r"SELECT E'a\%%', %s"), r"SELECT E'a\%', $1");
        assert_eq!(rewrite(r"SELECT E'\%%%%\'%%', %s"), r"SELECT E'\%%\'%', $1");
        // A plain string ending in a backslash does not escape its quote.
        assert_eq!(rewrite(r"SELECT 'a\', %s"), r"SELECT 'a\', $1");
    }

    #[test]
    fn quoted_identifiers() {
        assert_eq!(rewrite(r#"SELECT "col%s""x", %s"#), r#"SELECT "col%s""x", $1"#);
    }

    #[test]
    fn dollar_bodies() {
        assert_eq!(
            rewrite("CREATE FUNCTION f() RETURNS text AS $$ SELECT '%s' $$ LANGUAGE sql; SELECT %s"),
            "CREATE FUNCTION f() RETURNS text AS $$ SELECT '%s' $$ LANGUAGE sql; SELECT $1"
        );
        assert_eq!(rewrite("SELECT $tag$ it's %s $tag$, %s"), "SELECT $tag$ it's %s $tag$, $1");
        assert_eq!(rewrite("SELECT $1, %s"), "SELECT $1, $1");
    }

    #[test]
    fn comments() {
        assert_eq!(rewrite("SELECT %s -- it's %s\n, %s"), "SELECT $1 -- it's %s\n, $2");
        assert_eq!(rewrite("SELECT /* it's /* nested */ %s */ %s"), "SELECT /* it's /* nested */ %s */ $1");
    }

    #[test]
    fn errors() {
        assert!(matches!(scan("SELECT 5 % 2", true), Err(PlaceholderError::Stray { .. })));
        assert!(matches!(scan("SELECT %", true), Err(PlaceholderError::Stray { .. })));
        assert!(matches!(scan("SELECT %(a", true), Err(PlaceholderError::UnclosedName { .. })));
        assert!(matches!(scan("SELECT %(a)s, %s", true), Err(PlaceholderError::Mixed)));
    }

    #[test]
    fn shape() {
        let t = scan("  set local statement_timeout = 5", false).unwrap();
        assert_eq!(t.shape.keywords, vec!["SET", "LOCAL", "STATEMENT_TIMEOUT"]);
        assert!(!t.shape.multi_statement);
        assert!(scan("SELECT 1; SELECT 2", false).unwrap().shape.multi_statement);
        assert!(!scan("SELECT 1;  -- trailing\n", false).unwrap().shape.multi_statement);
        assert!(!scan("SELECT ';x'", false).unwrap().shape.multi_statement);
        assert!(!scan("SELECT 1;", false).unwrap().shape.multi_statement);
    }
}
