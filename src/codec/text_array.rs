//! PostgreSQL's text output of an array (`array_out`): `{a,"b c",NULL}`, nested braces for
//! more dimensions, and a `[lb:ub]=` prefix when a lower bound is not 1. Read into the
//! dimensions and the elements' own texts, which the element's text decoder then reads.
//! Only arrays whose element delimiter is `,` (every type but box).

use super::CodecError;
use std::borrow::Cow;

/// PostgreSQL's MAXDIM.
const MAX_DIMS: usize = 6;

#[derive(Debug, PartialEq, Eq)]
pub struct TextArray<'a> {
    /// Length of each dimension, outermost first; empty for an empty array.
    pub dims: Vec<usize>,
    /// Elements in row-major order; `None` is NULL.
    pub items: Vec<Option<Cow<'a, [u8]>>>,
}

pub fn parse(text: &[u8]) -> Result<TextArray<'_>, CodecError> {
    let bad = |why: &str| CodecError(format!("unexpected array text from the server ({why}): {:?}", String::from_utf8_lossy(text)));
    let mut pos = 0;
    if text.first() == Some(&b'[') {
        // The bounds repeat what the braces say; Python lists have no lower bound.
        pos = text.iter().position(|&c| c == b'=').ok_or_else(|| bad("bounds without '='"))? + 1;
    }
    if text.get(pos) != Some(&b'{') {
        return Err(bad("no '{'"));
    }
    pos += 1;
    if text.get(pos) == Some(&b'}') {
        return if pos + 1 == text.len() { Ok(TextArray { dims: Vec::new(), items: Vec::new() }) } else { Err(bad("text after '}'")) };
    }
    let mut dims: [Option<usize>; MAX_DIMS] = [None; MAX_DIMS];
    // Entries seen so far in each open brace level.
    let mut counts: Vec<usize> = vec![0];
    let mut leaf_depth: Option<usize> = None;
    let mut items = Vec::new();
    loop {
        match text.get(pos).copied() {
            None => return Err(bad("unterminated")),
            Some(b'{') => {
                if counts.len() >= MAX_DIMS || leaf_depth.is_some_and(|d| counts.len() >= d) {
                    return Err(bad("nesting"));
                }
                counts.push(0);
                pos += 1;
            }
            Some(b'}') => {
                let depth = counts.len() - 1;
                let n = counts.pop().unwrap_or(0);
                match dims[depth] {
                    Some(expected) if expected != n => return Err(bad("ragged")),
                    Some(_) => {}
                    None => dims[depth] = Some(n),
                }
                pos += 1;
                match counts.last_mut() {
                    Some(parent) => *parent += 1,
                    None => break,
                }
                pos = after_entry(text, pos).ok_or_else(|| bad("separator"))?;
            }
            Some(_) => {
                let depth = counts.len();
                if *leaf_depth.get_or_insert(depth) != depth {
                    return Err(bad("nesting"));
                }
                let (item, end) = element(text, pos).ok_or_else(|| bad("element"))?;
                items.push(item);
                if let Some(count) = counts.last_mut() {
                    *count += 1;
                }
                pos = after_entry(text, end).ok_or_else(|| bad("separator"))?;
            }
        }
    }
    let ndim = leaf_depth.unwrap_or(0);
    let dims: Vec<usize> = dims.iter().map_while(|d| *d).collect();
    if pos != text.len() || dims.len() != ndim || dims.iter().product::<usize>() != items.len() {
        return Err(bad("shape"));
    }
    Ok(TextArray { dims, items })
}

/// Past the `,` after an entry, or at the `}` that closes its level.
fn after_entry(text: &[u8], pos: usize) -> Option<usize> {
    match text.get(pos)? {
        b',' if !matches!(text.get(pos + 1), Some(b'}') | None) => Some(pos + 1),
        b'}' => Some(pos),
        _ => None,
    }
}

/// One element starting at `pos`: quoted (with backslash escapes) or bare (`NULL` is NULL;
/// array_out quotes any element that is empty or holds a delimiter, brace, quote,
/// backslash or space). Returns it and the position after it.
fn element(text: &[u8], pos: usize) -> Option<(Option<Cow<'_, [u8]>>, usize)> {
    if text[pos] == b'"' {
        let start = pos + 1;
        let mut i = start;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            match *text.get(i)? {
                b'"' => {
                    let value = match owned {
                        Some(v) => Cow::Owned(v),
                        None => Cow::Borrowed(&text[start..i]),
                    };
                    return Some((Some(value), i + 1));
                }
                b'\\' => {
                    let buf = owned.get_or_insert_with(|| text[start..i].to_vec());
                    buf.push(*text.get(i + 1)?);
                    i += 2;
                }
                c => {
                    if let Some(buf) = owned.as_mut() {
                        buf.push(c);
                    }
                    i += 1;
                }
            }
        }
    }
    let end = pos + text[pos..].iter().position(|&c| matches!(c, b',' | b'}'))?;
    let raw = &text[pos..end];
    if raw.is_empty() || raw.iter().any(|&c| matches!(c, b'"' | b'\\' | b'{')) {
        return None;
    }
    Some((if raw == b"NULL" { None } else { Some(Cow::Borrowed(raw)) }, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> (Vec<usize>, Vec<Option<String>>) {
        let a = parse(text.as_bytes()).unwrap();
        (a.dims, a.items.into_iter().map(|i| i.map(|b| String::from_utf8(b.into_owned()).unwrap())).collect())
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn one_dimension() {
        assert_eq!(items("{}"), (vec![], vec![]));
        assert_eq!(items("{a}"), (vec![1], vec![s("a")]));
        assert_eq!(items("{a,NULL,\"NULL\",\"\"}"), (vec![4], vec![s("a"), None, s("NULL"), s("")]));
        assert_eq!(items(r#"{"a b","c,d","e\"f","g\\h","{x}"}"#), (vec![5], vec![s("a b"), s("c,d"), s("e\"f"), s("g\\h"), s("{x}")]));
        assert_eq!(items("{1,-2,3}"), (vec![3], vec![s("1"), s("-2"), s("3")]));
        assert_eq!(items("{é,日本}"), (vec![2], vec![s("é"), s("日本")]));
    }

    #[test]
    fn dimensions_and_bounds() {
        assert_eq!(items("{{1,2},{3,4},{5,6}}"), (vec![3, 2], vec![s("1"), s("2"), s("3"), s("4"), s("5"), s("6")]));
        assert_eq!(items("{{{1}},{{2}}}"), (vec![2, 1, 1], vec![s("1"), s("2")]));
        assert_eq!(items("[0:1]={a,b}"), (vec![2], vec![s("a"), s("b")]));
        assert_eq!(items("[2:3][1:1]={{a},{NULL}}"), (vec![2, 1], vec![s("a"), None]));
        assert_eq!(items(r#"{{"2024-01-01 00:00:00+00"}}"#), (vec![1, 1], vec![s("2024-01-01 00:00:00+00")]));
    }

    #[test]
    fn malformed_is_an_error() {
        for bad in ["", "a", "{", "{a", "{a,}", "{,a}", "{{1,2},{3}}", "{{1},2}", "{1,{2}}", "{a}x", "{\"a}", "{{}}", "[1:2]{a,b}", "{{{{{{{1}}}}}}}"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
    }
}
