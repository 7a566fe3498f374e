//! JSON text checks for the native JSON → Python path (`crate::types::json`).

/// True when every integer literal outside strings has at most 18 digits, so it fits an
/// i64 exactly. Larger integers (PostgreSQL's numeric prints them in full) must become
/// Python ints of any size, which only Python's own `json.loads` does.
pub fn integers_fit_i64(text: &[u8]) -> bool {
    // Nearly every document has no run of 19 digits at all: that is checked 8 bytes at a
    // time, and only a document with one is scanned for where its digits stand.
    !has_digit_run_over_18(text) || literals_fit_i64(text)
}

/// Whether `text` holds more than 18 ASCII digits in a row, anywhere (strings included).
fn has_digit_run_over_18(text: &[u8]) -> bool {
    // Such a run covers at least one whole 8-byte chunk (19 >= 8 + 7): only the runs
    // through an all-digit chunk are measured.
    for (n, chunk) in text.chunks_exact(8).enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        if !all_ascii_digits(word) {
            continue;
        }
        let start = n * 8;
        let before = text[..start].iter().rev().take_while(|b| b.is_ascii_digit()).count();
        let from = text[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if before + from > 18 {
            return true;
        }
    }
    false
}

/// Whether all 8 bytes of `word` are b'0'..=b'9'.
fn all_ascii_digits(word: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Every byte 0x30..=0x3F, and none of them above 0x39 (adding 6 carries those into
    // 0x40..; no byte can carry into the next one).
    word & HIGH == ZEROS && word.wrapping_add(0x0606_0606_0606_0606) & HIGH == ZEROS
}

/// `integers_fit_i64`'s exact check: integer literals outside strings only.
fn literals_fit_i64(text: &[u8]) -> bool {
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

    #[test]
    fn every_position_of_a_long_run_is_found() {
        // A run of 19 digits at every offset against the 8-byte chunks, and of 18 (fits).
        for pad in 0..20 {
            let lead = " ".repeat(pad);
            let long = format!("{lead}[{}]", "9".repeat(19));
            assert!(!integers_fit_i64(long.as_bytes()), "{long}");
            let fits = format!("{lead}[{}]", "9".repeat(18));
            assert!(integers_fit_i64(fits.as_bytes()), "{fits}");
            let in_string = format!(r#"{lead}["{}"]"#, "9".repeat(40));
            assert!(integers_fit_i64(in_string.as_bytes()), "{in_string}");
        }
    }

    #[test]
    fn digit_chunks_are_told_from_their_neighbours() {
        use super::all_ascii_digits;
        assert!(all_ascii_digits(u64::from_le_bytes(*b"01234567")));
        assert!(all_ascii_digits(u64::from_le_bytes(*b"99999999")));
        for odd in [b'/', b':', b'?', b'@', b' ', 0xB0, 0x39 + 0x80] {
            for at in 0..8 {
                let mut bytes = *b"12345678";
                bytes[at] = odd;
                assert!(!all_ascii_digits(u64::from_le_bytes(bytes)), "{bytes:?}");
            }
        }
    }
}
