//! Binary forms of popular extension types → the exact text their output functions write,
//! which is what psycopg returns for them under Django (it has no loaders for them):
//! ltree/lquery/ltxtquery (a version byte, then the text), PostGIS geometry/geography
//! (EWKB bytes; the text is the same EWKB in upper-case hex) and pgvector
//! vector/halfvec/sparsevec (float4/float2 values; the text prints each as PostgreSQL's
//! shortest float4 form). Extension OIDs differ per database, so types are recognised by
//! name (`for_type_name`); citext's binary form is its text and needs nothing here.
use super::read::Reader;
use super::{err, CodecError};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionType {
    Ltree,
    Lquery,
    Ltxtquery,
    Geometry,
    Geography,
    Vector,
    Halfvec,
    Sparsevec,
}

impl ExtensionType {
    pub fn for_type_name(name: &str) -> Option<ExtensionType> {
        Some(match name {
            "ltree" => ExtensionType::Ltree,
            "lquery" => ExtensionType::Lquery,
            "ltxtquery" => ExtensionType::Ltxtquery,
            "geometry" => ExtensionType::Geometry,
            "geography" => ExtensionType::Geography,
            "vector" => ExtensionType::Vector,
            "halfvec" => ExtensionType::Halfvec,
            "sparsevec" => ExtensionType::Sparsevec,
            _ => return None,
        })
    }

    /// Whether columns of this type are asked in binary: only where that measured faster
    /// end to end than text (benches/results/extension_types.md). PostGIS's text is the hex
    /// of its binary; ltree's binary is its text plus a byte, and printing pgvector's floats
    /// costs the client what it saves the server, so those are read as text, and their
    /// decoders serve columns that arrive in binary anyway (a type changed under a
    /// remembered Describe).
    pub fn binary_is_faster(self) -> bool {
        matches!(self, ExtensionType::Geometry | ExtensionType::Geography)
    }

    /// The value's text output (UTF-8), borrowed from `raw` where the binary form holds it.
    pub fn to_text(self, raw: &[u8]) -> Result<Cow<'_, [u8]>, CodecError> {
        match self {
            ExtensionType::Ltree | ExtensionType::Lquery | ExtensionType::Ltxtquery => versioned_text(raw).map(Cow::Borrowed),
            ExtensionType::Geometry | ExtensionType::Geography => Ok(Cow::Owned(upper_hex(raw))),
            ExtensionType::Vector => vector_to_text(raw).map(Cow::Owned),
            ExtensionType::Halfvec => halfvec_to_text(raw).map(Cow::Owned),
            ExtensionType::Sparsevec => sparsevec_to_text(raw).map(Cow::Owned),
        }
    }
}

/// ltree_send & co.: version 1, then the text.
fn versioned_text(raw: &[u8]) -> Result<&[u8], CodecError> {
    match raw.split_first() {
        Some((1, text)) => Ok(text),
        Some((v, _)) => err(format!("unsupported ltree binary format version {v}")),
        None => err("empty ltree binary value"),
    }
}

fn upper_hex(raw: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(raw.len() * 2);
    for &b in raw {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0xF) as usize]);
    }
    out
}

/// vector_send: int16 dim, int16 unused, dim float4 → `[1,2.5,-0.125]`.
fn vector_to_text(raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(raw);
    let dim = r.u16()? as usize;
    r.u16()?;
    if r.rest().len() != dim * 4 {
        return err(format!("vector of {dim} dimensions has {} bytes of values", r.rest().len()));
    }
    let mut out = Vec::with_capacity(2 + dim * 10);
    out.push(b'[');
    for i in 0..dim {
        if i > 0 {
            out.push(b',');
        }
        push_float4(&mut out, f32::from_bits(r.u32()?));
    }
    out.push(b']');
    Ok(out)
}

/// halfvec_send: int16 dim, int16 unused, dim float2; printed as float4 (HalfToFloat4).
fn halfvec_to_text(raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(raw);
    let dim = r.u16()? as usize;
    r.u16()?;
    if r.rest().len() != dim * 2 {
        return err(format!("halfvec of {dim} dimensions has {} bytes of values", r.rest().len()));
    }
    let mut out = Vec::with_capacity(2 + dim * 8);
    out.push(b'[');
    for i in 0..dim {
        if i > 0 {
            out.push(b',');
        }
        push_float4(&mut out, half_to_f32(r.u16()?));
    }
    out.push(b']');
    Ok(out)
}

