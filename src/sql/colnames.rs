//! Column names of bare placeholders. Stock Django sends a value as psycopg's literal, and
//! PostgreSQL names an unaliased select-list item by it: `SELECT '2020-01-02'::date` is a
//! column `date` (the cast's type name), `SELECT 'x'`, `SELECT 1.5`, `SELECT NULL` are
//! `?column?`. Bound as `$1` every such column is `?column?`. `bare_items` finds the slots
//! that are a whole select-list (or RETURNING) item without an alias, possibly in
//! parentheses, at any depth (a subquery's names show through `*`); the binder gives those
//! the name the literal would have, as an alias.

use super::placeholders::Part;

/// Where a bare item's alias goes: the slot (its index into `parts`, a `Part::Slot`), and
/// the part and byte offset just after the item (after its wrapping parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BareItem {
    pub slot_part: usize,
    pub part: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Comma,
    Semicolon,
    Slot(usize),
    /// A string, a quoted name, an operator or any other character.
    Other,
}

/// Clause keywords that end a select list (or start another clause) at their depth.
const CLAUSES: &[&str] = &[
    "from", "where", "group", "having", "window", "order", "limit", "offset", "fetch", "for", "union",
    "intersect", "except", "into", "values", "set", "on", "using", "join", "with", "update", "insert",
    "delete", "table", "merge", "returning", "select", "do", "default", "conflict",
];

/// The tokens of `parts` outside strings, quoted names and comments, each with where it
/// ends (part index, byte offset in that part).
fn tokens(parts: &[Part]) -> Vec<(Tok, usize, usize)> {
    let mut out: Vec<(Tok, usize, usize)> = Vec::new();
    // A string/quoted name/comment that a slot cannot be inside: carried across parts
    // only for robustness.
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Code,
        /// A string (`'`, with backslash escapes after `E`) or a quoted name (`"`).
        Quoted { close: u8, escapes: bool },
        Line,
        Block(u32),
    }
    let mut state = In::Code;
    let mut dollar: Option<String> = None;
    for (pi, part) in parts.iter().enumerate() {
        let text = match part {
            Part::Slot(_) => {
                out.push((Tok::Slot(pi), pi, 0));
                continue;
            }
            Part::Text(t) => t,
        };
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(tag) = &dollar {
                if bytes[i..].starts_with(tag.as_bytes()) {
                    i += tag.len();
                    dollar = None;
                } else {
                    i += 1;
                }
                continue;
            }
            match state {
                In::Quoted { close, escapes } => {
                    if escapes && c == b'\\' {
                        i += 2;
                        continue;
                    }
                    if c == close {
                        if bytes.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        state = In::Code;
                        out.push((Tok::Other, pi, i + 1));
                    }
                    i += 1;
                    continue;
                }
                In::Line => {
                    if c == b'\n' {
                        state = In::Code;
                    }
                    i += 1;
                    continue;
                }
                In::Block(depth) => {
                    if bytes[i..].starts_with(b"*/") {
                        state = if depth == 1 { In::Code } else { In::Block(depth - 1) };
                        i += 2;
                    } else if bytes[i..].starts_with(b"/*") {
                        state = In::Block(depth + 1);
                        i += 2;
                    } else {
                        i += 1;
                    }
                    continue;
                }
                In::Code => {}
            }
            match c {
                b'\'' => {
                    // E'...' takes backslash escapes: the word just before is `E`, adjacent.
                    let escapes = matches!(out.last(), Some((Tok::Word(w), p, end)) if *p == pi && *end == i && w == "e");
                    if escapes {
                        out.pop();
                    }
                    state = In::Quoted { close: b'\'', escapes };
                    i += 1;
                }
                b'"' => {
                    state = In::Quoted { close: b'"', escapes: false };
                    i += 1;
                }
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    state = In::Line;
                    i += 2;
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    state = In::Block(1);
                    i += 2;
                }
                b'$' => {
                    // $tag$ ... $tag$ (not $1: no dollar quote starts with a digit).
                    let rest = &text[i + 1..];
                    let tag_len = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
                    if rest.as_bytes().get(tag_len) == Some(&b'$') && !rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                        let tag = &text[i..i + tag_len + 2];
                        dollar = Some(tag.to_string());
                        i += tag.len();
                    } else {
                        out.push((Tok::Other, pi, i + 1));
                        i += 1;
                    }
                }
                b'(' => {
                    out.push((Tok::Open, pi, i + 1));
                    i += 1;
                }
                b')' => {
                    out.push((Tok::Close, pi, i + 1));
                    i += 1;
                }
                b',' => {
                    out.push((Tok::Comma, pi, i + 1));
                    i += 1;
                }
                b';' => {
                    out.push((Tok::Semicolon, pi, i + 1));
                    i += 1;
                }
                c if c.is_ascii_whitespace() => i += 1,
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$' || bytes[i] >= 0x80) {
                        i += 1;
                    }
                    out.push((Tok::Word(text[start..i].to_ascii_lowercase()), pi, i));
                }
                _ => {
                    out.push((Tok::Other, pi, i + 1));
                    i += 1;
                }
            }
        }
    }
    out
}

