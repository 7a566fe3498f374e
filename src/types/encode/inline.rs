//! Encoded parameters → SQL literals, for the simple protocol (`ClientSide` statements).
//!
//! Each literal carries the type its parameter was bound with (`'5'::int2`, an untyped
//! `'abc'` for an "unknown" str), so the server resolves the statement exactly as it
//! resolves the bound one. Values of a type not listed here, and large ones, are not
//! rendered: the statement is then bound as usual.

use super::{Format, Param};
use crate::codec::datetime::{civil_from_days, PG_EPOCH_DAYS, USECS_PER_DAY};
use crate::sql::literal::quote_string;
use crate::sql::placeholders::{Part, Template};
use crate::types::oid;
use std::fmt::Write;

/// Longest value rendered; a longer one is bound (no quoting pass over large documents).
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// The statement with each slot replaced by its parameter's literal (`numbers[slot]` is the
/// 1-based parameter), or None when a parameter has no literal here.
pub fn render(template: &Template, numbers: &[usize], params: &[Param]) -> Option<String> {
    let mut literals = Vec::with_capacity(params.len());
    for p in params {
        literals.push(literal(p)?);
    }
    let mut out = String::with_capacity(template.parts.iter().map(|p| match p {
        Part::Text(t) => t.len(),
        Part::Slot(_) => 16,
    }).sum());
    for part in &template.parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Slot(s) => {
                // Spaces keep a literal from gluing onto a neighbouring word or operator.
                out.push(' ');
                out.push_str(&literals[*numbers.get(*s)? - 1]);
                out.push(' ');
            }
        }
    }
    Some(out)
}

fn literal(p: &Param) -> Option<String> {
    let Some(value) = &p.value else { return Some("NULL".into()) };
    if value.len() > MAX_VALUE_BYTES {
        return None;
    }
    match p.format {
        Format::Text => {
            let text = std::str::from_utf8(value).ok()?;
            match p.oid {
                0 => Some(quote_string(text)),
                o => Some(typed(&quote_string(text), oid::sql_name(o)?)),
            }
        }
        Format::Binary => binary_literal(p.oid, value),
    }
}

fn typed(quoted: &str, name: &str) -> String {
    format!("{quoted}::{name}")
}

fn binary_literal(type_oid: u32, v: &[u8]) -> Option<String> {
    let quoted = |text: &str| typed(&format!("'{text}'"), oid::sql_name(type_oid).unwrap_or("unknown"));
    Some(match type_oid {
        oid::BOOL => match v {
            [0] => "false".into(),
            [1] => "true".into(),
            _ => return None,
        },
        oid::INT2 => quoted(&i16::from_be_bytes(v.try_into().ok()?).to_string()),
        oid::INT4 => quoted(&i32::from_be_bytes(v.try_into().ok()?).to_string()),
        oid::INT8 => quoted(&i64::from_be_bytes(v.try_into().ok()?).to_string()),
        oid::OID => quoted(&u32::from_be_bytes(v.try_into().ok()?).to_string()),
        oid::FLOAT8 => quoted(&float_text(f64::from_be_bytes(v.try_into().ok()?), |f| ryu::Buffer::new().format_finite(f).to_owned())),
        oid::FLOAT4 => quoted(&float_text(f32::from_be_bytes(v.try_into().ok()?), |f| ryu::Buffer::new().format_finite(f).to_owned())),
        oid::UUID => {
            let u = u128::from_be_bytes(v.try_into().ok()?);
            let h = format!("{u:032x}");
            quoted(&format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
        }
        oid::DATE => {
            let days = i32::from_be_bytes(v.try_into().ok()?) as i64;
            let (y, m, d) = civil_from_days(days + PG_EPOCH_DAYS);
            if !(1..=9999).contains(&y) {
                return None;
            }
            quoted(&format!("{y:04}-{m:02}-{d:02}"))
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let us = i64::from_be_bytes(v.try_into().ok()?);
            let (y, m, d) = civil_from_days(us.div_euclid(USECS_PER_DAY) + PG_EPOCH_DAYS);
            if !(1..=9999).contains(&y) {
                return None;
            }
            let tod = us.rem_euclid(USECS_PER_DAY);
            let (secs, micro) = (tod / 1_000_000, tod % 1_000_000);
            let mut s = format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micro:06}", secs / 3600, secs / 60 % 60, secs % 60);
            if type_oid == oid::TIMESTAMPTZ {
                s.push_str("+00");
            }
            quoted(&s)
        }
        oid::BYTEA => {
            let mut hex = String::with_capacity(2 + v.len() * 2);
            hex.push_str("\\x");
            for b in v {
                let _ = write!(hex, "{b:02x}");
            }
            // E'\\x..': right whatever standard_conforming_strings says.
            typed(&quote_string(&hex), "bytea")
        }
        _ => return None,
    })
}

/// The shortest text that reads back as the same float; NaN and the infinities spelled
/// as PostgreSQL reads them.
fn float_text<F: Into<f64> + Copy>(f: F, finite: impl Fn(F) -> String) -> String {
    let wide: f64 = f.into();
    if wide.is_nan() {
        "NaN".into()
    } else if wide.is_infinite() {
        if wide > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        finite(f)
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