/// sparsevec_send: int32 dim, nnz, unused, nnz 0-based int32 indices, nnz float4 values
/// → `{1:0.5,3:2}/5` (1-based indices).
fn sparsevec_to_text(raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut r = Reader::new(raw);
    let dim = r.i32()?;
    let nnz = r.i32()?;
    r.i32()?;
    if nnz < 0 || r.rest().len() != nnz as usize * 8 {
        return err(format!("sparsevec with {nnz} non-zero elements has {} bytes of data", r.rest().len()));
    }
    let nnz = nnz as usize;
    let mut values = Reader::new(&r.rest()[nnz * 4..]);
    let mut out = Vec::with_capacity(16 + nnz * 14);
    out.push(b'{');
    for i in 0..nnz {
        if i > 0 {
            out.push(b',');
        }
        let index = r.i32()? as i64 + 1;
        out.extend_from_slice(index.to_string().as_bytes());
        out.push(b':');
        push_float4(&mut out, f32::from_bits(values.u32()?));
    }
    out.push(b'}');
    out.push(b'/');
    out.extend_from_slice(dim.to_string().as_bytes());
    Ok(out)
}

/// IEEE half → float4 (exact: every half is a float4).
pub fn half_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1F) as u32;
    let mant = (h & 0x3FF) as u32;
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal half: normalise into float4's range.
            let (mut m, mut e) = (mant, 127 - 15 + 1);
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3FF) << 13)
        }
        0x1F => sign | 0x7F80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// PostgreSQL's `float_to_shortest_decimal_bufn` (src/common/f2s.c): the shortest digits
/// that read back as the same float4, fixed-point for decimal exponents -4..=5, else
/// `d.ddde+XX` with at least two exponent digits; `NaN`, `Infinity`, `-0`. PostgreSQL's
/// Ryū excludes the rounding interval's bounds (`acceptBounds` false), the ryu crate
/// includes them for even mantissas: see `pg_shortest`.
pub fn push_float4(out: &mut Vec<u8>, f: f32) {
    if f.is_nan() {
        return out.extend_from_slice(b"NaN");
    }
    if f.is_infinite() {
        return out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
    }
    if f == 0.0 {
        return out.extend_from_slice(if f.is_sign_negative() { b"-0" } else { b"0" });
    }
    let mut buf = [0u8; 24];
    let (digits, exp) = pg_shortest(f.abs(), &mut buf);
    if f.is_sign_negative() {
        out.push(b'-');
    }
    let n = digits.len() as i32;
    if (-4..6).contains(&exp) {
        if exp < 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
            out.extend_from_slice(digits);
        } else if exp + 1 >= n {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', (exp + 1 - n) as usize));
        } else {
            out.extend_from_slice(&digits[..exp as usize + 1]);
            out.push(b'.');
            out.extend_from_slice(&digits[exp as usize + 1..]);
        }
        return;
    }
    out.push(digits[0]);
    if n > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    out.push(b'e');
    out.push(if exp < 0 { b'-' } else { b'+' });
    let e = exp.unsigned_abs() as u8; // float4: at most 45
    out.extend_from_slice(&[b'0' + e / 10, b'0' + e % 10]);
}

/// Shortest digits strictly inside `f`'s rounding interval (`f` positive and finite), and
/// the decimal exponent of the first.
fn pg_shortest(f: f32, buf: &mut [u8; 24]) -> (&[u8], i32) {
    let mut ryu_buf = ryu::Buffer::new();
    let (len, exp) = sig_len(ryu_buf.format_finite(f), buf);
    // The ryu crate takes a bound only for an even mantissa, and a decimal of at most nine
    // digits can be a midpoint only where float4's spacing is 2^-11 or more (f >= 4096).
    if f.to_bits() & 1 == 1 || f < 4096.0 || !on_bound(&buf[..len], exp, f) {
        return (&buf[..len], exp);
    }
    // The correctly rounded value with the fewest digits inside the interval is what Ryū
    // without bounds gives.
    for precision in 0..9 {
        let candidate = format!("{f:.precision$e}");
        if candidate.parse::<f32>() == Ok(f) {
            let (len, exp) = sig_len(&candidate, buf);
            if !on_bound(&buf[..len], exp, f) {
                return (&buf[..len], exp);
            }
        }
    }
    sig_digits(&format!("{f:.8e}"), buf)
}