fn word<'a>(t: Option<&'a (Tok, usize, usize)>) -> Option<&'a str> {
    match t {
        Some((Tok::Word(w), _, _)) => Some(w.as_str()),
        _ => None,
    }
}

/// Whether the list item starting after `toks[..=at]` is in a select list: walking back at
/// the same depth (over parenthesized groups), the first clause keyword is SELECT (with its
/// DISTINCT [ON (...)] / ALL) or RETURNING.
fn in_select_list(toks: &[(Tok, usize, usize)], at: usize) -> bool {
    let mut k = at as isize;
    let mut depth = 0i32;
    while k >= 0 {
        match &toks[k as usize].0 {
            Tok::Close => depth += 1,
            Tok::Open => {
                if depth == 0 {
                    return false; // the enclosing group's start: a row, a call, a list
                }
                depth -= 1;
            }
            Tok::Semicolon if depth == 0 => return false,
            Tok::Word(w) if depth == 0 => {
                if w == "select" || w == "returning" {
                    return true;
                }
                if w == "on" && word(toks.get((k - 1).max(0) as usize)) == Some("distinct") && k > 0 {
                    k -= 1;
                    continue;
                }
                if CLAUSES.contains(&w.as_str()) {
                    return false;
                }
            }
            _ => {}
        }
        k -= 1;
    }
    false
}

/// Whether the token before an item (index `prev`) starts a select-list item.
fn starts_item(toks: &[(Tok, usize, usize)], prev: usize) -> bool {
    match &toks[prev].0 {
        Tok::Comma => in_select_list(toks, prev),
        Tok::Word(w) if w == "select" || w == "returning" => true,
        Tok::Word(w) if w == "distinct" || w == "all" => prev > 0 && word(toks.get(prev - 1)) == Some("select"),
        Tok::Close => {
            // DISTINCT ON (...) just closed?
            let mut depth = 0i32;
            let mut k = prev as isize;
            while k >= 0 {
                match toks[k as usize].0 {
                    Tok::Close => depth += 1,
                    Tok::Open => {
                        depth -= 1;
                        if depth == 0 {
                            let k = k as usize;
                            return k >= 3
                                && word(toks.get(k - 1)) == Some("on")
                                && word(toks.get(k - 2)) == Some("distinct")
                                && word(toks.get(k - 3)) == Some("select");
                        }
                    }
                    _ => {}
                }
                k -= 1;
            }
            false
        }
        _ => false,
    }
}

/// Whether the token after an item (index `next`, None at the end) ends it without an alias.
fn ends_item(toks: &[(Tok, usize, usize)], next: Option<usize>) -> bool {
    let Some(next) = next else { return true };
    match &toks[next].0 {
        Tok::Comma | Tok::Close | Tok::Semicolon => true,
        Tok::Word(w) => CLAUSES.contains(&w.as_str()) && w != "select",
        _ => false,
    }
}

/// The slots that are a whole select-list or RETURNING item without an alias.
pub fn bare_items(parts: &[Part]) -> Vec<BareItem> {
    if !parts.iter().any(|p| matches!(p, Part::Text(t) if t.as_bytes().windows(6).any(|w| w.eq_ignore_ascii_case(b"select") || w.eq_ignore_ascii_case(b"return")))) {
        return Vec::new();
    }
    let toks = tokens(parts);
    let mut out = Vec::new();
    for (i, (tok, _, _)) in toks.iter().enumerate() {
        let Tok::Slot(slot_part) = *tok else { continue };
        // Out through parentheses that hold only this item: `(%s)`, `((%s))`.
        let (mut l, mut r) = (i, i);
        while l > 0 && toks[l - 1].0 == Tok::Open && toks.get(r + 1).is_some_and(|t| t.0 == Tok::Close) {
            l -= 1;
            r += 1;
        }
        if l == 0 || !starts_item(&toks, l - 1) || !ends_item(&toks, (r + 1 < toks.len()).then_some(r + 1)) {
            continue;
        }
        let (part, offset) = if r == i { (slot_part + 1, 0) } else { (toks[r].1, toks[r].2) };
        out.push(BareItem { slot_part, part, offset });
    }
    out
}

/// The statement with `$n` for each slot (as `Template::render`) and each alias text
/// inserted where its item ends.
pub fn render_aliased(parts: &[Part], numbers: &[usize], aliases: &[(BareItem, String)]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| if let Part::Text(t) = p { t.len() } else { 4 }).sum::<usize>() + 16 * aliases.len());
    let at = |pi: usize| aliases.iter().filter(move |(b, _)| b.part == pi);
    for (pi, part) in parts.iter().enumerate() {
        match part {
            Part::Text(t) => {
                let mut from = 0;
                let mut here: Vec<_> = at(pi).collect();
                here.sort_by_key(|(b, _)| b.offset);
                for (b, alias) in here {
                    out.push_str(&t[from..b.offset]);
                    out.push_str(alias);
                    from = b.offset;
                }
                out.push_str(&t[from..]);
            }
            Part::Slot(s) => {
                out.push('$');
                out.push_str(itoa::Buffer::new().format(numbers[*s]));
            }
        }
    }
    for (_, alias) in at(parts.len()) {
        out.push_str(alias);
    }
    out
}

