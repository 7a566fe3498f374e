//! Encoded parameters → SQL literals, for the simple protocol (`ClientSide` statements).
//!
//! Each literal carries the type its parameter was bound with (`'5'::int4`, an untyped
//! `'abc'` for an "unknown" str), so the server resolves the statement exactly as it
//! resolves the bound one. Values of a type not listed here, and large ones, are not
//! rendered: the statement is then bound as usual.

use super::{Format, Param};
use crate::codec::datetime::{civil_from_days, PG_EPOCH_DAYS, USECS_PER_DAY};
use crate::sql::literal::quote_string;
use crate::sql::placeholders::{Part, Template};
use crate::types::oid;

/// Longest value rendered; a longer one is bound (no quoting pass over large documents).
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// The statement with each slot replaced by its parameter's literal (`numbers[slot]` is the
/// 1-based parameter), or None when a parameter has no literal here.
pub fn render(template: &Template, numbers: &[usize], params: &[Param]) -> Option<String> {
    let mut literals = String::with_capacity(params.iter().map(|p| p.value.as_ref().map_or(4, |v| v.len() + 16)).sum());
    let mut bounds = Vec::with_capacity(params.len());
    for p in params {
        let start = literals.len();
        push_literal(&mut literals, p)?;
        bounds.push((start, literals.len()));
    }
    let text_len: usize = template.parts.iter().map(|p| if let Part::Text(t) = p { t.len() } else { 0 }).sum();
    let mut out = String::with_capacity(text_len + literals.len() * 2 + 2 * template.parts.len());
    for part in &template.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Slot(s) => {
                let (a, b) = bounds[*numbers.get(*s)? - 1];
                // Spaces keep a literal from gluing onto a neighbouring word or operator.
                out.push(' ');
                out.push_str(&literals[a..b]);
                out.push(' ');
            }
        }
    }
    Some(out)
}

#[cfg(test)]
fn literal(p: &Param) -> Option<String> {
    let mut out = String::new();
    push_literal(&mut out, p)?;
    Some(out)
}

/// Appends `p`'s literal; None (with `out` partly written) when it has none here.
fn push_literal(out: &mut String, p: &Param) -> Option<()> {
    let Some(value) = &p.value else {
        out.push_str("NULL");
        return Some(());
    };
    if value.len() > MAX_VALUE_BYTES {
        return None;
    }
    match p.format {
        Format::Text => {
            let text = std::str::from_utf8(value).ok()?;
            let name = match p.oid {
                0 => None,
                o => Some(oid::sql_name(o)?),
            };
            push_quoted(out, text);
            if let Some(name) = name {
                out.push_str("::");
                out.push_str(name);
            }
            Some(())
        }
        Format::Binary => push_binary_literal(out, p.oid, value),
    }
}

