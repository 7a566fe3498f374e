//! Text-format values → the binary form of the same value, for the types whose binary
//! decoder the row path already has. A column that arrived as text (simple protocol,
//! several statements, a type's binary output refused) then decodes through exactly the
//! binary decoder, so both formats give the same Python object by construction.
//!
//! Dates and timestamps are read as PostgreSQL writes them under `DateStyle` ISO (the
//! caller checks the session's DateStyle before asking for text).

use super::datetime::{days_from_civil, PG_EPOCH_DAYS, USECS_PER_DAY};
use super::CodecError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Uuid,
    Date,
    Timestamp,
    TimestampTz,
}

/// At most 16 bytes (a uuid): kept on the stack.
pub struct Binary {
    buf: [u8; 16],
    len: usize,
}

impl Binary {
    fn of(bytes: &[u8]) -> Binary {
        let mut buf = [0u8; 16];
        buf[..bytes.len()].copy_from_slice(bytes);
        Binary { buf, len: bytes.len() }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

pub fn to_binary(kind: TextKind, text: &[u8]) -> Result<Binary, CodecError> {
    let s = std::str::from_utf8(text).map_err(|_| CodecError("text value is not UTF-8".into()))?;
    let bad = || CodecError(format!("unexpected {kind:?} text from the server: {s:?}"));
    Ok(match kind {
        TextKind::Bool => match s {
            "t" => Binary::of(&[1]),
            "f" => Binary::of(&[0]),
            _ => return Err(bad()),
        },
        TextKind::Int2 => Binary::of(&s.parse::<i16>().map_err(|_| bad())?.to_be_bytes()),
        TextKind::Int4 => Binary::of(&s.parse::<i32>().map_err(|_| bad())?.to_be_bytes()),
        TextKind::Int8 => Binary::of(&s.parse::<i64>().map_err(|_| bad())?.to_be_bytes()),
        TextKind::Oid => Binary::of(&s.parse::<u32>().map_err(|_| bad())?.to_be_bytes()),
        TextKind::Uuid => Binary::of(&parse_uuid(s).ok_or_else(bad)?.to_be_bytes()),
        TextKind::Date => {
            let days: i32 = match s {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                _ => {
                    let mut p = Parser::new(s);
                    p.date().ok_or_else(bad)?;
                    p.era();
                    if !p.done() {
                        return Err(bad());
                    }
                    i32::try_from(p.days()).map_err(|_| bad())?
                }
            };
            Binary::of(&days.to_be_bytes())
        }
        TextKind::Timestamp | TextKind::TimestampTz => {
            let micros: i64 = match s {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                _ => timestamp_micros(s, kind == TextKind::TimestampTz).ok_or_else(bad)?,
            };
            Binary::of(&micros.to_be_bytes())
        }
    })
}

fn timestamp_micros(s: &str, with_zone: bool) -> Option<i64> {
    let mut p = Parser::new(s);
    p.date()?;
    p.expect(b' ')?;
    let hour = p.digits(2, 2)?;
    p.expect(b':')?;
    let minute = p.digits(2, 2)?;
    p.expect(b':')?;
    let second = p.digits(2, 2)?;
    let mut micro = 0i64;
    if p.peek() == Some(b'.') {
        p.pos += 1;
        let start = p.pos;
        let frac = p.digits(1, 6)?;
        let width = p.pos - start;
        micro = frac * 10i64.pow(6 - width as u32);
    }
    let mut east = 0i64;
    if with_zone {
        let sign = match p.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        p.pos += 1;
        east = p.digits(2, 2)? * 3600;
        if p.peek() == Some(b':') {
            p.pos += 1;
            east += p.digits(2, 2)? * 60;
            if p.peek() == Some(b':') {
                p.pos += 1;
                east += p.digits(2, 2)?;
            }
        }
        east *= sign;
    }
    p.era();
    if !p.done() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let local = p.days().checked_mul(USECS_PER_DAY)? + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micro;
    local.checked_sub(east * 1_000_000)
}

fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        v = (v << 4) | (c as char).to_digit(16)? as u128;
    }
    Some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    ymd: (i64, u32, u32),
    bc: bool,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s: s.as_bytes(), pos: 0, ymd: (2000, 1, 1), bc: false }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn done(&self) -> bool {
        self.pos == self.s.len()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.pos += 1)
    }

    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.pos;
        while self.pos < self.s.len() && self.pos - start < max && self.s[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
        if self.pos - start < min {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.pos]).ok()?.parse().ok()
    }

    /// `YYYY-MM-DD`, four or more year digits.
    fn date(&mut self) -> Option<()> {
        let year = self.digits(4, 9)?;
        self.expect(b'-')?;
        let month = self.digits(2, 2)? as u32;
        self.expect(b'-')?;
        let day = self.digits(2, 2)? as u32;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return None;
        }
        self.ymd = (year, month, day);
        Some(())
    }

    /// An optional trailing " BC" (year n BC is astronomical year 1 - n).
    fn era(&mut self) {
        if self.s[self.pos..] == *b" BC" {
            self.bc = true;
            self.pos = self.s.len();
        }
    }

    /// Days since 2000-01-01 of the date read.
    fn days(&self) -> i64 {
        let (y, m, d) = self.ymd;
        days_from_civil(if self.bc { 1 - y } else { y }, m, d) - PG_EPOCH_DAYS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::datetime::{decode_date, decode_timestamp_micros, timestamp_micros as micros_of};

    fn bin(kind: TextKind, s: &str) -> Vec<u8> {
        to_binary(kind, s.as_bytes()).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn scalars() {
        assert_eq!(bin(TextKind::Bool, "t"), vec![1]);
        assert_eq!(bin(TextKind::Bool, "f"), vec![0]);
        assert_eq!(bin(TextKind::Int2, "-32768"), (-32768i16).to_be_bytes());
        assert_eq!(bin(TextKind::Int4, "2147483647"), i32::MAX.to_be_bytes());
        assert_eq!(bin(TextKind::Int8, "-9223372036854775808"), i64::MIN.to_be_bytes());
        assert_eq!(bin(TextKind::Oid, "4294967295"), u32::MAX.to_be_bytes());
        assert_eq!(
            bin(TextKind::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            0xa0eebc999c0b4ef8bb6d6bb9bd380a11u128.to_be_bytes()
        );
        assert!(to_binary(TextKind::Int2, b"32768").is_err());
        assert!(to_binary(TextKind::Bool, b"true").is_err());
        assert!(to_binary(TextKind::Uuid, b"a0eebc999c0b4ef8bb6d6bb9bd380a11").is_err());
    }

    #[test]
    fn dates() {
        let d = bin(TextKind::Date, "2024-02-29");
        let ymd = decode_date(&d).unwrap();
        assert_eq!((ymd.year, ymd.month, ymd.day), (2024, 2, 29));
        assert_eq!(bin(TextKind::Date, "2000-01-01"), 0i32.to_be_bytes());
        assert_eq!(bin(TextKind::Date, "infinity"), i32::MAX.to_be_bytes());
        assert_eq!(bin(TextKind::Date, "-infinity"), i32::MIN.to_be_bytes());
        // 0001-01-01 BC is astronomical year 0; the binary decoder then refuses it, as it
        // refuses the binary form of the same date.
        let bc = bin(TextKind::Date, "0001-12-31 BC");
        assert_eq!(i32::from_be_bytes(bc.try_into().unwrap()) as i64, days_from_civil(0, 12, 31) - PG_EPOCH_DAYS);
        let big = bin(TextKind::Date, "10000-01-01");
        assert_eq!(i32::from_be_bytes(big.try_into().unwrap()) as i64, days_from_civil(10000, 1, 1) - PG_EPOCH_DAYS);
        assert!(to_binary(TextKind::Date, b"01/02/2024").is_err());
        assert!(to_binary(TextKind::Date, b"2024-13-01").is_err());
    }

    #[test]
    fn timestamps() {
        let raw = bin(TextKind::TimestampTz, "2024-03-10 12:34:56.789+00");
        let (d, t) = decode_timestamp_micros(micros_of(&raw).unwrap()).unwrap();
        assert_eq!((d.year, d.month, d.day, t.hour, t.minute, t.second, t.micro), (2024, 3, 10, 12, 34, 56, 789_000));
        // The offset is east of UTC: 12:00+05:30 is 06:30 UTC.
        let raw = bin(TextKind::TimestampTz, "2024-03-10 12:00:00+05:30");
        let (_, t) = decode_timestamp_micros(micros_of(&raw).unwrap()).unwrap();
        assert_eq!((t.hour, t.minute), (6, 30));
        // Historical zones carry seconds (LMT).
        let raw = bin(TextKind::TimestampTz, "1850-01-01 00:00:00-04:56:02");
        let (d, t) = decode_timestamp_micros(micros_of(&raw).unwrap()).unwrap();
        assert_eq!((d.year, t.hour, t.minute, t.second), (1850, 4, 56, 2));
        let raw = bin(TextKind::Timestamp, "1999-12-31 23:59:59.000001");
        assert_eq!(micros_of(&raw).unwrap(), -999_999);
        assert_eq!(bin(TextKind::TimestampTz, "infinity"), i64::MAX.to_be_bytes());
        assert_eq!(bin(TextKind::Timestamp, "-infinity"), i64::MIN.to_be_bytes());
        let bc = bin(TextKind::Timestamp, "0044-03-15 12:00:00 BC");
        let expected = (days_from_civil(-43, 3, 15) - PG_EPOCH_DAYS) * USECS_PER_DAY + 12 * 3_600_000_000;
        assert_eq!(micros_of(&bc).unwrap(), expected);
        assert!(to_binary(TextKind::Timestamp, b"2024-03-10 12:00:00+00").is_err());
        assert!(to_binary(TextKind::TimestampTz, b"2024-03-10 12:00:00").is_err());
        assert!(to_binary(TextKind::TimestampTz, b"Sun Mar 10 12:00:00 2024 UTC").is_err());
    }
}
