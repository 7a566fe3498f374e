//! `scan` and the Template renderers never panic on any query, and rendering keeps every
//! byte of the query that is not a placeholder (after `%%` → `%`).
#![no_main]
use _native::sql::placeholders::{scan, Part, Style};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let Ok(query) = std::str::from_utf8(rest) else { return };
    let with_params = flags & 1 == 1;
    let Ok(t) = scan(query, with_params) else { return };

    let n = t.slot_count();
    for part in &t.parts {
        if let Part::Slot(s) = part {
            assert!(*s < n, "slot {s} out of {n} in {query:?}");
        }
    }
    let numbers: Vec<usize> = (1..=n).collect();
    let rendered = t.render(&numbers);
    let literals: Vec<String> = (0..n).map(|i| format!("<{i}>")).collect();
    let _ = t.render_with(&literals);

    if !with_params {
        assert_eq!(t.style, Style::NoPlaceholders);
        assert_eq!(rendered, query, "verbatim scan changed the text");
        assert_eq!(t.plain_text(), query);
        return;
    }
    // Walk the query alongside the parts: text must come from the query with `%%` read as
    // `%` (a lone `%` stays verbatim inside quotes and comments); a slot from a placeholder.
    let names: &[String] = match &t.style {
        Style::Named(names) => names,
        _ => &[],
    };
    let q = query.as_bytes();
    let mut at = 0usize;
    for part in &t.parts {
        match part {
            Part::Text(text) => {
                for &b in text.as_bytes() {
                    if b == b'%' && q[at..].starts_with(b"%%") {
                        at += 2;
                    } else {
                        assert_eq!(q.get(at), Some(&b), "text differs at byte {at} of {query:?}");
                        at += 1;
                    }
                }
            }
            Part::Slot(s) => {
                assert_eq!(q.get(at), Some(&b'%'), "slot not at a '%' (byte {at} of {query:?})");
                let kind = if let Style::Named(_) = t.style {
                    let name = &names[*s];
                    let head = format!("%({name})");
                    assert!(q[at..].starts_with(head.as_bytes()), "named slot mismatch at {at} of {query:?}");
                    at += head.len();
                    q.get(at)
                } else {
                    at += 1;
                    q.get(at)
                };
                assert!(matches!(kind, Some(b's' | b'b' | b't')), "bad placeholder at {at} of {query:?}");
                at += 1;
            }
        }
    }
    assert_eq!(at, q.len(), "rendered text lost the tail of {query:?}");
});
