//! Quoting rules for client-side SQL text: string literals and array elements.
//!
//! Used only for display (`mogrify`, `last_executed_query`), Django's `compose_sql`, and the
//! text form of array/range/hstore parameters. Execution never splices values into SQL.

/// A standard string literal; ` E'...'` when the value holds a backslash, as libpq's
/// `PQescapeLiteral` (and so psycopg) quotes it: the leading space keeps the `E` from
/// gluing onto a preceding identifier or keyword.
pub fn quote_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let has_backslash = value.contains('\\');
    if has_backslash {
        out.push_str(" E");
    }
    out.push('\'');
    for ch in value.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(ch),
        }
    }
    out.push('\'');
    out
}

/// The bytes PostgreSQL's array and range parsers skip around an unquoted element
/// (`scanner_isspace`, C `isspace`): Rust's `is_ascii_whitespace` lacks the vertical tab.
fn is_parser_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Appends one element of an array literal (`{a,"b c",NULL}`), quoting when needed.
pub fn push_array_element(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value.eq_ignore_ascii_case("NULL")
        || value.bytes().any(|b| matches!(b, b'{' | b'}' | b',' | b'"' | b'\\') || is_parser_space(b));
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

/// Appends one bound of a range literal (`[a,"b c")`), quoting when needed.
pub fn push_range_bound(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value.bytes().any(|b| matches!(b, b'(' | b')' | b'[' | b']' | b',' | b'"' | b'\\') || is_parser_space(b));
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

/// Appends `"key"=>"value"` pairs of an hstore literal.
pub fn push_hstore_item(out: &mut String, key: &str, value: Option<&str>) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    push_hstore_string(out, key);
    out.push_str("=>");
    match value {
        Some(v) => push_hstore_string(out, v),
        None => out.push_str("NULL"),
    }
}

fn push_hstore_string(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

/// `"name"` with embedded quotes doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(quote_string("abc"), "'abc'");
        assert_eq!(quote_string("it's"), "'it''s'");
        assert_eq!(quote_string("a\\b"), " E'a\\\\b'");
    }

    #[test]
    fn array_elements() {
        let mut s = String::new();
        for v in ["a", "b'c", "", "null", "x y", "q\"", "{"] {
            push_array_element(&mut s, v);
            s.push(',');
        }
        assert_eq!(s, "a,b'c,\"\",\"null\",\"x y\",\"q\\\"\",\"{\",");
    }

    #[test]
    fn elements_with_any_parser_space_are_quoted() {
        for space in ['\x0b', '\x0c', '\t', '\n', '\r', ' '] {
            let mut s = String::new();
            push_array_element(&mut s, &format!("{space}G"));
            assert_eq!(s, format!("\"{space}G\""));
            let mut r = String::new();
            push_range_bound(&mut r, &format!("G{space}"));
            assert_eq!(r, format!("\"G{space}\""));
        }
    }

    #[test]
    fn hstore() {
        let mut s = String::new();
        push_hstore_item(&mut s, "a", Some("1"));
        push_hstore_item(&mut s, "b\"", None);
        assert_eq!(s, "\"a\"=>\"1\", \"b\\\"\"=>NULL");
    }

    #[test]
    fn identifiers() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
