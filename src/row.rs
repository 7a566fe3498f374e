//! One result row's pieces: raw column bytes, column info, and rows turned into Python
//! tuples or dicts (in chunks for large results), plus the `description` columns.
//! `cursor`, `materialize` and `nplusone` build on it; it depends on none of them.

use crate::types::decode::{DecodeCtx, Decoder};
use crate::types::{oid, pyrefs};
use postgres_types::{FromSql, Type};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::collections::VecDeque;
use tokio_postgres::{Column, Row};

/// A column's raw bytes, whatever its type (NULL is `None`).
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// What `description` needs of a result column (tokio-postgres's `Column` is not Clone).
#[derive(Clone)]
pub struct ColInfo {
    pub name: String,
    pub type_: Type,
    pub type_modifier: i32,
    /// `pg_type.typlen` as the row description carries it (psycopg's internal_size).
    pub type_size: i16,
}

pub fn col_infos(cols: &[Column]) -> Vec<ColInfo> {
    cols.iter()
        .map(|c| ColInfo {
            name: c.name().to_string(),
            type_: c.type_().clone(),
            type_modifier: c.type_modifier(),
            type_size: c.type_size(),
        })
        .collect()
}

#[inline]
pub fn raw_value(row: &Row, idx: usize) -> Option<&[u8]> {
    row.try_get::<_, Raw>(idx).map(|r| r.0).unwrap_or(None)
}

/// Each column's decoder, reading binary where `formats` (Bind's codes) asked for it.
pub fn column_decoders(cols: &[ColInfo], formats: &[i16]) -> Vec<Decoder> {
    cols.iter().enumerate().map(|(i, c)| Decoder::for_column(&c.type_, crate::formats::is_binary(formats, i))).collect()
}


/// Large results are converted in chunks of this many rows; after each, the converted
/// wire rows are freed and their memory handed back to the OS. Not much smaller: each
/// hand-back is a heap walk, and the pages it frees are faulted in again by the next result
/// (at 4,096 a narrow 20k-row read spent a third of its time there).
pub const RELEASE_EVERY: usize = 16_384;

/// Results up to this many rows are converted whole and keep their freed memory for the
/// next result (fetchall and fetchmany alike).
pub const RELEASE_ABOVE: usize = 4 * RELEASE_EVERY;

/// Converts `rows` front to back in chunks, so a large result's peak memory is about the
/// larger of its wire rows and its Python objects rather than their sum.
pub fn convert_consuming<T>(rows: &mut VecDeque<Row>, mut convert: impl FnMut(&[Row]) -> PyResult<Vec<T>>) -> PyResult<Vec<T>> {
    let total = rows.len();
    if total <= RELEASE_ABOVE {
        return convert(rows.make_contiguous());
    }
    let mut out = Vec::with_capacity(total);
    while !rows.is_empty() {
        let k = rows.len().min(RELEASE_EVERY);
        // Converted in place, then dropped: no copy of the chunk's rows.
        out.extend(convert(&rows.make_contiguous()[..k])?);
        rows.drain(..k);
        release_consumed(rows);
    }
    Ok(out)
}

/// After rows were taken from the front of `rows`: shrinks its buffer once it is mostly
/// empty (the old buffer is returned whole; halving keeps the copies O(n)) and hands
/// freed memory back to the OS.
pub fn release_consumed(rows: &mut VecDeque<Row>) {
    if rows.capacity() > 2 * rows.len() + RELEASE_EVERY {
        rows.shrink_to_fit();
    }
    crate::memory::release_freed();
}

/// Decodes one row into a tuple, writing items straight into the new tuple.
pub fn row_tuple(ctx: &DecodeCtx<'_>, decoders: &[Decoder], row: &Row) -> PyResult<PyObject> {
    let n = decoders.len();
    // SAFETY: the tuple is freshly allocated with n slots; each slot is set exactly once
    // with an owned reference; on error the partially filled tuple is released (NULL slots
    // are allowed by tuple deallocation).
    unsafe {
        let tuple = ffi::PyTuple_New(n as ffi::Py_ssize_t);
        if tuple.is_null() {
            return Err(PyErr::fetch(ctx.py));
        }
        for (i, dec) in decoders.iter().enumerate() {
            match ctx.decode_opt(dec, raw_value(row, i)) {
                Ok(v) => ffi::PyTuple_SET_ITEM(tuple, i as ffi::Py_ssize_t, v.into_ptr()),
                Err(e) => {
                    ffi::Py_DECREF(tuple);
                    return Err(e);
                }
            }
        }
        untrack_if_atomic(tuple, ctx.refs);
        Ok(PyObject::from_owned_ptr(ctx.py, tuple))
    }
}

/// Stops the collector tracking a filled tuple that holds only values which cannot refer
/// back to it (ints, strs, datetimes, untracked tuples, untracked Decimals and UUIDs):
/// CPython's own rule (`_PyTuple_MaybeUntrack`), which the collector applies only on its
/// first pass over the tuple, with `PyRefs::is_leaf` values added (the decoders leave those
/// untracked). A 100,000-row result is then not traversed by every collection that follows.
///
/// # Safety
/// `tuple` is a valid tuple whose slots are all set; the GIL is held.
pub unsafe fn untrack_if_atomic(tuple: *mut ffi::PyObject, refs: &pyrefs::PyRefs) {
    let n = ffi::PyTuple_GET_SIZE(tuple);
    for i in 0..n {
        if !holds_no_cycle(ffi::PyTuple_GET_ITEM(tuple, i), refs) {
            return;
        }
    }
    if ffi::PyObject_GC_IsTracked(tuple) != 0 {
        ffi::PyObject_GC_UnTrack(tuple.cast());
    }
}