fn sig_len(s: &str, buf: &mut [u8]) -> (usize, i32) {
    let (digits, exp) = sig_digits(s, buf);
    (digits.len(), exp)
}

/// Whether the decimal `digits` × 10^(exp + 1 - len) is exactly halfway between normal
/// float4 `f` and a neighbour (integer arithmetic, both sides scaled to integers).
fn on_bound(digits: &[u8], exp: i32, f: f32) -> bool {
    let bits = f.to_bits();
    let (field_exp, field_mant) = ((bits >> 23) & 0xFF, bits & 0x7F_FFFF);
    let m = (field_mant | 0x80_0000) as u128;
    let q = field_exp as i32 - 150 - 1; // f = m·2^(q+1); its midpoints are odd multiples of 2^q
    let d = digits.iter().fold(0u128, |a, &b| a * 10 + (b - b'0') as u128);
    let k = exp - (digits.len() as i32 - 1);
    // Below a power of two the spacing halves.
    let lower = if field_mant == 0 { (4 * m - 1, q - 1) } else { (2 * m - 1, q) };
    let scale = |x: u128, ten: i32, two: i32| -> Option<u128> {
        x.checked_mul(10u128.checked_pow(ten.max(0) as u32)?)?.checked_mul(2u128.checked_pow(two.max(0) as u32)?)
    };
    // d·10^k = n·2^q  ⇔  d·10^max(k,0)·2^max(-q,0) = n·10^max(-k,0)·2^max(q,0); an
    // overflowing side is the larger one.
    [(2 * m + 1, q), lower]
        .into_iter()
        .any(|(n, q)| matches!((scale(d, k, -q), scale(n, -k, q)), (Some(a), Some(b)) if a == b))
}

