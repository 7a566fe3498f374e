//! NUMERIC: base-10000 digits → decimal text that Python's `Decimal` parses exactly.
use super::read::Reader;
use super::{err, CodecError};

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// Decodes a binary NUMERIC into text such as `-12.3400`, `NaN`, `Infinity`.
pub fn to_text(raw: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(raw);
    let ndigits = r.i16()?;
    let weight = r.i16()? as i32;
    let sign = r.u16()?;
    let dscale = r.i16()?;
    if ndigits < 0 || dscale < 0 {
        return err("invalid numeric header");
    }
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        NUMERIC_POS | NUMERIC_NEG => {}
        _ => return err(format!("invalid numeric sign 0x{sign:04x}")),
    }
    let mut digits = Vec::with_capacity(ndigits as usize);
    for _ in 0..ndigits {
        let d = r.i16()?;
        if !(0..10000).contains(&d) {
            return err("invalid numeric digit");
        }
        digits.push(d as u32);
    }
    let dscale = dscale as usize;
    let mut out = String::with_capacity(ndigits as usize * 4 + dscale + 3);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    // Integer part: groups 0..=weight.
    if weight < 0 {
        out.push('0');
    } else {
        for g in 0..=weight {
            let d = digits.get(g as usize).copied().unwrap_or(0);
            if g == 0 {
                out.push_str(itoa::Buffer::new().format(d));
            } else {
                push4(&mut out, d);
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut g = weight + 1;
        while frac.len() < dscale {
            let d = if g < 0 { 0 } else { digits.get(g as usize).copied().unwrap_or(0) };
            push4(&mut frac, d);
            g += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

fn push4(out: &mut String, d: u32) {
    let s = [(d / 1000) as u8, (d / 100 % 10) as u8, (d / 10 % 10) as u8, (d % 10) as u8];
    for x in s {
        out.push((b'0' + x) as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(ndigits.to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn values() {
        assert_eq!(to_text(&enc(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(to_text(&enc(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(to_text(&enc(2, 0, 0, 2, &[12, 3400])).unwrap(), "12.34");
        assert_eq!(to_text(&enc(2, 1, NUMERIC_NEG, 0, &[1, 0])).unwrap(), "-10000");
        assert_eq!(to_text(&enc(1, -1, 0, 5, &[1200])).unwrap(), "0.12000");
        // 0.000005 = 500 × 10000^-2; a lone group 5 there would be 0.00000005.
        assert_eq!(to_text(&enc(1, -2, 0, 6, &[500])).unwrap(), "0.000005");
        assert_eq!(to_text(&enc(1, -2, 0, 8, &[5])).unwrap(), "0.00000005");
        assert_eq!(to_text(&enc(1, 2, 0, 0, &[7])).unwrap(), "700000000");
        assert_eq!(to_text(&enc(0, 0, NUMERIC_NAN, 0, &[])).unwrap(), "NaN");
        assert_eq!(to_text(&enc(0, 0, NUMERIC_PINF, 0, &[])).unwrap(), "Infinity");
        assert_eq!(to_text(&enc(0, 0, NUMERIC_NINF, 0, &[])).unwrap(), "-Infinity");
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(to_text(&[0, 1]).is_err());
        assert!(to_text(&enc(2, 0, 0, 0, &[1])).is_err());
        assert!(to_text(&enc(1, 0, 0x1234, 0, &[1])).is_err());
    }
}