/// The name PostgreSQL gives an unaliased item that is this literal (psycopg's rendering):
/// a cast's type name (`'...'::date` → `date`, `'{1}'::int2[]` → `int2`, a qualified or
/// quoted name's last part); None for `?column?` (a plain string, number, `true`, `NULL`).
pub fn literal_column_name(literal: &str) -> Option<String> {
    let literal = literal.trim();
    if !literal.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ']' || c == '"') {
        return None;
    }
    let at = literal.rfind("'::")?;
    let mut ty = &literal[at + 3..];
    while let Some(t) = ty.strip_suffix("[]") {
        ty = t;
    }
    let last = ty.rsplit('.').next()?;
    let name = match last.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None if last.contains(['\'', ' ', '(', '"']) => return None,
        None => last.to_ascii_lowercase(),
    };
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::placeholders::scan;

    fn bare(sql: &str) -> Vec<String> {
        let t = scan(sql, true).unwrap();
        bare_items(&t.parts)
            .iter()
            .map(|b| {
                let mut s = String::new();
                for (i, p) in t.parts.iter().enumerate() {
                    match p {
                        Part::Text(x) if i == b.part => {
                            s.push_str(&x[..b.offset]);
                            s.push_str("<A>");
                            s.push_str(&x[b.offset..]);
                        }
                        Part::Text(x) => s.push_str(x.as_str()),
                        Part::Slot(_) => s.push_str("%s"),
                    }
                }
                if b.part >= t.parts.len() {
                    s.push_str("<A>");
                }
                s
            })
            .collect()
    }

    #[test]
    fn bare_select_items() {
        assert_eq!(bare("SELECT %s"), ["SELECT %s<A>"]);
        assert_eq!(bare("SELECT (%s) FROM t"), ["SELECT (%s)<A> FROM t"]);
        assert_eq!(bare("select 1, %s, 2"), ["select 1, %s<A>, 2"]);
        assert_eq!(bare("SELECT * FROM (SELECT %s) s"), ["SELECT * FROM (SELECT %s<A>) s"]);
        assert_eq!(bare("SELECT DISTINCT ON (a) a, %s FROM t"), ["SELECT DISTINCT ON (a) a, %s<A> FROM t"]);
        assert_eq!(bare("SELECT DISTINCT ON (a) %s FROM t"), ["SELECT DISTINCT ON (a) %s<A> FROM t"]);
        assert_eq!(bare("INSERT INTO t VALUES (1) RETURNING id, %s"), ["INSERT INTO t VALUES (1) RETURNING id, %s<A>"]);
        assert_eq!(bare("SELECT CASE WHEN a THEN 1 END, %s -- c"), ["SELECT CASE WHEN a THEN 1 END, %s<A> -- c"]);
        for not_bare in [
            "SELECT %s AS x", "SELECT %s x", "SELECT %s \"x\"", "SELECT %s::date", "SELECT f(%s)", "SELECT f((%s))",
            "SELECT ((%s), 1)", "SELECT 1 WHERE a IN (%s, %s)", "SELECT a FROM t WHERE b = %s", "SELECT -%s",
            "SELECT CASE WHEN a THEN %s END", "SELECT a FROM t ORDER BY %s", "SELECT a FROM t GROUP BY a, %s",
            "INSERT INTO t VALUES (%s, %s)", "UPDATE t SET a = %s", "SELECT count(DISTINCT %s)", "SELECT ARRAY[%s]",
            "SELECT a FROM t LIMIT %s", "SELECT '%%s', $$ SELECT %%s $$ WHERE a = %s", "SELECT DISTINCT ON (%s) a FROM t",
        ] {
            assert!(bare(not_bare).is_empty(), "{not_bare}");
        }
    }

    #[test]
    fn names_of_literals() {
        assert_eq!(literal_column_name("'2020-01-02'::date").as_deref(), Some("date"));
        assert_eq!(literal_column_name("'{1,2}'::int2[]").as_deref(), Some("int2"));
        assert_eq!(literal_column_name("'NaN'::float8").as_deref(), Some("float8"));
        assert_eq!(literal_column_name("'a=>b'::public.hstore").as_deref(), Some("hstore"));
        assert_eq!(literal_column_name("'x'::\"My Type\"").as_deref(), Some("My Type"));
        for none in ["'x'", "1.5", " -7", "true", "NULL", "'{a}'", "E'a\\'::date'"] {
            assert_eq!(literal_column_name(none), None, "{none}");
        }
    }
}
