//! DATE / TIME / TIMESTAMP / INTERVAL: counts since 2000-01-01 → calendar fields.
use super::read::{exact, Reader};
use super::{err, CodecError};

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
pub const PG_EPOCH_DAYS: i64 = 10_957;
pub const USECS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ymd {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hms {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
}

/// Days since 1970-01-01 → proleptic Gregorian date (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Proleptic Gregorian date → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn python_date(days_since_2000: i64, what: &str) -> Result<Ymd, CodecError> {
    let (y, m, d) = civil_from_days(days_since_2000 + PG_EPOCH_DAYS);
    if y > 9999 {
        return err(format!("{what} too large (after year 10K)"));
    }
    if y < 1 {
        return err(format!("{what} too small (before year 1)"));
    }
    Ok(Ymd { year: y as i32, month: m as u8, day: d as u8 })
}

pub fn decode_date(raw: &[u8]) -> Result<Ymd, CodecError> {
    let days = i32::from_be_bytes(exact::<4>(raw, "date")?);
    match days {
        i32::MAX => err("date too large (after year 10K): 'infinity'"),
        i32::MIN => err("date too small (before year 1): '-infinity'"),
        d => python_date(d as i64, "date"),
    }
}

pub fn hms_from_micros(us: i64) -> Result<Hms, CodecError> {
    if !(0..USECS_PER_DAY).contains(&us) {
        return err(format!("time of day out of Python's range: {us} microseconds"));
    }
    let secs = us / 1_000_000;
    Ok(Hms {
        hour: (secs / 3600) as u8,
        minute: (secs / 60 % 60) as u8,
        second: (secs % 60) as u8,
        micro: (us % 1_000_000) as u32,
    })
}

/// Microseconds since 2000-01-01 (UTC for timestamptz) → calendar fields.
pub fn decode_timestamp_micros(us: i64) -> Result<(Ymd, Hms), CodecError> {
    match us {
        i64::MAX => return err("timestamp too large (after year 10K): 'infinity'"),
        i64::MIN => return err("timestamp too small (before year 1): '-infinity'"),
        _ => {}
    }
    let days = us.div_euclid(USECS_PER_DAY);
    let tod = us.rem_euclid(USECS_PER_DAY);
    Ok((python_date(days, "timestamp")?, hms_from_micros(tod)?))
}

pub fn timestamp_micros(raw: &[u8]) -> Result<i64, CodecError> {
    Ok(i64::from_be_bytes(exact::<8>(raw, "timestamp")?))
}

pub fn decode_time(raw: &[u8]) -> Result<Hms, CodecError> {
    hms_from_micros(i64::from_be_bytes(exact::<8>(raw, "time")?))
}

/// TIMETZ: time of day and the UTC offset in seconds east of Greenwich.
pub fn decode_timetz(raw: &[u8]) -> Result<(Hms, i32), CodecError> {
    let mut r = Reader::new(raw);
    let us = r.i64()?;
    let west = r.i32()?;
    let Some(east) = west.checked_neg() else {
        return err(format!("invalid timetz offset {west} seconds"));
    };
    Ok((hms_from_micros(us)?, east))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub micros: i64,
    pub days: i32,
    pub months: i32,
}

pub fn decode_interval(raw: &[u8]) -> Result<Interval, CodecError> {
    let mut r = Reader::new(raw);
    let micros = r.i64()?;
    let days = r.i32()?;
    let months = r.i32()?;
    Ok(Interval { micros, days, months })
}

impl Interval {
    /// Python's timedelta has no months: a year is 365 days and a month 30, as psycopg does.
    pub fn total_days(&self) -> i64 {
        let years = self.months / 12;
        let months = self.months % 12;
        self.days as i64 + 30 * months as i64 + 365 * years as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for days in [-800_000i64, -1, 0, 1, 10_957, 59, 60, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(PG_EPOCH_DAYS), (2000, 1, 1));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn dates() {
        assert_eq!(decode_date(&0i32.to_be_bytes()).unwrap(), Ymd { year: 2000, month: 1, day: 1 });
        assert_eq!(decode_date(&(-1i32).to_be_bytes()).unwrap(), Ymd { year: 1999, month: 12, day: 31 });
        assert!(decode_date(&i32::MAX.to_be_bytes()).unwrap_err().0.contains("infinity"));
        assert!(decode_date(&(-800_000i32).to_be_bytes()).is_err());
        assert!(decode_date(&[1, 2]).is_err());
    }

    #[test]
    fn timestamps() {
        let (d, t) = decode_timestamp_micros(USECS_PER_DAY + 3_723_000_004).unwrap();
        assert_eq!(d, Ymd { year: 2000, month: 1, day: 2 });
        assert_eq!(t, Hms { hour: 1, minute: 2, second: 3, micro: 4 });
        let (d, t) = decode_timestamp_micros(-1).unwrap();
        assert_eq!(d, Ymd { year: 1999, month: 12, day: 31 });
        assert_eq!(t, Hms { hour: 23, minute: 59, second: 59, micro: 999_999 });
        assert!(decode_timestamp_micros(i64::MAX).is_err());
    }

    #[test]
    fn intervals() {
        // 14 months = 1 year and 2 months.
        let i = Interval { micros: 0, days: 1, months: 14 };
        assert_eq!(i.total_days(), 1 + 2 * 30 + 365);
        let neg = Interval { micros: 0, days: 0, months: -13 };
        assert_eq!(neg.total_days(), -365 - 30);
    }

    #[test]
    fn timetz() {
        let mut raw = 3_600_000_000i64.to_be_bytes().to_vec();
        raw.extend((-7200i32).to_be_bytes());
        let (t, east) = decode_timetz(&raw).unwrap();
        assert_eq!((t.hour, east), (1, 7200));
        // Found by tests/fuzz (codec): negating an i32::MIN offset overflowed.
        let mut raw = 0i64.to_be_bytes().to_vec();
        raw.extend(i32::MIN.to_be_bytes());
        assert!(decode_timetz(&raw).is_err());
    }
}
