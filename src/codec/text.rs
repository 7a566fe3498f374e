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

/// TSQUERY: operands and operators in prefix order → PostgreSQL's infix text, with the
/// parentheses its `infix()` (tsquery.c) writes: `'fat' & ( 'rat' | !'cat' )`.
pub fn tsquery_to_text(raw: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(raw);
    let count = r.i32()?;
    if count < 0 {
        return err("invalid tsquery size");
    }
    // Every item takes at least two bytes: a huge count in a short value must not allocate.
    let mut items = Vec::with_capacity((count as usize).min(r.rest().len() / 2));
    for _ in 0..count {
        items.push(match r.u8()? {
            1 => {
                let weight = r.u8()?;
                let prefix = r.u8()? != 0;
                let rest = r.rest();
                let Some(nul) = rest.iter().position(|&b| b == 0) else {
                    return err("tsquery operand not terminated");
                };
                let text = std::str::from_utf8(&rest[..nul]).map_err(|_| CodecError("tsquery operand is not UTF-8".into()))?;
                r.take(nul + 1)?;
                QueryItem::Operand { text, weight, prefix }
            }
            2 => {
                let oper = r.u8()?;
                let distance = if oper == TS_PHRASE { r.i16()? } else { 0 };
                if !(TS_NOT..=TS_PHRASE).contains(&oper) {
                    return err(format!("invalid tsquery operator {oper}"));
                }
                QueryItem::Operator { oper, distance }
            }
            t => return err(format!("invalid tsquery item type {t}")),
        });
    }
    let mut out = String::new();
    if !items.is_empty() {
        let mut pos = 0;
        tsquery_infix(&items, &mut pos, -1, false, &mut out)?;
        if pos != items.len() {
            return err("tsquery has trailing items");
        }
    }
    Ok(out)
}

enum QueryItem<'a> {
    Operand { text: &'a str, weight: u8, prefix: bool },
    Operator { oper: u8, distance: i16 },
}

const TS_NOT: u8 = 1;
const TS_AND: u8 = 2;
const TS_OR: u8 = 3;
const TS_PHRASE: u8 = 4;

fn ts_priority(oper: u8) -> i32 {
    match oper {
        TS_NOT => 4,
        TS_AND => 2,
        TS_OR => 1,
        _ => 3, // TS_PHRASE
    }
}

/// One item (and its operands) at `pos`: tsquery.c's infix(), which prints the right
/// operand first into its own buffer because it comes first in prefix order.
fn tsquery_infix(items: &[QueryItem<'_>], pos: &mut usize, parent: i32, right_phrase: bool, out: &mut String) -> Result<(), CodecError> {
    let Some(item) = items.get(*pos) else {
        return err("tsquery operator lacks an operand");
    };
    *pos += 1;
    match *item {
        QueryItem::Operand { text, weight, prefix } => {
            out.push('\'');
            for ch in text.chars() {
                if ch == '\'' || ch == '\\' {
                    out.push(ch);
                }
                out.push(ch);
            }
            out.push('\'');
            if weight != 0 || prefix {
                out.push(':');
                if prefix {
                    out.push('*');
                }
                for (bit, letter) in [(8, 'A'), (4, 'B'), (2, 'C'), (1, 'D')] {
                    if weight & bit != 0 {
                        out.push(letter);
                    }
                }
            }
        }
        QueryItem::Operator { oper: TS_NOT, .. } => {
            let priority = ts_priority(TS_NOT);
            if priority < parent {
                out.push_str("( ");
            }
            out.push('!');
            tsquery_infix(items, pos, priority, false, out)?;
            if priority < parent {
                out.push_str(" )");
            }
        }
        QueryItem::Operator { oper, distance } => {
            let priority = ts_priority(oper);
            let parens = priority < parent || (oper == TS_PHRASE && right_phrase);
            if parens {
                out.push_str("( ");
            }
            let mut right = String::new();
            tsquery_infix(items, pos, priority, oper == TS_PHRASE, &mut right)?;
            tsquery_infix(items, pos, priority, false, out)?;
            match oper {
                TS_OR => out.push_str(" | "),
                TS_AND => out.push_str(" & "),
                _ if distance != 1 => out.push_str(&format!(" <{distance}> ")),
                _ => out.push_str(" <-> "),
            }
            out.push_str(&right);
            if parens {
                out.push_str(" )");
            }
        }
    }
    Ok(())
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

    fn operand(out: &mut Vec<u8>, text: &str, weight: u8, prefix: bool) {
        out.extend([1, weight, prefix as u8]);
        out.extend(text.as_bytes());
        out.push(0);
    }

    #[test]
    fn tsquery() {
        // 'fat' & 'rat', stored as: & 'rat' 'fat' (right operand first).
        let mut raw = 3i32.to_be_bytes().to_vec();
        raw.extend([2, TS_AND]);
        operand(&mut raw, "rat", 0, false);
        operand(&mut raw, "fat", 0, false);
        assert_eq!(tsquery_to_text(&raw).unwrap(), "'fat' & 'rat'");
        // 'a' & ( 'b' | !'c:*AB' ) as AND(OR(NOT c, b), a).
        let mut raw = 6i32.to_be_bytes().to_vec();
        raw.extend([2, TS_AND, 2, TS_OR, 2, TS_NOT]);
        operand(&mut raw, "it's", 12, true);
        operand(&mut raw, "b", 0, false);
        operand(&mut raw, "a", 0, false);
        assert_eq!(tsquery_to_text(&raw).unwrap(), "'a' & ( 'b' | !'it''s':*AB )");
        // Phrases: 'a' <2> 'b'
        let mut raw = 3i32.to_be_bytes().to_vec();
        raw.extend([2, TS_PHRASE]);
        raw.extend(2i16.to_be_bytes());
        operand(&mut raw, "b", 0, false);
        operand(&mut raw, "a", 0, false);
        assert_eq!(tsquery_to_text(&raw).unwrap(), "'a' <2> 'b'");
        assert_eq!(tsquery_to_text(&0i32.to_be_bytes()).unwrap(), "");
        // Malformed: an operator without operands is an error, not a panic.
        let mut raw = 1i32.to_be_bytes().to_vec();
        raw.extend([2, TS_AND]);
        assert!(tsquery_to_text(&raw).is_err());        // Found by tests/fuzz (codec): a count of ~1e9 in a 4-byte value must not allocate.
        assert!(tsquery_to_text(&0x4106_6A06i32.to_be_bytes()).is_err());
    }
}
