//! Text bytes → `str` (`str_from_utf8`), and the short strings that a batch decodes again
//! and again: a choice column's few values,
//! JSON values such as "en", the tags of a text array. Each distinct value becomes a
//! `str` once per batch and is then shared, so a repeat costs no allocation, UTF-8
//! decode or free. Equal `str`s are interchangeable; only `is` tells a shared one apart.

use crate::errors;
use pyo3::ffi;
use pyo3::prelude::*;

/// Longest value kept, in bytes: longer text rarely repeats (titles, bodies).
const MAX_LEN: usize = 16;
const SLOTS: usize = 256;
/// Values decoded before the table is made: a one-row query never pays for it.
const WARM_UP: u32 = 32;

#[derive(Default)]
pub struct StrCache {
    seen: u32,
    /// Direct-mapped: a value's slot is its hash; a new value evicts the old one.
    slots: Option<Box<[Slot]>>,
}

#[derive(Default)]
struct Slot {
    key: Key,
    value: Option<PyObject>,
}

/// A value of 1..=16 bytes, exactly: its length and two words that, with the length,
/// hold every byte (loads that may overlap; no copy into a padded buffer).
#[derive(Default, PartialEq, Eq, Clone, Copy)]
struct Key {
    len: usize,
    low: u64,
    high: u64,
}

impl Key {
    fn of(raw: &[u8]) -> Key {
        let n = raw.len();
        debug_assert!((1..=MAX_LEN).contains(&n));
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        let half = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes")) as u64;
        let (low, high) = match n {
            8.. => (word(0), word(n - 8)),
            4.. => (half(0), half(n - 4)),
            _ => (raw[0] as u64 | (raw[n / 2] as u64) << 8, raw[n - 1] as u64),
        };
        Key { len: n, low, high }
    }

    fn slot(&self) -> usize {
        let mixed = (self.low ^ self.high.rotate_left(23) ^ self.len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 56) as usize % SLOTS
    }
}

impl StrCache {
    /// `raw` as a `str` (a DataError when it is not UTF-8), shared with earlier equal values.
    pub fn get(&mut self, py: Python<'_>, raw: &[u8]) -> PyResult<PyObject> {
        if raw.is_empty() || raw.len() > MAX_LEN {
            return str_from_utf8(py, raw);
        }
        let slots = match &mut self.slots {
            Some(slots) => slots,
            None if self.seen < WARM_UP => {
                self.seen += 1;
                return str_from_utf8(py, raw);
            }
            None => self.slots.insert((0..SLOTS).map(|_| Slot::default()).collect()),
        };
        let key = Key::of(raw);
        let slot = &mut slots[key.slot()];
        if slot.key == key {
            if let Some(value) = &slot.value {
                return Ok(value.clone_ref(py));
            }
        }
        let value = str_from_utf8(py, raw)?;
        *slot = Slot { key, value: Some(value.clone_ref(py)) };
        Ok(value)
    }
}

/// `raw` as a new `str`; a DataError when it is not UTF-8.
pub fn str_from_utf8(py: Python<'_>, raw: &[u8]) -> PyResult<PyObject> {
    // SAFETY: pointer and length describe `raw`; CPython validates the UTF-8.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeUTF8(raw.as_ptr() as *const _, raw.len() as ffi::Py_ssize_t, std::ptr::null());
        if ptr.is_null() {
            return Err(errors::data(py, "value is not valid UTF-8"));
        }
        Ok(PyObject::from_owned_ptr(py, ptr))
    }
}

#[cfg(test)]
mod tests {
    use super::Key;

    #[test]
    fn keys_tell_length_and_every_byte_apart() {
        assert!(Key::of(b"a") != Key::of(b"a\0"), "a trailing NUL is not padding");
        assert!(Key::of(b"abcdefgh") != Key::of(b"abcdefgi"));
        assert!(Key::of(b"abcdefghijklmnop") != Key::of(b"abcdefghijklmnoq"));
        assert!(Key::of("façade".as_bytes()) == Key::of("façade".as_bytes()));
        // Every value of a small alphabet up to 16 bytes, changed at each position in turn.
        for n in 1..=16 {
            let base = vec![b'a'; n];
            for at in 0..n {
                let mut other = base.clone();
                other[at] = b'b';
                assert!(Key::of(&base) != Key::of(&other), "length {n}, byte {at}");
            }
        }
    }
}
