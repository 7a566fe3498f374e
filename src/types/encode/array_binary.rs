//! Lists sent as binary arrays where the text form costs the most: aware datetimes
//! (timestamptz[]), UUIDs (uuid[]) and psycopg `Jsonb` values (jsonb[]). Django's
//! bulk_create sends one such list per column (`UNNEST(%s::type[], ...)`); in text, every
//! element is formatted by a Python call and parsed again by the server.
//!
//! Same type OIDs as the text form gives the same list, so the server sees the same
//! statement; anything else (other element types, naive datetimes, nested lists, an
//! unfamiliar `dumps`) returns None and takes the text form.

use super::{Encoder, Format, Param, NUL_MESSAGE};
use crate::errors;
use crate::types::oid;
use pyo3::prelude::*;
use pyo3::types::{PyDateTime, PyList};
use serde_json::value::RawValue;

const JSONB_BINARY_VERSION: u8 = 1;

enum Kind {
    TimestampTz,
    Uuid,
    Jsonb,
}

/// `Some(binary array)` when every element is None or of one kind listed above.
pub(super) fn encode_list<'py>(enc: &Encoder<'py>, list: &Bound<'py, PyList>, position: usize) -> PyResult<Option<Param>> {
    let py = enc.py;
    let r = enc.refs;
    let mut kind = None;
    for item in list.iter() {
        if item.is_none() {
            continue;
        }
        let ty = item.get_type();
        let this = if ty.is(r.uuid.bind(py)) {
            Kind::Uuid
        } else if ty.is(r.jsonb.bind(py)) {
            Kind::Jsonb
        } else if item.downcast_exact::<PyDateTime>().is_ok() {
            Kind::TimestampTz
        } else {
            return Ok(None);
        };
        match (&kind, &this) {
            (None, _) => kind = Some(this),
            (Some(Kind::Uuid), Kind::Uuid) | (Some(Kind::Jsonb), Kind::Jsonb) | (Some(Kind::TimestampTz), Kind::TimestampTz) => {}
            _ => return Ok(None),
        }
    }
    let Some(kind) = kind else { return Ok(None) };
    let (elem_oid, elements) = match kind {
        Kind::Uuid => (oid::UUID, uuids(list)?),
        Kind::TimestampTz => match timestamps(enc, list)? {
            Some(e) => (oid::TIMESTAMPTZ, e),
            None => return Ok(None),
        },
        Kind::Jsonb => match jsonbs(enc, list, position)? {
            Some(e) => (oid::JSONB, e),
            None => return Ok(None),
        },
    };
    let Some(array_oid) = oid::array_of(elem_oid) else { return Ok(None) };
    Ok(Some(Param { oid: array_oid, format: Format::Binary, value: Some(array(elem_oid, &elements)) }))
}

fn uuids(list: &Bound<'_, PyList>) -> PyResult<Vec<Option<Vec<u8>>>> {
    let int = pyo3::intern!(list.py(), "int");
    list.iter()
        .map(|item| {
            if item.is_none() {
                return Ok(None);
            }
            Ok(Some(item.getattr(int)?.extract::<u128>()?.to_be_bytes().to_vec()))
        })
        .collect()
}

/// None when a datetime is naive: the text form types the list as timestamp[] then.
fn timestamps<'py>(enc: &Encoder<'py>, list: &Bound<'py, PyList>) -> PyResult<Option<Vec<Option<Vec<u8>>>>> {
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        if item.is_none() {
            out.push(None);
            continue;
        }
        let (micros, aware) = enc.datetime_micros(item.downcast::<PyDateTime>()?)?;
        if !aware {
            return Ok(None);
        }
        out.push(Some(micros.to_be_bytes().to_vec()));
    }
    Ok(Some(out))
}

/// One `dumps` call for the whole list (json.dumps of a list writes each element exactly as
/// dumps of that element does), split back into elements by serde_json. Only for the
/// `dumps` Django and psycopg use: json.dumps, or json.dumps with a `cls` whose encode and
/// iterencode are JSONEncoder's.
fn jsonbs<'py>(enc: &Encoder<'py>, list: &Bound<'py, PyList>, position: usize) -> PyResult<Option<Vec<Option<Vec<u8>>>>> {
    let py = enc.py;
    let json_dumps = enc.refs.json_dumps.bind(py);
    let mut dumps: Option<Bound<'py, PyAny>> = None;
    let inner = PyList::empty(py);
    for item in list.iter() {
        if item.is_none() {
            continue;
        }
        let d = item.getattr(pyo3::intern!(py, "dumps"))?;
        let d = if d.is_none() { json_dumps.clone() } else { d };
        match &dumps {
            None => {
                if !d.is(json_dumps) && !is_plain_json_partial(py, &d, json_dumps)? {
                    return Ok(None);
                }
                dumps = Some(d);
            }
            Some(first) if first.is(&d) => {}
            Some(_) => return Ok(None),
        }
        inner.append(item.getattr(pyo3::intern!(py, "obj"))?)?;
    }
    let Some(dumps) = dumps else { return Ok(None) };
    let text: String = match dumps.call1((inner,))?.extract() {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    if text.contains('\0') {
        return Err(errors::data(py, format!("{NUL_MESSAGE} (parameter #{position})")));
    }
    let Ok(parts) = serde_json::from_str::<Vec<&RawValue>>(&text) else { return Ok(None) };
    let mut parts = parts.into_iter();
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        if item.is_none() {
            out.push(None);
            continue;
        }
        let Some(part) = parts.next() else { return Ok(None) };
        let mut bytes = Vec::with_capacity(part.get().len() + 1);
        bytes.push(JSONB_BINARY_VERSION);
        bytes.extend_from_slice(part.get().as_bytes());
        out.push(Some(bytes));
    }
    Ok(if parts.next().is_none() { Some(out) } else { None })
}

/// functools.partial(json.dumps, cls=C) (Django's get_json_dumps(encoder)) with C.encode and
/// C.iterencode being JSONEncoder's own.
fn is_plain_json_partial<'py>(py: Python<'py>, d: &Bound<'py, PyAny>, json_dumps: &Bound<'py, PyAny>) -> PyResult<bool> {
    let functools = py.import("functools")?;
    if !d.get_type().is(&functools.getattr("partial")?) || !d.getattr("func")?.is(json_dumps) {
        return Ok(false);
    }
    if d.getattr("args")?.len()? != 0 {
        return Ok(false);
    }
    let keywords = d.getattr("keywords")?;
    if keywords.len()? != 1 {
        return Ok(false);
    }
    let Ok(cls) = keywords.get_item("cls") else { return Ok(false) };
    let base = py.import("json")?.getattr("JSONEncoder")?;
    for name in ["encode", "iterencode"] {
        if !cls.getattr(name)?.is(&base.getattr(name)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// PostgreSQL's binary array: ndim, has-nulls flag, element type, (length, lower bound) per
/// dimension, then each element as (length or -1, bytes).
fn array(elem_oid: u32, elements: &[Option<Vec<u8>>]) -> Vec<u8> {
    let size: usize = elements.iter().map(|e| 4 + e.as_ref().map_or(0, Vec::len)).sum();
    let mut out = Vec::with_capacity(20 + size);
    out.extend(1i32.to_be_bytes());
    out.extend((elements.iter().any(Option::is_none) as i32).to_be_bytes());
    out.extend(elem_oid.to_be_bytes());
    out.extend((elements.len() as i32).to_be_bytes());
    out.extend(1i32.to_be_bytes());
    for e in elements {
        match e {
            None => out.extend((-1i32).to_be_bytes()),
            Some(bytes) => {
                out.extend((bytes.len() as i32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}
