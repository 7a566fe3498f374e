//! JSON text → Python objects, the same objects `json.loads` builds (dicts in document
//! order, ints, floats correctly rounded, strs, lists, None/True/False) without making a
//! `str` first. `None` when the text needs Python's own parser: integers beyond 18
//! digits, nesting deeper than 128, or anything invalid (its error is Python's to raise).

use super::str_cache::StrCache;
use crate::codec::json::integers_fit_i64;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The JSON text of a binary jsonb value: after its version byte (1; None for another).
pub fn jsonb_text(raw: &[u8]) -> Option<&[u8]> {
    match raw.split_first() {
        Some((1, text)) => Some(text),
        _ => None,
    }
}

pub fn loads(py: Python<'_>, text: &[u8], strings: &mut StrCache) -> Option<PyObject> {
    loads_with(py, text, &mut KeyCache::default(), strings)
}

/// Object keys already made into `str`, reused across the documents of one batch (as
/// `json.loads` reuses them within one document): no new string, and its hash is cached.
#[derive(Default)]
pub struct KeyCache(Vec<(Box<str>, Py<PyString>)>);

impl KeyCache {
    const MAX_KEYS: usize = 64;
    const MAX_LEN: usize = 64;

    fn get<'py>(&mut self, py: Python<'py>, key: &str) -> Bound<'py, PyString> {
        if let Some((_, s)) = self.0.iter().find(|(k, _)| &**k == key) {
            return s.bind(py).clone();
        }
        let s = PyString::new(py, key);
        if self.0.len() < Self::MAX_KEYS && key.len() <= Self::MAX_LEN {
            self.0.push((key.into(), s.clone().unbind()));
        }
        s
    }
}

pub fn loads_with(py: Python<'_>, text: &[u8], keys: &mut KeyCache, strings: &mut StrCache) -> Option<PyObject> {
    if !integers_fit_i64(text) {
        return None;
    }
    // One UTF-8 check of the whole text, not one per string as from_slice makes.
    let text = std::str::from_utf8(text).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = ToPython(py, &mut Caches { keys, strings }).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

struct Caches<'c> {
    keys: &'c mut KeyCache,
    strings: &'c mut StrCache,
}

struct ToPython<'py, 'k, 'c>(Python<'py>, &'k mut Caches<'c>);

/// An object key: a `str` from the cache.
struct Key<'py, 'k, 'c>(Python<'py>, &'k mut Caches<'c>);

impl<'de, 'py> DeserializeSeed<'de> for Key<'py, '_, '_> {
    type Value = Bound<'py, PyString>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for Key<'py, '_, '_> {
    type Value = Bound<'py, PyString>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.1.keys.get(self.0, v))
    }
}

impl<'de> DeserializeSeed<'de> for ToPython<'_, '_, '_> {
    type Value = PyObject;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<PyObject, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn py_err<E: de::Error>(e: PyErr) -> E {
    E::custom(e)
}

impl<'de> Visitor<'de> for ToPython<'_, '_, '_> {
    type Value = PyObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<PyObject, E> {
        Ok(self.0.None())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<PyObject, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any().unbind())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PyObject, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any().unbind())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PyObject, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any().unbind())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<PyObject, E> {
        Ok(PyFloat::new(self.0, v).into_any().unbind())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PyObject, E> {
        self.1.strings.get(self.0, v.as_bytes()).map_err(py_err)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PyObject, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(item) = seq.next_element_seed(ToPython(self.0, &mut *self.1))? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any().unbind())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PyObject, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key_seed(Key(self.0, &mut *self.1))? {
            let value = map.next_value_seed(ToPython(self.0, &mut *self.1))?;
            dict.set_item(key, value).map_err(py_err)?;
        }
        Ok(dict.into_any().unbind())
    }
}
