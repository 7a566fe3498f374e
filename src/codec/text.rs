//! Types whose binary form must be rendered as PostgreSQL's text form for Python (str).
use super::read::Reader;
use super::{err, CodecError};

/// BIT / VARBIT: bit count followed by packed bits → `"0101"`.
pub fn bits_to_text(raw: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(raw);
    let n = r.i32()?;
    if n < 0 {
        return err("invalid bit string length");
    }
    let data = r.rest();
    if data.len() * 8 < n as usize {
        return err("bit string truncated");
    }
    Ok((0..n as usize).map(|i| if data[i / 8] & (0x80 >> (i % 8)) != 0 { '1' } else { '0' }).collect())
}

/// MONEY: cents as int8 → `$1,234.56` (the C locale's format).
pub fn money_to_text(raw: &[u8]) -> Result<String, CodecError> {
    let cents = Reader::new(raw).i64()?;
    let neg = cents < 0;
    let abs = (cents as i128).unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    Ok(format!("{}${}.{:02}", if neg { "-" } else { "" }, grouped, abs % 100))
}

/// TSVECTOR: lexemes with positions → `'a':1A 'b'`.
pub fn tsvector_to_text(raw: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(raw);
    let count = r.i32()?;
    let mut out = String::new();
    for i in 0..count {
        let rest = r.rest();
        let Some(nul) = rest.iter().position(|&b| b == 0) else {
            return err("tsvector lexeme not terminated");
        };
        let lexeme = std::str::from_utf8(&rest[..nul]).map_err(|_| CodecError("tsvector lexeme is not UTF-8".into()))?;
        r.take(nul + 1)?;
        if i > 0 {
            out.push(' ');
        }
        out.push('\'');
        for ch in lexeme.chars() {
            if ch == '\'' || ch == '\\' {
                out.push(ch);
            }
            out.push(ch);
        }
        out.push('\'');
        let npos = r.u16()?;
        for p in 0..npos {
            let wp = r.u16()?;
            out.push(if p == 0 { ':' } else { ',' });
            out.push_str(&(wp & 0x3FFF).to_string());
            match wp >> 14 {
                3 => out.push('A'),
                2 => out.push('B'),
                1 => out.push('C'),
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits() {
        assert_eq!(bits_to_text(&[0, 0, 0, 4, 0b0101_0000]).unwrap(), "0101");
        assert!(bits_to_text(&[0, 0, 0, 9, 0]).is_err());
    }

    #[test]
    fn money() {
        assert_eq!(money_to_text(&123456i64.to_be_bytes()).unwrap(), "$1,234.56");
        assert_eq!(money_to_text(&(-5i64).to_be_bytes()).unwrap(), "-$0.05");
    }

    #[test]
    fn tsvector() {
        let mut raw = 2i32.to_be_bytes().to_vec();
        raw.extend(b"a\0");
        raw.extend(1u16.to_be_bytes());
        raw.extend((1u16 | 0xC000).to_be_bytes());
        raw.extend(b"it's\0");
        raw.extend(0u16.to_be_bytes());
        assert_eq!(tsvector_to_text(&raw).unwrap(), "'a':1A 'it''s'");
    }
}