/// `text` as a string literal (` E'...'` when it holds a backslash, as `quote_string`).
fn push_quoted(out: &mut String, text: &str) {
    if text.contains('\\') {
        out.push_str(&quote_string(text));
        return;
    }
    out.push('\'');
    let mut rest = text;
    while let Some(i) = rest.find('\'') {
        out.push_str(&rest[..=i]);
        out.push('\'');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('\'');
}

fn push_binary_literal(out: &mut String, type_oid: u32, v: &[u8]) -> Option<()> {
    let name = oid::sql_name(type_oid);
    let typed = |out: &mut String, body: &dyn Fn(&mut String)| {
        out.push('\'');
        body(out);
        out.push_str("'::");
        out.push_str(name.unwrap_or("unknown"));
    };
    match type_oid {
        oid::BOOL => match v {
            [0] => out.push_str("false"),
            [1] => out.push_str("true"),
            _ => return None,
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            let n = int_value(type_oid, v)?;
            typed(out, &|o| o.push_str(itoa::Buffer::new().format(n)));
        }
        oid::FLOAT8 => {
            let f = f64::from_be_bytes(v.try_into().ok()?);
            typed(out, &|o| push_float(o, f, |f| ryu::Buffer::new().format_finite(f).to_owned()));
        }
        oid::FLOAT4 => {
            let f = f32::from_be_bytes(v.try_into().ok()?);
            typed(out, &|o| push_float(o, f, |f| ryu::Buffer::new().format_finite(f).to_owned()));
        }
        oid::UUID => {
            let u = u128::from_be_bytes(v.try_into().ok()?);
            typed(out, &|o| {
                for (i, shift) in (0..32).rev().enumerate() {
                    if matches!(i, 8 | 12 | 16 | 20) {
                        o.push('-');
                    }
                    o.push(HEX[((u >> (shift * 4)) & 0xf) as usize] as char);
                }
            });
        }
        oid::DATE => {
            let days = i32::from_be_bytes(v.try_into().ok()?) as i64;
            let ymd = civil_from_days(days + PG_EPOCH_DAYS);
            if !(1..=9999).contains(&ymd.0) {
                return None;
            }
            typed(out, &|o| push_ymd(o, ymd));
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let us = i64::from_be_bytes(v.try_into().ok()?);
            let ymd = civil_from_days(us.div_euclid(USECS_PER_DAY) + PG_EPOCH_DAYS);
            if !(1..=9999).contains(&ymd.0) {
                return None;
            }
            let tod = us.rem_euclid(USECS_PER_DAY);
            let (secs, micro) = (tod / 1_000_000, tod % 1_000_000);
            typed(out, &|o| {
                push_ymd(o, ymd);
                o.push(' ');
                push_digits(o, secs / 3600, 2);
                o.push(':');
                push_digits(o, secs / 60 % 60, 2);
                o.push(':');
                push_digits(o, secs % 60, 2);
                o.push('.');
                push_digits(o, micro, 6);
                if type_oid == oid::TIMESTAMPTZ {
                    o.push_str("+00");
                }
            });
        }
        oid::BYTEA => {
            let mut hex = String::with_capacity(2 + v.len() * 2);
            hex.push_str("\\x");
            for b in v {
                hex.push(HEX[(b >> 4) as usize] as char);
                hex.push(HEX[(b & 0xf) as usize] as char);
            }
            // E'\\x..': right whatever standard_conforming_strings says.
            out.push_str(&quote_string(&hex));
            out.push_str("::bytea");
        }
        _ => return None,
    }
    Some(())
}

/// A binary integer parameter of its type's exact width, widened.
fn int_value(type_oid: u32, v: &[u8]) -> Option<i64> {
    Some(match type_oid {
        oid::INT2 => i16::from_be_bytes(v.try_into().ok()?) as i64,
        oid::INT4 => i32::from_be_bytes(v.try_into().ok()?) as i64,
        oid::OID => u32::from_be_bytes(v.try_into().ok()?) as i64,
        _ => i64::from_be_bytes(v.try_into().ok()?),
    })
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_digits(out: &mut String, n: i64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(n);
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(s);
}

fn push_ymd(out: &mut String, (y, m, d): (i64, u32, u32)) {
    push_digits(out, y, 4);
    out.push('-');
    push_digits(out, m as i64, 2);
    out.push('-');
    push_digits(out, d as i64, 2);
}

/// The shortest text that reads back as the same float; NaN and the infinities spelled
/// as PostgreSQL reads them.
fn push_float<F: Into<f64> + Copy>(out: &mut String, f: F, finite: impl Fn(F) -> String) {
    let wide: f64 = f.into();
    if wide.is_nan() {
        out.push_str("NaN");
    } else if wide.is_infinite() {
        out.push_str(if wide > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        out.push_str(&finite(f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::placeholders::scan;

    fn bin(o: u32, v: &[u8]) -> Param {
        Param { oid: o, format: Format::Binary, value: Some(v.to_vec()) }
    }

    fn text(o: u32, v: &str) -> Param {
        Param { oid: o, format: Format::Text, value: Some(v.as_bytes().to_vec()) }
    }

    #[test]
    fn literals_keep_the_bound_type() {
        assert_eq!(literal(&bin(oid::INT2, &(-5i16).to_be_bytes())).unwrap(), "'-5'::int2");
        assert_eq!(literal(&bin(oid::INT8, &i64::MIN.to_be_bytes())).unwrap(), "'-9223372036854775808'::int8");
        assert_eq!(literal(&bin(oid::BOOL, &[1])).unwrap(), "true");
        assert_eq!(literal(&bin(oid::FLOAT8, &0.1f64.to_be_bytes())).unwrap(), "'0.1'::float8");
        assert_eq!(literal(&bin(oid::FLOAT4, &1.1f32.to_be_bytes())).unwrap(), "'1.1'::float4");
        assert_eq!(literal(&bin(oid::FLOAT8, &f64::NEG_INFINITY.to_be_bytes())).unwrap(), "'-Infinity'::float8");
        assert_eq!(literal(&text(0, "it's")).unwrap(), "'it''s'");
        assert_eq!(literal(&text(0, "a\\b")).unwrap(), " E'a\\\\b'");
        assert_eq!(literal(&text(oid::NUMERIC, "-1.50")).unwrap(), "'-1.50'::numeric");
        assert_eq!(literal(&text(oid::JSONB, r#"{"a": "'"}"#)).unwrap(), r#"'{"a": "''"}'::jsonb"#);
        assert_eq!(literal(&Param { oid: 0, format: Format::Text, value: None }).unwrap(), "NULL");
        assert_eq!(
            literal(&bin(oid::UUID, &0xa0eebc999c0b4ef8bb6d6bb9bd380a11u128.to_be_bytes())).unwrap(),
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid"
        );
        assert_eq!(literal(&bin(oid::BYTEA, &[0, 255])).unwrap(), " E'\\\\x00ff'::bytea");
        assert_eq!(literal(&bin(oid::DATE, &(-1i32).to_be_bytes())).unwrap(), "'1999-12-31'::date");
        let us: i64 = -1;
        assert_eq!(literal(&bin(oid::TIMESTAMPTZ, &us.to_be_bytes())).unwrap(), "'1999-12-31 23:59:59.999999+00'::timestamptz");
        assert_eq!(literal(&bin(oid::TIMESTAMP, &86_400_000_001i64.to_be_bytes())).unwrap(), "'2000-01-02 00:00:00.000001'::timestamp");
    }

    #[test]
    fn unmodelled_values_are_bound() {
        assert!(literal(&bin(oid::TIME, &0i64.to_be_bytes())).is_none());
        assert!(literal(&bin(oid::INTERVAL, &[0; 16])).is_none());
        assert!(literal(&bin(1007, &[0; 20])).is_none()); // a binary int4[]
        assert!(literal(&text(123_456, "x")).is_none()); // an extension type's OID
        assert!(literal(&text(0, &"x".repeat(MAX_VALUE_BYTES + 1))).is_none());
        assert!(literal(&bin(oid::TIMESTAMP, &i64::MAX.to_be_bytes())).is_none());
    }

    #[test]
    fn renders_slots_by_number() {
        let t = scan("SELECT a FROM t WHERE b = %s AND c = %s AND d-%s > 0", true).unwrap();
        let params = [bin(oid::INT2, &(-1i16).to_be_bytes()), text(0, "x")];
        let sql = render(&t, &[1, 2, 1], &params).unwrap();
        assert_eq!(sql, "SELECT a FROM t WHERE b =  '-1'::int2  AND c =  'x'  AND d- '-1'::int2  > 0");
        assert!(render(&t, &[1, 2, 1], &[params[0].clone(), bin(oid::TIME, &[0; 8])]).is_none());
    }
}