/// Rust's text for a positive finite number (`123.0`, `0.001`, `1.5e-7`, `1e20`) →
/// (significant digits without trailing zeros, in `buf`; decimal exponent of the first).
fn sig_digits<'b>(s: &str, buf: &'b mut [u8]) -> (&'b [u8], i32) {
    let (mantissa, exp_part) = match s.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (s, 0),
    };
    let int_len = mantissa.find('.').unwrap_or(mantissa.len()) as i32;
    let (mut len, mut lead, mut seen) = (0usize, 0i32, false);
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        if !seen && b == b'0' {
            lead += 1;
            continue;
        }
        seen = true;
        if len < buf.len() {
            buf[len] = b;
            len += 1;
        }
    }
    while len > 1 && buf[len - 1] == b'0' {
        len -= 1;
    }
    (&buf[..len], int_len - 1 - lead + exp_part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f4(f: f32) -> String {
        let mut out = Vec::new();
        push_float4(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    fn text(t: ExtensionType, raw: &[u8]) -> String {
        String::from_utf8(t.to_text(raw).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn float4_as_postgresql_prints_it() {
        // Expected strings are what `SELECT x::float4::text` gives on PostgreSQL 12+.
        let cases: &[(f32, &str)] = &[
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.1, "1.1"),
            (123456.0, "123456"),
            (999999.0, "999999"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (16777216.0, "1.6777216e+07"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (3.4028235e38, "3.4028235e+38"),
            (1e-45, "1e-45"),
            (100.0, "100"),
            // Shortest candidates on a rounding bound, which PostgreSQL does not take.
            (50816768.0, "5.0816768e+07"),
            (100319184.0, "1.00319184e+08"),
            (-2747983872.0, "-2.7479839e+09"),
            (-43686848.0, "-4.3686848e+07"),
            (12.5, "12.5"),
            (f32::NAN, "NaN"),
            (f32::INFINITY, "Infinity"),
            (f32::NEG_INFINITY, "-Infinity"),
            (0.0, "0"),
            (-0.0, "-0"),
        ];
        for &(f, want) in cases {
            assert_eq!(f4(f), want, "{f:?}");
        }
    }

    #[test]
    fn float4_text_reads_back_as_the_same_float() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let f = f32::from_bits(x);
            if f.is_finite() {
                let s = f4(f);
                assert_eq!(s.parse::<f32>().unwrap().to_bits(), f.to_bits(), "{s}");
            }
        }
    }

    #[test]
    fn half_converts_exactly() {
        assert_eq!(half_to_f32(0x3C00), 1.0);
        assert_eq!(half_to_f32(0xC000), -2.0);
        assert_eq!(half_to_f32(0x3555), 0.333_251_95);
        assert_eq!(half_to_f32(0x0001), 5.960_464_5e-8); // smallest subnormal
        assert_eq!(half_to_f32(0x03FF), 6.097_555_2e-5); // largest subnormal
        assert_eq!(half_to_f32(0x7BFF), 65504.0);
        assert!(half_to_f32(0x7C00).is_infinite());
        assert!(half_to_f32(0x7E00).is_nan());
        assert!(half_to_f32(0x8000).is_sign_negative());
    }

    #[test]
    fn ltree_family_strips_the_version_byte() {
        assert_eq!(text(ExtensionType::Ltree, b"\x01A.B"), "A.B");
        assert_eq!(text(ExtensionType::Lquery, b"\x01*.B{1,2}"), "*.B{1,2}");
        assert_eq!(text(ExtensionType::Ltxtquery, b"\x01A & B"), "A & B");
        assert_eq!(text(ExtensionType::Ltree, b"\x01"), "");
        assert!(ExtensionType::Ltree.to_text(b"\x02A").is_err());
        assert!(ExtensionType::Ltree.to_text(b"").is_err());
    }

    #[test]
    fn geometry_is_upper_case_hex_ewkb() {
        // SRID=4326;POINT(1 2)
        let ewkb = [
            0x01, 0x01, 0x00, 0x00, 0x20, 0xE6, 0x10, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0, 0, 0, 0, 0, 0, 0,
            0x40,
        ];
        assert_eq!(text(ExtensionType::Geometry, &ewkb), "0101000020E6100000000000000000F03F0000000000000040");
        assert_eq!(text(ExtensionType::Geography, &[]), "");
    }

    #[test]
    fn vector_family() {
        let mut v = vec![0, 3, 0, 0];
        for f in [1.0f32, -2.5, 0.1] {
            v.extend_from_slice(&f.to_be_bytes());
        }
        assert_eq!(text(ExtensionType::Vector, &v), "[1,-2.5,0.1]");
        assert!(ExtensionType::Vector.to_text(&v[..v.len() - 1]).is_err());
        assert!(ExtensionType::Vector.to_text(&[0]).is_err());

        let h = [0, 2, 0, 0, 0x3C, 0x00, 0x35, 0x55];
        assert_eq!(text(ExtensionType::Halfvec, &h), "[1,0.33325195]");
        assert!(ExtensionType::Halfvec.to_text(&h[..7]).is_err());

        let mut s = Vec::new();
        for i in [5i32, 2, 0, 0, 2] {
            s.extend_from_slice(&i.to_be_bytes());
        }
        for f in [1.5f32, 2.0] {
            s.extend_from_slice(&f.to_be_bytes());
        }
        assert_eq!(text(ExtensionType::Sparsevec, &s), "{1:1.5,3:2}/5");
        assert_eq!(text(ExtensionType::Sparsevec, &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]), "{}/4");
        assert!(ExtensionType::Sparsevec.to_text(&s[..s.len() - 4]).is_err());
        let mut negative = s.clone();
        negative[4..8].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(ExtensionType::Sparsevec.to_text(&negative).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(ExtensionType::for_type_name("ltree"), Some(ExtensionType::Ltree));
        assert_eq!(ExtensionType::for_type_name("sparsevec"), Some(ExtensionType::Sparsevec));
        assert_eq!(ExtensionType::for_type_name("citext"), None);
        assert_eq!(ExtensionType::for_type_name("box2d"), None);
    }
}
