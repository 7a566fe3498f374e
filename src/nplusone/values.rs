//! Value hashes for the confirmed check: parameters and key-like result columns hashed so
//! equal keys match whatever their wire form (int widths, text digits), never stored as values.

use super::MAX_VALUE_COLUMNS;
use crate::fxhash::FxHasher;
use crate::row::ColInfo;
use crate::types::encode::{Format, Param};
use crate::types::oid;
use std::hash::Hasher;

const TAG_INT: u64 = 0x1;
const TAG_BYTES: u64 = 0x2;

fn hash_int(v: i64) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(TAG_INT);
    h.write_u64(v as u64);
    h.finish()
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write_u64(TAG_BYTES);
    h.write_usize(b.len());
    h.write(b);
    h.finish()
}

/// A decimal integer in canonical form ("42", "-7"; not "042" or "4.0").
pub fn canonical_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let digits = if b[0] == b'-' { &b[1..] } else { b };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn be_int(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        2 => i16::from_be_bytes([b[0], b[1]]) as i64,
        4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64,
        8 => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        _ => return None,
    })
}

fn text_hash(b: &[u8]) -> Option<u64> {
    if b.len() > 64 {
        return None;
    }
    Some(match canonical_int(b) {
        Some(i) => hash_int(i),
        None => hash_bytes(b),
    })
}

/// The value of a parameter as the confirmed check compares it.
pub fn param_value_hash(p: &Param) -> Option<u64> {
    let v = p.value.as_deref()?;
    match (p.oid, p.format) {
        (oid::INT2 | oid::INT4 | oid::INT8, Format::Binary) => be_int(v).map(hash_int),
        (oid::UUID, Format::Binary) if v.len() == 16 => Some(hash_bytes(v)),
        (0 | oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NUMERIC | oid::UNKNOWN, Format::Text) => text_hash(v),
        _ => None,
    }
}

/// Exact parameters, for distinct counts and duplicates.
pub fn params_hash(params: &[Param]) -> u64 {
    let mut h = FxHasher::default();
    h.write_usize(params.len());
    for p in params {
        h.write_u32(p.oid);
        match &p.value {
            None => h.write_u8(0),
            Some(v) => {
                h.write_u8(1);
                h.write_usize(v.len());
                h.write(v);
            }
        }
    }
    h.finish()
}

#[derive(Clone, Copy)]
pub enum ColKind {
    Int,
    Bytes,
    Text,
}

