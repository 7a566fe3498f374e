//! JSON text checks for the native JSON → Python path (`crate::types::json`).

/// True when every integer literal outside strings has at most 18 digits, so it fits an
/// i64 exactly. Larger integers (PostgreSQL's numeric prints them in full) must become
/// Python ints of any size, which only Python's own `json.loads` does.
pub fn integers_fit_i64(text: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut digits = 0;
                let mut integer = true;
                while i < text.len() && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    match text[i] {
                        b'0'..=b'9' => digits += 1,
                        b'.' | b'e' | b'E' => integer = false,
                        _ => {}
                    }
                    i += 1;
                }
                debug_assert!(i > start);
                if integer && digits > 18 {
                    return false;
                }
            }
            _ => i += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::integers_fit_i64;

    #[test]
    fn big_integers_outside_strings_are_found() {
        assert!(integers_fit_i64(br#"{"a": 123456789012345678, "b": [1, -2, 3.5e300]}"#));
        assert!(!integers_fit_i64(br#"{"a": 1234567890123456789}"#));
        assert!(!integers_fit_i64(br#"[-99999999999999999999]"#));
        assert!(integers_fit_i64(br#"{"s": "12345678901234567890", "t": "\"99999999999999999999"}"#));
        assert!(integers_fit_i64(br#"1.23456789012345678901234"#));
    }
}