/// Stops the collector tracking a filled dict whose values hold no cycle, as CPython's own
/// `_PyDict_MaybeUntrack` does, with `PyRefs::is_leaf` values added. Safe as CPython's: a dict
/// tracks itself again when a container is stored in it.
///
/// # Safety
/// `dict` is a valid dict; the GIL is held.
pub unsafe fn untrack_dict_if_atomic(dict: &Bound<'_, PyDict>, refs: &pyrefs::PyRefs) {
    // dict.iter(): PyDict_Next, no list of the values made for the look.
    untrack_dict_holding(dict, dict.iter().map(|(_, v)| v.as_ptr()), refs)
}

/// `untrack_dict_if_atomic` for a dict whose values the caller still holds: they are looked
/// at where they are, not read back out of the dict.
///
/// # Safety
/// `dict` is a valid dict and `values` are all (and only) its values; the GIL is held.
pub unsafe fn untrack_dict_holding(
    dict: &Bound<'_, PyDict>,
    mut values: impl Iterator<Item = *mut ffi::PyObject>,
    refs: &pyrefs::PyRefs,
) {
    if ffi::PyObject_GC_IsTracked(dict.as_ptr()) == 0 || !values.all(|v| holds_no_cycle(v, refs)) {
        return;
    }
    ffi::PyObject_GC_UnTrack(dict.as_ptr().cast());
}

/// `item` cannot refer back to a container: not a collected type, or an untracked tuple,
/// Decimal or UUID.
unsafe fn holds_no_cycle(item: *mut ffi::PyObject, refs: &pyrefs::PyRefs) -> bool {
    ffi::PyObject_IS_GC(item) == 0
        || (ffi::PyObject_GC_IsTracked(item) == 0 && (ffi::PyTuple_CheckExact(item) != 0 || refs.is_leaf(item)))
}

/// Decodes one row into a dict keyed by the interned column `names`.
pub fn row_dict(ctx: &DecodeCtx<'_>, decoders: &[Decoder], names: &[Bound<'_, PyString>], row: &Row) -> PyResult<PyObject> {
    let d = PyDict::new(ctx.py);
    for (i, dec) in decoders.iter().enumerate() {
        d.set_item(&names[i], ctx.decode_opt(dec, raw_value(row, i))?)?;
    }
    // SAFETY: a new, filled dict; the GIL is held.
    unsafe { untrack_dict_if_atomic(&d, ctx.refs) };
    Ok(d.into_any().unbind())
}

/// A built row tuple as the dict `row_dict` builds from the wire row.
pub fn tuple_dict(py: Python<'_>, names: &[Bound<'_, PyString>], row: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    for (i, name) in names.iter().enumerate() {
        d.set_item(name, row.get_item(i)?)?;
    }
    Ok(d.into_any().unbind())
}

/// `cursor.description`: one psycopg-style `Column` per result column.
pub fn describe(py: Python<'_>, cols: &[ColInfo], hstore_oid: Option<u32>) -> PyResult<PyObject> {
    let column_cls = pyrefs::get(py)?.column.bind(py);
    let list = PyList::empty(py);
    for c in cols {
        let oid = c.type_.oid();
        let tm = c.type_modifier;
        // An array column's modifier is its element type's (psycopg reads it so too).
        let modified = match c.type_.kind() {
            postgres_types::Kind::Array(element) => element.oid(),
            _ => oid,
        };
        let (display_size, precision, scale): (Option<i32>, Option<i32>, Option<i32>) = match modified {
            oid::VARCHAR | oid::BPCHAR | oid::CHAR => (if tm >= 0 { Some(tm - 4) } else { None }, None, None),
            oid::BIT | oid::VARBIT => (if tm >= 0 { Some(tm) } else { None }, None, None),
            oid::NUMERIC => {
                if tm >= 0 {
                    let mut s = (tm - 4) & 0xFFFF;
                    if s >= 0x400 {
                        s -= 0x800;
                    }
                    (None, Some(tm >> 16), Some(s))
                } else {
                    (None, None, None)
                }
            }
            oid::TIME | oid::TIMETZ | oid::TIMESTAMP | oid::TIMESTAMPTZ => {
                (None, if tm >= 0 { Some(tm & 0xFFFF) } else { None }, None)
            }
            // The low bits hold the precision; 0xFFFF (e.g. `interval day to second`) means
            // none was given (psycopg >= 3.3 reports None too).
            oid::INTERVAL => (None, if tm >= 0 && tm & 0xFFFF != 0xFFFF { Some(tm & 0xFFFF) } else { None }, None),
            _ => (None, None, None),
        };
        let internal_size = (c.type_size >= 0).then_some(c.type_size as i32);
        let item = column_cls.call1((c.name.as_str(), oid, display_size, internal_size, precision, scale, py.None()))?;
        // Read by Column.type_display (see pyrefs); most columns need neither.
        if tm >= 0 {
            item.setattr(pyo3::intern!(py, "_fmod"), tm)?;
        }
        if hstore_oid == Some(oid) {
            item.setattr(pyo3::intern!(py, "_type_name"), pyo3::intern!(py, "hstore"))?;
        }
        list.append(item)?;
    }
    Ok(list.into_any().unbind())
}