/// Column names that hold keys: `id`, `pk`, `*_id` (foreign keys, GenericForeignKey
/// object ids), `*_pk`, `*uuid`, slugs, codes, keys, and Django's
/// `_prefetch_related_val_*` aliases. Other columns (ratings, counts, prices) would only
/// add coincidental matches.
pub fn key_like(name: &str) -> bool {
    let n = name.as_bytes();
    let ends = |suffix: &[u8]| n.len() >= suffix.len() && n[n.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
    name.eq_ignore_ascii_case("id")
        || name.eq_ignore_ascii_case("pk")
        || name.eq_ignore_ascii_case("slug")
        || name.eq_ignore_ascii_case("code")
        || name.eq_ignore_ascii_case("key")
        || ends(b"_id")
        || ends(b"_pk")
        || ends(b"uuid")
        || ends(b"_slug")
        || name.starts_with("_prefetch_related_val_")
}

/// Which result columns feed the confirmed check: key-like integer columns (see
/// `key_like`), every uuid column and every text column (values up to 64 bytes: emails,
/// slugs, codes; strings rarely coincide by chance, small integers often do).
pub fn value_columns(cols: &[ColInfo]) -> Vec<(usize, ColKind)> {
    cols.iter()
        .enumerate()
        .take(MAX_VALUE_COLUMNS)
        .filter_map(|(i, c)| {
            let kind = match c.type_.oid() {
                oid::UUID => ColKind::Bytes,
                oid::INT2 | oid::INT4 | oid::INT8 if key_like(&c.name) => ColKind::Int,
                oid::TEXT | oid::VARCHAR | oid::BPCHAR => ColKind::Text,
                _ => return None,
            };
            Some((i, kind))
        })
        .collect()
}

pub fn cell_hash(kind: ColKind, raw: &[u8]) -> Option<u64> {
    match kind {
        ColKind::Int => be_int(raw).map(hash_int),
        ColKind::Bytes => (raw.len() == 16).then(|| hash_bytes(raw)),
        ColKind::Text => text_hash(raw),
    }
}

/// A value's sources: two 32-bit slots, each `(group + 1) << 8 | column` (0: empty).
pub struct Slot;

impl Slot {
    #[inline]
    pub fn pack(group: u32, column: usize) -> u64 {
        ((group as u64 + 1) << 8) | column as u64
    }

    #[inline]
    pub fn get(slots: u64, i: u32) -> Option<(u32, u16)> {
        let s = (slots >> (32 * i)) & 0xFFFF_FFFF;
        (s != 0).then(|| (((s >> 8) - 1) as u32, (s & 0xFF) as u16))
    }

    /// Adds `(group, column)` as the most recent source (slot 0; the previous one moves
    /// to slot 1, the oldest is forgotten) unless the group is there already. Recent
    /// sources matter most: they are the loops the statement runs in.
    #[inline]
    pub fn add(slots: u64, group: u32, column: usize) -> u64 {
        for i in 0..2 {
            if let Some((g, _)) = Slot::get(slots, i) {
                if g == group {
                    return slots;
                }
            }
        }
        ((slots & 0xFFFF_FFFF) << 32) | Slot::pack(group, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::encode::{Format, Param};

    #[test]
    fn ints_hash_by_value_whatever_their_width() {
        let p = |oid: u32, v: Vec<u8>| Param { oid, format: Format::Binary, value: Some(v) };
        let a = param_value_hash(&p(oid::INT2, 7i16.to_be_bytes().to_vec()));
        let b = param_value_hash(&p(oid::INT4, 7i32.to_be_bytes().to_vec()));
        let c = param_value_hash(&p(oid::INT8, 7i64.to_be_bytes().to_vec()));
        let t = param_value_hash(&Param { oid: 0, format: Format::Text, value: Some(b"7".to_vec()) });
        assert!(a.is_some() && a == b && b == c && c == t);
        assert_eq!(cell_hash(ColKind::Int, &7i64.to_be_bytes()), a);
        assert_eq!(cell_hash(ColKind::Text, b"7"), a);
        assert_ne!(cell_hash(ColKind::Text, b"07"), a);
        let u = [3u8; 16];
        assert_eq!(param_value_hash(&p(oid::UUID, u.to_vec())), cell_hash(ColKind::Bytes, &u));
    }

    #[test]
    fn value_slots() {
        let mut s = 0u64;
        assert_eq!(Slot::get(s, 0), None);
        s = Slot::add(s, 0, 3);
        s = Slot::add(s, 0, 4); // same group: the first column stays
        assert_eq!((Slot::get(s, 0), Slot::get(s, 1)), (Some((0, 3)), None));
        s = Slot::add(s, 7, 200);
        assert_eq!((Slot::get(s, 0), Slot::get(s, 1)), (Some((7, 200)), Some((0, 3))));
        s = Slot::add(s, 9, 1); // the oldest (group 0) is forgotten
        assert_eq!((Slot::get(s, 0), Slot::get(s, 1)), (Some((9, 1)), Some((7, 200))));
        assert_eq!(Slot::add(s, 7, 5), s);
        assert_eq!(Slot::add(0, 16_000_000, 255), Slot::pack(16_000_000, 255));
    }

    #[test]
    fn canonical_ints() {
        assert_eq!(canonical_int(b"0"), Some(0));
        assert_eq!(canonical_int(b"-12"), Some(-12));
        assert_eq!(canonical_int(b"012"), None);
        assert_eq!(canonical_int(b"1.0"), None);
        assert_eq!(canonical_int(b"-"), None);
    }

    #[test]
    fn key_like_names() {
        assert!(key_like("id") && key_like("ID") && key_like("author_id") && key_like("object_id") && key_like("slug"));
        assert!(key_like("_prefetch_related_val_book_id") && key_like("Book_UUID"));
        assert!(!key_like("title") && !key_like("name") && !key_like("rating") && !key_like("paid"));
    }
}
